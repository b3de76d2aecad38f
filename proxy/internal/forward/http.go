package forward

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/h1head"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"golang.org/x/net/http/httpguts"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// smallBody is the largest request body read whole before it is sent on.
const smallBody = 16 << 10

var smallBodies = sync.Pool{New: func() any { b := make([]byte, smallBody); return &b }}

// readSmall reads exactly n (at most smallBody) bytes of body into a pooled buffer; put it back when the request
// is over.
func readSmall(body io.Reader, n int) (*[]byte, error) {
	bp := smallBodies.Get().(*[]byte)
	if _, err := io.ReadFull(body, (*bp)[:n]); err != nil {
		smallBodies.Put(bp)
		return nil, err
	}
	return bp, nil
}

// forwarder is the HTTP handler of one direction: it turns the client's request into the request state, runs
// it through the direction's chain, and writes what comes back (or the failure) to the client. It forwards
// transparently: the authority and any forwarding headers the application set are kept, and none are added.
type forwarder struct {
	dir   pipeline.Direction
	chain pipeline.Handler
	log   *slog.Logger
	// prepare fills in what the direction knows (connection info, protocol restoration) before the chain runs.
	prepare func(*pipeline.Request)
	// failedSeries is where requests that failed before reaching the metrics layer are counted.
	failedSeries func(*pipeline.Request) *metrics.Series
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upgrade := isUpgrade(r)
	st := new(state) // one allocation for the request state and the request sent on
	req := &st.Request
	*req = pipeline.Request{Client: r, Start: time.Now(), Dir: f.dir, HTTP: st.outgoing(r, upgrade), Upgrade: upgrade}
	if r.ProtoMajor == 1 {
		req.OrigProto = "HTTP/1.1"
		if r.ProtoMinor == 0 {
			req.OrigProto, req.NoHost = "HTTP/1.0", r.Host == ""
		}
	}
	f.prepare(req)
	var body *[]byte
	if n := r.ContentLength; n > 0 && n <= smallBody && r.Body != nil && r.ProtoMajor == 1 && !upgrade {
		// A small body is read before it is sent on: in memory, it goes out with the headers in one write
		// (net/http flushes the headers first for a body it cannot see), and a retry can send it again as is.
		// Only HTTP/1 requests: they go out through our HTTP/1 client, which is done with the body when it returns,
		// so the pooled buffer can go back when the request is over; HTTP/2's client may still be writing it.
		var err error
		if body, err = readSmall(r.Body, int(n)); err != nil {
			pipeline.WriteFailure(w, r, f.log, f.dir, fmt.Errorf("%w: %w", pipeline.ErrClientBody, err))
			return
		}
		defer smallBodies.Put(body)
		b := (*body)[:n]
		st.body.Reset(b)
		req.HTTP.Body = &st.body
		req.HTTP.GetBody = func() (io.ReadCloser, error) { return h1head.NewMemBody(b), nil }
	}
	resp, err := f.chain.Handle(req)
	if err != nil {
		status, grpc := pipeline.WriteFailure(w, r, f.log, f.dir, err)
		if !req.Observed {
			f.countUnobserved(req, status, grpc)
		}
		return
	}
	if !req.Observed {
		// A layer above the metrics layer answered (a route's redirect).
		f.countUnobserved(req, resp.StatusCode, -1)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		f.upgrade(w, req, resp)
		return
	}
	f.respond(w, r, resp)
}

// countUnobserved counts a request that a layer above the metrics layer answered, with the status the client got.
// It is classified as the application's answers are: a policy's refusal does not pull the workload's success
// rate down.
func (f *forwarder) countUnobserved(req *pipeline.Request, status, grpc int) {
	r := req.Client
	s := f.failedSeries(req)
	p := s.Path(r.Host, r.URL.Path)
	s.Request()
	p.Request()
	ms := float64(time.Since(req.Start)) / float64(time.Millisecond)
	failed := pipeline.Failed(status, grpc)
	for _, m := range [...]*metrics.Response{s.Response(status, grpc, failed), p.Response(status, grpc, failed)} {
		m.ObserveLatency(ms)
		m.End()
	}
}

// state holds a request's state and the request sent on, allocated together.
type state struct {
	pipeline.Request
	out  http.Request
	url  url.URL
	body h1head.MemBody // a small body read whole
}

// outgoing is the request to send on: a shallow copy of the client's with its own URL, without hop-by-hop
// headers. The header map is the client request's own, changed in place: the server read what it needs from it
// when it parsed the request, and copying it would cost an allocation per header on every request.
func (st *state) outgoing(r *http.Request, upgrade bool) *http.Request {
	out := &st.out
	*out = *r
	st.url = *r.URL
	out.URL = &st.url
	out.URL.Scheme = "http"
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		// Lets HTTP/2 end the stream with the headers.
		out.Body = nil
	}
	removeHopHeaders(out.Header, upgrade)
	// The proxy answers "Expect: 100-continue" itself (net/http does when the body is first read); passed on, the
	// next hop would answer too and the client would get two.
	delete(out.Header, "Expect")
	// Request trailers arrive after the body, into r.Trailer; sharing the map passes them on.
	out.Trailer = r.Trailer
	if _, ok := out.Header["User-Agent"]; !ok {
		// net/http's clients add their own User-Agent to a request without one; an empty value stops them.
		out.Header["User-Agent"] = []string{""}
	}
	return out
}

// hopHeaders are meaningful only for one connection (RFC 9110 7.6.1); "Te: trailers" is kept, for gRPC.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade"}

func removeHopHeaders(h http.Header, upgrade bool) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = http.CanonicalHeaderKey(strings.TrimSpace(name)); name != "" && (!upgrade || name != "Upgrade") {
				delete(h, name)
			}
		}
	}
	for _, k := range hopHeaders {
		if upgrade && (k == "Connection" || k == "Upgrade") {
			continue
		}
		delete(h, k)
	}
	if te, ok := h["Te"]; ok && (len(te) != 1 || !strings.EqualFold(te[0], "trailers")) {
		delete(h, "Te")
		if httpguts.HeaderValuesContainsToken(te, "trailers") {
			h["Te"] = []string{"trailers"}
		}
	}
}

// headerAdopter is our HTTP/1 server's response writer: it can take the upstream response's header map as its own.
type headerAdopter interface{ AdoptHeader(http.Header) bool }

// respond writes resp to the client: headers, the body as it arrives (flushed at once when its length is unknown,
// so streams stream), and trailers.
func (f *forwarder) respond(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	if a, ok := w.(headerAdopter); !ok || !a.AdoptHeader(resp.Header) {
		maps.Copy(w.Header(), resp.Header)
	}
	h := w.Header()
	removeHopHeaders(h, false)
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength == -1
	if streaming {
		_ = http.NewResponseController(w).Flush() // the client sees the headers now, not with the first bytes
	}
	if err := copyBody(w, resp.Body, streaming); err != nil {
		if r.Context().Err() == nil {
			f.log.Debug("response body copy failed", "direction", f.dir.String(), "authority", r.Host, "err", err)
			// Abort so the client sees a broken response, not a short one that looks complete.
			panic(http.ErrAbortHandler)
		}
		return
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			h[k] = vv
		}
		return
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// copyBody copies src to w, flushing after each write when flush is set.
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// upgrade completes an HTTP/1 Upgrade (WebSocket): the 101 goes to the client, then bytes flow both ways.
func (f *forwarder) upgrade(w http.ResponseWriter, req *pipeline.Request, resp *http.Response) {
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		pipeline.WriteFailure(w, req.Client, f.log, f.dir, errors.New("upgrade response body is not writable"))
		return
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), req.Client.Header.Get("Upgrade")) {
		backend.Close()
		pipeline.WriteFailure(w, req.Client, f.log, f.dir, fmt.Errorf("backend switched to %q, client asked for %q",
			resp.Header.Get("Upgrade"), req.Client.Header.Get("Upgrade")))
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		backend.Close()
		pipeline.WriteFailure(w, req.Client, f.log, f.dir, fmt.Errorf("hijacking the client connection: %w", err))
		return
	}
	defer conn.Close()
	defer backend.Close()
	resp.Body = nil // written below by hand; Response.Write would copy it
	if err := writeSwitching(brw, resp); err != nil {
		return
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent after its request, already read by the server.
		buffered, _ := brw.Peek(n)
		if _, err := backend.Write(buffered); err != nil {
			return
		}
	}
	splice(conn, rwcConn{backend, conn})
}

func writeSwitching(brw *bufio.ReadWriter, resp *http.Response) error {
	if _, err := fmt.Fprintf(brw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols)); err != nil {
		return err
	}
	if err := resp.Header.Write(brw); err != nil {
		return err
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		return err
	}
	return brw.Flush()
}

// rwcConn lets splice treat an upgraded backend stream as a connection; addresses and deadlines are the client
// connection's, which splice never uses for the backend.
type rwcConn struct {
	io.ReadWriteCloser
	net.Conn
}

func (c rwcConn) Read(p []byte) (int, error)  { return c.ReadWriteCloser.Read(p) }
func (c rwcConn) Write(p []byte) (int, error) { return c.ReadWriteCloser.Write(p) }
func (c rwcConn) Close() error                { return c.ReadWriteCloser.Close() }
func (c rwcConn) CloseWrite() error {
	if cw, ok := c.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}
