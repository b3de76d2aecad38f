package forward

import (
	"runtime/debug"
	"sync"
	"time"
)

// After a burst of connections goes idle, their garbage (request state, buffers, the stacks of the goroutines
// that served them) stays in the Go heap until the next collection, and an idle proxy allocates nothing, so that
// is the forced one two minutes later. The trimmer brings it forward: once many connections have parked and none
// has for a short while, it collects and returns the freed memory to the OS. A proxy that stays busy parks
// connections all the time and is never trimmed: its collections run as usual.

const (
	trimAfterParks = 256                    // parks since the last trim that make one worth its collection
	trimQuiet      = 250 * time.Millisecond // no park for this long: the burst is over
	trimEvery      = time.Second            // at most one trim a second
)

type trimmer struct {
	mu    sync.Mutex
	n     int       // connections parked since the last trim
	last  time.Time // when the last trim ran
	timer *time.Timer
	quiet time.Duration
	trim  func() // debug.FreeOSMemory; tests count calls instead
}

func newTrimmer() *trimmer { return &trimmer{quiet: trimQuiet, trim: debug.FreeOSMemory} }

// parked notes a connection that parked, and (re)schedules the trim when enough have.
func (t *trimmer) parked() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	if t.n < trimAfterParks {
		return
	}
	d := max(t.quiet, time.Until(t.last.Add(trimEvery)))
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.fire)
		return
	}
	t.timer.Reset(d)
}

func (t *trimmer) fire() {
	t.mu.Lock()
	if t.n < trimAfterParks { // a fire that a Reset raced with; its own fire comes
		t.mu.Unlock()
		return
	}
	t.n, t.last = 0, time.Now()
	t.mu.Unlock()
	t.trim()
}
