package forward

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/testutil"
)

// The trimmer collects once a burst of parks is over, not for a few parks, and not while parks keep coming.
func TestTrimmerRunsOnceABurstIsOver(t *testing.T) {
	var trims atomic.Int32
	const quiet = 500 * time.Millisecond // long beside the 10ms between parks, so a slow machine does not look quiet
	tr := &trimmer{quiet: quiet, trim: func() { trims.Add(1) }}
	armed := func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.timer != nil
	}
	for range trimAfterParks - 1 {
		tr.parked()
	}
	if armed() {
		t.Fatalf("a trim is due after %d parks, want none before %d", trimAfterParks-1, trimAfterParks)
	}
	// Parks keep coming more often than the quiet time (the load this simulates): no trim while they do.
	deadline := time.Now().Add(3 * quiet)
	for time.Now().Before(deadline) {
		tr.parked()
		time.Sleep(10 * time.Millisecond)
	}
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims while connections kept parking, want none", n)
	}
	testutil.Eventually(t, 5*time.Second, "one trim after the burst", func() bool { return trims.Load() == 1 })
	tr.mu.Lock()
	left := tr.n
	tr.mu.Unlock()
	if left != 0 {
		t.Errorf("%d parks still counted after the trim, want 0 (another trim would follow without new parks)", left)
	}
}
