// Package scenario runs the benchmark scenarios (S1–S10 of PERFORMANCE.md, and S12, issue #14's edge gateway)
// against every peer, interleaved over rounds, and fills a report.Report with medians. It owns the order of runs
// and the arithmetic of "added latency"; it never renders output.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/h2load"
	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/procstat"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// Cell is one open-loop setting.
type Cell struct {
	Conns int
	Rate  float64
}

// Load is one cell of a scenario that varies more than rate and connections: the payload (S5) or
// whether each request gets a connection of its own (S7).
type Load struct {
	Cell
	Variant string // label in the report ("" for S1/S2)
	Path    string // request path ("" = "/", the app's default 1 KiB answer)
	Body    int    // request body bytes
	NewConn bool   // a new connection per request ("Connection: close")
	Kind    string // "" HTTP/1.1; KindH2C, KindUnary or KindStream over one HTTP/2 connection, Conns in flight
	Stream  int    // KindStream: messages per server stream (each Body bytes)
}

// Load kinds of S8.
const (
	KindH2C    = "h2c"
	KindUnary  = "grpc-unary"
	KindStream = "grpc-stream"
)

// h2Loads is S8: h2c GETs of the app's 1 KiB answer, gRPC unary echoes of 1 KiB, and gRPC server streams
// of 10 × 1 KiB, with conns calls in flight at most over one HTTP/2 connection.
func h2Loads(conns int, rate, streamRate float64) []Load {
	return []Load{
		{Cell: Cell{conns, rate}, Variant: "h2c GET, 1 KiB response", Kind: KindH2C},
		{Cell: Cell{conns, rate}, Variant: "gRPC unary, 1 KiB echo", Kind: KindUnary, Body: 1 << 10},
		{Cell: Cell{conns, streamRate}, Variant: "gRPC server stream, 10 × 1 KiB", Kind: KindStream, Body: 1 << 10, Stream: 10},
	}
}

// Plan is what a run does.
type Plan struct {
	Scenarios map[string]bool
	Rounds    int
	Warmup    time.Duration
	Measure   time.Duration
	BodySize  int
	S1, S2    []Cell

	KneeRounds    int
	KneeConns     int
	KneeLowRate   float64
	KneeStep      time.Duration
	KneeFractions []float64 // of the closed-loop maximum

	MemSteps []int

	S5, S7, S8   []Load
	S7TLS        []Load        // S7 with TLS from the client to the first hop
	ExtraMeasure time.Duration // measured window of S5/S7/S8 cells (shorter than Measure: more cells)

	TCPMeasure time.Duration // S6: length of the throughput run and of the ping-pong run

	SoakDuration time.Duration // S9, per peer
	SoakWindow   time.Duration // S9 sampling period of latency and RSS

	S10           Cell          // S10's load: one S2 cell
	S12           []Cell        // S12's open-loop cells through the edge hop (its knee uses the Knee* settings)
	ChurnMeasure  time.Duration // S10's measured window
	EndpointEvery time.Duration // S10: period of endpoint-set changes
	RouteEvery    time.Duration // S10: period of route changes
}

// CapMemSteps limits S4's connection counts to what every peer can hold under an open-file limit:
// HAProxy reserves two descriptors per connection, so a 20,000 limit holds just under 10,000.
func (p *Plan) CapMemSteps(nofile uint64) (capped int) {
	limit := int(nofile/2) - 1000
	if limit < 1 {
		limit = 1
	}
	var out []int
	for _, n := range p.MemSteps {
		if n > limit {
			capped = limit
			n = limit
		}
		if len(out) == 0 || out[len(out)-1] < n {
			out = append(out, n)
		}
	}
	p.MemSteps = out
	return capped
}

// QuickPlan is S1–S8, S10 and S12 in about a quarter of an hour on two cores: two rounds, a subset of cells, short
// steps.
func QuickPlan() Plan {
	return Plan{
		Scenarios: map[string]bool{"S1": true, "S2": true, "S3": true, "S4": true, "S5": true, "S6": true, "S7": true, "S8": true, "S10": true, "S12": true},
		Rounds:    2, Warmup: 500 * time.Millisecond, Measure: 2500 * time.Millisecond, BodySize: 1024,
		S1:         []Cell{{16, 1000}, {100, 2000}},
		S2:         []Cell{{1, 1000}, {16, 1000}},
		KneeRounds: 1, KneeConns: 32, KneeLowRate: 200, KneeStep: 1500 * time.Millisecond,
		KneeFractions: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9},
		MemSteps:      []int{1, 1000, 10000},
		S5:            payloadLoads(4, 500, 200, 20),
		S7:            []Load{{Cell: Cell{16, 200}, Variant: "plaintext client", NewConn: true}},
		S7TLS:         []Load{{Cell: Cell{16, 200}, Variant: "TLS client, full handshake", NewConn: true}},
		TCPMeasure:    2 * time.Second,
		S8:            h2Loads(16, 500, 100),
		ExtraMeasure:  1500 * time.Millisecond,
		SoakDuration:  time.Minute, SoakWindow: 10 * time.Second,
		S10: Cell{16, 1000}, ChurnMeasure: 15 * time.Second, EndpointEvery: time.Second, RouteEvery: 5 * time.Second,
		S12: []Cell{{16, 1000}},
	}
}

// payloadLoads is S5: responses of 0 B, 1 KiB, 64 KiB and 1 MiB, then a 1 MiB upload; small payloads at
// rate small, 64 KiB at mid, 1 MiB at big (a 1 MiB exchange costs a millisecond or more of CPU per proxy).
func payloadLoads(conns int, small, mid, big float64) []Load {
	return []Load{
		{Cell: Cell{conns, small}, Variant: "0 B response", Path: peers.PayloadPath(0)},
		{Cell: Cell{conns, small}, Variant: "1 KiB response", Path: peers.PayloadPath(1 << 10)},
		{Cell: Cell{conns, mid}, Variant: "64 KiB response", Path: peers.PayloadPath(64 << 10)},
		{Cell: Cell{conns, big}, Variant: "1 MiB response", Path: peers.PayloadPath(1 << 20)},
		{Cell: Cell{conns, big}, Variant: "1 MiB upload", Path: peers.PayloadPath(0), Body: 1 << 20},
	}
}

// FullPlan is every cell of S1–S12, three rounds.
func FullPlan() Plan {
	var s1 []Cell
	for _, c := range []int{16, 100} {
		for _, r := range []float64{200, 1000, 2000} {
			s1 = append(s1, Cell{c, r})
		}
	}
	return Plan{
		Scenarios: map[string]bool{"S1": true, "S2": true, "S3": true, "S4": true, "S5": true, "S6": true, "S7": true, "S8": true, "S9": true, "S10": true, "S12": true},
		Rounds:    3, Warmup: time.Second, Measure: 10 * time.Second, BodySize: 1024,
		S1:         s1,
		S2:         []Cell{{1, 1000}, {4, 1000}, {16, 1000}, {64, 1000}},
		KneeRounds: 3, KneeConns: 32, KneeLowRate: 200, KneeStep: 4 * time.Second,
		KneeFractions: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0},
		MemSteps:      []int{1, 10, 100, 1000, 5000, 10000},
		S5:            payloadLoads(16, 1000, 500, 50),
		S7: []Load{
			{Cell: Cell{16, 200}, Variant: "plaintext client", NewConn: true},
			{Cell: Cell{16, 500}, Variant: "plaintext client", NewConn: true},
			{Cell: Cell{16, 1000}, Variant: "plaintext client", NewConn: true},
		},
		S7TLS: []Load{
			{Cell: Cell{16, 200}, Variant: "TLS client, full handshake", NewConn: true},
			{Cell: Cell{16, 500}, Variant: "TLS client, full handshake", NewConn: true},
		},
		TCPMeasure:   5 * time.Second,
		S8:           h2Loads(16, 1000, 200),
		ExtraMeasure: 5 * time.Second,
		SoakDuration: 10 * time.Minute, SoakWindow: 30 * time.Second,
		S10: Cell{16, 1000}, ChurnMeasure: time.Minute, EndpointEvery: time.Second, RouteEvery: 5 * time.Second,
		S12: []Cell{{16, 1000}, {64, 1000}},
	}
}

// Runner runs a Plan.
type Runner struct {
	Env   *peers.Env
	Peers []peers.Peer
	Plan  Plan
	Log   io.Writer
	Rep   *report.Report
}

func (r *Runner) logf(format string, a ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
}

// available lists the runnable peers and records a skip for the others.
func (r *Runner) available(sc string, skipDirect bool) []peers.Peer {
	var out []peers.Peer
	for _, p := range r.Peers {
		if skipDirect && p.Name() == "direct" {
			continue
		}
		if why := p.Available(r.Env); why != "" {
			r.skip(sc, p.Name(), why)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (r *Runner) skip(sc, peer, why string) {
	for _, s := range r.Rep.Skipped {
		if s.Scenario == sc && s.Peer == peer {
			return
		}
	}
	r.Rep.Skipped = append(r.Rep.Skipped, report.Skip{Scenario: sc, Peer: peer, Reason: why})
}

// Run executes the selected scenarios in order.
func (r *Runner) Run(ctx context.Context) {
	if r.Plan.Scenarios["S1"] {
		r.latency(ctx, "S1", peers.Hop, r.loads(r.Plan.S1), false)
	}
	if r.Plan.Scenarios["S2"] {
		r.latency(ctx, "S2", peers.Mesh, r.loads(r.Plan.S2), false)
	}
	if r.Plan.Scenarios["S3"] {
		r.Rep.Knee = append(r.Rep.Knee, r.knee(ctx, "S3", peers.Hop)...)
	}
	if r.Plan.Scenarios["S4"] {
		r.memory(ctx)
	}
	if r.Plan.Scenarios["S5"] {
		r.latency(ctx, "S5", peers.Mesh, r.Plan.S5, true)
	}
	if r.Plan.Scenarios["S6"] {
		r.opaque(ctx)
	}
	if r.Plan.Scenarios["S7"] {
		r.latency(ctx, "S7", peers.Mesh, r.Plan.S7, false)
		r.latency(ctx, "S7", peers.TLSMesh, r.Plan.S7TLS, false)
	}
	if r.Plan.Scenarios["S8"] {
		r.latency(ctx, "S8", peers.H2Mesh, r.Plan.S8, false)
	}
	if r.Plan.Scenarios["S10"] {
		r.churn(ctx)
	}
	if r.Plan.Scenarios["S12"] {
		r.latency(ctx, "S12", peers.Edge, r.loads(r.Plan.S12), false)
		r.Rep.EdgeKnee = append(r.Rep.EdgeKnee, r.knee(ctx, "S12", peers.Edge)...)
	}
	if r.Plan.Scenarios["S9"] {
		r.soak(ctx)
	}
}

// loads turns S1/S2 cells into loads with the plan's default body.
func (r *Runner) loads(cells []Cell) []Load {
	out := make([]Load, len(cells))
	for i, c := range cells {
		out[i] = Load{Cell: c, Body: r.Plan.BodySize}
	}
	return out
}

// start starts a peer, on fresh ports again when a child lost a port chosen free to another process. When the peer
// cannot run the topology or fails to start, the cell is recorded as skipped (a failure is logged) and ok is false.
func (r *Runner) start(ctx context.Context, sc string, p peers.Peer, topo peers.Topology) (*peers.Instance, bool) {
	in, err := peers.StartRetry(ctx, p, r.Env, topo, func(attempt int, err error) {
		r.logf("%s %s: start attempt %d lost a port (%s); retrying on fresh ports", sc, p.Name(), attempt, lastLine(err.Error()))
	})
	switch {
	case errors.Is(err, peers.ErrUnsupported):
		r.skip(sc, p.Name(), err.Error())
		return nil, false
	case err != nil:
		r.logf("%s %s %s: start failed: %v", sc, topo, p.Name(), err)
		r.skip(sc, p.Name(), "start failed: "+firstLine(err.Error()))
		return nil, false
	}
	return in, true
}

// usage is CPU and memory of an instance's proxies.
type usage struct {
	cpu  time.Duration
	each []time.Duration // per proxy, in the instance's order (the first hop first)
	hwm  int64           // max over proxies
	rss  int64           // sum over proxies
}

func measureProcs(ps []*peers.Proc) usage {
	u := usage{each: make([]time.Duration, len(ps))}
	for i, p := range ps {
		s, err := procstat.Tree(p.PID())
		if err != nil {
			continue
		}
		u.cpu += s.CPU
		u.each[i] = s.CPU
		u.rss += s.RSS
		if s.HWM > u.hwm {
			u.hwm = s.HWM
		}
	}
	return u
}

type cellSample struct {
	sum      loadgen.Summary
	lag      loadgen.Summary // harness side: intended time → write
	achieved float64
	cpuPer1k *float64
	// cpuEach: CPU-s per 1,000 requests of each proxy of a pair, the first hop first (S12: the edge proxy, then
	// the server-side proxy); nil for other instances.
	cpuEach []float64
	hwm     int64
	growth  int64 // peak RSS now − peak RSS after the instance's first cell (max over proxies)
	errs    int64
	failed  string
}

// runner returns the open-loop driver for a load: the HTTP/1.1 generator, or HTTP/2 / gRPC calls.
func runner(ctx context.Context, in *peers.Instance, c Load) (func(time.Duration) loadgen.Result, func(), error) {
	if c.Kind == "" {
		gen, err := loadgen.New(ctx, loadgen.Config{Addr: in.Addr, Host: in.Host, Authorization: in.Authorization, Path: c.Path, Conns: c.Conns, BodySize: c.Body,
			NewConnPerRequest: c.NewConn, TLS: in.ClientTLS})
		if err != nil {
			return nil, nil, err
		}
		return func(d time.Duration) loadgen.Result { return gen.Run(ctx, c.Rate, d) }, gen.Close, nil
	}
	cl, err := h2load.NewClient(in.Addr, in.Host, in.Authorization, c.Body, c.Stream)
	if err != nil {
		return nil, nil, err
	}
	call := map[string]loadgen.Call{KindH2C: cl.Get, KindUnary: cl.Unary, KindStream: cl.Stream}[c.Kind]
	if call == nil {
		cl.Close()
		return nil, nil, fmt.Errorf("unknown load kind %q", c.Kind)
	}
	return func(d time.Duration) loadgen.Result { return loadgen.RunFunc(ctx, c.Rate, d, c.Conns, call) }, cl.Close, nil
}

// measure is the measured window of one cell of scenario sc.
func (r *Runner) measure(sc string) time.Duration {
	if sc != "S1" && sc != "S2" && sc != "S12" && r.Plan.ExtraMeasure > 0 {
		return r.Plan.ExtraMeasure
	}
	return r.Plan.Measure
}

func (r *Runner) runCell(ctx context.Context, sc string, in *peers.Instance, c Load) cellSample {
	run, closeFn, err := runner(ctx, in, c)
	if err != nil {
		return cellSample{errs: 1, failed: err.Error()}
	}
	defer closeFn()
	run(r.Plan.Warmup)
	before := measureProcs(in.Proxies)
	res := run(r.measure(sc))
	after := measureProcs(in.Proxies)
	s := cellSample{sum: loadgen.Summarize(res.Hist), lag: loadgen.Summarize(res.SendLag), achieved: res.Achieved(), hwm: after.hwm, errs: res.Errors()}
	if n := len(in.Proxies); n > 0 && res.Requests > 0 {
		v := (after.cpu - before.cpu).Seconds() / float64(n) / (float64(res.Requests) / 1000)
		s.cpuPer1k = &v
		if n == 2 {
			for i := range in.Proxies {
				s.cpuEach = append(s.cpuEach, (after.each[i]-before.each[i]).Seconds()/(float64(res.Requests)/1000))
			}
		}
	}
	switch {
	case res.ConnErrors > 0 || res.Non2xx > 0:
		s.failed = fmt.Sprintf("%d connection errors, %d non-2xx", res.ConnErrors, res.Non2xx)
	case res.Unsent > 0:
		s.failed = fmt.Sprintf("saturated: %d requests unsent", res.Unsent)
	}
	return s
}

// rotate gives each round a different peer order (direct always first, as the baseline).
func rotate(ps []peers.Peer, round int) []peers.Peer {
	var head, rest []peers.Peer
	for _, p := range ps {
		if p.Name() == "direct" {
			head = append(head, p)
		} else {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		k := round % len(rest)
		rest = append(append([]peers.Peer{}, rest[k:]...), rest[:k]...)
	}
	return append(head, rest...)
}

// latency runs open-loop cells against every peer, interleaved over rounds. growth reports how far each
// proxy's peak RSS rose above its value after the instance's first cell (S5: the smallest payload, so
// the runtime's warm-up is not counted and a proxy that buffers large bodies shows).
func (r *Runner) latency(ctx context.Context, sc string, topo peers.Topology, cells []Load, growth bool) {
	ps := r.available(sc, false)
	// samples[peer][cell][round]
	samples := map[string][][]*cellSample{}
	nproxies := map[string]int{}
	for _, p := range ps {
		samples[p.Name()] = make([][]*cellSample, len(cells))
		for i := range cells {
			samples[p.Name()][i] = make([]*cellSample, r.Plan.Rounds)
		}
	}
	for round := 0; round < r.Plan.Rounds && ctx.Err() == nil; round++ {
		for _, p := range rotate(ps, round) {
			if ctx.Err() != nil {
				return
			}
			in, ok := r.start(ctx, sc, p, topo)
			if !ok {
				continue
			}
			nproxies[p.Name()] = len(in.Proxies)
			var firstHWM int64
			for i, c := range cells {
				s := r.runCell(ctx, sc, in, c)
				if i == 0 {
					firstHWM = s.hwm
				}
				s.growth = s.hwm - firstHWM
				samples[p.Name()][i][round] = &s
				r.logf("%s round %d/%d %-11s %sconns=%-3d rate=%-5.0f p50=%.3fms p99=%.3fms p99.9=%.3fms (send lag p50=%.3fms p99=%.3fms) errs=%d %s",
					sc, round+1, r.Plan.Rounds, p.Name(), variantLog(c.Variant), c.Conns, c.Rate, s.sum.P50/1000, s.sum.P99/1000, s.sum.P999/1000,
					s.lag.P50/1000, s.lag.P99/1000, s.errs, s.failed)
			}
			in.Stop()
		}
	}
	for _, p := range ps {
		for i, c := range cells {
			row, ok := aggregate(sc, p.Name(), c.Cell, samples[p.Name()][i], samples["direct"], i)
			if !ok {
				continue
			}
			row.Variant = c.Variant
			if growth && nproxies[p.Name()] > 0 {
				row.RSSGrowth = maxGrowth(samples[p.Name()][i])
			}
			row.Proxies = nproxies[p.Name()]
			r.Rep.Latency = append(r.Rep.Latency, row)
		}
	}
}

// aggregate takes medians over rounds; added latency is the median of per-round differences with direct.
func aggregate(sc, peer string, c Cell, rounds []*cellSample, direct [][]*cellSample, cell int) (report.LatencyRow, bool) {
	row := report.LatencyRow{Scenario: sc, Peer: peer, Conns: c.Conns, Rate: c.Rate}
	var p50, p99, p999, mx, ach, cpu, front, back, add50, add99, lag50, lag99 []float64
	for round, s := range rounds {
		if s == nil {
			continue
		}
		row.Rounds++
		row.Errors += s.errs
		if s.failed != "" && row.Failed == "" {
			row.Failed = s.failed
		}
		if s.sum.N == 0 {
			continue
		}
		p50, p99, p999, mx = append(p50, s.sum.P50), append(p99, s.sum.P99), append(p999, s.sum.P999), append(mx, s.sum.Max)
		ach = append(ach, s.achieved)
		lag50, lag99 = append(lag50, s.lag.P50), append(lag99, s.lag.P99)
		if s.cpuPer1k != nil {
			cpu = append(cpu, *s.cpuPer1k)
		}
		if len(s.cpuEach) == 2 {
			front, back = append(front, s.cpuEach[0]), append(back, s.cpuEach[1])
		}
		if s.hwm > row.PeakRSS {
			row.PeakRSS = s.hwm
		}
		if peer != "direct" && direct != nil && direct[cell][round] != nil && direct[cell][round].sum.N > 0 {
			d := direct[cell][round].sum
			add50 = append(add50, s.sum.P50-d.P50)
			add99 = append(add99, s.sum.P99-d.P99)
		}
	}
	if row.Rounds == 0 {
		return row, false
	}
	row.P50, row.P99, row.P999, row.Max, row.Achieved = median(p50), median(p99), median(p999), median(mx), median(ach)
	row.SendLagP50, row.SendLagP99 = median(lag50), median(lag99)
	if len(cpu) > 0 {
		v := median(cpu)
		row.CPUPer1k = &v
	}
	if len(front) > 0 {
		f, b := median(front), median(back)
		row.FrontCPUPer1k, row.BackCPUPer1k = &f, &b
	}
	if len(add50) > 0 {
		a, b := median(add50), median(add99)
		row.AddP50, row.AddP99 = &a, &b
	}
	return row, true
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func variantLog(v string) string {
	if v == "" {
		return ""
	}
	return "[" + v + "] "
}

// maxGrowth is the largest peak-RSS growth over rounds.
func maxGrowth(rounds []*cellSample) *int64 {
	var g *int64
	for _, s := range rounds {
		if s != nil && s.sum.N > 0 && (g == nil || s.growth > *g) {
			v := s.growth
			g = &v
		}
	}
	return g
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
