package loadgen

import (
	"context"
	"net"
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
