// Package balance picks an endpoint for each request or connection: power of two random choices over a
// peak-EWMA latency estimate weighted by outstanding work (the algorithm Linkerd and Finagle use). It holds no
// connections; callers attach their own state to an Endpoint through Value.
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

	mu    sync.Mutex
	cost  float64 // EWMA of RTT in nanoseconds
	stamp time.Time
	decay float64
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
	return time.Now()
}

// Done records the latency of a request begun at start and ends it.
func (e *Endpoint) Done(start time.Time, failed bool) {
	e.pending.Add(-1)
	rtt := time.Since(start)
	if failed {
		// A failure is as bad as the slowest answer we have seen: make the endpoint look expensive.
		rtt = max(rtt, 2*time.Duration(e.rtt()))
	}
	e.observe(start.Add(rtt), rtt)
}

func (e *Endpoint) rtt() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cost
}

func (e *Endpoint) observe(now time.Time, rtt time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := float64(rtt)
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
	e.mu.Lock()
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
	return cost * float64(e.pending.Load()+1) / w
}

// Set is an immutable list of endpoints; build a new one on every update.
type Set struct {
	eps []*Endpoint
}

// NewSet returns a set over eps (the slice is not copied; do not modify it afterwards).
func NewSet(eps []*Endpoint) *Set { return &Set{eps: eps} }

// Len is the number of endpoints.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.eps)
}

// Pick chooses an endpoint by power of two choices, or nil when the set is empty.
func (s *Set) Pick() *Endpoint {
	switch s.Len() {
	case 0:
		return nil
	case 1:
		return s.eps[0]
	}
	n := len(s.eps)
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := s.eps[i], s.eps[j]
	now := time.Now()
	// Loads within 1% are a tie, and a tie goes to a (itself a random choice): otherwise microsecond differences
	// in idle decay would make the most recently used endpoint lose every comparison.
	if b.load(now) < a.load(now)*0.99 {
		return b
	}
	return a
}

// Hold counts a long-lived unit of work (an open TCP connection) as pending without measuring its latency. Call
// the returned function when it ends.
func (e *Endpoint) Hold() (release func()) {
	e.pending.Add(1)
	return func() { e.pending.Add(-1) }
}
