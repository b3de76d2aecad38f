package h1head

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// outgoing is a request as the proxy sends one on: what http.ReadRequest read from raw, with the client's
// RequestURI cleared, an http URL and, unless raw has one, an empty User-Agent (the forwarder's way of sending
// none).
func outgoing(t testing.TB, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	r.RequestURI = ""
	r.URL.Scheme, r.URL.Host = "http", r.Host
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{""}
	}
	if r.ContentLength == 0 {
		r.Body = nil
	}
	return r
}

// written is what a server reads of the bytes one writer wrote, or the writer's error.
type written struct {
	View requestView
	Err  string
}

// write writes req with fast (WriteRequest) or with net/http's Request.Write, and reads back what it wrote.
func write(t testing.TB, req *http.Request, body string, fast bool) (w written, handled bool) {
	t.Helper()
	r := *req
	r.Header = req.Header.Clone()
	if req.Body != nil && req.Body != http.NoBody {
		r.Body = io.NopCloser(strings.NewReader(body))
	}
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	var err error
	if fast {
		if handled, err = WriteRequest(bw, &r); !handled {
			if out.Len() != 0 || bw.Buffered() != 0 {
				t.Fatalf("not handled, yet %q was written", out.String())
			}
			return written{}, false
		}
	} else {
		err = r.Write(bw)
	}
	if err != nil {
		return written{Err: "failed"}, true
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&out)
	got, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("%q does not read back: %v", out.String(), err)
	}
	return written{View: viewRequest(got, br)}, true
}

// checkWrite: where WriteRequest takes req, a server reads the same request from its bytes as from net/http's
// (and both fail alike); where it does not, it wrote nothing.
func checkWrite(t *testing.T, req *http.Request, body string) (handled bool) {
	t.Helper()
	got, handled := write(t, req, body, true)
	if !handled {
		return false
	}
	want, _ := write(t, req, body, false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s %s:\n got %+v\nwant %+v", req.Method, req.URL, got, want)
	}
	return true
}

func TestWriteRequest(t *testing.T) {
	type tc struct {
		name   string
		req    *http.Request
		body   string
		handle bool
	}
	get := func(raw string) *http.Request { return outgoing(t, raw) }
	with := func(r *http.Request, f func(*http.Request)) *http.Request { f(r); return r }
	cases := []tc{
		{"get", get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"headers and query", get("GET /api/list?x=1&y=%20 HTTP/1.1\r\nHost: web:80\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Multi: a\r\nX-Multi: b\r\nEmpty:\r\n\r\n"), "", true},
		{"force query", get("GET /a? HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"escaped path", get("GET /a%2Fb/c%20d HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"post", get("POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\nContent-Type: text/plain\r\n\r\npayload"), "payload", true},
		{"post empty", get("POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n"), "", true},
		{"put empty", get("PUT /x HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"delete empty", get("DELETE /x HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"head", get("HEAD /x HTTP/1.1\r\nHost: web\r\n\r\n"), "", true},
		{"close", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Close = true }), "", true},
		{"close announced", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) {
			r.Close = true
			r.Header["Connection"] = []string{"close"}
		}), "", true},
		{"host from URL", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Host = "" }), "", true},
		{"IPv6 host", get("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), "", true},
		{"body short", get("POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\n\r\npayload"), "pay", true},
		{"body long", get("POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\n\r\npayload"), "payload and more", true},
		{"big body", get("POST /big HTTP/1.1\r\nHost: web\r\nContent-Length: 20000\r\n\r\n"), strings.Repeat("0123456789", 2000), true},

		{"no user agent", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { delete(r.Header, "User-Agent") }), "", false},
		{"chunked", get("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "abc", false},
		{"trailers", with(get("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc"), func(r *http.Request) {
			r.Trailer = http.Header{"X-Sum": nil}
		}), "abc", false},
		{"unknown length", with(get("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc"), func(r *http.Request) { r.ContentLength = -1 }), "abc", false},
		{"length without body", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.ContentLength = 3 }), "", false},
		{"value to repair", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Header["X"] = []string{"a\r\nb"} }), "", false},
		{"value to trim", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Header["X"] = []string{" a"} }), "", false},
		{"bad name", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Header["Bad Name"] = []string{"a"} }), "", false},
		{"unicode host", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Host = "café.example" }), "", false},
		{"zone", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.Host = "[fe80::1%25eth0]:80" }), "", false},
		{"opaque", with(get("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), func(r *http.Request) { r.URL = &url.URL{Scheme: "http", Opaque: "//web/x"} }), "", false},
		{"connect", with(get("GET / HTTP/1.1\r\nHost: web:443\r\n\r\n"), func(r *http.Request) { r.Method = http.MethodConnect }), "", false},
	}
	for _, c := range cases {
		if got := checkWrite(t, c.req, c.body); got != c.handle {
			t.Errorf("%s: handled %v, want %v", c.name, got, c.handle)
		}
	}
}

// The body is closed once written, and when writing fails.
func TestWriteRequestClosesBody(t *testing.T) {
	for _, body := range []string{"payload", "pay"} {
		req := outgoing(t, "POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\n\r\npayload")
		cb := &closeBody{Reader: strings.NewReader(body)}
		req.Body = cb
		handled, err := WriteRequest(bufio.NewWriter(io.Discard), req)
		if !handled || (err != nil) != (body == "pay") || !cb.closed {
			t.Errorf("body %q: handled %v, err %v, closed %v", body, handled, err, cb.closed)
		}
	}
	req := outgoing(t, "POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\n\r\npayload")
	boom := errors.New("client went away")
	req.Body = io.NopCloser(io.MultiReader(strings.NewReader("pay"), iotest.ErrReader(boom)))
	if _, err := WriteRequest(bufio.NewWriter(io.Discard), req); !errors.Is(err, boom) {
		t.Errorf("a failing body: %v, want %v", err, boom)
	}
}

type closeBody struct {
	io.Reader
	closed bool
}

func (b *closeBody) Close() error { b.closed = true; return nil }

// FuzzWriteRequest: for any request net/http reads, WriteRequest leaves it alone or writes what net/http writes.
func FuzzWriteRequest(f *testing.F) {
	for _, tc := range requests {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		br := bufio.NewReader(strings.NewReader(raw))
		r, err := http.ReadRequest(br)
		if err != nil || r.Method == http.MethodConnect {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		req := outgoing(t, raw)
		checkWrite(t, req, string(body))
	})
}

// BenchmarkWriteRequest compares WriteRequest's allocations with net/http's for a typical proxied request.
func BenchmarkWriteRequest(b *testing.B) {
	req := outgoing(b, "GET /api/list?x=1 HTTP/1.1\r\nHost: web-svc.emojivoto:80\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nAccept: application/json\r\n\r\n")
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := WriteRequest(bw, req); !ok || err != nil {
				b.Fatal(ok, err)
			}
			_ = bw.Flush()
		}
	})
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := req.Write(bw); err != nil {
				b.Fatal(err)
			}
			_ = bw.Flush()
		}
	})
}

// writes counts the writes that reach the connection.
type writes struct {
	n   int
	out bytes.Buffer
}

func (w *writes) Write(p []byte) (int, error) { w.n++; return w.out.Write(p) }

// A body in memory goes out with the head in one write; any other body after the head has been flushed, so the
// next hop sees the head while an upload is still arriving.
func TestWriteRequestFlushes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   io.ReadCloser
		writes int
	}{
		{"in memory", NewMemBody([]byte("payload")), 1},
		{"streamed", io.NopCloser(strings.NewReader("payload")), 2},
	} {
		req := outgoing(t, "POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\n\r\npayload")
		req.Body = tc.body
		w := &writes{}
		bw := bufio.NewWriter(w)
		if handled, err := WriteRequest(bw, req); !handled || err != nil {
			t.Fatalf("%s: handled %v, %v", tc.name, handled, err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if w.n != tc.writes || !strings.HasSuffix(w.out.String(), "\r\n\r\npayload") {
			t.Errorf("%s: %d writes of %q, want %d", tc.name, w.n, w.out.String(), tc.writes)
		}
	}
}

// A plain request with a body is written without allocating too.
func TestWriteRequestAllocations(t *testing.T) {
	req := outgoing(t, "POST /api/vote?choice=1 HTTP/1.1\r\nHost: web-svc.emojivoto:80\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\npayload")
	body, payload := NewMemBody(nil), []byte("payload")
	req.Body = body
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	allocs := testing.AllocsPerRun(100, func() {
		body.Reset(payload)
		if handled, err := WriteRequest(bw, req); !handled || err != nil {
			t.Fatal(handled, err)
		}
		_ = bw.Flush()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

// A large body goes out in 32 KiB writes, not in writes of the connection writer's 4 KiB.
func TestWriteRequestLargeBody(t *testing.T) {
	const size = 1 << 20
	req := outgoing(t, "POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 1048576\r\n\r\n")
	req.Body = io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("x"), size)))
	w := &writes{}
	bw := bufio.NewWriterSize(w, 4<<10)
	if handled, err := WriteRequest(bw, req); !handled || err != nil {
		t.Fatalf("handled %v, %v", handled, err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.out.Len() < size || w.n > 1+size/(32<<10)+1 {
		t.Errorf("%d bytes in %d writes, want the body in 32 KiB writes", w.out.Len(), w.n)
	}
}
