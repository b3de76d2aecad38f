package scrape

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// The proxies of `sinew demo` (emojivoto), whose /metrics were captured into testdata/<pod>.prom.gz by curling
// each proxy's admin port while the vote-bot ran. Deployments follow the run file's sinew.dev/proxy-deployment.
var demoPods = []string{"emoji", "voting", "web", "vote-bot"}

func recorded(t testing.TB, pod string) string {
	t.Helper()
	f, err := os.Open("testdata/" + pod + ".prom.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scaled multiplies every cumulative value (counters, histogram buckets, sums and counts) of a recorded exposition
// by k. Served with k = 1, 2, 3, … on successive scrapes, it is a proxy whose traffic per scrape interval equals
// the recorded totals, so every rate is the recorded value divided by the interval, and every latency quantile is
// the recorded histogram's.
func scaled(text string, k int) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		sp := strings.LastIndexByte(line, ' ')
		name, _, _ := strings.Cut(line, "{")
		cumulative := false
		for _, suffix := range []string{"_total", "_bucket", "_sum", "_count"} {
			cumulative = cumulative || strings.HasSuffix(strings.TrimSpace(name), suffix)
		}
		if strings.HasPrefix(line, "#") || sp < 0 || !cumulative {
			b.WriteString(line + "\n")
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			panic(fmt.Sprintf("recorded line %q: %v", line, err))
		}
		b.WriteString(line[:sp+1] + strconv.FormatFloat(v*float64(k), 'g', -1, 64) + "\n")
	}
	return b.String()
}

// demoScraper serves the recorded proxies and scrapes them for 32 intervals: a full minute of samples for the
// default 1m window.
func demoScraper(t testing.TB) (*Scraper, time.Time, map[string]map[string]*dto.MetricFamily) {
	t.Helper()
	texts := map[string]string{}
	families := map[string]map[string]*dto.MetricFamily{}
	var targets []metricsapi.ScrapeTarget
	servers := map[string]*exposition{}
	for _, pod := range demoPods {
		texts[pod] = recorded(t, pod)
		// What the test expects is read with another parser than the scraper's.
		p := expfmt.NewTextParser(model.UTF8Validation)
		mf, err := p.TextToMetricFamilies(strings.NewReader(texts[pod]))
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		families[pod] = mf
		servers[pod] = serve(t, scaled(texts[pod], 0))
		targets = append(targets, tgt(servers[pod].addr(), "emojivoto", pod, pod))
	}
	s, step, at := newTestScraper(t, Config{Targets: targets})
	for k := range 32 {
		for _, pod := range demoPods {
			servers[pod].set(scaled(texts[pod], k))
		}
		step(1)
	}
	return s, at(), families
}

// sumOf adds the values of a recorded family's series whose labels include all of want.
func sumOf(mf map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, found bool) {
	fam := mf[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// quantileOf is Prometheus's histogram_quantile over the recorded histogram's series that match want, added up
// bucket by bucket (as `sum by (le)` does): linear interpolation inside the bucket holding the rank, 0 as the
// first bucket's lower bound, and the highest finite bound when the rank falls in +Inf.
func quantileOf(mf map[string]*dto.MetricFamily, name string, want map[string]string, q float64) float64 {
	byLe := map[float64]float64{}
	var total float64
	for _, m := range mf[name].GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		for _, b := range m.Histogram.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				byLe[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		total += float64(m.Histogram.GetSampleCount())
	}
	les := make([]float64, 0, len(byLe))
	for le := range byLe {
		les = append(les, le)
	}
	slices.Sort(les)
	rank := q * total
	below, lower := 0.0, 0.0
	for _, le := range les {
		if byLe[le] >= rank {
			return lower + (le-lower)*(rank-below)/(byLe[le]-below)
		}
		below, lower = byLe[le], le
	}
	return lower
}

func TestStatOverRecordedProxyMetrics(t *testing.T) {
	t.Parallel()
	s, at, families := demoScraper(t)
	ctx := context.Background()
	const interval = 2.0 // seconds: the default scrape interval, over which each recorded total recurs

	rows, err := metricsapi.Stat(ctx, s, metricsapi.StatRequest{
		Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}, at)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]metricsapi.StatRow{}
	for _, r := range rows {
		got[r.Name] = r
	}
	if len(got) != len(demoPods) {
		t.Fatalf("stat rows %+v, want one per demo deployment", rows)
	}
	checked := 0
	for _, pod := range demoPods {
		mf, r := families[pod], got[pod]
		if r.MeshedPods == nil || *r.MeshedPods != 1 || r.TotalPods == nil || *r.TotalPods != 1 {
			t.Errorf("%s: meshed %v/%v, want 1/1", pod, r.MeshedPods, r.TotalPods)
		}
		in := map[string]string{"direction": "inbound"}
		total, _ := sumOf(mf, "response_total", in)
		if total == 0 {
			if r.RPS != nil && *r.RPS != 0 {
				t.Errorf("%s serves nothing but has RPS %v", pod, *r.RPS)
			}
			continue
		}
		checked++
		success, _ := sumOf(mf, "response_total", map[string]string{"direction": "inbound", "classification": "success"})
		src := map[string]string{"direction": "inbound", "peer": "src"}
		conns, _ := sumOf(mf, "tcp_open_connections", src)
		read, _ := sumOf(mf, "tcp_read_bytes_total", src)
		write, _ := sumOf(mf, "tcp_write_bytes_total", src)
		for _, c := range []struct {
			what      string
			got       *float64
			want, tol float64
		}{
			{"rps", r.RPS, total / interval, 1e-9},
			{"success", r.SuccessRate, success / total, 1e-9},
			{"tcp conns", r.TCPConns, conns, 1e-9},
			{"read B/s", r.ReadBps, read / interval, 1e-9},
			{"write B/s", r.WriteBps, write / interval, 1e-9},
			{"p50", r.LatencyP50, quantileOf(mf, "response_latency_ms", in, 0.5), 1e-9},
			{"p95", r.LatencyP95, quantileOf(mf, "response_latency_ms", in, 0.95), 1e-9},
			{"p99", r.LatencyP99, quantileOf(mf, "response_latency_ms", in, 0.99), 1e-9},
		} {
			if c.got == nil || math.Abs(*c.got-c.want) > c.tol*math.Max(1, c.want) {
				t.Errorf("%s %s: got %v, want %v", pod, c.what, deref(c.got), c.want)
			}
		}
		t.Logf("%s: %.1f rps, success %.4f, p50 %.3fms p95 %.3fms p99 %.3fms", pod, *r.RPS, *r.SuccessRate,
			*r.LatencyP50, *r.LatencyP95, *r.LatencyP99)
	}
	if checked < 3 {
		t.Errorf("only %d deployments serve traffic in the recording; emoji, voting and web should", checked)
	}

	// Edges: who called whom over mTLS, with the identities both sides verified.
	edges, err := metricsapi.Edges(ctx, s, metricsapi.KindDeployment, "emojivoto", time.Minute, at)
	if err != nil {
		t.Fatal(err)
	}
	id := func(sa string) string { return "spiffe://cluster.local/ns/emojivoto/sa/" + sa }
	var gotEdges []string
	for _, e := range edges {
		gotEdges = append(gotEdges, fmt.Sprintf("%s->%s secured=%v client=%s server=%s", e.Src, e.Dst, e.Secured, e.ClientID, e.ServerID))
	}
	wantEdges := []string{
		fmt.Sprintf("vote-bot->web secured=true client=%s server=%s", id("vote-bot"), id("web")),
		fmt.Sprintf("web->emoji secured=true client=%s server=%s", id("web"), id("emoji")),
		fmt.Sprintf("web->voting secured=true client=%s server=%s", id("web"), id("voting")),
	}
	if !slices.Equal(gotEdges, wantEdges) {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(gotEdges, "\n"), strings.Join(wantEdges, "\n"))
	}

	// Routes that voting serves, one row per RPC, each at its recorded rate.
	routes, err := metricsapi.Routes(ctx, s, metricsapi.RoutesRequest{
		Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "voting"}, Window: time.Minute}, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Fatal("no routes for voting")
	}
	for _, r := range routes {
		want, found := sumOf(families["voting"], "route_response_total", map[string]string{"direction": "inbound", "rt_route": r.Route, "authority": r.Authority})
		if !found || r.RPS == nil || math.Abs(*r.RPS-want/interval) > 1e-9*math.Max(1, want) {
			t.Errorf("voting route %s %s: rps %v, want %v", r.Route, r.Authority, deref(r.RPS), want/interval)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// BenchmarkDemoWindow scrapes the recorded demo proxies every 2s for 22m30s (one and a half default retention
// windows: 675 scrapes) and reports the memory the scraper holds then, per series and per sample held, and the
// cost of one scrape of all of them. Run with -benchtime=1x; every counter changes at every scrape, which compresses worse than a
// real mesh where most route series stay put.
func BenchmarkDemoWindow(b *testing.B) {
	recs := map[string]string{}
	for _, pod := range demoPods {
		recs[pod] = recorded(b, pod)
	}
	for b.Loop() {
		var servers []*exposition
		var targets []metricsapi.ScrapeTarget
		for _, pod := range demoPods {
			e := serve(b, scaled(recs[pod], 0))
			servers = append(servers, e)
			targets = append(targets, tgt(e.addr(), "emojivoto", pod, pod))
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := New(Config{Targets: targets})
		if err != nil {
			b.Fatal(err)
		}
		now := t0
		s.now = func() time.Time { return now }
		// One and a half windows: by then retention drops old chunks, and memory is what a long demo holds.
		rounds := int(DefaultRetention/DefaultInterval) * 3 / 2
		var scraping time.Duration
		for k := range rounds {
			for i, pod := range demoPods {
				servers[i].set(scaled(recs[pod], k+1))
			}
			start := time.Now()
			s.scrapeAll(context.Background())
			scraping += time.Since(start)
			now = now.Add(DefaultInterval)
		}
		for _, e := range servers {
			e.set("")
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		series, samples := s.store.stats()
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(float64(series), "series")
		b.ReportMetric(float64(samples), "samples")
		b.ReportMetric(held/(1<<20), "MiB-held")
		b.ReportMetric(held/float64(series), "B/series")
		b.ReportMetric(held/float64(samples), "B/sample")
		b.ReportMetric(float64(scraping.Microseconds())/1000/float64(rounds), "ms/scrape-round")
		runtime.KeepAlive(s)
		s.Close()
	}
}

// BenchmarkStat is one `viz stat deploy` (eleven queries) and one `viz edges` over the recorded demo proxies.
func BenchmarkStat(b *testing.B) {
	s, at, _ := demoScraper(b)
	ctx := context.Background()
	req := metricsapi.StatRequest{Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}
	for b.Loop() {
		if _, err := metricsapi.Stat(ctx, s, req, at); err != nil {
			b.Fatal(err)
		}
		if _, err := metricsapi.Edges(ctx, s, metricsapi.KindDeployment, "emojivoto", time.Minute, at); err != nil {
			b.Fatal(err)
		}
	}
}
