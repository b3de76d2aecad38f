package integration

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/scrape"
)

// TestVizScrapeMatchesPrometheus runs the emojivoto demo with its vote-bot and a real Prometheus, scrapes the same
// proxies with the embedded scraper (viz/scrape), and checks that viz's stat and edges answers from both agree: the
// same rows, and values within what scraping the same counters a second or two apart allows.
func TestVizScrapeMatchesPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew and emojivoto binaries and runs Prometheus")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed (Debian: apt-get install prometheus); .ci/run installs it")
	}
	bin := buildBinaries(t, "sinew", "emojivoto")
	base := freePortBase(t, 50)
	demo := startDemo(t, bin, "--port-base", fmt.Sprint(base), "--prometheus", promBin)
	dataDir := demo.out.waitLine(t, regexp.MustCompile(`logs in (\S+)/logs\)`), 90*time.Second)[1]
	demo.out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 30*time.Second)

	// The scraper gets exactly the targets and labels the demo gave Prometheus.
	targets := promTargets(t, filepath.Join(dataDir, "prometheus", "prometheus.yml"))
	s, err := scrape.New(scrape.Config{Targets: targets, Interval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scraper: %v", err)
		}
		s.Close()
	})
	prom, err := metricsapi.NewClient(fmt.Sprintf("http://127.0.0.1:%d", base+5), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	statReq := metricsapi.StatRequest{Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}
	var fromProm, fromScraper []metricsapi.StatRow
	var promEdges, scraperEdges []metricsapi.Edge
	// Both answer at one instant, once the scraper has a full window (Prometheus started before it): over a
	// partial window, rate extrapolates from whatever each happens to have. The comparison is retried, since the two
	// scrape at different moments of each interval.
	eventually(t, 150*time.Second, "the scraper's stat and edges agreeing with Prometheus's", func() error {
		at := time.Now()
		full, err := s.Query(ctx, `min(count_over_time(up[1m]))`, at)
		if err != nil {
			return err
		}
		if len(full) != 1 || full[0].Value < 30 {
			return fmt.Errorf("the scraper does not have a minute of scrapes yet: %+v", full)
		}
		if fromProm, err = metricsapi.Stat(ctx, prom, statReq, at); err != nil {
			return err
		}
		if fromScraper, err = metricsapi.Stat(ctx, s, statReq, at); err != nil {
			return err
		}
		if promEdges, err = metricsapi.Edges(ctx, prom, metricsapi.KindDeployment, "emojivoto", time.Minute, at); err != nil {
			return err
		}
		if scraperEdges, err = metricsapi.Edges(ctx, s, metricsapi.KindDeployment, "emojivoto", time.Minute, at); err != nil {
			return err
		}
		if err := sameStat(fromProm, fromScraper); err != nil {
			return err
		}
		return sameEdges(promEdges, scraperEdges)
	})
	for name, rows := range map[string][]metricsapi.StatRow{"Prometheus": fromProm, "embedded scraper": fromScraper} {
		var b bytes.Buffer
		if err := metricsapi.WriteStat(&b, rows, metricsapi.OutputWide, false); err != nil {
			t.Fatal(err)
		}
		t.Logf("stat deploy from %s:\n%s", name, b.String())
	}
	var b bytes.Buffer
	if err := metricsapi.WriteEdges(&b, scraperEdges, metricsapi.OutputWide); err != nil {
		t.Fatal(err)
	}
	t.Logf("edges from the embedded scraper:\n%s", b.String())
}

// promTargets reads the static targets of the demo's generated prometheus.yml.
func promTargets(t *testing.T, path string) []metricsapi.ScrapeTarget {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var out []metricsapi.ScrapeTarget
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, addr := range st.Targets {
				out = append(out, metricsapi.ScrapeTarget{Address: addr, Namespace: st.Labels["namespace"],
					Deployment: st.Labels["deployment"], Pod: st.Labels["pod"]})
			}
		}
	}
	if len(out) < 3 {
		t.Fatalf("%s: %d targets, want the demo's proxies:\n%s", path, len(out), raw)
	}
	return out
}

// sameStat compares two stat answers: the same rows with the same pod counts, and each value close to the other.
// Rates over 1m of the same counters scraped up to one interval (2s) apart differ by a few percent; latency
// quantiles interpolate inside coarse buckets, so they get more room.
func sameStat(a, b []metricsapi.StatRow) error {
	if len(a) != len(b) {
		return fmt.Errorf("Prometheus has %d rows, the scraper %d: %s vs %s", len(a), len(b), statRowNames(a), statRowNames(b))
	}
	withTraffic := 0
	for i := range a {
		ra, rb := a[i], b[i]
		if ra.Namespace != rb.Namespace || ra.Name != rb.Name {
			return fmt.Errorf("rows differ: %s vs %s", statRowNames(a), statRowNames(b))
		}
		if fmt.Sprint(valueOrNil(ra.MeshedPods), valueOrNil(ra.TotalPods)) != fmt.Sprint(valueOrNil(rb.MeshedPods), valueOrNil(rb.TotalPods)) {
			return fmt.Errorf("%s meshed: %v/%v vs %v/%v", ra.Name, valueOrNil(ra.MeshedPods), valueOrNil(ra.TotalPods), valueOrNil(rb.MeshedPods), valueOrNil(rb.TotalPods))
		}
		if ra.RPS != nil && *ra.RPS > 0 {
			withTraffic++
		}
		for _, c := range []struct {
			what     string
			pa, pb   *float64
			rel, abs float64
		}{
			{"rps", ra.RPS, rb.RPS, 0.15, 0.1},
			{"success", ra.SuccessRate, rb.SuccessRate, 0, 0.05},
			{"p50", ra.LatencyP50, rb.LatencyP50, 0.5, 1},
			{"p95", ra.LatencyP95, rb.LatencyP95, 1, 5},
			{"tcp conns", ra.TCPConns, rb.TCPConns, 0, 2},
			{"read B/s", ra.ReadBps, rb.ReadBps, 0.15, 20},
			{"write B/s", ra.WriteBps, rb.WriteBps, 0.15, 20},
		} {
			if (c.pa == nil) != (c.pb == nil) {
				return fmt.Errorf("%s %s: %v from Prometheus, %v from the scraper", ra.Name, c.what, valueOrNil(c.pa), valueOrNil(c.pb))
			}
			if c.pa != nil && math.Abs(*c.pa-*c.pb) > c.abs+c.rel*math.Abs(*c.pa) {
				return fmt.Errorf("%s %s: %v from Prometheus, %v from the scraper", ra.Name, c.what, *c.pa, *c.pb)
			}
		}
	}
	if withTraffic < 3 {
		return fmt.Errorf("only %d deployments have traffic yet (want emoji, voting, web)", withTraffic)
	}
	return nil
}

func sameEdges(a, b []metricsapi.Edge) error {
	str := func(es []metricsapi.Edge) []string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s/%s->%s/%s secured=%v%s client=%s server=%s",
				e.SrcNamespace, e.Src, e.DstNamespace, e.Dst, e.Secured, e.NoTLSReason, e.ClientID, e.ServerID))
		}
		return out
	}
	sa, sb := str(a), str(b)
	if len(sa) < 3 || !slices.Equal(sa, sb) {
		return fmt.Errorf("edges from Prometheus:\n%s\nfrom the scraper:\n%s", strings.Join(sa, "\n"), strings.Join(sb, "\n"))
	}
	return nil
}

func statRowNames(rows []metricsapi.StatRow) string {
	var names []string
	for _, r := range rows {
		names = append(names, r.Namespace+"/"+r.Name)
	}
	return strings.Join(names, ",")
}

func valueOrNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
