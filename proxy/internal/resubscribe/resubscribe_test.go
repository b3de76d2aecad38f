package resubscribe

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Waits double after each stream that delivered nothing, up to Max, start over after one that delivered, and
// stay within [d/2, d).
func TestRunBacksOff(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := []bool{false, false, false, true, false, false, false, false, false, false, false, false}
	var waits []time.Duration
	calls := 0
	Run(ctx, func(context.Context, time.Duration) bool { return true },
		func(context.Context) (bool, error) {
			if calls == len(received) {
				cancel()
				return false, ctx.Err()
			}
			calls++
			return received[calls-1], errors.New("stream ended")
		},
		func(wait time.Duration, _ error) { waits = append(waits, wait) })
	bases := []time.Duration{Initial, 2 * Initial, 4 * Initial, Initial, 2 * Initial, 4 * Initial, 8 * Initial, 16 * Initial, 32 * Initial, Max, Max, Max}
	if len(waits) != len(bases) {
		t.Fatalf("%d waits, want %d", len(waits), len(bases))
	}
	for i, w := range waits {
		if w < bases[i]/2 || w >= bases[i] {
			t.Errorf("wait %d = %v, want in [%v, %v)", i, w, bases[i]/2, bases[i])
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("slept through a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("a short sleep did not complete")
	}
}
