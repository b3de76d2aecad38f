// Package budget is a retry budget, as Linkerd's and Finagle's: retries may add at most a ratio of the requests
// plus a minimum number per second, counted over a sliding window. It keeps a few retries for a service with little
// traffic and stops retries from multiplying the load on a service that is failing. It does not decide what is
// retryable; the retry layer asks it before each retry.
package budget

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// slots is how many pieces the window is cut into: the window slides by a tenth of ttl at a time.
const slots = 10

// Bounds on the settings, as Finagle's: a window from 1 s to 60 s, a ratio up to 1000 (retries per request).
const (
	minTTL   = time.Second
	maxTTL   = time.Minute
	maxRatio = 1000
)

// Budget counts requests and retries in a window of ttl. The zero value and a nil *Budget allow no retries.
type Budget struct {
	ratio   float64
	reserve float64 // retries allowed with no requests at all: minPerSecond × ttl
	slot    time.Duration
	start   time.Time
	now     func() time.Time // nil: time.Now; tests inject a clock

	// deposits holds, per slot, the slot's generation (high 32 bits) and its request count (low 32 bits), so that
	// Deposit is one compare-and-swap and a slot is reset when it is reused.
	deposits [slots]atomic.Uint64

	mu          sync.Mutex // serializes Withdraw, so that concurrent retries never overdraw
	withdrawals [slots]count
}

type count struct {
	gen uint32
	n   uint64
}

// New returns a budget that allows, in any window of ttl, ratio × requests + minPerSecond × ttl retries; Linkerd's
// defaults are New(0.2, 10, 10*time.Second). Settings out of range are brought into it: ratio within [0, 1000]
// (NaN: 0), minPerSecond at least 0, ttl within [1 s, 60 s].
func New(ratio float64, minPerSecond int, ttl time.Duration) *Budget {
	return newBudget(ratio, minPerSecond, ttl, nil)
}

func newBudget(ratio float64, minPerSecond int, ttl time.Duration, now func() time.Time) *Budget {
	if math.IsNaN(ratio) || ratio < 0 {
		ratio = 0
	}
	ratio = min(ratio, maxRatio)
	ttl = min(max(ttl, minTTL), maxTTL)
	b := &Budget{
		ratio:   ratio,
		reserve: float64(max(minPerSecond, 0)) * ttl.Seconds(),
		slot:    ttl / slots,
		now:     now,
	}
	b.start = b.clock()
	return b
}

func (b *Budget) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// gen is the number of the current slot. It wraps after 2^32 slots (13 years of 100 ms slots); a slot untouched
// for exactly that long would be taken as current, which no proxy will live to see.
func (b *Budget) gen() uint32 {
	if b.slot <= 0 {
		return 0
	}
	return uint32(b.clock().Sub(b.start) / b.slot)
}

// fresh reports whether a slot of generation g is inside the window that ends in slot now.
func fresh(g, now uint32) bool { return now-g < slots }

// Deposit counts a request (not a retry). It is on every request's path: a clock read and a compare-and-swap.
func (b *Budget) Deposit() {
	if b == nil || b.slot <= 0 {
		return
	}
	g := b.gen()
	s := &b.deposits[g%slots]
	for {
		old := s.Load()
		next := uint64(g)<<32 | 1
		switch og := uint32(old >> 32); {
		case og == g:
			if uint32(old) == math.MaxUint32 {
				return
			}
			next = old + 1
		case og != g && og-g < slots:
			// A later slot already took this place: this goroutine was descheduled for most of a window. Drop it.
			return
		}
		if s.CompareAndSwap(old, next) {
			return
		}
	}
}

// Withdraw takes one retry from the budget and reports whether it could: false means the retry must not be sent.
func (b *Budget) Withdraw() bool {
	if b == nil || b.slot <= 0 {
		return false
	}
	g := b.gen()
	var deposited uint64
	for i := range b.deposits {
		if v := b.deposits[i].Load(); fresh(uint32(v>>32), g) {
			deposited += v & math.MaxUint32
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var withdrawn uint64
	for _, w := range b.withdrawals {
		if fresh(w.gen, g) {
			withdrawn += w.n
		}
	}
	if float64(withdrawn)+1 > b.reserve+b.ratio*float64(deposited) {
		return false
	}
	w := &b.withdrawals[g%slots]
	if w.gen != g {
		*w = count{gen: g}
	}
	w.n++
	return true
}
