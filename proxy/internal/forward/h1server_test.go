package forward

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy/internal/sock"
)

// h1Fixture serves handler with the HTTP/1 loop on a loopback listener, as the proxy does after detection; opts
// adjust the server before it serves.
func h1Fixture(t *testing.T, handler http.HandlerFunc, opts ...func(*server)) (*server, string) {
	t.Helper()
	s := newServer(handler, slog.New(slog.DiscardHandler))
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			raw := sock.Wrap(c) // as the proxy's accept loop does: such connections park
			untrack, ok := s.track(raw)
			if !ok {
				raw.Close()
				continue
			}
			go s.serve(&trackedConn{Conn: raw, onClose: untrack}, nil, false)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.shutdown(ctx)
	})
	return s, ln.Addr().String()
}

type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads one response and its whole body.
func (rc *rawClient) response(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (EOF where the next response would be).
func (rc *rawClient) closed() bool {
	_, err := rc.br.Peek(1)
	return err == io.EOF
}

func TestH1KeepAliveAndFraming(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello") //nolint:errcheck
		case "/stream":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part1,") //nolint:errcheck
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2") //nolint:errcheck
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		case "/length":
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc") //nolint:errcheck
		}
	})
	rc := dialRaw(t, addr)
	rc.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := rc.response("GET")
	if body != "hello" || resp.ContentLength != 5 || resp.Header.Get("Date") == "" {
		t.Errorf("/small: %q, length %d, Date %q; want hello with a Content-Length and a Date", body, resp.ContentLength, resp.Header.Get("Date"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type %q was invented; a transparent proxy adds none", ct)
	}
	rc.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body = rc.response("GET")
	if body != "part1,part2" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("/stream: %q, transfer encoding %v; want both parts, chunked", body, resp.TransferEncoding)
	}
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("/stream trailers %v, want X-Sum: 42 and X-Late: yes", resp.Trailer)
	}
	// Two pipelined requests on the same connection are answered in order.
	rc.send("GET /length HTTP/1.1\r\nHost: a\r\n\r\nHEAD /length HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body = rc.response("GET"); body != "abc" {
		t.Errorf("/length: %q", body)
	}
	if resp, body = rc.response("HEAD"); body != "" || resp.ContentLength != 3 {
		t.Errorf("HEAD /length: body %q, length %d; want no body and the length of the GET's", body, resp.ContentLength)
	}
	rc.send("GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp, _ = rc.response("GET"); !resp.Close || !rc.closed() {
		t.Error("Connection: close from the client: the response should say close and the connection end")
	}
}

func TestH1HTTP10(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, r.Proto) //nolint:errcheck
	})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body := rc.response("GET")
	if resp.Proto != "HTTP/1.0" || body != "HTTP/1.0" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive: %s %q Connection %q", resp.Proto, body, resp.Header.Get("Connection"))
	}
	// A body of unknown length to an HTTP/1.0 client ends with the connection.
	rc.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if _, body = rc.response("GET"); body != "HTTP/1.0" || !rc.closed() {
		t.Errorf("HTTP/1.0 stream: %q; want it ended by closing", body)
	}
	rc = dialRaw(t, addr)
	rc.send("GET / HTTP/1.0\r\n\r\n")
	if _, body = rc.response("GET"); body != "HTTP/1.0" || !rc.closed() {
		t.Errorf("HTTP/1.0 without keep-alive: %q; want the connection closed after it", body)
	}
}

func TestH1ExpectContinue(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b) //nolint:errcheck
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})
	rc := dialRaw(t, addr)
	rc.send("POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q (%v), want 100 Continue", line, err)
	}
	rc.br.ReadString('\n') //nolint:errcheck // the blank line after it
	rc.send("body")
	if resp, body := rc.response("POST"); resp.StatusCode != 200 || body != "body" {
		t.Errorf("after 100 Continue: %d %q", resp.StatusCode, body)
	}
	// A handler that answers without reading: no 100, and the connection closes (the body was never sent).
	rc.send("POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.response("POST"); resp.StatusCode != http.StatusForbidden || !rc.closed() {
		t.Errorf("unread body awaiting 100: %d, want 403 and the connection closed", resp.StatusCode)
	}
}

func TestH1UnreadBodyIsDropped(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }) //nolint:errcheck
	rc := dialRaw(t, addr)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	for i := range 2 {
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestH1BadInput(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }) //nolint:errcheck
	for _, c := range []struct {
		name, req string
		want      int
	}{
		{"garbage", "\x16\x03\x01 not http\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: tea\r\n\r\n", 417},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			go io.WriteString(rc.c, c.req) //nolint:errcheck // the server may answer, and close, before it has read it all
			if resp, _ := rc.response("GET"); resp.StatusCode != c.want || !rc.closed() {
				t.Errorf("status %d, want %d and the connection closed", resp.StatusCode, c.want)
			}
		})
	}
	// The server is still serving.
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := rc.response("GET"); body != "ok" {
		t.Errorf("after bad input: %q", body)
	}
}

func TestH1ClientGoneCancelsRequest(t *testing.T) {
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(10 * time.Second):
			cancelled <- nil
		}
	})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	// The client leaves while its request is served; the watch, which starts watchAfter later, finds it gone.
	rc.c.Close()
	if err := <-cancelled; err == nil {
		t.Fatal("the request's context was not cancelled when its client went away")
	}
}

func TestH1SlowRequestKeepsPipelinedBytes(t *testing.T) {
	// A request slower than watchAfter, with the next request sent while it is served: the watch (armed when the
	// first request was read, with nothing of the next one buffered) reads the next request's first byte, which
	// must not be lost.
	started := make(chan struct{}, 1)
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(5 * watchAfter) // a slow application, so that the watch reads before the answer
		}
		io.WriteString(w, r.URL.Path) //nolint:errcheck
	})
	rc := dialRaw(t, addr)
	rc.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	rc.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		if _, body := rc.response("GET"); body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	}
}

func TestH1PanicClosesOnlyItsConnection(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok") //nolint:errcheck
	})
	rc := dialRaw(t, addr)
	rc.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if !rc.closed() {
		t.Error("a panicking handler's connection should close")
	}
	rc = dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := rc.response("GET"); body != "ok" {
		t.Errorf("after a panic: %q", body)
	}
}

func TestH1Drain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok") //nolint:errcheck
	})
	idle := dialRaw(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.response("GET")
	busy := dialRaw(t, addr)
	busy.send("GET /busy HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.shutdown(ctx)
		close(done)
	}()
	if !idle.closed() {
		t.Error("an idle connection should close when the server drains")
	}
	close(release)
	resp, body := busy.response("GET")
	if body != "ok" || !resp.Close || !busy.closed() {
		t.Errorf("busy connection: %q, Connection: close %v; want its answer, then the connection closed", body, resp.Close)
	}
	<-done
}

func TestH1Hijack(t *testing.T) {
	_, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n") //nolint:errcheck
		brw.Flush()                                                                                         //nolint:errcheck
		line, _ := brw.ReadString('\n')
		io.WriteString(c, "echo:"+line) //nolint:errcheck
	})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	if line, _ := rc.br.ReadString('\n'); line != "echo:early\n" {
		t.Errorf("after the upgrade: %q, want the bytes sent early echoed", line)
	}
}

// waitParked waits until n connections of s are parked.
func waitParked(t *testing.T, s *server, n int64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d connections parked", n), func() bool { return s.parked.Load() == n })
}

// An idle keep-alive connection parks (no read buffer, a fresh goroutine) and serves its next request as before,
// pipelined ones included; a parked connection closes when its client does and when the server drains.
func TestH1IdleConnectionsPark(t *testing.T) {
	s, addr := h1Fixture(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path) //nolint:errcheck
	}, func(s *server) { s.parkAfter = 5 * time.Millisecond })
	c := dialRaw(t, addr)
	c.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.response("GET"); body != "/one" {
		t.Fatalf("first response %q", body)
	}
	waitParked(t, s, 1)
	c.send("GET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/two", "/three"} {
		if _, body := c.response("GET"); body != want {
			t.Fatalf("after parking: %q, want %q", body, want)
		}
	}
	waitParked(t, s, 1)

	gone := dialRaw(t, addr)
	gone.send("GET /gone HTTP/1.1\r\nHost: a\r\n\r\n")
	gone.response("GET")
	waitParked(t, s, 2)
	gone.c.Close()
	waitParked(t, s, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.shutdown(ctx)
	if !c.closed() {
		t.Error("a parked connection should close when the server drains")
	}
	waitParked(t, s, 0)
}
