// Package watchtest is test support for the proxy's control-plane watches (discovery, outbound policy): a
// control plane on an in-process listener that a test stops and starts again, server-streaming calls handed to
// the test to drive, and backoff waits the test observes instead of sleeping. Only tests import it.
package watchtest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// Deadline bounds every wait for the code under test to act; it is never slept.
const Deadline = 10 * time.Second

// Stream is one server-streaming call as the server sees it: Req is the request (a pointer), Msg the message
// type the server streams.
type Stream[Req, Msg any] struct {
	Req  Req
	Send chan *Msg       // sent to the proxy, in order
	End  chan error      // ends the call: nil ends the stream cleanly, an error fails it
	Done <-chan struct{} // closed when the proxy went away (cancelled the call)
}

// Calls hands every call of a server-streaming method to the test as a Stream it feeds and ends. The fake
// service's method calls Serve.
type Calls[Req, Msg any] struct {
	streams chan *Stream[Req, Msg]
	Open    atomic.Int32 // calls not returned yet
}

// NewCalls returns an empty Calls.
func NewCalls[Req, Msg any]() *Calls[Req, Msg] {
	return &Calls[Req, Msg]{streams: make(chan *Stream[Req, Msg])}
}

// Serve runs one call until the test ends it or the proxy goes away.
func (c *Calls[Req, Msg]) Serve(req Req, s grpc.ServerStreamingServer[Msg]) error {
	c.Open.Add(1)
	defer c.Open.Add(-1)
	st := &Stream[Req, Msg]{Req: req, Send: make(chan *Msg), End: make(chan error, 1), Done: s.Context().Done()}
	select {
	case c.streams <- st:
	case <-s.Context().Done():
		return s.Context().Err()
	}
	for {
		select {
		case m := <-st.Send:
			if err := s.Send(m); err != nil {
				return err
			}
		case err := <-st.End:
			return err
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
}

// Next is the next call the proxy makes.
func (c *Calls[Req, Msg]) Next(t testing.TB) *Stream[Req, Msg] {
	t.Helper()
	select {
	case s := <-c.streams:
		return s
	case <-time.After(Deadline):
		t.Fatal("the proxy did not subscribe")
		return nil
	}
}

// ControlPlane is a gRPC server on an in-process listener that a test can stop (an outage: the listener and every
// connection close) and start again.
type ControlPlane struct {
	register func(*grpc.Server)
	mu       sync.Mutex
	ln       *bufconn.Listener
	srv      *grpc.Server
}

// StartControlPlane serves what register registers until the test ends.
func StartControlPlane(t testing.TB, register func(*grpc.Server)) *ControlPlane {
	t.Helper()
	cp := &ControlPlane{register: register}
	cp.Start()
	t.Cleanup(cp.Stop)
	return cp
}

// Start serves on a new listener.
func (cp *ControlPlane) Start() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.ln = bufconn.Listen(1 << 20)
	cp.srv = grpc.NewServer()
	cp.register(cp.srv)
	go cp.srv.Serve(cp.ln) //nolint:errcheck // returns when stopped
}

// Stop is an outage.
func (cp *ControlPlane) Stop() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.srv.Stop()
}

// Conn is a client connection to the control plane, closed when the test ends. It reconnects quickly after an
// outage, since tests wait for that.
func (cp *ControlPlane) Conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		cp.mu.Lock()
		ln := cp.ln
		cp.mu.Unlock()
		return ln.DialContext(ctx)
	}
	conn, err := grpc.NewClient("passthrough:///control-plane", grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// MinConnectTimeout must be set with the backoff, or each connection attempt has only the backoff delay.
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: Deadline,
			Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 50 * time.Millisecond}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // the test is over; nothing to report
	return conn
}

// Waits are a watch's backoff waits, in order; install Sleep as its sleep function. The watch resubscribes once
// the test has read a wait with Next.
type Waits chan time.Duration

// Sleep hands d to the test instead of sleeping.
func (w Waits) Sleep(ctx context.Context, d time.Duration) bool {
	select {
	case w <- d:
		return true
	case <-ctx.Done():
		return false
	}
}

// Next is the next wait.
func (w Waits) Next(t testing.TB) time.Duration {
	t.Helper()
	select {
	case d := <-w:
		return d
	case <-time.After(Deadline):
		t.Fatal("the watch did not back off")
		return 0
	}
}

// Value reads a counter or gauge.
func Value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if c := d.GetCounter(); c != nil {
		return c.GetValue()
	}
	return d.GetGauge().GetValue()
}
