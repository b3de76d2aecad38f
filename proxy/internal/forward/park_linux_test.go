package forward

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/testutil"
)

// Parked connections hold no goroutine: a hundred idle keep-alive connections leave the goroutine count where it
// was, and each serves its next request as before, with what its direction knows of it in the request's context.
func TestH1ParkedConnectionsHoldNoGoroutine(t *testing.T) {
	s, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.URL.Path, r.Context().Value(ctxKey{}))
	}, func(s *server) { s.parkAfter = 5 * time.Millisecond })
	before := runtime.NumGoroutine()
	const n = 100
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
		clients[i].send("GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := clients[i].response("GET"); body != "/one <nil>" {
			t.Fatalf("first response %q", body)
		}
	}
	waitParked(t, s, n)
	// Left: the parker's loop and timers, far fewer than one per connection. A connection's goroutine ends just
	// after it parks, so wait for them to be gone.
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("at most %d goroutines with %d connections parked", before+10, n), func() bool {
		return runtime.NumGoroutine() <= before+10
	})
	if w := s.waiting.Load(); w != 0 {
		t.Errorf("%d connections wait on goroutines of their own, want all parked", w)
	}
	for i, c := range clients {
		c.send(fmt.Sprintf("GET /two/%d HTTP/1.1\r\nHost: a\r\n\r\n", i))
	}
	for i, c := range clients {
		if _, body := c.response("GET"); body != fmt.Sprintf("/two/%d <nil>", i) {
			t.Fatalf("after parking: %q", body)
		}
	}
	waitParked(t, s, n)
}

// A parked connection that stays idle past the idle timeout is closed, and counted closed.
func TestH1ParkedConnectionsIdleOut(t *testing.T) {
	parkedIdle.Store(int64(300 * time.Millisecond))
	t.Cleanup(func() { parkedIdle.Store(int64(idleTimeout)) })
	s, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") //nolint:errcheck
	}, func(s *server) { s.parkAfter = 5 * time.Millisecond })
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.response("GET")
	waitParked(t, s, 1)
	// The client's read deadline (10 s) is far past the idle timeout: EOF comes from the proxy closing it.
	if !c.closed() {
		t.Fatal("a parked connection past its idle timeout should be closed")
	}
	waitParked(t, s, 0)
	testutil.Eventually(t, 5*time.Second, "the connection untracked", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 0 && len(s.h1conns) == 0
	})
}

// A drain closes parked connections and waits for none of them.
func TestH1DrainClosesParkedConnections(t *testing.T) {
	s, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") //nolint:errcheck
	}, func(s *server) { s.parkAfter = 5 * time.Millisecond })
	clients := make([]*rawClient, 20)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
		clients[i].send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		clients[i].response("GET")
	}
	waitParked(t, s, int64(len(clients)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	s.shutdown(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the drain waited %v for parked connections", time.Since(start))
	}
	for i, c := range clients {
		if !c.closed() {
			t.Errorf("client %d: a parked connection should close when the server drains", i)
		}
	}
	waitParked(t, s, 0)
}
