// Package reconcile is the loop of the control plane's writers to the Kubernetes API (route status, the gateway
// controller): act on the model after every change, batched, and try again after a failure.
package reconcile

import (
	"context"
	"time"
)

// Loop calls sync after each signal of changed or extra (a nil channel never signals), at most once per debounce
// so that a burst of changes is one pass, until ctx ends. While synced (nil: always) says the inputs are not
// complete yet, it only waits; when sync reports a failure, it tries again after retry even without a change.
func Loop(ctx context.Context, debounce, retry time.Duration, synced func() bool, sync func() bool, changed, extra <-chan struct{}) {
	for {
		var again <-chan time.Time
		switch {
		case synced != nil && !synced():
			again = time.After(debounce)
		case !sync():
			again = time.After(retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-extra:
		case <-again:
		}
		t := time.NewTimer(debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
