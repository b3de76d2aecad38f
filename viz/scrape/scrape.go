// Package scrape is an embedded stand-in for Prometheus: it scrapes the mesh's proxies, keeps a short in-memory
// window of their series, and answers instant PromQL queries through metricsapi.Querier. `sinew demo` uses it when
// no `prometheus` program is installed, so `sinew viz stat|edges|routes` and the dashboard work without one.
//
// Queries are evaluated by the Prometheus project's own PromQL engine over this package's store, so answers are
// Prometheus's (rate extrapolation, staleness, histogram_quantile, lookback). Scrapes follow Prometheus's rules too:
// the label contract's target labels (job, instance, namespace, deployment, pod) are attached to every sample,
// colliding scraped labels become exported_<name>, each scrape writes the synthetic `up`, `scrape_duration_seconds`
// and `scrape_samples_scraped` series, and series that vanish (or whose target fails) get staleness markers.
//
// It is not a Prometheus: no disk, no remote write, no rules, no range queries, no service discovery (the target
// list is fixed at New), and only the Prometheus text format. Timestamps in the exposition are ignored; a sample
// is stamped with the time its scrape started.
package scrape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// Defaults of Config.
const (
	DefaultInterval  = 2 * time.Second
	DefaultRetention = 15 * time.Minute
)

// maxBodyBytes bounds one scrape's answer; a proxy's metrics are a few hundred KiB at most.
const maxBodyBytes = 32 << 20

// Config configures a Scraper.
type Config struct {
	// Targets are the proxies' admin addresses and the workloads they serve (the label contract's labels). Each
	// one's http://<Address>/metrics is scraped.
	Targets []metricsapi.ScrapeTarget
	// Interval between scrapes of every target (default 2s). A scrape that takes longer than 4/5 of it is cut off.
	Interval time.Duration
	// Retention is how far back samples are kept (default 15m). Queries over a longer window see only this much.
	Retention time.Duration
	// Logger gets failed scrapes (at warn) and recoveries (at info). Default: discard.
	Logger *slog.Logger
	// Registerer, when set, gets the scraper's own metrics (viz_scraper_*).
	Registerer prometheus.Registerer
}

// Scraper scrapes the targets and answers PromQL over what it scraped. Create it with New, start it with Run, ask
// it with Query (before Run has scraped, queries just find no data).
type Scraper struct {
	targets   []*target
	interval  time.Duration
	timeout   time.Duration
	retention time.Duration
	log       *slog.Logger
	http      *http.Client
	store     *store
	engine    *promql.Engine
	metrics   *selfMetrics
	now       func() time.Time // tests move time
}

var _ metricsapi.Querier = (*Scraper)(nil)

// New checks cfg and returns a scraper that has not scraped yet.
func New(cfg Config) (*Scraper, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Interval < 10*time.Millisecond {
		return nil, fmt.Errorf("scrape: interval %s is too short", cfg.Interval)
	}
	if cfg.Retention < 2*cfg.Interval {
		return nil, fmt.Errorf("scrape: retention %s must cover at least two scrape intervals (%s)", cfg.Retention, cfg.Interval)
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("scrape: no targets")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scraper{
		interval:  cfg.Interval,
		timeout:   cfg.Interval * 4 / 5,
		retention: cfg.Retention,
		log:       log,
		// Proxies' admin servers are plain HTTP on loopback or the pod network; never go through an HTTP proxy.
		http:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}},
		store: newStore(),
		now:   time.Now,
	}
	if err := metricsapi.CheckTargets(cfg.Targets); err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	for _, t := range cfg.Targets {
		s.targets = append(s.targets, newTarget(t))
	}
	m, err := newSelfMetrics(cfg.Registerer, s.store)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger:     log,
		MaxSamples: 10_000_000,
		Timeout:    30 * time.Second,
		// Prometheus's default, so instant selectors (up, gauges) see a series up to 5m after its last sample
		// unless a staleness marker ends it sooner.
		LookbackDelta: 5 * time.Minute,
		// As Prometheus configures its engine: subqueries without a step use the evaluation interval (the scrape
		// interval here), and the @ modifier and negative offsets are allowed.
		NoStepSubqueryIntervalFn: func(int64) int64 { return cfg.Interval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	})
	return s, nil
}

// Run scrapes every target at once, then every Interval, until ctx ends; it returns nil then (it has no other way
// to end). Call it once. Scrapes of different targets run in parallel; one that is slow or fails does not hold up
// the others (it gets up=0).
func (s *Scraper) Run(ctx context.Context) error {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.scrapeAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Close releases the scraper's idle connections and its data. Run must have returned.
func (s *Scraper) Close() error {
	s.http.CloseIdleConnections()
	s.store.truncate(math.MaxInt64)
	return nil
}

// scrapeAll scrapes each target once, in parallel, then drops samples past retention.
func (s *Scraper) scrapeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() { s.scrapeTarget(ctx, t) })
	}
	wg.Wait()
	s.store.truncate(s.now().Add(-s.retention).UnixMilli())
}

// Query evaluates an instant PromQL query at time at (zero: now) over the scraped window. Errors read like the
// Prometheus client's: "query failed: bad_data: …" for a query that does not parse, "query failed: execution: …"
// for one that fails while evaluated. A range-vector answer is refused: callers want instant vectors.
func (s *Scraper) Query(ctx context.Context, q string, at time.Time) ([]metricsapi.Sample, error) {
	if at.IsZero() {
		at = s.now()
	}
	qry, err := s.engine.NewInstantQuery(ctx, s.store, nil, q, at)
	if err != nil {
		return nil, queryError(err, q)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, queryError(res.Err, q)
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		out := make([]metricsapi.Sample, 0, len(v))
		for _, smp := range v {
			if smp.H != nil { // native histograms are never scraped from the text format
				continue
			}
			out = append(out, metricsapi.Sample{Labels: smp.Metric.Map(), Value: smp.F})
		}
		return out, nil
	case promql.Scalar:
		return []metricsapi.Sample{{Labels: map[string]string{}, Value: v.V}}, nil
	default:
		return nil, fmt.Errorf("query failed: want an instant vector, got a %q result (query: %s)", res.Value.Type(), q)
	}
}

// queryError words err like Prometheus's API errors, which metricsapi.Client passes on.
func queryError(err error, q string) error {
	kind := "execution"
	var perr parser.ParseErrors
	var single *parser.ParseErr
	switch {
	case errors.As(err, &perr), errors.As(err, &single):
		kind = "bad_data"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case errors.Is(err, context.Canceled):
		kind = "canceled"
	}
	return fmt.Errorf("query failed: %s: %w (query: %s)", kind, err, q)
}

// target is one proxy to scrape and what the last scrape of it found.
type target struct {
	url    string
	labels [][2]string // target labels, in the order they override scraped ones
	// last holds the series the last successful scrape wrote, to mark the ones that disappear as stale.
	last map[*memSeries]struct{}
	// up, duration and scraped are the synthetic series' labels.
	up, duration, scraped labels.Labels
	failing               bool // the last scrape failed (to log a recovery once)
}

func newTarget(t metricsapi.ScrapeTarget) *target {
	tl := [][2]string{
		{"deployment", t.Deployment},
		{"instance", t.Address},
		{"job", metricsapi.ProxyJob},
		{"namespace", t.Namespace},
		{"pod", t.Pod},
	}
	synthetic := func(name string) labels.Labels {
		b := labels.NewScratchBuilder(len(tl) + 1)
		b.Add(model.MetricNameLabel, name)
		for _, l := range tl {
			b.Add(l[0], l[1])
		}
		b.Sort()
		return b.Labels()
	}
	return &target{
		url:      "http://" + t.Address + "/metrics",
		labels:   tl,
		last:     map[*memSeries]struct{}{},
		up:       synthetic("up"),
		duration: synthetic("scrape_duration_seconds"),
		scraped:  synthetic("scrape_samples_scraped"),
	}
}

// parsedSample is one sample of a scrape with its final labels, before it is stored.
type parsedSample struct {
	lset labels.Labels
	v    float64
}

// scrapeTarget scrapes t once and stores what it found. A failed scrape (unreachable, not 200, unparseable) stores
// nothing from the body, writes up=0 and marks the target's series stale, as Prometheus does.
func (s *Scraper) scrapeTarget(ctx context.Context, t *target) {
	start := s.now()
	samples, err := s.fetch(ctx, t)
	took := s.now().Sub(start)
	if err != nil && ctx.Err() != nil {
		return // shutting down: not the target's fault
	}
	ts := start.UnixMilli()

	s.store.mu.Lock()
	current := make(map[*memSeries]struct{}, len(samples))
	for _, smp := range samples {
		ms := s.store.getOrCreate(smp.lset)
		if s.store.append(ms, ts, smp.v) {
			current[ms] = struct{}{}
		}
	}
	for ms := range t.last {
		if _, ok := current[ms]; !ok && !ms.deleted {
			s.store.append(ms, ts, math.Float64frombits(value.StaleNaN))
		}
	}
	t.last = current
	up := 1.0
	if err != nil {
		up = 0
	}
	s.store.append(s.store.getOrCreate(t.up), ts, up)
	s.store.append(s.store.getOrCreate(t.duration), ts, took.Seconds())
	s.store.append(s.store.getOrCreate(t.scraped), ts, float64(len(samples)))
	s.store.mu.Unlock()

	s.metrics.observe(err == nil, took)
	switch {
	case err != nil && !t.failing:
		s.log.Warn("scrape failed", "target", t.url, "error", err)
	case err != nil:
		s.log.Debug("scrape failed", "target", t.url, "error", err)
	case t.failing:
		s.log.Info("scrape recovered", "target", t.url)
	}
	t.failing = err != nil
}

// fetch gets and parses t's metrics. It returns no samples with an error.
func (s *Scraper) fetch(ctx context.Context, t *target) ([]parsedSample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(s.timeout.Seconds(), 'f', -1, 64))
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	// Only the text format is asked for and understood; a server that answers in another would be misread.
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
			return nil, fmt.Errorf("unsupported Content-Type %q: want the Prometheus text format (text/plain)", ct)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBodyBytes {
		return nil, fmt.Errorf("metrics larger than %d bytes", maxBodyBytes)
	}
	return parse(body, t.labels)
}

// parse reads the Prometheus text format and gives every sample the target labels. A scraped label that a target
// label would overwrite is kept as exported_<name> (Prometheus's honor_labels: false).
func parse(body []byte, targetLabels [][2]string) ([]parsedSample, error) {
	// The text format is UTF-8 text; the lexer would take a NUL byte for the end of the input and report no error.
	if !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0 {
		return nil, errors.New("bad exposition: not UTF-8 text")
	}
	p := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	var (
		out     []parsedSample
		scraped labels.Labels
		b       = labels.NewBuilder(labels.EmptyLabels())
	)
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bad exposition: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue // types, help, comments; histograms never come in the text format
		}
		_, _, v := p.Series()
		p.Labels(&scraped)
		if name, dup := scraped.HasDuplicateLabelNames(); dup {
			return nil, fmt.Errorf("bad exposition: series %s repeats label %q", scraped, name)
		}
		b.Reset(scraped)
		for _, tl := range targetLabels {
			if prev := scraped.Get(tl[0]); prev != "" {
				b.Set("exported_"+tl[0], prev)
			}
			b.Set(tl[0], tl[1])
		}
		out = append(out, parsedSample{lset: b.Labels(), v: v})
	}
}

// selfMetrics are the scraper's own metrics, on the injected registerer.
type selfMetrics struct {
	scrapes  *prometheus.CounterVec
	duration prometheus.Histogram
}

func newSelfMetrics(reg prometheus.Registerer, st *store) (*selfMetrics, error) {
	m := &selfMetrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "viz_scraper_scrapes_total", Help: "Scrapes of proxies by the embedded scraper, by result (ok, failed).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "viz_scraper_scrape_duration_seconds", Help: "How long a scrape of one proxy took.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5},
		}),
	}
	if reg == nil {
		return m, nil
	}
	held := func(name, help string, pick func(series, samples int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			return float64(pick(st.stats()))
		})
	}
	cs := []prometheus.Collector{
		m.scrapes, m.duration,
		held("viz_scraper_series", "Series held in memory.", func(series, _ int) int { return series }),
		held("viz_scraper_samples", "Samples held in memory.", func(_, samples int) int { return samples }),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("scrape: registering self-metrics (one scraper per registry): %w", err)
		}
	}
	return m, nil
}

func (m *selfMetrics) observe(ok bool, took time.Duration) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.scrapes.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
}
