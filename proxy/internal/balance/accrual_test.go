package balance

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock shared by a Set and its endpoints.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newEndpoints(clk *fakeClock, n int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = NewEndpoint(fmt.Sprint("ep", i), 1, nil)
		eps[i].now = clk.Now
		eps[i].stamp = clk.Now()
	}
	return eps
}

func accrualSet(clk *fakeClock, eps []*Endpoint, a Accrual) *Set {
	s := NewSetWithAccrual(eps, a)
	s.now = clk.Now
	return s
}

// fixed is accrual without jitter, so that penalties are exact.
var fixed = Accrual{ConsecutiveFailures: 3, MinPenalty: time.Second, MaxPenalty: 5 * time.Second}

// forget resets the latency estimates, which make a failing endpoint look slow, so that only accrual can make
// Pick skip an endpoint.
func forget(clk *fakeClock, eps []*Endpoint) {
	for _, e := range eps {
		e.mu.Lock()
		e.cost, e.stamp, e.observed = float64(DefaultRTT), clk.Now(), true
		e.mu.Unlock()
	}
}

func fail(e *Endpoint, n int) {
	for range n {
		e.Done(e.Start(), true)
	}
}

// picks counts how often each endpoint is picked in n picks (nil under "").
func picks(s *Set, n int) map[string]int {
	got := map[string]int{}
	for range n {
		if e := s.Pick(); e != nil {
			got[e.Addr]++
		} else {
			got[""]++
		}
	}
	return got
}

func TestAccrualEjectsAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 3)
	s := accrualSet(clk, eps, fixed)
	bad := eps[0]

	fail(bad, 2)
	forget(clk, eps)
	if got := picks(s, 300); got[bad.Addr] == 0 {
		t.Fatalf("ejected after 2 of 3 failures: %v", got)
	}
	fail(bad, 1)
	if !bad.ejected.Load() {
		t.Fatal("not ejected after 3 failures in a row")
	}
	clk.Advance(time.Second - time.Nanosecond)
	if got := picks(s, 2000); got[bad.Addr] != 0 || got[""] != 0 {
		t.Fatalf("while ejected: %v", got)
	}
	if s.AllEjected() {
		t.Fatal("AllEjected with two healthy endpoints")
	}
}

func TestAccrualSuccessResetsCount(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 2)
	accrualSet(clk, eps, fixed)
	e := eps[0]
	for range 10 {
		fail(e, 2)
		e.Done(e.Start(), false)
	}
	if e.ejected.Load() {
		t.Fatal("ejected although no 3 failures were in a row")
	}
	fail(e, 3)
	if !e.ejected.Load() {
		t.Fatal("not ejected after 3 in a row")
	}
}

func TestAccrualOneProbeAfterPenalty(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 4)
	s := accrualSet(clk, eps, fixed)
	bad := eps[0]
	fail(bad, 3)
	clk.Advance(time.Second)

	// Many concurrent picks once the penalty has passed: exactly one gets the ejected endpoint.
	var probes atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if s.Pick() == bad {
					probes.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes in flight, want 1", n)
	}
	if s.PickExcept(eps[1]) == bad {
		t.Fatal("PickExcept handed out a second probe")
	}

	// The probe succeeds: healthy again, and back in rotation.
	bad.Done(bad.Start(), false)
	if bad.ejected.Load() {
		t.Fatal("still ejected after a successful probe")
	}
	forget(clk, eps)
	if got := picks(s, 1000); got[bad.Addr] == 0 {
		t.Fatalf("recovered endpoint not picked: %v", got)
	}
	// The next ejection starts again from MinPenalty.
	fail(bad, 3)
	if got := bad.acc.until.Sub(clk.Now()); got != time.Second {
		t.Fatalf("penalty after recovery %v, want MinPenalty", got)
	}
}

func TestAccrualBackoffDoublesAndCaps(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 1)
	s := accrualSet(clk, eps, fixed)
	e := eps[0]
	fail(e, 3)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if s.Pick() != nil || !s.AllEjected() {
			t.Fatalf("step %d: picked while ejected", i)
		}
		clk.Advance(want - time.Nanosecond)
		if s.Pick() != nil {
			t.Fatalf("step %d: picked before the penalty %v passed", i, want)
		}
		clk.Advance(time.Nanosecond)
		if s.AllEjected() {
			t.Fatalf("step %d: AllEjected although a probe is due", i)
		}
		if s.Pick() != e {
			t.Fatalf("step %d: no probe after penalty %v", i, want)
		}
		// With the probe in flight the only endpoint is not available.
		if s.Pick() != nil || !s.AllEjected() {
			t.Fatalf("step %d: second probe or not reported ejected", i)
		}
		e.Done(e.Start(), true)
	}
}

func TestAccrualJitterBounds(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	a := Accrual{ConsecutiveFailures: 1, MinPenalty: time.Second, MaxPenalty: time.Minute, JitterRatio: 0.25}
	eps := newEndpoints(clk, 1000)
	accrualSet(clk, eps, a)
	var below, above int
	for _, e := range eps {
		fail(e, 1)
		p := e.acc.until.Sub(clk.Now())
		if p < 750*time.Millisecond || p > 1250*time.Millisecond {
			t.Fatalf("penalty %v outside 1s ± 25%%", p)
		}
		if p < 950*time.Millisecond {
			below++
		}
		if p > 1050*time.Millisecond {
			above++
		}
	}
	if below < 200 || above < 200 {
		t.Fatalf("jitter not spread: %d well below, %d well above of 1000", below, above)
	}
	if got := jitter(time.Second, 0); got != time.Second {
		t.Fatalf("jitter with ratio 0: %v", got)
	}
}

func TestPickExceptAvoids(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	for n := 1; n <= 5; n++ {
		for _, a := range []Accrual{{}, fixed} {
			eps := newEndpoints(clk, n)
			s := accrualSet(clk, eps, a)
			avoid := eps[n-1]
			got := map[*Endpoint]int{}
			for range 1000 {
				got[s.PickExcept(avoid)]++
			}
			if n == 1 {
				if got[avoid] != 1000 {
					t.Fatalf("n=1 %+v: the sole endpoint not returned: %v", a, got)
				}
				continue
			}
			if got[avoid] != 0 || got[nil] != 0 {
				t.Fatalf("n=%d %+v: avoid picked %d times, nil %d times", n, a, got[avoid], got[nil])
			}
			if len(got) != n-1 {
				t.Fatalf("n=%d %+v: only %d of %d others picked", n, a, len(got), n-1)
			}
		}
	}
	// Not in the set: an ordinary pick.
	eps := newEndpoints(clk, 2)
	if NewSet(eps).PickExcept(NewEndpoint("x", 1, nil)) == nil {
		t.Fatal("nil for an avoid not in the set")
	}
	if NewSet(nil).PickExcept(eps[0]) != nil {
		t.Fatal("empty set picked something")
	}
}

func TestPickExceptFallsBackToAvoid(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 3)
	s := accrualSet(clk, eps, fixed)
	fail(eps[0], 3)
	fail(eps[1], 3)
	for range 100 {
		if got := s.PickExcept(eps[2]); got != eps[2] {
			t.Fatalf("got %v, want the sole available endpoint", got)
		}
	}
	fail(eps[2], 3)
	if got := s.PickExcept(eps[2]); got != nil || !s.AllEjected() {
		t.Fatalf("all ejected: got %v, AllEjected %v", got, s.AllEjected())
	}
	// An avoided endpoint due a probe gets it only when no other endpoint can take the request.
	clk.Advance(time.Hour)
	if got := s.PickExcept(eps[2]); got == eps[2] || got == nil {
		t.Fatalf("got %v, want a probe to another endpoint", got)
	}
}

func TestAccrualOffIgnoresFailures(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 2)
	s := accrualSet(clk, eps, Accrual{})
	fail(eps[0], 100)
	if eps[0].ejected.Load() || s.AllEjected() {
		t.Fatal("ejected with accrual off")
	}
	if got := s.PickExcept(eps[1]); got != eps[0] {
		t.Fatalf("got %v", got)
	}
}

func TestAccrualSurvivesRebuildAndTurnsOff(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 2)
	accrualSet(clk, eps, fixed)
	fail(eps[0], 3)

	// A rebuild with other settings (a new endpoint list, a policy change) keeps the ejection.
	other := fixed
	other.MaxPenalty = 10 * time.Second
	s := accrualSet(clk, eps, other)
	if got := picks(s, 500); got[eps[0].Addr] != 0 {
		t.Fatalf("ejection lost on rebuild: %v", got)
	}
	// Done counts with the settings of the newest set: one failure is enough now.
	s = accrualSet(clk, eps, Accrual{ConsecutiveFailures: 1, MinPenalty: time.Second, MaxPenalty: time.Second})
	fail(eps[1], 1)
	if !s.AllEjected() {
		t.Fatal("new settings not applied by Done")
	}
	// Turning accrual off clears every ejection at once.
	s = accrualSet(clk, eps, Accrual{})
	forget(clk, eps)
	if got := picks(s, 500); got[eps[0].Addr] == 0 || got[eps[1].Addr] == 0 {
		t.Fatalf("accrual off but endpoints still skipped: %v", got)
	}
}

func TestAccrualIgnoresAttemptsBeforeProbe(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 1)
	s := accrualSet(clk, eps, fixed)
	e := eps[0]
	early := e.Start() // in flight when the endpoint is ejected
	fail(e, 3)
	e.Done(early, false)
	if !e.ejected.Load() {
		t.Fatal("a success begun before the ejection lifted it")
	}
	clk.Advance(time.Second)
	if s.Pick() != e {
		t.Fatal("no probe")
	}
	probe := e.Start()
	clk.Advance(time.Millisecond)
	e.Done(early, false) // a duplicate from before the probe: ignored
	if !e.ejected.Load() {
		t.Fatal("an attempt begun before the probe was taken for it")
	}
	e.Done(probe, false)
	if e.ejected.Load() {
		t.Fatal("probe success ignored")
	}
}

func TestAccrualLostProbeIsReplaced(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	eps := newEndpoints(clk, 1)
	s := accrualSet(clk, eps, fixed)
	fail(eps[0], 3)
	clk.Advance(time.Second)
	if s.Pick() != eps[0] {
		t.Fatal("no probe")
	}
	// The caller never starts the probe. After max(MaxPenalty, minProbeTimeout) another one is allowed.
	clk.Advance(minProbeTimeout - time.Nanosecond)
	if s.Pick() != nil {
		t.Fatal("second probe too early")
	}
	clk.Advance(time.Nanosecond)
	if s.Pick() != eps[0] {
		t.Fatal("lost probe never replaced")
	}
}

func TestAccrualOddSettings(t *testing.T) {
	t.Parallel()
	for _, a := range []Accrual{
		{ConsecutiveFailures: -1, MinPenalty: time.Second},
		{ConsecutiveFailures: 1, MinPenalty: -time.Second, MaxPenalty: -time.Minute, JitterRatio: math.NaN()},
		{ConsecutiveFailures: 1, MinPenalty: time.Minute, MaxPenalty: time.Second, JitterRatio: 7},
		{ConsecutiveFailures: 1, MinPenalty: math.MaxInt64 / 2, MaxPenalty: math.MaxInt64, JitterRatio: -1},
	} {
		clk := newFakeClock()
		eps := newEndpoints(clk, 1)
		s := accrualSet(clk, eps, a)
		for range 5 {
			fail(eps[0], 1)
			clk.Advance(time.Minute)
			if e := s.Pick(); e != nil {
				e.Done(e.Start(), true)
			}
		}
		n := a.normalize()
		if n.MinPenalty < 0 || n.MaxPenalty < n.MinPenalty || n.JitterRatio < 0 || n.JitterRatio > 1 || math.IsNaN(n.JitterRatio) {
			t.Fatalf("%+v normalized to %+v", a, n)
		}
		if p := eps[0].acc.penalty; p < 0 || (n.ConsecutiveFailures > 0 && p > n.MaxPenalty) {
			t.Fatalf("%+v: penalty %v", a, p)
		}
	}
}

// TestAccrualConcurrent runs picks, results and rebuilds together; -race checks the locking, and every attempt
// must have been counted out at the end.
func TestAccrualConcurrent(t *testing.T) {
	t.Parallel()
	eps := make([]*Endpoint, 4)
	for i := range eps {
		eps[i] = NewEndpoint(fmt.Sprint(i), 1, nil)
	}
	a := Accrual{ConsecutiveFailures: 2, MinPenalty: 0, MaxPenalty: time.Millisecond, JitterRatio: 0.5}
	var set atomic.Pointer[Set]
	set.Store(NewSetWithAccrual(eps, a))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var last *Endpoint
			for i := range 2000 {
				s := set.Load()
				e := s.PickExcept(last)
				if e == nil {
					_ = s.AllEjected()
					continue
				}
				start := e.Start()
				e.Done(start, (i+g)%3 != 0)
				last = e
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if i%10 == 9 {
				set.Store(NewSet(eps))
			} else {
				set.Store(NewSetWithAccrual(eps, a))
			}
		}
	})
	wg.Wait()
	for _, e := range eps {
		if e.Pending() != 0 {
			t.Fatalf("%s: %d pending", e.Addr, e.Pending())
		}
	}
}

func benchSet(b *testing.B, a Accrual, ejected int) *Set {
	b.Helper()
	var eps []*Endpoint
	for i := range 10 {
		eps = append(eps, NewEndpoint(fmt.Sprint(i), 1, nil))
	}
	s := NewSetWithAccrual(eps, a)
	for _, e := range eps[:ejected] {
		fail(e, a.ConsecutiveFailures)
	}
	return s
}

var linkerdDefaults = Accrual{ConsecutiveFailures: 7, MinPenalty: time.Second, MaxPenalty: time.Minute, JitterRatio: 0.5}

func BenchmarkPickOnly(b *testing.B) {
	for _, bc := range []struct {
		name    string
		a       Accrual
		ejected int
	}{{"off", Accrual{}, 0}, {"on", linkerdDefaults, 0}, {"on-1-of-10-ejected", linkerdDefaults, 1}} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchSet(b, bc.a, bc.ejected)
			b.ReportAllocs()
			for b.Loop() {
				s.Pick()
			}
		})
	}
}

func BenchmarkPickExcept(b *testing.B) {
	s := benchSet(b, linkerdDefaults, 0)
	avoid := s.eps[3]
	b.ReportAllocs()
	for b.Loop() {
		s.PickExcept(avoid)
	}
}
