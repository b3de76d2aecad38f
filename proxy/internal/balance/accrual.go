package balance

import (
	"math"
	"math/rand/v2"
	"time"
)

// Accrual is failure accrual by consecutive failures, as Linkerd's: after ConsecutiveFailures failed attempts in
// a row an endpoint is ejected (Pick skips it) for a penalty. When the penalty has passed, the endpoint gets one
// probe request at a time: a success makes it healthy again and the next penalty starts from MinPenalty again; a
// failure ejects it again for twice the previous penalty, at most MaxPenalty. Each penalty is varied at random by
// up to JitterRatio of itself (0.5: between half and one and a half times), so that endpoints ejected together
// are not probed together.
//
// The zero Accrual, or any with ConsecutiveFailures <= 0, is off. The type is a comparable value on purpose:
// callers compare settings with == to decide whether to build a new Set.
type Accrual struct {
	ConsecutiveFailures int
	MinPenalty          time.Duration
	MaxPenalty          time.Duration
	JitterRatio         float64
}

// minProbeTimeout bounds how long a probe may be outstanding before it is presumed lost (a caller that picked the
// endpoint but never called Start/Done) and another probe is allowed. The bound is max(MaxPenalty, this).
const minProbeTimeout = 10 * time.Second

// normalize makes any settings usable: off when ConsecutiveFailures <= 0, penalties not negative, MaxPenalty not
// below MinPenalty, JitterRatio within [0, 1].
func (a Accrual) normalize() Accrual {
	if a.ConsecutiveFailures <= 0 {
		return Accrual{}
	}
	a.MinPenalty = max(a.MinPenalty, 0)
	a.MaxPenalty = max(a.MaxPenalty, a.MinPenalty)
	switch {
	case math.IsNaN(a.JitterRatio) || a.JitterRatio < 0:
		a.JitterRatio = 0
	case a.JitterRatio > 1:
		a.JitterRatio = 1
	}
	return a
}

// NewSetWithAccrual returns a set over eps whose endpoints are ejected per a; the zero Accrual means off (the
// slice is not copied; do not modify it afterwards).
//
// Where things live: the accrual state (failure count, ejection, penalty, probe) is on each Endpoint, so it
// survives the Set being rebuilt on every discovery or policy change. The settings are copied onto each endpoint
// here, under that endpoint's lock, because Done is called on the Endpoint without the Set: the Set built last
// over an endpoint decides its settings. Changed settings keep the state (a penalty above the new MaxPenalty is
// cut to it); turning accrual off clears it, so that the endpoint is healthy at once.
func NewSetWithAccrual(eps []*Endpoint, a Accrual) *Set {
	a = a.normalize()
	for _, e := range eps {
		e.setAccrual(a)
	}
	return &Set{eps: eps, accrual: a.ConsecutiveFailures > 0}
}

// accrualState is an endpoint's failure accrual, guarded by Endpoint.mu.
type accrualState struct {
	cfg      Accrual
	failures int
	ejected  bool
	// until is when the penalty ends; penalty is its length before jitter, the base for the next doubling.
	until   time.Time
	penalty time.Duration
	// probing is whether the one probe is outstanding; probeAt is when Pick handed it out. An attempt started
	// before probeAt is not the probe.
	probing bool
	probeAt time.Time
}

func (e *Endpoint) setAccrual(a Accrual) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.acc
	if st.cfg == a {
		return
	}
	if a.ConsecutiveFailures <= 0 {
		*st = accrualState{}
	} else {
		st.cfg = a
		st.penalty = min(st.penalty, a.MaxPenalty)
	}
	e.ejected.Store(st.ejected)
}

// record counts an attempt begun at start that ended at now.
func (st *accrualState) record(now, start time.Time, failed bool) {
	if st.ejected {
		if !st.probing || start.Before(st.probeAt) {
			// An attempt that began before the ejection or before the probe was handed out says nothing new.
			return
		}
		st.probing = false
		if !failed {
			*st = accrualState{cfg: st.cfg}
			return
		}
		if st.penalty > st.cfg.MaxPenalty/2 {
			st.penalty = st.cfg.MaxPenalty
		} else {
			st.penalty *= 2
		}
		st.eject(now)
		return
	}
	if !failed {
		st.failures = 0
		return
	}
	st.failures++
	if st.failures >= st.cfg.ConsecutiveFailures {
		st.penalty = st.cfg.MinPenalty
		st.eject(now)
	}
}

func (st *accrualState) eject(now time.Time) {
	st.ejected = true
	st.failures = 0
	st.until = now.Add(jitter(st.penalty, st.cfg.JitterRatio))
}

// jitter varies d at random by up to ratio of itself.
func jitter(d time.Duration, ratio float64) time.Duration {
	if ratio <= 0 || d <= 0 {
		return d
	}
	return d + time.Duration((2*rand.Float64()-1)*ratio*float64(d))
}

// probeDue reports whether the endpoint is ejected but may be sent a probe now.
func (st *accrualState) probeDue(now time.Time) bool {
	if now.Before(st.until) {
		return false
	}
	return !st.probing || now.Sub(st.probeAt) >= max(st.cfg.MaxPenalty, minProbeTimeout)
}

func (e *Endpoint) probeDue(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.acc.ejected || e.acc.probeDue(now)
}

// tryProbe reports whether an ejected endpoint may take a request now, claiming its one probe if so (true too if it
// has recovered meanwhile).
func (e *Endpoint) tryProbe(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.acc
	if !st.ejected {
		return true
	}
	if !st.probeDue(now) {
		return false
	}
	st.probing, st.probeAt = true, now
	return true
}
