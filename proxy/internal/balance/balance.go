// Package balance picks an endpoint for each request or connection: power of two random choices over a
// peak-EWMA latency estimate weighted by outstanding work (the algorithm Linkerd and Finagle use), skipping
// endpoints that failure accrual has ejected (accrual.go). It holds no connections and no metrics registry;
// callers attach their own state to an Endpoint through Value.
package balance

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults follow Linkerd's: a new endpoint is assumed to answer in 30 ms; history halves over ~7 s.
const (
	DefaultRTT   = 30 * time.Millisecond
	DefaultDecay = 10 * time.Second
)

// Endpoint is one load-balanced destination with its latency estimate.
type Endpoint struct {
	Addr   string
	Weight uint32
	// Value is the caller's per-endpoint state (connection pool, metadata).
	Value any

	pending atomic.Int64

	// ejected mirrors acc.ejected so that Pick can skip the lock for a healthy endpoint.
	ejected atomic.Bool
	// now is the clock (nil: time.Now); tests inject one.
	now func() time.Time

	mu    sync.Mutex
	cost  float64 // EWMA of RTT in nanoseconds
	stamp time.Time
	// observed: cost holds a measurement, not the prior.
	observed bool
	decay    float64
	acc      accrualState
}

// NewEndpoint returns an endpoint with the default initial RTT.
func NewEndpoint(addr string, weight uint32, value any) *Endpoint {
	return &Endpoint{Addr: addr, Weight: weight, Value: value, cost: float64(DefaultRTT), stamp: time.Now(), decay: float64(DefaultDecay)}
}

// Pending is the number of requests or connections in flight.
func (e *Endpoint) Pending() int64 { return e.pending.Load() }

// Start marks a request as in flight and returns its start time. Pass that to Done exactly once, when the
// response headers (or the connection) arrived or the attempt failed. (A pair of calls, not a returned closure:
// the closure was an allocation on every request.)
func (e *Endpoint) Start() time.Time {
	e.pending.Add(1)
	return e.clock()
}

// Done records the latency of a request begun at start and ends it. failed means the attempt got no response or
// a 5xx: it counts towards failure accrual (when the endpoint's Set has it on), and a success resets the count.
func (e *Endpoint) Done(start time.Time, failed bool) {
	e.pending.Add(-1)
	now := e.clock()
	rtt := now.Sub(start)
	e.mu.Lock()
	if failed && e.acc.cfg.ConsecutiveFailures == 0 {
		// A failure is as bad as the slowest answer we have seen: make the endpoint look expensive. With failure
		// accrual on, failures are its business alone: a cost penalty would starve the endpoint before it could
		// fail enough times in a row to be ejected, and then nothing would ever probe it back.
		rtt = max(rtt, 2*time.Duration(e.cost))
	}
	e.observeLocked(start.Add(rtt), rtt)
	if e.acc.cfg.ConsecutiveFailures > 0 {
		e.acc.record(now, start, failed)
		e.ejected.Store(e.acc.ejected)
	}
	e.mu.Unlock()
}

func (e *Endpoint) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

func (e *Endpoint) rtt() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cost
}

func (e *Endpoint) observe(now time.Time, rtt time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.observeLocked(now, rtt)
}

func (e *Endpoint) observeLocked(now time.Time, rtt time.Duration) {
	r := float64(rtt)
	if !e.observed {
		// The first answer replaces the prior: a new endpoint that answers fast must not look 30 ms slow for the
		// next half minute (with two endpoints, P2C would never pick it again, so failure accrual could not see
		// it fail and nothing would ever see it recover).
		e.observed = true
		e.cost, e.stamp = r, now
		return
	}
	if r > e.cost {
		// Peak: jump up at once so a slow endpoint is avoided immediately.
		e.cost = r
	} else {
		elapsed := max(float64(now.Sub(e.stamp)), 0)
		w := math.Exp(-elapsed / e.decay)
		e.cost = e.cost*w + r*(1-w)
	}
	e.stamp = now
}

// load is the score P2C compares: estimated latency times work queued, divided by weight.
func (e *Endpoint) load(now time.Time) float64 {
	pending := e.pending.Load()
	e.mu.Lock()
	if !e.observed && pending == 0 {
		// Never answered and nothing in flight: try it now. One request at a time until its first answer, so a
		// new endpoint is neither flooded (the prior still counts while a request is in flight) nor starved by
		// a warm one whose measured cost is far below the prior.
		e.mu.Unlock()
		return 0
	}
	cost := e.cost
	// Decay towards zero while idle so an endpoint that was slow once gets tried again.
	if elapsed := now.Sub(e.stamp); elapsed > 0 {
		cost *= math.Exp(-float64(elapsed) / e.decay)
	}
	e.mu.Unlock()
	w := float64(e.Weight)
	if w <= 0 {
		w = 1
	}
	return cost * float64(pending+1) / w
}

// Set is an immutable list of endpoints; build a new one on every update. Endpoints, with their latency history
// and accrual state, may be carried from one Set to the next.
type Set struct {
	eps []*Endpoint
	// accrual is whether Pick skips ejected endpoints; the settings themselves live on the endpoints (Done needs
	// them and has no Set).
	accrual bool
	// now is the clock (nil: time.Now); tests inject one.
	now func() time.Time
}

// NewSet returns a set over eps without failure accrual (the slice is not copied; do not modify it afterwards).
// Like NewSetWithAccrual with the zero Accrual, it turns accrual off on eps.
func NewSet(eps []*Endpoint) *Set { return NewSetWithAccrual(eps, Accrual{}) }

// Len is the number of endpoints.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.eps)
}

// Pick chooses an endpoint by power of two choices among those not ejected, or nil when the set is empty or every
// endpoint is ejected (see AllEjected).
func (s *Set) Pick() *Endpoint { return s.pick(nil) }

// PickExcept is Pick for a retry: it chooses any endpoint other than avoid when one is available, and avoid only
// when it is the sole available endpoint.
func (s *Set) PickExcept(avoid *Endpoint) *Endpoint { return s.pick(avoid) }

func (s *Set) pick(avoid *Endpoint) *Endpoint {
	switch s.Len() {
	case 0:
		return nil
	case 1:
		if e := s.eps[0]; e != avoid && (!s.accrual || !e.ejected.Load()) {
			return e
		}
		return s.pickSlow(avoid)
	}
	n := len(s.eps)
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := s.eps[i], s.eps[j]
	if a == avoid || b == avoid || (s.accrual && (a.ejected.Load() || b.ejected.Load())) {
		return s.pickSlow(avoid)
	}
	return better(a, b, s.clock())
}

// pickSlow handles the sets where a random pair may not do: some endpoint is to be avoided or ejected. It scans
// every endpoint once, sends the first one due a probe its probe, and otherwise runs P2C over a uniformly chosen
// pair of the available ones (reservoir sampling: no allocation).
func (s *Set) pickSlow(avoid *Endpoint) *Endpoint {
	now := s.clock()
	var a, b *Endpoint
	seen, sawAvoid := 0, false
	for _, e := range s.eps {
		if e == avoid {
			sawAvoid = true
			continue
		}
		if s.accrual && e.ejected.Load() {
			if e.tryProbe(now) {
				return e
			}
			continue
		}
		seen++
		switch seen {
		case 1:
			a = e
		case 2:
			b = e
		default:
			if r := rand.IntN(seen); r == 0 {
				a = e
			} else if r == 1 {
				b = e
			}
		}
	}
	switch {
	case b != nil:
		return better(a, b, now)
	case a != nil:
		return a
	case sawAvoid && (!s.accrual || !avoid.ejected.Load() || avoid.tryProbe(now)):
		return avoid
	}
	return nil
}

// better is the P2C comparison. Loads within 1% are a tie, and a tie goes to a (itself a random choice):
// otherwise microsecond differences in idle decay would make the most recently used endpoint lose every comparison.
func better(a, b *Endpoint, now time.Time) *Endpoint {
	if b.load(now) < a.load(now)*0.99 {
		return b
	}
	return a
}

// AllEjected reports whether every endpoint is ejected and none is due a probe right now, so that the caller can
// fail fast (503). It is false for an empty set and when accrual is off.
func (s *Set) AllEjected() bool {
	if s.Len() == 0 || !s.accrual {
		return false
	}
	now := s.clock()
	for _, e := range s.eps {
		if !e.ejected.Load() || e.probeDue(now) {
			return false
		}
	}
	return true
}

func (s *Set) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// Hold counts a long-lived unit of work (an open TCP connection) as pending without measuring its latency. Call
// the returned function when it ends.
func (e *Endpoint) Hold() (release func()) {
	e.pending.Add(1)
	return func() { e.pending.Add(-1) }
}
