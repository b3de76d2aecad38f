package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ctxKey carries what a direction knows of a connection (its *pipeline.InboundConn or *pipeline.OutboundConn)
// in the context of every request served on it.
type ctxKey struct{}

// infoConn carries a connection's info to http.Server's ConnContext.
type infoConn struct {
	net.Conn
	info any // *pipeline.InboundConn or *pipeline.OutboundConn
}

// chanListener hands already-accepted connections to an http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// push gives conn to the server, or reports false when the listener is closed.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// server serves HTTP/1 (its own loop, h1server.go) and HTTP/2 (prior knowledge, net/http) on connections that
// were detected elsewhere, and drains them on shutdown: idle HTTP/1 connections close, busy ones close after their
// response, HTTP/2 ones get GOAWAY.
type server struct {
	log     *slog.Logger
	handler http.Handler
	h2      *http.Server
	h2l     *chanListener

	// parkAfter is how long an idle HTTP/1 connection waits in place before it parks (h1conn.park); parked counts
	// the connections parked now, waiting those that could not park and wait on a goroutine of their own.
	parkAfter time.Duration
	parked    atomic.Int64
	waiting   atomic.Int64

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	h1conns  map[*h1conn]struct{}
	wg       sync.WaitGroup
}

func newServer(handler http.Handler, log *slog.Logger) *server {
	s := &server{log: log, handler: handler, conns: map[net.Conn]struct{}{}, h1conns: map[*h1conn]struct{}{}, parkAfter: parkAfter}
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	s.h2 = &http.Server{
		Protocols: protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1000,
			SendPingTimeout:      30 * time.Second,
			PingTimeout:          10 * time.Second,
			// Peers are proxies and applications on fast links: windows larger than the defaults, so one
			// connection carries big bodies without stalling on window updates.
			MaxReceiveBufferPerConnection: 4 << 20,
			MaxReceiveBufferPerStream:     1 << 20,
		},
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ic, ok := c.(*infoConn); ok {
				return context.WithValue(ctx, ctxKey{}, ic.info)
			}
			return ctx
		},
	}
	s.h2l = newChanListener(&net.TCPAddr{})
	go s.h2.Serve(s.h2l) //nolint:errcheck // returns ErrServerClosed on shutdown
	return s
}

// addH1 registers an HTTP/1 connection for drain, or reports false once the server drains.
func (s *server) addH1(hc *h1conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h1conns == nil || s.draining.Load() {
		return false
	}
	s.h1conns[hc] = struct{}{}
	return true
}

func (s *server) removeH1(hc *h1conn) {
	s.mu.Lock()
	delete(s.h1conns, hc)
	s.mu.Unlock()
}

// closeIdleH1 closes the HTTP/1 connections waiting for a request; busy ones see draining and close after their
// response.
func (s *server) closeIdleH1() {
	var idle, parked []*h1conn
	s.mu.Lock()
	for hc := range s.h1conns {
		switch {
		case hc.state.CompareAndSwap(connIdle, connClosing):
			idle = append(idle, hc)
		case hc.state.CompareAndSwap(connParked, connClosing):
			parked = append(parked, hc)
		}
	}
	s.mu.Unlock()
	// Outside the lock: closing untracks the connection, which takes it.
	for _, hc := range idle {
		hc.c.Close()
	}
	for _, hc := range parked {
		// Not parked after all when its parking or resuming is under way: that sees connClosing and closes it.
		theParker.evict(hc)
	}
}

// track registers a raw connection so a hard stop can close it; the returned func untracks it.
func (s *server) track(c net.Conn) (func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return nil, false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}, true
}

// serve serves c, which speaks HTTP/2 (prior knowledge) when h2 is set and HTTP/1 otherwise; the server owns c
// from here. HTTP/1 is served on the calling goroutine, HTTP/2 on net/http's.
func (s *server) serve(c net.Conn, info any, h2 bool) {
	if !h2 {
		s.serveH1(c, info)
		return
	}
	if !s.h2l.push(&infoConn{Conn: c, info: info}) {
		c.Close()
	}
}

// shutdown stops taking connections, asks every connection to finish (GOAWAY, close when idle), and waits for
// them until ctx ends; then it closes whatever is left.
func (s *server) shutdown(ctx context.Context) {
	s.draining.Store(true)
	s.closeIdleH1()
	done := make(chan struct{})
	go func() {
		s.h2.Shutdown(ctx) //nolint:errcheck // ctx expiry handled below
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		_ = s.h2.Close() // a hard stop: whatever fails to close now is closed below or abandoned
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.mu.Lock()
	s.conns, s.h1conns = nil, nil
	s.mu.Unlock()
}

// isClosedConnErr is true for errors that just mean "the other side went away".
func isClosedConnErr(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
