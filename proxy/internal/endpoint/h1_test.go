package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an HTTP server that counts the connections it accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func dialTo(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", addr) }
}

func get(t *testing.T, c *h1Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestH1ClientReusesConnections(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	c := newH1Client(dialTo(srv.Listener.Addr().String()), 4, time.Minute)
	for i := range 5 {
		if _, body := get(t, c, srv.URL+"/x"); body != "/x" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests", n)
	}
}

// A response body closed before its end leaves bytes on the connection: it must not carry another request.
func TestH1ClientDropsConnectionsWithUnreadBodies(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	c := newH1Client(dialTo(srv.Listener.Addr().String()), 4, time.Minute)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // unread
	if _, body := get(t, c, srv.URL); len(body) != 64<<10 {
		t.Fatalf("second response %d bytes", len(body))
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the first was not reusable)", n)
	}
}

// The peer closes idle connections (as a server's idle timeout does): the next request goes out on a new
// connection instead of failing.
func TestH1ClientRetriesAPeerClosedIdleConnection(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	c := newH1Client(dialTo(srv.Listener.Addr().String()), 4, time.Minute)
	get(t, c, srv.URL)
	srv.CloseClientConnections()
	if _, body := get(t, c, srv.URL); body != "ok" {
		t.Fatalf("after the peer closed the idle connection: %q", body)
	}
}

func TestH1ClientSkipsInformationalResponses(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made")
	})
	c := newH1Client(dialTo(srv.Listener.Addr().String()), 4, time.Minute)
	if resp, body := get(t, c, srv.URL); resp.StatusCode != http.StatusCreated || body != "made" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestH1ClientCancelledRequestEnds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newH1Client(dialTo(srv.Listener.Addr().String()), 4, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.RoundTrip(req)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
}
