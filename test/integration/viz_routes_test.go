package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// promDemo is `sinew demo` with its Prometheus, scraping all three emojivoto proxies.
type promDemo struct {
	bin     string // where sinew and emojivoto were built
	base    int    // --port-base
	promURL string
	client  *metricsapi.Client
}

// startPromDemo runs the emojivoto demo without its traffic generator and with a real Prometheus, and waits until
// Prometheus scrapes every proxy. It skips the test when Prometheus is not installed.
func startPromDemo(t *testing.T) *promDemo {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the sinew and emojivoto binaries and runs Prometheus")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed (Debian: apt-get install prometheus); .ci/run installs it")
	}
	d := &promDemo{bin: buildBinaries(t, "sinew", "emojivoto"), base: freePortBase(t, 50)}
	demo := startDemo(t, d.bin, "--no-traffic", "--port-base", fmt.Sprint(d.base), "--prometheus", promBin)
	demo.out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 90*time.Second)
	d.promURL = fmt.Sprintf("http://127.0.0.1:%d", d.base+5)
	if d.client, err = metricsapi.NewClient(d.promURL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the demo's Prometheus scraping all three proxies", func() error {
		up, err := d.client.Query(context.Background(), `sum(up{job="sinew-proxy"})`, time.Time{})
		if err != nil {
			return err
		}
		if len(up) != 1 || up[0].Value != 3 {
			return fmt.Errorf("up: %+v", up)
		}
		return nil
	})
	return d
}

// get sends one request to the demo's web app and checks its status.
func (d *promDemo) get(t *testing.T, path string, want int) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/%s", d.base+31, path))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
	}
}

// round sends one of each kind of request: a list (web → emoji), two good votes and a doughnut vote, which voting
// fails (web → voting).
func (d *promDemo) round(t *testing.T) {
	t.Helper()
	d.get(t, "api/list", 200)
	d.get(t, "api/vote?choice=:beer:", 200)
	d.get(t, "api/vote?choice=:poop:", 200)
	d.get(t, "api/vote?choice=:doughnut:", 500)
}

// TestVizRoutes checks the proxies' per-route metrics end to end: voting's inbound routes are its gRPC methods, the
// doughnut vote fails every time and the other votes never do, web's inbound routes are its HTTP paths without the
// query, and web's outbound routes to voting show the same methods.
func TestVizRoutes(t *testing.T) {
	d := startPromDemo(t)
	ctx := context.Background()
	const doughnut, beer, poo = "/emojivoto.v1.VotingService/VoteDoughnut", "/emojivoto.v1.VotingService/VoteBeer",
		"/emojivoto.v1.VotingService/VotePoop"
	voting := metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "voting"}
	web := metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "web"}
	routesOf := func(req metricsapi.RoutesRequest, want ...string) (map[string]metricsapi.RouteRow, []metricsapi.RouteRow, error) {
		req.Window = time.Minute
		rows, err := metricsapi.Routes(ctx, d.client, req, time.Time{})
		if err != nil {
			return nil, nil, err
		}
		byRoute := map[string]metricsapi.RouteRow{}
		for _, r := range rows {
			if _, dup := byRoute[r.Route]; dup {
				return nil, nil, fmt.Errorf("route %s listed twice (two authorities?): %+v", r.Route, rows)
			}
			byRoute[r.Route] = r
		}
		for _, w := range want {
			if r, ok := byRoute[w]; !ok || r.SuccessRate == nil {
				return nil, nil, fmt.Errorf("route %s has no success rate yet: %+v", w, rows)
			}
		}
		return byRoute, rows, nil
	}

	var in map[string]metricsapi.RouteRow
	var inRows []metricsapi.RouteRow
	eventually(t, 60*time.Second, "voting's vote routes in Prometheus", func() error {
		d.round(t)
		var err error
		in, inRows, err = routesOf(metricsapi.RoutesRequest{Resource: voting}, doughnut, beer, poo)
		return err
	})
	if sr := *in[doughnut].SuccessRate; sr != 0 {
		t.Errorf("voting %s success rate %v, want 0 (every doughnut vote fails)", doughnut, sr)
	}
	for _, r := range []string{beer, poo} {
		if sr := *in[r].SuccessRate; sr != 1 {
			t.Errorf("voting %s success rate %v, want 100%%", r, sr)
		}
	}
	for _, r := range inRows {
		if r.Authority == "" || r.Route == metricsapi.OtherRoute || r.RPS == nil || *r.RPS <= 0 {
			t.Errorf("voting route %+v: want an authority, traffic, and no [other]", r)
		}
		if r.Route == doughnut && (r.LatencyP50 == nil || r.LatencyP99 == nil) {
			t.Errorf("voting route %+v: want latencies", r)
		}
	}
	var table bytes.Buffer
	if err := metricsapi.WriteRoutes(&table, inRows, metricsapi.OutputTable); err != nil {
		t.Fatal(err)
	}
	t.Logf("routes deploy/voting:\n%s", table.String())
	if !regexp.MustCompile(`(?m)^/emojivoto\.v1\.VotingService/VoteDoughnut\s+\S+\s+0\.00%\s+\d+\.\drps`).MatchString(table.String()) {
		t.Errorf("the routes table lacks VoteDoughnut at 0%%:\n%s", table.String())
	}

	// web serves HTTP: its routes are the paths, without the query string.
	eventually(t, 30*time.Second, "web's HTTP routes", func() error {
		d.round(t)
		webIn, rows, err := routesOf(metricsapi.RoutesRequest{Resource: web}, "/api/list", "/api/vote")
		if err != nil {
			return err
		}
		if sr := *webIn["/api/vote"].SuccessRate; sr <= 0 || sr >= 1 {
			return fmt.Errorf("web /api/vote success rate %v, want between 0 and 1: %+v", sr, rows)
		}
		for _, r := range rows {
			if strings.Contains(r.Route, "?") || strings.Contains(r.Route, "choice") {
				t.Fatalf("web route %q carries the query string", r.Route)
			}
		}
		return nil
	})

	// web's calls to voting, measured at web's proxy.
	var out map[string]metricsapi.RouteRow
	var outRows []metricsapi.RouteRow
	eventually(t, 30*time.Second, "web's outbound routes to voting", func() error {
		d.round(t)
		var err error
		out, outRows, err = routesOf(metricsapi.RoutesRequest{Resource: web, To: &voting}, doughnut, beer)
		return err
	})
	if sr := *out[doughnut].SuccessRate; sr != 0 {
		t.Errorf("web → voting %s success rate %v, want 0", doughnut, sr)
	}
	if sr := *out[beer].SuccessRate; sr != 1 {
		t.Errorf("web → voting %s success rate %v, want 100%%", beer, sr)
	}
	for _, r := range outRows {
		if !strings.HasPrefix(r.Route, "/emojivoto.v1.VotingService/") {
			t.Errorf("web → voting route %q is not a VotingService method", r.Route)
		}
	}
	table.Reset()
	if err := metricsapi.WriteRoutes(&table, outRows, metricsapi.OutputWide); err != nil {
		t.Fatal(err)
	}
	t.Logf("routes deploy/web --to deploy/voting:\n%s", table.String())

	// The same through the CLI.
	sinew := filepath.Join(d.bin, "sinew")
	cli, err := exec.Command(sinew, "viz", "routes", "deploy/voting", "-n", "emojivoto", "--prometheus-url", d.promURL, "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("sinew viz routes deploy/voting: %v\n%s", err, cli)
	}
	var cliRows []metricsapi.RouteRow
	if err := json.Unmarshal(cli, &cliRows); err != nil {
		t.Fatalf("sinew viz routes -o json: %v\n%s", err, cli)
	}
	found := false
	for _, r := range cliRows {
		if r.Route == doughnut {
			found = true
			if r.SuccessRate == nil || *r.SuccessRate != 0 {
				t.Errorf("sinew viz routes: %s %+v, want 0%%", doughnut, r)
			}
		}
	}
	if !found {
		t.Errorf("sinew viz routes deploy/voting lacks %s:\n%s", doughnut, cli)
	}
	tableOut, err := exec.Command(sinew, "viz", "routes", "deploy/voting", "-n", "emojivoto", "--prometheus-url", d.promURL).CombinedOutput()
	if err != nil {
		t.Fatalf("sinew viz routes deploy/voting: %v\n%s", err, tableOut)
	}
	if !regexp.MustCompile(`(?m)^ROUTE\s+AUTHORITY\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99$`).Match(tableOut) ||
		!regexp.MustCompile(`(?m)^/emojivoto\.v1\.VotingService/VoteDoughnut\s+\S+\s+0\.00%`).Match(tableOut) {
		t.Errorf("sinew viz routes deploy/voting table lacks the header or VoteDoughnut at 0%%:\n%s", tableOut)
	}
	t.Logf("sinew viz routes deploy/voting -n emojivoto:\n%s", tableOut)
}
