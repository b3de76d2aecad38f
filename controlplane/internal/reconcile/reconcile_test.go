package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A failed pass is tried again without a change; a change brings another pass; nothing runs before synced; the
// loop ends with its context.
func TestLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	var ready atomic.Bool
	calls := make(chan int, 10)
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, time.Millisecond, time.Millisecond, ready.Load, func() bool {
			n++
			calls <- n
			return n >= 2 // the first pass fails
		}, changed, nil)
	}()
	select {
	case c := <-calls:
		t.Fatalf("pass %d before synced", c)
	case <-time.After(20 * time.Millisecond):
	}
	ready.Store(true)
	if c := <-calls; c != 1 {
		t.Fatalf("first pass %d", c)
	}
	if c := <-calls; c != 2 { // the retry, with no change
		t.Fatalf("retry pass %d", c)
	}
	changed <- struct{}{}
	if c := <-calls; c != 3 {
		t.Fatalf("pass after a change %d", c)
	}
	cancel()
	<-done
	select {
	case c := <-calls:
		t.Fatalf("pass %d after the context ended", c)
	default:
	}
}
