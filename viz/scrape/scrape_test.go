package scrape

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// exposition is a fake proxy admin server whose /metrics answer the test changes between scrapes.
type exposition struct {
	srv         *httptest.Server
	mu          sync.Mutex
	body        string
	status      int
	contentType string // default: the text format's
}

func serve(t testing.TB, body string) *exposition {
	t.Helper()
	e := &exposition{body: body, status: http.StatusOK}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		e.mu.Lock()
		body, status, ct := e.body, e.status, e.contentType
		e.mu.Unlock()
		if ct == "" {
			ct = "text/plain; version=0.0.4; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *exposition) set(body string) {
	e.mu.Lock()
	e.body, e.status = body, http.StatusOK
	e.mu.Unlock()
}

func (e *exposition) setContentType(ct string) {
	e.mu.Lock()
	e.contentType = ct
	e.mu.Unlock()
}

func (e *exposition) fail(status int) {
	e.mu.Lock()
	e.status = status
	e.mu.Unlock()
}

func (e *exposition) addr() string { return e.srv.Listener.Addr().String() }

// clock is the time a test scraper lives in: scrapes happen when the test says, exactly interval apart.
type clock struct{ t time.Time }

// t0 is a whole second, so that sample timestamps are round.
var t0 = time.Unix(1_800_000_000, 0)

// newTestScraper returns a scraper driven by the test: step scrapes every target once, then moves the clock on by
// the interval (so the last scrape happened at clock.t minus one interval, like a real scraper between ticks, and a
// query at at() sees it).
func newTestScraper(t testing.TB, cfg Config) (s *Scraper, step func(n int), at func() time.Time) {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := &clock{t: t0}
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return c.t }
	step = func(n int) {
		for range n {
			s.scrapeAll(context.Background())
			mu.Lock()
			c.t = c.t.Add(cfg.Interval)
			mu.Unlock()
		}
	}
	// Queries ask at the last scrape's time, as a query right after a scrape would.
	at = func() time.Time { mu.Lock(); defer mu.Unlock(); return c.t.Add(-cfg.Interval) }
	return s, step, at
}

func tgt(addr, ns, deploy, pod string) metricsapi.ScrapeTarget {
	return metricsapi.ScrapeTarget{Address: addr, Namespace: ns, Deployment: deploy, Pod: pod}
}

// query runs q and returns its answer keyed by the values of the named labels, joined by "/".
func query(t *testing.T, s *Scraper, q string, at time.Time, by ...string) map[string]float64 {
	t.Helper()
	res, err := s.Query(context.Background(), q, at)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]float64{}
	for _, smp := range res {
		var key []string
		for _, l := range by {
			key = append(key, smp.Labels[l])
		}
		k := strings.Join(key, "/")
		if _, dup := out[k]; dup {
			t.Fatalf("%s: two samples for %q: %+v", q, k, res)
		}
		out[k] = smp.Value
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func wantValues(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !near(g, w) {
			t.Errorf("%s: got %v, want %v", what, got, want)
			return
		}
	}
}

// webExposition is a proxy's inbound counters and latency histogram after k scrapes: per scrape interval (2s),
// 10 successes and 2 failures, and 10 latencies of which 6 fall in (1, 5] ms and 4 in (5, 10] ms.
func webExposition(k int) string {
	return fmt.Sprintf(`# HELP response_total Responses.
# TYPE response_total counter
response_total{direction="inbound",classification="success",status_code="200"} %d
response_total{direction="inbound",classification="failure",status_code="500"} %d
# TYPE response_latency_ms histogram
response_latency_ms_bucket{direction="inbound",le="1"} 0
response_latency_ms_bucket{direction="inbound",le="5"} %d
response_latency_ms_bucket{direction="inbound",le="10"} %d
response_latency_ms_bucket{direction="inbound",le="+Inf"} %d
response_latency_ms_sum{direction="inbound"} %d
response_latency_ms_count{direction="inbound"} %d
# TYPE tcp_open_connections gauge
tcp_open_connections{direction="inbound",peer="src"} 3
# A scraped label that a target label overwrites.
# TYPE collide gauge
collide{namespace="theirs",pod="p",other="o"} 1
`, 1000+10*k, 100+2*k, 6*k, 10*k, 10*k, 50*k, 10*k)
}

func TestRatesSumsAndQuantiles(t *testing.T) {
	t.Parallel()
	web1, web2 := serve(t, webExposition(0)), serve(t, webExposition(0))
	emoji := serve(t, "")
	s, step, at := newTestScraper(t, Config{Targets: []metricsapi.ScrapeTarget{
		tgt(web1.addr(), "emojivoto", "web", "web-1"),
		tgt(web2.addr(), "emojivoto", "web", "web-2"),
		tgt(emoji.addr(), "emojivoto", "emoji", "emoji"),
	}})
	for k := range 40 {
		web1.set(webExposition(k))
		web2.set(webExposition(k))
		emoji.set(fmt.Sprintf("response_total{direction=\"inbound\",classification=\"success\"} %d\n", 7+4*k))
		step(1)
	}
	now := at()

	// Each web pod answers 6/s (5 successes, 1 failure); emoji 2/s. A steady counter's rate is exact, whatever
	// Prometheus's extrapolation does at the window's edges.
	wantValues(t, "rps by deployment",
		query(t, s, `sum by (namespace, deployment) (rate(response_total{direction="inbound"}[1m]))`, now, "namespace", "deployment"),
		map[string]float64{"emojivoto/web": 12, "emojivoto/emoji": 2})
	wantValues(t, "success rate",
		query(t, s, `sum by (deployment) (rate(response_total{classification="success"}[1m])) / sum by (deployment) (rate(response_total[1m]))`, now, "deployment"),
		map[string]float64{"web": 10.0 / 12, "emoji": 1})
	wantValues(t, "rps by pod, regex and negative matchers",
		query(t, s, `sum by (pod) (rate(response_total{pod=~"web-.*", deployment!="emoji", status_code!="500"}[30s]))`, now, "pod"),
		map[string]float64{"web-1": 5, "web-2": 5})

	// Latency per second: 0 at or below 1ms, 3 up to 5ms, 5 up to 10ms, 5 in all. The median (rank 2.5) is in
	// (1, 5]: 1 + 4*2.5/3; p95 (rank 4.75) is in (5, 10]: 5 + 5*(4.75-3)/2.
	for q, want := range map[string]float64{"0.5": 1 + 4*2.5/3, "0.95": 5 + 5*1.75/2} {
		wantValues(t, "p"+q,
			query(t, s, `histogram_quantile(`+q+`, sum by (le, deployment) (rate(response_latency_ms_bucket{direction="inbound"}[1m])))`, now, "deployment"),
			map[string]float64{"web": want})
	}

	// What Prometheus's own configuration of the engine allows: subqueries without a step, @ and offsets.
	wantValues(t, "subquery",
		query(t, s, `max_over_time(sum(rate(response_total{pod="web-1"}[1m]))[20s:])`, now, "pod"),
		map[string]float64{"": 6})
	wantValues(t, "@ and offset",
		query(t, s, fmt.Sprintf(`response_total{pod="emoji"} @ %d offset 4s`, now.Unix()), now, "pod"),
		map[string]float64{"emoji": 7 + 4*37})

	// up and the target labels of the contract, exactly as Prometheus attaches them.
	res, err := s.Query(context.Background(), `up{pod="web-1"}`, now)
	if err != nil || len(res) != 1 {
		t.Fatalf("up: %v %+v", err, res)
	}
	wantLabels := map[string]string{"__name__": "up", "job": "sinew-proxy", "instance": web1.addr(),
		"namespace": "emojivoto", "deployment": "web", "pod": "web-1"}
	if fmt.Sprint(res[0].Labels) != fmt.Sprint(wantLabels) || res[0].Value != 1 {
		t.Errorf("up: %+v, want %v = 1", res[0], wantLabels)
	}
	wantValues(t, "meshed", query(t, s, `sum by (namespace, deployment) (up{job="sinew-proxy"})`, now, "deployment"),
		map[string]float64{"web": 2, "emoji": 1})
	wantValues(t, "pods", query(t, s, `count by (namespace, deployment) (up{job="sinew-proxy"})`, now, "deployment"),
		map[string]float64{"web": 2, "emoji": 1})
	wantValues(t, "gauge", query(t, s, `sum by (deployment) (tcp_open_connections{direction="inbound", peer="src"})`, now, "deployment"),
		map[string]float64{"web": 6})

	// A scraped label that a target label replaces survives as exported_<name> (honor_labels: false).
	res, err = s.Query(context.Background(), `collide{pod="web-2"}`, now)
	if err != nil || len(res) != 1 {
		t.Fatalf("collide: %v %+v", err, res)
	}
	if l := res[0].Labels; l["namespace"] != "emojivoto" || l["exported_namespace"] != "theirs" || l["exported_pod"] != "p" || l["other"] != "o" {
		t.Errorf("collide labels %v", l)
	}
}

func TestDeadTargetsGiveUpZero(t *testing.T) {
	t.Parallel()
	live, dying := serve(t, webExposition(1)), serve(t, webExposition(1))
	// An address nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := l.Addr().String()
	l.Close()

	s, step, at := newTestScraper(t, Config{Targets: []metricsapi.ScrapeTarget{
		tgt(live.addr(), "ns", "live", "live"),
		tgt(dying.addr(), "ns", "dying", "dying"),
		tgt(nobody, "ns", "nobody", "nobody"),
	}})
	step(3)
	wantValues(t, "up before", query(t, s, `up`, at(), "pod"), map[string]float64{"live": 1, "dying": 1, "nobody": 0})

	dying.srv.Close()
	step(1)
	wantValues(t, "up after", query(t, s, `up`, at(), "pod"), map[string]float64{"live": 1, "dying": 0, "nobody": 0})
	wantValues(t, "meshed", query(t, s, `sum(up{job="sinew-proxy"})`, at()), map[string]float64{"": 1})
	// The dead target's series are marked stale at once, as Prometheus does, instead of lingering for the 5m
	// lookback.
	wantValues(t, "gauges of live targets only", query(t, s, `tcp_open_connections`, at(), "pod"), map[string]float64{"live": 3})
}

func TestBadExpositionIsAFailedScrape(t *testing.T) {
	t.Parallel()
	good, bad := serve(t, webExposition(1)), serve(t, webExposition(1))
	var logs testutil.SyncBuffer
	s, step, at := newTestScraper(t, Config{
		Targets: []metricsapi.ScrapeTarget{tgt(good.addr(), "ns", "good", "good"), tgt(bad.addr(), "ns", "bad", "bad")},
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	step(2)
	for name, body := range map[string]string{
		"garbage":         "this is { not the Prometheus text format\n",
		"half good":       "tcp_open_connections{direction=\"inbound\",peer=\"src\"} 3\nresponse_total{ 1\n",
		"repeated label":  "x{a=\"1\",a=\"2\"} 1\n",
		"binary":          "\x00\x01\x02\xff\xfe",
		"HTTP 500":        "",
		"value not float": "x 1.2.3\n",
		"OpenMetrics":     "",
	} {
		switch name {
		case "HTTP 500":
			bad.fail(http.StatusInternalServerError)
		case "OpenMetrics":
			bad.set(webExposition(2) + "# EOF\n")
			bad.setContentType("application/openmetrics-text; version=1.0.0")
		default:
			bad.set(body)
		}
		step(1)
		wantValues(t, name+": up", query(t, s, `up`, at(), "pod"), map[string]float64{"good": 1, "bad": 0})
		// Nothing of a failed scrape is kept, and what the target said before is stale.
		wantValues(t, name+": gauges", query(t, s, `tcp_open_connections`, at(), "pod"), map[string]float64{"good": 3})
		bad.set(webExposition(2))
		bad.setContentType("")
		step(1)
		wantValues(t, name+": up again", query(t, s, `up`, at(), "pod"), map[string]float64{"good": 1, "bad": 1})
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"scrape failed\" target=http://"+bad.addr()+"/metrics"); n != 7 {
		t.Errorf("want 7 warnings about %s, got %d:\n%s", bad.addr(), n, out)
	}
	if !strings.Contains(out, "bad exposition") || !strings.Contains(out, "500 Internal Server Error") ||
		!strings.Contains(out, "unsupported Content-Type") {
		t.Errorf("the warnings do not say what was wrong:\n%s", out)
	}
	if n := strings.Count(out, "scrape recovered"); n != 7 {
		t.Errorf("want 7 recoveries logged, got %d:\n%s", n, out)
	}
}

func TestRetentionDropsOldSamples(t *testing.T) {
	t.Parallel()
	e := serve(t, "gone_soon 1\nstays 1\n")
	s, step, at := newTestScraper(t, Config{
		Targets:   []metricsapi.ScrapeTarget{tgt(e.addr(), "ns", "d", "p")},
		Retention: time.Minute,
	})
	step(10)
	early := at()
	wantValues(t, "early", query(t, s, `gone_soon`, early, "__name__"), map[string]float64{"gone_soon": 1})
	e.set("stays 1\n")
	step(200) // 400s: well past retention, and past several sealed chunks (120 samples each)

	// A query in the past sees nothing that retention dropped.
	wantValues(t, "past retention", query(t, s, `gone_soon`, early, "__name__"), map[string]float64{})
	// Over a window longer than retention only retention's worth of samples is left: 1m / 2s, plus the one at
	// the window's start.
	got := query(t, s, `count_over_time(stays[10m])`, at(), "__name__")
	if n := got[""]; n < 30 || n > 31 {
		t.Errorf("samples of stays in the last 10m: %v, want 30 or 31 (1m of retention)", got)
	}
	// The vanished series is deleted, and memory holds at most retention plus one open chunk per series.
	series, samples := s.store.stats()
	if series != 4 { // stays, up, scrape_duration_seconds, scrape_samples_scraped
		t.Errorf("%d series held, want 4", series)
	}
	if samples > series*(31+samplesPerChunk) {
		t.Errorf("%d samples held for %d series, want at most %d", samples, series, series*(31+samplesPerChunk))
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	e := serve(t, "x 1\n")
	s, step, at := newTestScraper(t, Config{Targets: []metricsapi.ScrapeTarget{tgt(e.addr(), "ns", "d", "p")}})
	step(2)
	for q, want := range map[string]string{
		`sum by (namespace (up)`:         "query failed: bad_data: 1:19: parse error",
		`rate(up)`:                       "query failed: bad_data:",
		`up[1m]`:                         `want an instant vector, got a "matrix" result (query: up[1m])`,
		`"a string"`:                     `want an instant vector, got a "string" result`,
		`histogram_quantile("x", up)`:    "query failed: bad_data:",
		`sum(rate(response_total[1m]) >`: "query failed: bad_data:",
	} {
		_, err := s.Query(context.Background(), q, at())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", q, err, want)
		}
	}
	// A scalar answer is one sample without labels, like the HTTP client gives.
	res, err := s.Query(context.Background(), `1 + 1`, at())
	if err != nil || len(res) != 1 || res[0].Value != 2 || len(res[0].Labels) != 0 {
		t.Errorf("1 + 1: %v %+v", err, res)
	}
	// A cancelled context ends the query.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Query(ctx, `up`, at()); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled query: %v", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	ok := tgt("127.0.0.1:1", "ns", "d", "p")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no targets"},
		{Config{Targets: []metricsapi.ScrapeTarget{ok, ok}}, "listed twice"},
		{Config{Targets: []metricsapi.ScrapeTarget{tgt("nohost", "ns", "d", "p")}}, "want host:port"},
		{Config{Targets: []metricsapi.ScrapeTarget{tgt("127.0.0.1:1", "ns", "", "p")}}, "label contract"},
		{Config{Targets: []metricsapi.ScrapeTarget{ok}, Interval: time.Minute, Retention: time.Minute}, "at least two scrape intervals"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	s, err := New(Config{Targets: []metricsapi.ScrapeTarget{ok}})
	if err != nil {
		t.Fatal(err)
	}
	if s.interval != DefaultInterval || s.retention != DefaultRetention || s.timeout >= s.interval {
		t.Errorf("defaults: interval %s retention %s timeout %s", s.interval, s.retention, s.timeout)
	}
}

// TestRun runs the real loop on the wall clock until the context ends.
func TestRun(t *testing.T) {
	e := serve(t, "response_total{direction=\"inbound\"} 1\n")
	baseline := runtime.NumGoroutine()
	s, err := New(Config{Targets: []metricsapi.ScrapeTarget{tgt(e.addr(), "ns", "d", "p")}, Interval: 50 * time.Millisecond, Retention: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testutil.Eventually(t, 10*time.Second, "four scrapes within a second", func() bool {
		res, err := s.Query(ctx, `count_over_time(up[1s]) > 3`, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return len(res) == 1
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if series, samples := s.store.stats(); series != 0 || samples != 0 {
		t.Errorf("after Close: %d series, %d samples", series, samples)
	}
	// Nothing the scraper started is left running (its connections close with it).
	t.Cleanup(func() {
		if n := runtime.NumGoroutine(); t.Failed() && n > baseline {
			buf := make([]byte, 1<<20)
			t.Logf("%d goroutines after Close, %d before New:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
	})
	testutil.Eventually(t, 5*time.Second, "no more goroutines after Close than before New", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestSelfMetrics(t *testing.T) {
	t.Parallel()
	good := serve(t, "x 1\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Targets:    []metricsapi.ScrapeTarget{tgt(good.addr(), "ns", "good", "good"), tgt(dead, "ns", "dead", "dead")},
		Registerer: reg,
	}
	_, step, _ := newTestScraper(t, cfg)
	step(3)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, lp := range m.GetLabel() {
				name += "/" + lp.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[name] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	// x and the three synthetic series of each target: x for good only.
	wantValues(t, "self-metrics", got, map[string]float64{
		"viz_scraper_scrapes_total/ok": 3, "viz_scraper_scrapes_total/failed": 3,
		"viz_scraper_scrape_duration_seconds": 6, "viz_scraper_series": 7, "viz_scraper_samples": 21,
	})
	// A second scraper on the same registry is refused rather than counting into the first one's metrics.
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "registering self-metrics") {
		t.Errorf("second scraper on one registry: %v", err)
	}
}
