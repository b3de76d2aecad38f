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
	for range trimAfterParks - 1 {
		tr.parked()
	}
	time.Sleep(2 * quiet)
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims after %d parks, want none", n, trimAfterParks-1)
	}
	// Parks keep coming more often than trimQuiet: no trim while they do.
	tr.parked()
	deadline := time.Now().Add(3 * quiet)
	for time.Now().Before(deadline) {
		tr.parked()
		time.Sleep(10 * time.Millisecond)
	}
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims while connections kept parking, want none", n)
	}
	testutil.Eventually(t, 5*time.Second, "one trim after the burst", func() bool { return trims.Load() == 1 })
	time.Sleep(2 * quiet)
	if n := trims.Load(); n != 1 {
		t.Errorf("%d trims, want 1", n)
	}
}
