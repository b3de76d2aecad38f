package loadgen

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestPingPongAndThroughputAgainstEcho(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunEcho(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo: %v", err)
		}
	}()
	h, err := PingPong(ctx, ln.Addr().String(), 100*time.Millisecond)
	if err != nil || h.TotalCount() < 10 {
		t.Fatalf("ping-pong: %d round trips, err %v", h.TotalCount(), err)
	}
	n, el, err := Throughput(ctx, ln.Addr().String(), 100*time.Millisecond)
	if err != nil || n < 1<<20 || el < 100*time.Millisecond {
		t.Fatalf("throughput: %d bytes in %v, err %v", n, el, err)
	}
}

func TestRunFuncCountsOutcomes(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	res := RunFunc(context.Background(), 1000, 100*time.Millisecond, 4, func(context.Context) (bool, error) {
		switch n.Add(1) % 10 {
		case 0:
			return false, errors.New("reset")
		case 5:
			return false, nil
		}
		return true, nil
	})
	if res.Requests+res.ConnErrors != 100 || res.ConnErrors != 10 || res.Non2xx != 10 || res.Unsent != 0 {
		t.Errorf("requests=%d non2xx=%d connErrors=%d unsent=%d, want 90, 10, 10, 0", res.Requests, res.Non2xx, res.ConnErrors, res.Unsent)
	}
}
