package scenario

import (
	"math"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
)

func cs(p50, p99 float64) *cellSample {
	return &cellSample{sum: loadgen.Summary{P50: p50, P99: p99, N: 100}, achieved: 1000}
}

// Added latency pairs each round with direct's run in the same round before taking the median, so a
// round where the whole machine was slow does not count against the proxy.
func TestAggregatePairsRoundsWithDirect(t *testing.T) {
	t.Parallel()
	direct := [][]*cellSample{{cs(100, 200), cs(900, 2000), cs(110, 210)}}
	peer := []*cellSample{cs(150, 300), cs(960, 2150), cs(170, 320)}
	row, ok := aggregate("S2", "nginx", Cell{16, 1000}, peer, direct, 0)
	if !ok {
		t.Fatal("no row")
	}
	if row.P50 != 170 || row.P99 != 320 {
		t.Errorf("medians p50=%v p99=%v, want 170 and 320", row.P50, row.P99)
	}
	if *row.AddP50 != 60 || *row.AddP99 != 110 {
		t.Errorf("added p50=%v p99=%v, want 60 and 110 (median of per-round differences)", *row.AddP50, *row.AddP99)
	}
	if row.Rounds != 3 || row.Failed != "" {
		t.Errorf("rounds=%d failed=%q", row.Rounds, row.Failed)
	}
}

func TestAggregateMarksErrorsAsFailed(t *testing.T) {
	t.Parallel()
	bad := cs(100, 200)
	bad.errs, bad.failed = 3, "3 connection errors, 0 non-2xx"
	row, _ := aggregate("S1", "haproxy", Cell{16, 1000}, []*cellSample{cs(100, 200), bad}, nil, 0)
	if row.Errors != 3 || row.Failed == "" {
		t.Errorf("errors=%d failed=%q, want the run marked failed", row.Errors, row.Failed)
	}
	if row.AddP50 != nil {
		t.Error("added latency without a direct baseline")
	}
}

func TestCapMemSteps(t *testing.T) {
	t.Parallel()
	p := Plan{MemSteps: []int{1, 1000, 5000, 10000}}
	if c := p.CapMemSteps(20000); c != 9000 {
		t.Errorf("cap = %d, want 9000", c)
	}
	if got := p.MemSteps; len(got) != 4 || got[3] != 9000 {
		t.Errorf("steps = %v", got)
	}
	p = Plan{MemSteps: []int{1, 10000}}
	if c := p.CapMemSteps(1 << 20); c != 0 || p.MemSteps[1] != 10000 {
		t.Errorf("uncapped plan changed: cap=%d steps=%v", c, p.MemSteps)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestAggregateTCPPairsRoundsWithDirect(t *testing.T) {
	t.Parallel()
	ping := func(p50, p99 float64) loadgen.Summary { return loadgen.Summary{P50: p50, P99: p99, N: 100} }
	direct := []*tcpSample{{gbps: 9, ping: ping(10, 50)}, {gbps: 8, ping: ping(20, 60)}}
	peer := []*tcpSample{{gbps: 2, cores: 0.9, ping: ping(150, 400)}, {gbps: 1, cores: 0.8, ping: ping(170, 460), errs: 1, failed: "ping-pong: EOF"}}
	row, ok := aggregateTCP("sinew", "pair, mTLS between", peer, direct)
	if !ok || row.Rounds != 2 {
		t.Fatalf("ok=%v rounds=%d", ok, row.Rounds)
	}
	if row.Gbps != 1.5 || *row.AddPingP50 != 145 || *row.AddPingP99 != 375 {
		t.Errorf("gbps=%v added p50=%v p99=%v, want 1.5, 145, 375", row.Gbps, *row.AddPingP50, *row.AddPingP99)
	}
	if row.Errors != 1 || row.Failed != "ping-pong: EOF" {
		t.Errorf("errors=%d failed=%q, want the failing round to fail the cell", row.Errors, row.Failed)
	}
	if _, ok := aggregateTCP("nginx", "x", nil, direct); ok {
		t.Error("a peer that never ran has no row")
	}
}

// The quick plan runs S1–S8 and S10 and leaves the 10-minute soak to the full plan.
func TestPlansPickScenarios(t *testing.T) {
	t.Parallel()
	q, f := QuickPlan(), FullPlan()
	for _, sc := range []string{"S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S10"} {
		if !q.Scenarios[sc] || !f.Scenarios[sc] {
			t.Errorf("%s: quick=%v full=%v, want both", sc, q.Scenarios[sc], f.Scenarios[sc])
		}
	}
	if q.Scenarios["S9"] || !f.Scenarios["S9"] || f.SoakDuration != 10*time.Minute {
		t.Errorf("S9: quick=%v full=%v (%s), want full only, 10 minutes", q.Scenarios["S9"], f.Scenarios["S9"], f.SoakDuration)
	}
	for _, p := range []Plan{q, f} {
		if len(p.S5) != 5 || len(p.S8) != 3 || len(p.S7) == 0 || p.TCPMeasure <= 0 || p.ExtraMeasure <= 0 {
			t.Errorf("plan cells: S5=%d S7=%d S8=%d tcp=%s extra=%s", len(p.S5), len(p.S7), len(p.S8), p.TCPMeasure, p.ExtraMeasure)
		}
	}
}

// S10 is S2's 16-connection cell at 1,000 rps, endpoints changing every second and routes every 5 s; the quick
// window fits in about 30 s with the instance's start.
func TestChurnPlans(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]Plan{"quick": QuickPlan(), "full": FullPlan()} {
		if p.S10 != (Cell{16, 1000}) || p.EndpointEvery != time.Second || p.RouteEvery != 5*time.Second {
			t.Errorf("%s: S10 %+v, endpoints every %s, routes every %s", name, p.S10, p.EndpointEvery, p.RouteEvery)
		}
	}
	if q := QuickPlan(); q.Warmup+q.ChurnMeasure > 20*time.Second {
		t.Errorf("quick S10 takes %s of load, want ≤ 20 s", q.Warmup+q.ChurnMeasure)
	}
}

// Ticks fall mid-period, so a window of n periods holds n endpoint changes and one route change per
// RouteEvery, whatever the generator's drain adds at the end.
func TestChurnSchedule(t *testing.T) {
	t.Parallel()
	s := newChurnSchedule(time.Second, 5*time.Second)
	for _, c := range []struct {
		window            time.Duration
		endpoints, routes int
	}{{15 * time.Second, 15, 3}, {time.Minute, 60, 12}, {4 * time.Second, 4, 0}, {0, 0, 0}} {
		if e, r := s.counts(c.window); e != c.endpoints || r != c.routes {
			t.Errorf("window %s: %d endpoint and %d route changes, want %d and %d", c.window, e, r, c.endpoints, c.routes)
		}
	}
	if off, route := s.at(4); off != 4500*time.Millisecond || !route {
		t.Errorf("tick 4 at %s route=%v, want 4.5s with a route change", off, route)
	}
	if off, route := s.at(0); off != 500*time.Millisecond || route {
		t.Errorf("tick 0 at %s route=%v, want 0.5s, endpoints only", off, route)
	}
}

// A pair's proxies are also reported apart (S12: the edge, then the server-side proxy), each the median over
// rounds, beside the pair's mean.
func TestAggregateSplitsPairCPU(t *testing.T) {
	t.Parallel()
	round := func(front, back float64) *cellSample {
		s := cs(100, 200)
		mean := (front + back) / 2
		s.cpuPer1k, s.cpuEach = &mean, []float64{front, back}
		return s
	}
	row, ok := aggregate("S12", "sinew", Cell{16, 1000}, []*cellSample{round(0.12, 0.10), round(0.30, 0.20), round(0.14, 0.08)}, nil, 0)
	if !ok || row.FrontCPUPer1k == nil || row.BackCPUPer1k == nil {
		t.Fatalf("row %+v: want the edge's and the server-side proxy's CPU", row)
	}
	if *row.FrontCPUPer1k != 0.14 || *row.BackCPUPer1k != 0.10 || math.Abs(*row.CPUPer1k-0.11) > 1e-9 {
		t.Errorf("front %v back %v mean %v, want medians 0.14, 0.10 and 0.11", *row.FrontCPUPer1k, *row.BackCPUPer1k, *row.CPUPer1k)
	}
	one := cs(100, 200)
	v := 0.1
	one.cpuPer1k = &v
	if row, _ := aggregate("S1", "nginx", Cell{16, 1000}, []*cellSample{one}, nil, 0); row.FrontCPUPer1k != nil {
		t.Error("a single proxy reported as a pair")
	}
}

// S12 is in both plans, with S2's window, and its knee uses S3's settings.
func TestPlansIncludeEdge(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]Plan{"quick": QuickPlan(), "full": FullPlan()} {
		if !p.Scenarios["S12"] || len(p.S12) == 0 || p.S12[0] != (Cell{16, 1000}) {
			t.Errorf("%s: S12 %v, cells %v", name, p.Scenarios["S12"], p.S12)
		}
		r := &Runner{Plan: p}
		if r.measure("S12") != p.Measure {
			t.Errorf("%s: S12 window %v, want S2's %v", name, r.measure("S12"), p.Measure)
		}
	}
}
