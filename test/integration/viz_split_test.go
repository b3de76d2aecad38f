package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// TestVizRoutesShowsASplit: an HTTPRoute splits the Service web 80/20 between web-v1 and web-v2 (local mode), a
// client sends a steady stream of requests, a real Prometheus scrapes the client's proxy, and
// `sinew viz routes svc/web` shows the route with both backends and their shares close to 80 % and 20 %, as
// JSON and as the table a user reads.
func TestVizRoutesShowsASplit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew binary and runs Prometheus")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed (Debian: apt-get install prometheus); .ci/run installs it")
	}
	bin := buildBinaries(t, "sinew")

	// Service web (its own endpoints: web-v1's), web-v1 and web-v2, and a client with an outbound port for web.
	m := startMesh(t, meshOpts{})
	var files []string
	for _, v := range []string{"web-v1", "web-v2"} {
		s := m.sidecar(sidecarOpts{ns: "shop", name: v, sa: v, inbound: []proxy.InboundPort{{Port: 8080, App: routeApp(t, v)}}})
		files = append(files, workloadYAML("shop", v, v, v, s.inboundPort(), 8080), serviceYAML("shop", v, v, 80, 8080))
		defer s.waitReady(t)
	}
	files = append(files, serviceYAML("shop", "web", "web-v1", 80, 8080))
	m.write("shop.yaml", strings.Join(files, "---\n"))
	client := m.sidecar(sidecarOpts{ns: "shop", name: "cli", sa: "cli", outbound: []string{webAuthority}})
	m.write("cli.yaml", workloadYAML("shop", "cli", "cli", "cli", 0, 9))
	client.waitReady(t)
	f := &routeFixture{m: m, client: &http.Client{Timeout: 10 * time.Second}, url: "http://" + client.p.OutboundAddrs()[0]}

	m.write("route.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-split, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: 80}
    - {name: web-v2, port: 80, weight: 20}
`)
	f.waitFor(t, "the split route", func(a routeAnswer) bool { return a.status == 200 && a.servedBy == "web-v2" })

	promURL := startPrometheus(t, promBin, client.p.AdminAddr(), map[string]string{"namespace": "shop", "deployment": "cli", "pod": "cli"})

	// A steady stream of requests while Prometheus scrapes: a rate needs samples on both sides of them.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served sync.Map // backend -> *int, what the client saw
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if a, err := f.get(); err == nil && a.status == 200 {
				n, _ := served.LoadOrStore(a.servedBy, new(int))
				*n.(*int)++
			}
		}
	}()
	defer func() { stop(); wg.Wait() }()

	sinew := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "sinew"), append(args, "--prometheus-url", promURL)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sinew %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// Enough data in the window that the shares are measured, not guessed: each backend's series sampled by at
	// least 10 scrapes (a rate over a series' first one or two samples says more about when they were taken than
	// about the traffic), and at least 2000 responses (a 20 % share's standard deviation is then below 1 %).
	prom, err := metricsapi.NewClient(promURL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rows []metricsapi.RouteRow
	eventually(t, 90*time.Second, "viz routes svc/web with both backends, 10 scrapes and 2000 responses", func() error {
		samples, err := prom.Query(context.Background(),
			`count_over_time(outbound_http_route_backend_response_statuses_total{parent_name="web", route_name="web-split"}[1m])`, time.Time{})
		if err != nil {
			return err
		}
		if len(samples) != 2 || samples[0].Value < 10 || samples[1].Value < 10 {
			return fmt.Errorf("samples per backend series: %+v", samples)
		}
		rows = nil
		if err := json.Unmarshal([]byte(sinew("viz", "routes", "svc/web", "-n", "shop", "-o", "json")), &rows); err != nil {
			return err
		}
		var total float64
		for _, r := range rows {
			if r.RPS != nil {
				total += *r.RPS * 60 // the default window, 1m
			}
		}
		if len(rows) != 2 || total < 2000 {
			return fmt.Errorf("%d rows, about %.0f responses: %+v", len(rows), total, rows)
		}
		return nil
	})
	stop()
	wg.Wait()
	for i, want := range []struct {
		backend string
		share   float64
	}{{"web-v1:80", 0.8}, {"web-v2:80", 0.2}} {
		r := rows[i]
		if r.RouteKind != "HTTPRoute" || r.Route != "web-split" || r.RouteNamespace != "shop" || r.Backend != want.backend {
			t.Errorf("row %d: %+v, want HTTPRoute shop/web-split to %s", i, r, want.backend)
			continue
		}
		if r.Share == nil || *r.Share < want.share-0.04 || *r.Share > want.share+0.04 {
			t.Errorf("%s's share %v, want %.0f %% ± 4", want.backend, deref(r.Share), want.share*100)
		}
		if r.SuccessRate == nil || *r.SuccessRate != 1 || r.LatencyP50 == nil {
			t.Errorf("%s: success %v, p50 %v; want 100 %% and a latency", want.backend, deref(r.SuccessRate), deref(r.LatencyP50))
		}
	}
	table := sinew("viz", "routes", "svc/web", "-n", "shop")
	re := regexp.MustCompile(`(?m)^ROUTE\s+BACKEND\s+SHARE\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99\n` +
		`HTTPRoute/web-split\s+web-v1:80\s+(7[6-9]|8[0-4])\.\d%\s+100\.00%\s+\d+\.\drps\s+\d+ms\s+\d+ms\s+\d+ms\n` +
		`HTTPRoute/web-split\s+web-v2:80\s+(1[6-9]|2[0-4])\.\d%\s+100\.00%\s+\d+\.\drps\s+\d+ms\s+\d+ms\s+\d+ms\n$`)
	if !re.MatchString(table) {
		t.Errorf("sinew viz routes svc/web: want web-split's two backends near 80 %% and 20 %%:\n%s", table)
	}
	// One client's view of the same route: its proxy is the only one scraped, so the same rows.
	if out := sinew("viz", "routes", "deploy/cli", "-n", "shop", "--to", "svc/web"); !strings.Contains(out, "HTTPRoute/web-split") {
		t.Errorf("sinew viz routes deploy/cli --to svc/web:\n%s", out)
	}
	var v1, v2 int
	if n, ok := served.Load("web-v1"); ok {
		v1 = *n.(*int)
	}
	if n, ok := served.Load("web-v2"); ok {
		v2 = *n.(*int)
	}
	t.Logf("the client saw web-v1 %d, web-v2 %d; sinew viz routes svc/web -n shop:\n%s", v1, v2, table)
}

// startPrometheus runs Prometheus scraping one proxy's admin address every second as job sinew-proxy, with the
// target labels the viz label contract expects (namespace, deployment, pod), and returns its URL once the
// target is up.
func startPrometheus(t *testing.T, promBin, admin string, labels map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var ls []string
	for k, v := range labels {
		ls = append(ls, fmt.Sprintf("%s: %q", k, v))
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: sinew-proxy
  static_configs:
  - targets: [%q]
    labels: {%s}
`, admin, strings.Join(ls, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePortBase(t, 1))
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	url := "http://" + addr
	c, err := metricsapi.NewClient(url, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "Prometheus scraping the proxy", func() error {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", log.String())
		default:
		}
		up, err := c.Query(context.Background(), `up{job="sinew-proxy"}`, time.Time{})
		if err != nil {
			return err
		}
		if len(up) != 1 || up[0].Value != 1 {
			return fmt.Errorf("up: %+v", up)
		}
		return nil
	})
	return url
}
