package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/h1head"
)

// h1Client sends HTTP/1.1 requests to one address over a pool of keep-alive connections. It does on the caller's
// goroutine what net/http's Transport does with two goroutines per connection and channels between them: write
// the request, read the response, and put the connection back once the body has been read to its end. On a
// sidecar that is most of a request's cost after parsing (decision 0004, issue #11's profile). Upgrade requests
// stay with net/http's Transport.
type h1Client struct {
	dial        func(ctx context.Context) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

// h1Conn is one connection of an h1Client. While it is idle in the pool it holds no buffers: an idle
// connection costs its socket and this struct, not 8 KiB of buffers (S4: a proxy with thousands of idle client
// connections keeps about as many idle upstream ones).
type h1Conn struct {
	c     net.Conn
	br    *bufio.Reader // nil while idle
	bw    *bufio.Writer // nil while idle
	used  time.Time     // when it went idle
	close func()        // closes c: what a canceled request does, made once per connection
}

// The buffers of the connections in use.
var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// take gives the connection buffers for an exchange.
func (pc *h1Conn) take() {
	pc.br = h1Readers.Get().(*bufio.Reader)
	pc.br.Reset(pc.c)
	pc.bw = h1Writers.Get().(*bufio.Writer)
	pc.bw.Reset(pc.c)
}

// release gives the buffers back; the connection holds nothing read or unwritten (its response was read to the
// end, with nothing after it, and its request flushed).
func (pc *h1Conn) release() {
	pc.br.Reset(nil)
	h1Readers.Put(pc.br)
	pc.bw.Reset(nil)
	h1Writers.Put(pc.bw)
	pc.br, pc.bw = nil, nil
}

func newH1Client(dial func(ctx context.Context) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *h1Client {
	return &h1Client{dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout}
}

// get returns an idle connection (reused true) or, with fresh or when none is idle, a new one.
func (p *h1Client) get(ctx context.Context, fresh bool) (pc *h1Conn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for !fresh && len(p.idle) > 0 {
		pc = p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(pc.used) < p.idleTimeout {
			p.mu.Unlock()
			pc.take()
			return pc, true, nil
		}
		pc.c.Close() // idle too long: the peer may have closed it already
	}
	p.mu.Unlock()
	c, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	pc = &h1Conn{c: c}
	pc.close = func() { c.Close() }
	pc.take()
	return pc, false, nil
}

// put returns a connection whose last response was read to its end, with nothing after it.
func (p *h1Client) put(pc *h1Conn) {
	pc.release()
	pc.used = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.c.Close()
}

// closeIdle closes the idle connections; connections in use close when their requests end.
func (p *h1Client) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// RoundTrip sends req (URL.Host is only used for Host when req.Host is empty) and returns its response. A
// connection the peer closed while it was idle fails before any response byte; such a request was never read and
// is sent once more on a new connection when its body can be sent again.
func (p *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	for retried := false; ; retried = true {
		// A retry dials: the other idle connections were likely closed by the peer at the same moment.
		pc, reused, err := p.get(req.Context(), retried)
		if err != nil {
			return nil, err
		}
		resp, err := p.exchange(pc, req)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// A request that could not be written was not read; one the peer closed an idle connection on was not
		// either. Either may go again, once, on a new connection.
		again := errors.Is(err, errNotSent) || reused && errors.Is(err, ErrClosedBeforeResponse)
		if retried || !again {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// ErrClosedBeforeResponse: the connection was closed before the response began, as a peer closes an idle
// connection. A sinew proxy closes a connection only while it is idle or once its requests are answered, so from a
// peer proxy this means the request was not read: another endpoint may be tried.
var ErrClosedBeforeResponse = errors.New("connection closed before the response began")

// errNotSent: writing the request failed and no response came.
var errNotSent = errors.New("sending the request")

func (p *h1Client) exchange(pc *h1Conn, req *http.Request) (*http.Response, error) {
	stop := func() bool { return true }
	if ctx := req.Context(); ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.close)
	}
	// The plain requests nearly all are; anything else is net/http's to write.
	handled, werr := h1head.WriteRequest(pc.bw, req)
	if !handled {
		werr = req.Write(pc.bw)
	}
	if werr == nil {
		werr = pc.bw.Flush()
	}
	resp, err := readResponse(pc.br, req)
	if err != nil {
		stop()
		if werr != nil {
			return nil, fmt.Errorf("%w: %w", errNotSent, werr)
		}
		return nil, err
	}
	reusable := werr == nil && !resp.Close && !req.Close
	if resp.StatusCode == http.StatusSwitchingProtocols || req.Method == http.MethodHead && resp.ContentLength > 0 {
		reusable = false
	}
	resp.Body = &h1Body{body: resp.Body, pc: pc, p: p, stop: stop, reusable: reusable}
	return resp, nil
}

// readResponse reads the final response, skipping informational ones (100 Continue, 103 Early Hints).
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return nil, ErrClosedBeforeResponse
			}
			return nil, err
		}
		// A plain head that has arrived whole is read with a few allocations; anything else by net/http.
		resp, ok := h1head.ReadResponse(br, req)
		if ok {
			return resp, nil
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// h1Body gives the connection back when the response body was read to its end, and closes it otherwise.
type h1Body struct {
	body     io.ReadCloser
	pc       *h1Conn
	p        *h1Client
	stop     func() bool
	reusable bool
	done     bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(errors.Is(err, io.EOF))
	}
	return n, err
}

// Close ends the body; before its end, the connection cannot carry another request.
func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

func (b *h1Body) finish(atEOF bool) {
	if b.done {
		return
	}
	b.done = true
	// The context's watcher must not close a connection that goes back to the pool.
	if b.stop() && atEOF && b.reusable && b.pc.br.Buffered() == 0 {
		b.p.put(b.pc)
		return
	}
	b.pc.c.Close()
}
