package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes raw to addr and returns everything the proxy answers until it closes the connection.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("reading the answer: %v (so far %q)", err, b)
	}
	return string(b)
}

// TestHTTP1FidelityThroughMesh drives the meshed hop with raw HTTP/1.1 and checks that what the application and
// the client see is what they would see without the mesh.
func TestHTTP1FidelityThroughMesh(t *testing.T) {
	t.Parallel()
	type seen struct {
		body    string
		trailer http.Header
		expect  string
		proto   string // the version the app read, as "HTTP/major.minor"
		host    string
	}
	got := make(chan seen, 1)
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{body: string(b), trailer: r.Trailer.Clone(), expect: r.Header.Get("Expect"),
			proto: fmt.Sprintf("HTTP/%d.%d", r.ProtoMajor, r.ProtoMinor), host: r.Host}
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, ln.Addr().String())

	t.Run("request trailers reach the app", func(t *testing.T) {
		out := rawExchange(t, pair.outbound, "POST /t HTTP/1.1\r\nHost: srv\r\nTransfer-Encoding: chunked\r\n"+
			"Trailer: X-Checksum\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 900150983cd2\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
			t.Fatalf("answer %q", out)
		}
		s := <-got
		if s.body != "abc" || s.trailer.Get("X-Checksum") != "900150983cd2" {
			t.Errorf("the app saw body %q and trailers %v, want abc and X-Checksum: 900150983cd2", s.body, s.trailer)
		}
	})

	t.Run("one 100 Continue", func(t *testing.T) {
		out := rawExchange(t, pair.outbound, "POST /e HTTP/1.1\r\nHost: srv\r\nContent-Length: 3\r\n"+
			"Expect: 100-continue\r\nConnection: close\r\n\r\nabc")
		if n := strings.Count(out, "HTTP/1.1 100 Continue\r\n"); n != 1 {
			t.Errorf("%d 100 Continue responses, want 1:\n%s", n, out)
		}
		if !strings.Contains(out, "HTTP/1.1 200 OK\r\n") {
			t.Errorf("no 200 OK after the 100:\n%s", out)
		}
		if s := <-got; s.body != "abc" {
			t.Errorf("the app saw body %q", s.body)
		}
	})

	// HTTP/1.0 keeps its version semantics end to end, and the proxy invents no Host. The status line and a Host
	// the client sent already come through; the rest comes with the #11 forwarder.
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		out := rawExchange(t, pair.outbound, "GET /x HTTP/1.0\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.0 200 ") {
			t.Fatalf("answer %q, want an HTTP/1.0 200", out)
		}
		s := <-got
		if s.proto != "HTTP/1.0" || s.host != "" {
			t.Errorf("the app saw %s with Host %q, want HTTP/1.0 with no Host", s.proto, s.host)
		}
	})

	t.Run("HTTP/1.0 with Host", func(t *testing.T) {
		out := rawExchange(t, pair.outbound, "GET /x HTTP/1.0\r\nHost: srv.example\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.0 200 ") {
			t.Fatalf("answer %q, want an HTTP/1.0 200", out)
		}
		s := <-got
		if s.host != "srv.example" {
			t.Errorf("the app saw Host %q, want srv.example", s.host)
		}
		if s.proto != "HTTP/1.0" {
			t.Errorf("the app saw %s, want HTTP/1.0", s.proto)
		}
	})
}
