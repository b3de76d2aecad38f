package balance

import (
	"fmt"
	"testing"
	"time"
)

func TestPickEmptyAndSingle(t *testing.T) {
	t.Parallel()
	if NewSet(nil).Pick() != nil {
		t.Fatal("empty set picked something")
	}
	e := NewEndpoint("a", 1, nil)
	if NewSet([]*Endpoint{e}).Pick() != e {
		t.Fatal("single set did not pick its endpoint")
	}
}

func TestPickAvoidsSlowEndpoint(t *testing.T) {
	t.Parallel()
	fast, slow := NewEndpoint("fast", 1, nil), NewEndpoint("slow", 1, nil)
	now := time.Now()
	fast.observe(now, time.Millisecond)
	slow.observe(now, 500*time.Millisecond)
	set := NewSet([]*Endpoint{fast, slow})
	counts := map[string]int{}
	for range 1000 {
		counts[set.Pick().Addr]++
	}
	if counts["slow"] != 0 {
		t.Fatalf("two endpoints: P2C always compares both, slow picked %d times", counts["slow"])
	}
}

func TestPickAvoidsLoadedEndpoint(t *testing.T) {
	t.Parallel()
	a, b := NewEndpoint("a", 1, nil), NewEndpoint("b", 1, nil)
	for range 10 {
		a.pending.Add(1)
	}
	set := NewSet([]*Endpoint{a, b})
	if got := set.Pick(); got != b {
		t.Fatalf("picked %s with 10 pending over an idle endpoint", got.Addr)
	}
}

func TestPickSpreadsOverEqualEndpoints(t *testing.T) {
	t.Parallel()
	var eps []*Endpoint
	for i := range 4 {
		eps = append(eps, NewEndpoint(fmt.Sprint(i), 1, nil))
	}
	set := NewSet(eps)
	counts := map[string]int{}
	for range 4000 {
		counts[set.Pick().Addr]++
	}
	for addr, n := range counts {
		if n < 500 {
			t.Errorf("endpoint %s got %d of 4000 picks", addr, n)
		}
	}
	if len(counts) != 4 {
		t.Fatalf("only %d endpoints picked", len(counts))
	}
}

func TestPeakThenDecay(t *testing.T) {
	t.Parallel()
	e := NewEndpoint("a", 1, nil)
	now := time.Now()
	e.observe(now, 100*time.Millisecond)
	if e.rtt() != float64(100*time.Millisecond) {
		t.Fatalf("peak not taken: %v", e.rtt())
	}
	e.observe(now.Add(DefaultDecay), time.Millisecond)
	if got := time.Duration(e.rtt()); got > 50*time.Millisecond || got < 30*time.Millisecond {
		t.Fatalf("after one decay period cost = %v, want ~37ms", got)
	}
}

func BenchmarkPick(b *testing.B) {
	var eps []*Endpoint
	for i := range 10 {
		eps = append(eps, NewEndpoint(fmt.Sprint(i), 1, nil))
	}
	set := NewSet(eps)
	b.ReportAllocs()
	for b.Loop() {
		e := set.Pick()
		e.Done(e.Start(), false)
	}
}

// A new endpoint gets one request at a time until its first answer: a warm endpoint measured far below the prior
// neither starves it nor lets it be flooded.
func TestNewEndpointIsTriedOneRequestAtATime(t *testing.T) {
	t.Parallel()
	warm, fresh := NewEndpoint("warm", 1, nil), NewEndpoint("fresh", 1, nil)
	warm.Done(warm.Start(), false) // measured: microseconds, far below DefaultRTT
	s := NewSet([]*Endpoint{warm, fresh})
	if s.Pick() != fresh {
		t.Fatal("the new endpoint was not tried")
	}
	inflight := fresh.Start()
	for range 100 {
		if s.Pick() == fresh {
			t.Fatal("a second request went to the new endpoint before it answered the first")
		}
	}
	fresh.Done(inflight, false)
	if !fresh.observed || fresh.cost >= float64(DefaultRTT) {
		t.Fatalf("the first answer did not replace the prior: cost %v", time.Duration(fresh.cost))
	}
}
