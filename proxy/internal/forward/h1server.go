package forward

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sinewmesh/sinew/proxy/internal/h1head"
)

// The HTTP/1 server loop. net/http's server costs a sidecar more than the forwarding it serves: per connection a
// 4 KiB write buffer kept while idle, and per request a background-read goroutine with two deadline changes, a
// response writer built of three layers, and a context of its own (issue #11's profile). This loop serves one
// connection on the goroutine that accepted it, reads requests with http.ReadRequest and writes responses itself.
// It keeps what a client of a transparent proxy relies on: keep-alive and HTTP/1.0 semantics, one 100 Continue,
// trailers, Upgrade (hijack), header size and slow-client limits, and graceful drain. HTTP/2 stays on net/http.
// A plaintext keep-alive connection idle past parkAfter parks (park_linux.go): it gives its buffers, context and
// goroutine back and leaves its socket with the parker until the next request comes, so idle connections cost
// little.

const (
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 10 * time.Second // slow-loris protection: a client has this long to send its headers
	idleTimeout       = 90 * time.Second
	// maxDrain is how much of a request body the handler left unread is read and dropped so the connection can
	// carry the next request; a longer rest closes the connection instead.
	maxDrain = 256 << 10
	// watchAfter is how long a request may wait for its response before the connection is watched for the
	// client going away. Answers faster than this never pay for the watch.
	watchAfter = 10 * time.Millisecond
	// pendMax is how much body a response without Content-Length may write before its headers go out; a response
	// that ends within it gets a Content-Length instead of chunks.
	pendMax = 2 << 10
	// parkAfter is how long a keep-alive connection waits for its next request in place before it parks: gives
	// its read buffer, context and goroutine back and leaves its socket with the parker, so an idle connection
	// costs about a kilobyte. Busy connections never park.
	parkAfter = 100 * time.Millisecond
)

// Outcomes of waiting for the next request.
const (
	nextServe = iota
	nextClose
	nextPark
)

const (
	connActive int32 = iota
	connIdle
	connClosing
	connParked // its socket is with the parker (park_linux.go)
)

var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// errHeaderTooLarge ends a read that would go past the header limit.
var errHeaderTooLarge = errors.New("request header too large")

// connReader is what the connection's buffered reader reads: the connection, within the header limit while a
// request's headers are read.
type connReader struct {
	c     net.Conn
	limit int64
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.Read(p)
	r.limit -= int64(n)
	return n, err
}

// h1conn is one HTTP/1 connection being served.
type h1conn struct {
	srv    *server
	c      net.Conn
	rd     connReader
	br     *bufio.Reader
	bw     *bufio.Writer // nil while idle: only a connection writing a response holds a write buffer
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	state  atomic.Int32
	watch  watcher
	// base is a request with only ctx, that the fast head reader copies; nil while parked.
	base *http.Request
	// wmu orders the 100 Continue, which a body reader on another goroutine may write, before the response.
	wmu sync.Mutex
	// info is what the direction knows of the connection (the value of ctxKey in ctx).
	info any
	pk   parkedConn
}

// serveH1 serves HTTP/1 requests on c until the client closes it, it idles out, or the server drains.
func (s *server) serveH1(c net.Conn, info any) {
	hc := &h1conn{srv: s, c: c, rd: connReader{c: c, limit: math.MaxInt64}, info: info}
	hc.newContext()
	if !s.addH1(hc) {
		hc.cancel()
		c.Close()
		return
	}
	hc.remote = c.RemoteAddr().String()
	hc.getReader()
	hc.serve(true)
}

// newContext gives the connection a context of its own, carrying its info: when it is served, and again when it
// resumes from parking (a parked connection has none).
func (hc *h1conn) newContext() {
	hc.ctx, hc.cancel = context.WithCancel(context.WithValue(connCtx(), ctxKey{}, hc.info))
}

// serve runs the connection's request loop on the calling goroutine until the connection closes, or parks it.
func (hc *h1conn) serve(first bool) {
	for ; ; first = false {
		switch hc.next(first) {
		case nextPark:
			if !hc.park() {
				go hc.wait()
			}
			return
		case nextServe:
			if hc.serveRequest() {
				continue
			}
		}
		hc.end()
		return
	}
}

// end closes the connection and gives its buffers back.
func (hc *h1conn) end() {
	defer hc.srv.removeH1(hc)
	defer hc.cancel()
	if hc.c == nil {
		return // hijacked: the handler had the connection and its buffers, and closed it
	}
	hc.c.Close()
	hc.release()
	if hc.br != nil {
		hc.putReader()
	}
}

// wait waits, on a goroutine of its own, for the next request of a connection that idled past parkAfter and
// could not park, with no read buffer (next gave it back); the request loop resumes here when it comes. The idle
// timeout counts from here.
func (hc *h1conn) wait() {
	// next parks only a connection that has a socket to wait on, and has given its reader back.
	sc, _ := socketOf(hc.c)
	raw, err := sc.SyscallConn()
	if err != nil {
		hc.end()
		return
	}
	hc.c.SetReadDeadline(time.Now().Add(idleTimeout)) //nolint:errcheck // a failed deadline shows as a failed wait
	hc.srv.waiting.Add(1)
	err = waitReadable(raw)
	hc.srv.waiting.Add(-1)
	if err != nil {
		hc.logReadErr(err)
		hc.end()
		return
	}
	hc.serve(false)
}

// putReader gives the read buffer back while the connection waits; getReader takes one again.
func (hc *h1conn) putReader() {
	hc.br.Reset(nil)
	bufReaders.Put(hc.br)
	hc.br = nil
	hc.base = nil
}

func (hc *h1conn) getReader() {
	hc.br = bufReaders.Get().(*bufio.Reader)
	hc.br.Reset(&hc.rd)
}

func (hc *h1conn) logReadErr(err error) {
	if !isClosedConnErr(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		hc.srv.log.Debug("HTTP/1 connection read failed", "remote", hc.remote, "err", err)
	}
}

// next waits for the first byte of the next request: within the header timeout for the first request, the idle
// timeout after that. A plaintext connection still idle after parkAfter is to be parked (nextPark).
func (hc *h1conn) next(first bool) int {
	if hc.br == nil || hc.br.Buffered() == 0 { // nil: resumed from park, with nothing read yet
		hc.state.Store(connIdle)
		if hc.srv.draining.Load() {
			return nextClose
		}
		d, parking := idleTimeout, false
		switch {
		case first:
			d = readHeaderTimeout
		case hc.br == nil: // resumed from park: the bytes are there
			hc.getReader()
			d = readHeaderTimeout
		default:
			if _, ok := socketOf(hc.c); ok {
				// Wait in place a little, as under load the next request comes soon; then park.
				d, parking = hc.srv.parkAfter, true
			}
		}
		hc.c.SetReadDeadline(time.Now().Add(d)) //nolint:errcheck // a failed deadline shows as a failed read
		if _, err := hc.br.Peek(1); err != nil {
			if parking && errors.Is(err, os.ErrDeadlineExceeded) {
				hc.putReader() // the error goes with the reset
				return nextPark
			}
			hc.logReadErr(err)
			return nextClose
		}
		if !hc.state.CompareAndSwap(connIdle, connActive) {
			return nextClose // the server is closing idle connections
		}
		if first {
			return nextServe
		}
	} else {
		hc.state.Store(connActive)
	}
	if buffered, _ := hc.br.Peek(hc.br.Buffered()); bytes.Contains(buffered, []byte("\r\n\r\n")) {
		return nextServe // the whole header is here: reading it cannot block (the deadline still set is moot)
	}
	hc.c.SetReadDeadline(time.Now().Add(readHeaderTimeout)) //nolint:errcheck
	return nextServe
}

// serveRequest reads one request, serves it, and reports whether the connection may carry another.
func (hc *h1conn) serveRequest() (keep bool) {
	if hc.base == nil {
		hc.base = (&http.Request{}).WithContext(hc.ctx)
	}
	// A plain head that has arrived whole is read with a few allocations; anything else by net/http.
	req, fast := h1head.ReadRequest(hc.br, hc.base)
	if !fast {
		hc.rd.limit = maxHeaderBytes + 4096 // as net/http: room for the request line and bufio's read-ahead
		var err error
		req, err = http.ReadRequest(hc.br)
		hc.rd.limit = math.MaxInt64
		if err != nil {
			hc.reject(err)
			return false
		}
		req = req.WithContext(hc.ctx)
	}
	if err := validate(req); err != nil {
		hc.reject(err)
		return false
	}
	hc.c.SetReadDeadline(time.Time{}) //nolint:errcheck // the body has no deadline; the chain's timeouts bound it
	req.RemoteAddr = hc.remote
	x := new(h1exchange) // one allocation for the response writer and the request body
	x.w = h1response{hc: hc, req: req, cl: -1}
	x.body = h1body{hc: hc, w: &x.w, rc: req.Body, left: req.ContentLength}
	w, body := &x.w, &x.body
	if req.Body == http.NoBody {
		body.eof = true
		hc.watch.arm(hc)
	} else {
		if v, ok := req.Header["Expect"]; ok {
			if len(v) != 1 || !strings.EqualFold(v[0], "100-continue") {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusExpectationFailed)
				w.closeAfter = true
				w.finish()
				return false
			}
			if req.ProtoAtLeast(1, 1) {
				body.expect = true
			}
		}
		req.Body = body
	}
	if !hc.handle(w, req) {
		return false
	}
	hc.watch.disarm(hc)
	if w.hijacked {
		hc.c = nil
		return false
	}
	if !body.done() {
		w.closeAfter = true
	}
	w.finish()
	hc.release()
	return !w.closeAfter && !hc.watch.gone.Load()
}

// handle runs the handler; a panic closes the connection (http.ErrAbortHandler quietly), as net/http does.
func (hc *h1conn) handle(w *h1response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			hc.watch.disarm(hc)
			if p != http.ErrAbortHandler { //nolint:errorlint // net/http compares the sentinel the same way
				hc.srv.log.Error("HTTP/1 handler panicked", "remote", hc.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			if w.hijacked {
				hc.c = nil
			}
		}
	}()
	hc.srv.handler.ServeHTTP(w, req)
	return true
}

// release gives the write buffer back while the connection waits for its next request.
func (hc *h1conn) release() {
	if hc.bw != nil {
		hc.bw.Reset(nil)
		bufWriters.Put(hc.bw)
		hc.bw = nil
	}
}

func (hc *h1conn) writer() *bufio.Writer {
	if hc.bw == nil {
		hc.bw = bufWriters.Get().(*bufio.Writer)
		hc.bw.Reset(hc.c)
	}
	return hc.bw
}

// validate applies what net/http's server checks beyond parsing.
func validate(req *http.Request) error {
	if req.ProtoMajor != 1 {
		return statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	// http.ReadRequest has moved the Host header to req.Host (refusing two), so an empty Host header reads as a
	// missing one here, which net/http's server would let through on an origin-form request.
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return statusError{http.StatusBadRequest, "missing required Host header"}
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return statusError{http.StatusBadRequest, "malformed Host header"}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return e.text }

// reject answers a request that could not be read, when there is someone to answer, and logs why.
func (hc *h1conn) reject(err error) {
	code, text := http.StatusBadRequest, "malformed request"
	var se statusError
	switch {
	case errors.Is(err, errHeaderTooLarge):
		code, text = http.StatusRequestHeaderFieldsTooLarge, "request header too large"
	case errors.As(err, &se):
		code, text = se.code, se.text
	case isClosedConnErr(err), errors.Is(err, os.ErrDeadlineExceeded):
		return // the client left, or was too slow to send its headers: nobody to answer
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		code, text = http.StatusNotImplemented, "unsupported transfer encoding"
	}
	hc.srv.log.Debug("HTTP/1 request refused", "remote", hc.remote, "status", code, "err", err)
	bw := hc.writer()
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%d %s: %s\n",
		code, http.StatusText(code), code, http.StatusText(code), text)
	bw.Flush() //nolint:errcheck // closing anyway
	hc.release()
	// Half-close and read what the client is still sending for a moment: closing with unread bytes would reset
	// the connection, and the client could lose the answer (net/http does the same).
	closeWrite(hc.c)                                             //nolint:errcheck
	hc.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck
	io.CopyN(io.Discard, hc.br, 1<<20)                           //nolint:errcheck
}

// h1body is a request body as the handler sees it: it sends 100 Continue on the first read when the client
// waits for one, arms the watch for the client going away once the body is read, and leaves the rest of an
// unread body to the server.
type h1body struct {
	hc     *h1conn
	w      *h1response
	rc     io.ReadCloser
	mu     sync.Mutex
	left   int64 // of a body with a Content-Length: bytes not read yet
	expect bool  // 100 Continue not sent yet
	eof    bool
	closed bool
}

func (b *h1body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		b.w.sendContinue()
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF || b.left == 0 {
		// Known to be at its end without a read that returns EOF: a body read to its Content-Length.
		b.eof = true
		b.hc.watch.arm(b.hc)
	}
	return n, err
}

// Close stops the handler's reads; what is left is the server's to drop or to close the connection over.
func (b *h1body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// done reports whether the connection is fit for another request: the body was read to its end, or the rest of
// it could be dropped. A client still waiting for 100 Continue has not sent its body; the connection closes.
func (b *h1body) done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return true
	}
	if b.expect {
		return false
	}
	n, err := io.CopyN(io.Discard, b.rc, maxDrain+1)
	return errors.Is(err, io.EOF) && n <= maxDrain
}

// watcher notices a client that goes away while its request waits for an answer, and cancels the request: after
// watchAfter, a read on the connection, which only its end (or a pipelined request) can satisfy.
type watcher struct {
	mu       sync.Mutex
	timer    *time.Timer
	armed    bool
	reading  bool
	aborting bool
	done     chan struct{}
	gone     atomic.Bool // the client closed the connection
	// pending is what the watch read when the client sent more (a pipelined request); it is read before the
	// connection again.
	pending []byte
}

// arm starts the watch, once the request is read to its end, unless the next one has begun to arrive.
func (w *watcher) arm(hc *h1conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed || hc.br.Buffered() > 0 {
		return
	}
	if pc, ok := hc.rd.c.(*prefixConn); ok && len(pc.prefix) > 0 {
		return
	}
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(watchAfter, func() { w.read(hc) })
		return
	}
	w.timer.Reset(watchAfter)
}

// read runs on the timer's goroutine: it waits for the client's next bytes or its end.
func (w *watcher) read(hc *h1conn) {
	w.mu.Lock()
	if !w.armed || w.reading {
		w.mu.Unlock()
		return
	}
	w.reading = true
	w.done = make(chan struct{})
	c := hc.rd.c
	w.mu.Unlock()
	var one [1]byte
	n, err := c.Read(one[:])
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > 0 {
		w.pending = append(w.pending, one[0])
	} else if err != nil && !w.aborting {
		w.gone.Store(true)
		hc.cancel()
	}
	w.reading = false
	close(w.done)
}

// drop lets the watch's timer go while the connection parks; arm makes a new one.
func (w *watcher) drop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.done = nil
}

// disarm ends the watch before the connection is read again (next request, hijack) and waits for its read.
func (w *watcher) disarm(hc *h1conn) {
	w.mu.Lock()
	if !w.armed {
		w.mu.Unlock()
		return
	}
	w.armed = false
	if w.timer != nil {
		w.timer.Stop()
	}
	if !w.reading {
		w.mu.Unlock()
		w.restore(hc)
		return
	}
	w.aborting = true
	done := w.done
	w.mu.Unlock()
	hc.rd.c.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // wakes the watch's read
	<-done
	w.aborting = false
	hc.rd.c.SetReadDeadline(time.Time{}) //nolint:errcheck
	w.restore(hc)
}

// restore puts bytes the watch read in front of the connection's next reads.
func (w *watcher) restore(hc *h1conn) {
	if len(w.pending) == 0 {
		return
	}
	hc.rd.c = &prefixConn{Conn: hc.rd.c, prefix: w.pending}
	w.pending = nil
}

// prefixConn reads prefix before the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// h1response writes one response. Headers go out with the first body bytes, at a flush, or at the end; a
// response that ends within pendMax bytes and declared no length gets a Content-Length, a longer one is chunked
// (HTTP/1.1) or ends with the connection (HTTP/1.0).
type h1response struct {
	hc         *h1conn
	req        *http.Request
	header     http.Header // nil until Header or AdoptHeader
	status     int
	committed  bool // status line and headers written
	continued  bool // 100 Continue sent, or no longer possible
	chunked    bool
	noBody     bool // HEAD, or a status without a body
	cl         int64
	written    int64
	pend       []byte
	trailers   []string
	closeAfter bool
	hijacked   bool
	werr       error
}

// h1exchange is one request's response writer and body, allocated together.
type h1exchange struct {
	w    h1response
	body h1body
}

func (w *h1response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// AdoptHeader makes h the response's header, when nothing has touched the header yet (true); the caller gives h
// up. A proxy passing a response on saves making a map and copying it.
func (w *h1response) AdoptHeader(h http.Header) bool {
	if w.header != nil || w.committed || h == nil {
		return false
	}
	w.header = h
	return true
}

func (w *h1response) WriteHeader(code int) {
	if w.committed || w.status != 0 || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational: out now, with the headers set so far.
		w.hc.wmu.Lock()
		defer w.hc.wmu.Unlock()
		bw := w.hc.writer()
		writeStatus(bw, w.req, code)
		writeHeaderLines(bw, w.header)
		bw.WriteString("\r\n") //nolint:errcheck
		w.werr = bw.Flush()
		return
	}
	w.status = code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.header["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

func (w *h1response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.werr != nil {
		return 0, w.werr
	}
	if !w.committed {
		if w.cl < 0 && len(w.pend)+len(p) <= pendMax {
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
		w.commit(false)
		if w.werr != nil {
			return 0, w.werr
		}
	}
	var err error
	n := len(p)
	if w.cl >= 0 && w.written+int64(n) > w.cl {
		n, err = int(w.cl-w.written), http.ErrContentLength
	}
	w.writeBody(p[:n])
	w.written += int64(n)
	if w.werr != nil {
		return 0, w.werr
	}
	return n, err
}

func (w *h1response) writeBody(p []byte) {
	if len(p) == 0 {
		return
	}
	bw := w.hc.bw
	if w.chunked {
		var b [18]byte
		bw.Write(append(strconv.AppendInt(b[:0], int64(len(p)), 16), '\r', '\n')) //nolint:errcheck // sticky in bw
		bw.Write(p)                                                               //nolint:errcheck
		_, w.werr = bw.WriteString("\r\n")
		return
	}
	_, w.werr = bw.Write(p)
}

// Flush sends the headers and what was written so far.
func (w *h1response) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *h1response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.werr == nil {
		w.werr = w.hc.bw.Flush()
	}
	return w.werr
}

// Hijack hands the connection to the handler (Upgrade), with what the server has read of it.
func (w *h1response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, errors.New("hijack after the response began")
	}
	hc := w.hc
	hc.watch.disarm(hc)
	w.hijacked = true
	hc.state.Store(connClosing)
	// Bytes the watch read go into the buffered reader, where the handler looks for what the client sent early.
	if pc, ok := hc.rd.c.(*prefixConn); ok && len(pc.prefix) > 0 {
		hc.br.Peek(hc.br.Buffered() + len(pc.prefix)) //nolint:errcheck // the prefix is in memory
	}
	return hc.c, bufio.NewReadWriter(hc.br, hc.writer()), nil
}

// sendContinue answers a client waiting with its body, unless the response has begun.
func (w *h1response) sendContinue() {
	hc := w.hc
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	if w.continued {
		return
	}
	w.continued = true
	bw := hc.writer()
	bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n") //nolint:errcheck // sticky in bw
	w.werr = bw.Flush()
}

// commit writes the status line and headers. final: the handler is done, so what is pending is the whole body.
func (w *h1response) commit(final bool) {
	hc := w.hc
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	w.committed, w.continued = true, true
	h := w.header
	delete(h, "Transfer-Encoding")
	if w.req.Close || hc.srv.draining.Load() || hc.watch.gone.Load() {
		w.closeAfter = true
	}
	if v, ok := h["Connection"]; ok && httpguts.HeaderValuesContainsToken(v, "close") {
		w.closeAfter = true
	}
	bw := hc.writer()
	writeStatus(bw, w.req, w.status)
	// The fields the response's framing adds, appended in bw's own free space (an array of ours would escape
	// through bw.Write: an allocation per response).
	x := bw.AvailableBuffer()
	switch {
	case w.status < 200 || w.status == http.StatusNoContent:
	case w.cl >= 0:
	case final && !w.noBody:
		w.cl = int64(len(w.pend))
		x = strconv.AppendInt(append(x, "Content-Length: "...), w.cl, 10)
		x = append(x, '\r', '\n')
	case w.noBody:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		x = append(x, "Transfer-Encoding: chunked\r\n"...)
		if t := h["Trailer"]; len(t) > 0 {
			w.trailers = trailerNames(t)
		}
	default:
		w.closeAfter = true // an HTTP/1.0 body of unknown length ends with the connection
	}
	switch {
	case w.closeAfter:
		delete(h, "Connection")
		x = append(x, "Connection: close\r\n"...)
	case !w.req.ProtoAtLeast(1, 1):
		delete(h, "Connection")
		x = append(x, "Connection: keep-alive\r\n"...)
	}
	if _, ok := h["Date"]; !ok {
		x = append(append(append(x, "Date: "...), date()...), '\r', '\n')
	}
	bw.Write(x) //nolint:errcheck // sticky in bw
	writeHeaderLines(bw, h)
	_, w.werr = bw.WriteString("\r\n")
	if len(w.pend) > 0 {
		p := w.pend
		w.pend = nil
		w.writeBody(p)
		w.written += int64(len(p))
	}
}

// finish completes the response once the handler is done: headers if still due, the last chunk and trailers.
func (w *h1response) finish() {
	if w.hijacked {
		return
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	bw := w.hc.bw
	if w.chunked {
		bw.WriteString("0\r\n") //nolint:errcheck // sticky in bw
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				writeHeaderLine(bw, k, v)
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeHeaderLine(bw, name, v)
				}
			}
		}
		bw.WriteString("\r\n") //nolint:errcheck
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		w.closeAfter = true // the client would wait for the rest
	}
	if err := bw.Flush(); err != nil || w.werr != nil {
		w.closeAfter = true
	}
}

func trailerNames(vv []string) []string {
	var names []string
	for _, v := range vv {
		for name := range strings.SplitSeq(v, ",") {
			if name = http.CanonicalHeaderKey(strings.TrimSpace(name)); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

var statusLines sync.Map // int -> string, "HTTP/1.1 200 OK\r\n"

func writeStatus(bw *bufio.Writer, req *http.Request, code int) {
	if !req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.0 ") //nolint:errcheck // sticky in bw
		bw.WriteString(statusLine(code)[len("HTTP/1.1 "):])
		return
	}
	bw.WriteString(statusLine(code)) //nolint:errcheck
}

func statusLine(code int) string {
	if s, ok := statusLines.Load(code); ok {
		return s.(string)
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	s := fmt.Sprintf("HTTP/1.1 %03d %s\r\n", code, text)
	statusLines.Store(code, s)
	return s
}

func writeHeaderLines(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if k == "Trailer" && len(vv) == 0 || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
}

// writeHeaderLine writes a field, skipping an invalid name and turning line breaks in a value into spaces, as
// net/http does.
func writeHeaderLine(bw *bufio.Writer, k, v string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	bw.WriteString(k)    //nolint:errcheck // sticky in bw
	bw.WriteString(": ") //nolint:errcheck
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(strings.TrimSpace(v)) //nolint:errcheck
	bw.WriteString("\r\n")               //nolint:errcheck
}

// date is the Date header's value, made once a second.
func date() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &dateValue{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return d.b
}

type dateValue struct {
	sec int64
	b   []byte
}

var cachedDate atomic.Pointer[dateValue]
