package h1head

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

type ctxKey struct{}

// base is the request ReadRequest copies: a context, as the server gives one per connection.
var base = (&http.Request{}).WithContext(context.WithValue(context.Background(), ctxKey{}, "conn"))

// reader buffers all of raw, as a connection's reader holds what arrived.
func reader(raw string) *bufio.Reader {
	br := bufio.NewReaderSize(strings.NewReader(raw), 64<<10)
	_, _ = br.Peek(len(raw))
	return br
}

// requestView is what a server reads of a request, from either parser.
type requestView struct {
	Method, Proto, Host, RequestURI, URL string
	Path, RawPath, RawQuery              string
	ForceQuery                           bool
	ProtoMajor, ProtoMinor               int
	Header                               http.Header
	ContentLength                        int64
	TransferEncoding                     []string
	Close                                bool
	Trailer                              http.Header
	Body                                 string
	BodyErr                              string
	Rest                                 string // what is left on the connection after the body
}

func viewRequest(r *http.Request, br *bufio.Reader) requestView {
	v := requestView{Method: r.Method, Proto: r.Proto, Host: r.Host, RequestURI: r.RequestURI, URL: r.URL.String(),
		Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, ForceQuery: r.URL.ForceQuery,
		ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor, Header: r.Header, ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, Close: r.Close, Trailer: r.Trailer}
	v.Body, v.BodyErr, v.Rest = drain(r.Body, br)
	return v
}

// drain reads a body to its end, then what is left on the connection after it.
func drain(body io.Reader, br *bufio.Reader) (data, err, rest string) {
	b, rerr := io.ReadAll(body)
	if rerr != nil {
		err = rerr.Error()
	}
	r, _ := io.ReadAll(br)
	return string(b), err, string(r)
}

// compare: where the fast path takes raw, net/http reads the same from it (as view shows both); where it does
// not, it has read nothing.
func compare[T any](t *testing.T, raw string, fast func(*bufio.Reader) (T, bool), slow func(*bufio.Reader) (T, error), view func(T, *bufio.Reader) any) (taken bool) {
	t.Helper()
	br := reader(raw)
	got, ok := fast(br)
	if !ok {
		if br.Buffered() != len(raw) {
			t.Fatalf("%q: not taken, yet %d bytes were read", raw, len(raw)-br.Buffered())
		}
		return false
	}
	wbr := reader(raw)
	want, err := slow(wbr)
	if err != nil {
		t.Fatalf("%q: taken, but net/http refuses it: %v", raw, err)
	}
	if g, w := view(got, br), view(want, wbr); !reflect.DeepEqual(g, w) {
		t.Errorf("%q:\n got %+v\nwant %+v", raw, g, w)
	}
	return true
}

func checkRequest(t *testing.T, raw string) bool {
	t.Helper()
	fast := func(br *bufio.Reader) (*http.Request, bool) {
		r, ok := ReadRequest(br, base)
		if ok && r.Context().Value(ctxKey{}) != "conn" {
			t.Errorf("%q: the request lost base's context", raw)
		}
		return r, ok
	}
	return compare(t, raw, fast, http.ReadRequest, func(r *http.Request, br *bufio.Reader) any { return viewRequest(r, br) })
}

var requests = []struct {
	raw  string
	fast bool
}{
	{"GET / HTTP/1.1\r\nHost: web\r\n\r\n", true},
	{"GET /api/list?x=1&y=%20 HTTP/1.1\r\nHost: web:80\r\nUser-Agent: bench\r\naccept: */*\r\nX-Multi: a\r\nx-multi:  b \t\r\n\r\n", false}, // an escape in the query
	{"GET /api/list?x=1&y=2 HTTP/1.1\r\nHost: web:80\r\nUser-Agent: bench\r\naccept: */*\r\nX-Multi: a\r\nx-multi:  b \t\r\n\r\n", true},
	{"GET /a? HTTP/1.1\r\nHost: web\r\n\r\n", true},
	{"POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 7\r\nContent-Type: text/plain\r\n\r\npayloadGET / HTTP/1.1\r\n", true},
	{"POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n", true},
	{"POST /short HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc", true},
	{"GET / HTTP/1.1\r\nHost: web\r\nEmpty:\r\n\r\n", true},
	{"GET / HTTP/1.0\r\nHost: web\r\n\r\n", false},
	{"GET / HTTP/1.1\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", false},
	{"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false},
	{"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", false},
	{"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: +3\r\n\r\nabc", false},
	{"GET / HTTP/1.1\r\nHost: web\r\n folded\r\n\r\n", false},
	{"GET / HTTP/1.1\nHost: web\n\n", false},
	{"GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET //x HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET /a#b HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: web\r\nBad Name: x\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: web\r\nX: a\x01b\r\n\r\n", false},
	{"G(T / HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET  / HTTP/1.1\r\nHost: web\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: web\r\n", false}, // the head has not all arrived
	{"CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: web\r\nPragma: no-cache\r\n\r\n", false},
}

func TestReadRequest(t *testing.T) {
	for _, tc := range requests {
		if fast := checkRequest(t, tc.raw); fast != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.raw, fast, tc.fast)
		}
	}
}

type responseView struct {
	Status                 string
	StatusCode             int
	Proto                  string
	ProtoMajor, ProtoMinor int
	Header                 http.Header
	ContentLength          int64
	TransferEncoding       []string
	Close, Uncompressed    bool
	Trailer                http.Header
	Body, BodyErr, Rest    string
}

func viewResponse(r *http.Response, br *bufio.Reader) responseView {
	v := responseView{Status: r.Status, StatusCode: r.StatusCode, Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: r.Header, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Close: r.Close,
		Uncompressed: r.Uncompressed, Trailer: r.Trailer}
	v.Body, v.BodyErr, v.Rest = drain(r.Body, br)
	return v
}

func checkResponse(t *testing.T, raw, method string) bool {
	t.Helper()
	req, _ := http.NewRequest(method, "http://web/", nil)
	return compare(t, raw, func(br *bufio.Reader) (*http.Response, bool) { return ReadResponse(br, req) },
		func(br *bufio.Reader) (*http.Response, error) { return http.ReadResponse(br, req) },
		func(r *http.Response, br *bufio.Reader) any {
			if r.Request != req {
				t.Errorf("%q: Request not set", raw)
			}
			return viewResponse(r, br)
		})
}

var responses = []struct {
	raw, method string
	fast        bool
}{
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloHTTP/1.1", "GET", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", true},
	{"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-A: 1\r\nx-a: 2\r\n\r\nnot found", "GET", true},
	{"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", "GET", true},
	{"HTTP/1.1 599 Whatever You Like\r\nContent-Length: 2\r\n\r\nok", "GET", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "HEAD", true},
	{"HTTP/1.1 200 OK\r\n\r\n", "HEAD", true},
	{"HTTP/1.1 204 No Content\r\n\r\n", "GET", true},
	{"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n", "GET", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "GET", true},
	{"HTTP/1.1 200 OK\r\n\r\nuntil the end", "GET", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "GET", false},
	{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
	{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET", false},
	{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
	{"HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"HTTP/1.1 200 OK\r\nGrpc-Status: 0\r\nContent-Length: 0\r\n\r\n", "GET", true},
}

func TestReadResponse(t *testing.T) {
	for _, tc := range responses {
		if fast := checkResponse(t, tc.raw, tc.method); fast != tc.fast {
			t.Errorf("%q (%s): fast path %v, want %v", tc.raw, tc.method, fast, tc.fast)
		}
	}
}

// FuzzReadRequest: whatever the bytes, the fast path either leaves them alone or reads what net/http reads.
func FuzzReadRequest(f *testing.F) {
	for _, tc := range requests {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkRequest(t, raw) })
}

// FuzzReadResponse: the same for responses, to a GET and to a HEAD.
func FuzzReadResponse(f *testing.F) {
	for _, tc := range responses {
		f.Add(tc.raw, tc.method == "HEAD")
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		checkResponse(t, raw, method)
	})
}

// BenchmarkReadRequest compares the fast path's allocations with net/http's for a typical proxied request.
func BenchmarkReadRequest(b *testing.B) {
	raw := "GET /api/list?x=1 HTTP/1.1\r\nHost: web-svc.emojivoto:80\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nAccept: application/json\r\n\r\n"
	sr := strings.NewReader(raw)
	br := bufio.NewReaderSize(sr, 4<<10)
	next := func() *bufio.Reader {
		sr.Reset(raw)
		br.Reset(sr)
		_, _ = br.Peek(len(raw))
		return br
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ReadRequest(next(), base); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := http.ReadRequest(next()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
