// Package resubscribe keeps a control-plane watch alive: when a stream ends or fails, it subscribes again after a
// jittered, growing backoff. Discovery and the policy client share it; what a watch knew stays with the caller
// until a new stream replaces it.
package resubscribe

import (
	"context"
	"math/rand/v2"
	"time"
)

// Resubscribing waits Initial after a stream that delivered something, then twice as long after each attempt that
// failed again, up to Max; each wait is jittered into [d/2, d).
const (
	Initial = 100 * time.Millisecond
	Max     = 5 * time.Second
)

// SleepFunc waits d, or less when ctx ends first (then false). Tests replace Sleep to see the waits.
type SleepFunc func(ctx context.Context, d time.Duration) bool

// Sleep is the real SleepFunc.
func Sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// Run calls stream until ctx ends. stream runs one subscription and reports whether it delivered anything; ended
// hears why each one ended and how long Run waits before the next.
func Run(ctx context.Context, sleep SleepFunc, stream func(context.Context) (received bool, err error), ended func(wait time.Duration, err error)) {
	backoff := Initial
	for ctx.Err() == nil {
		received, err := stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if received {
			backoff = Initial
		}
		wait := backoff/2 + rand.N(backoff/2)
		ended(wait, err)
		if !sleep(ctx, wait) {
			return
		}
		backoff = min(2*backoff, Max)
	}
}
