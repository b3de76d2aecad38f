package layer

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Mirror sends copies of requests (a route's RequestMirror filter) to another backend and forgets them: the
// client's request neither waits for its copy nor sees how it went, and a slow or failing mirror costs the
// primary nothing but the copy. A request body is copied as the primary sends it, up to MirrorBodyLimit; a bigger
// body, or more than MaxMirrorsInFlight copies at once, means no copy (counted as skipped).
type Mirror struct {
	send     pipeline.Handler
	metrics  *metrics.Metrics
	timeout  time.Duration
	inFlight atomic.Int32
}

// Limits of Mirror.
const (
	MirrorBodyLimit    = 64 << 10
	MaxMirrorsInFlight = 256
	// mirrorTimeout bounds a copy that the rule's request timeout does not.
	mirrorTimeout = 30 * time.Second
)

// NewMirror sends copies through send (the balancer and what follows it), counting them in m.
func NewMirror(send pipeline.Handler, m *metrics.Metrics) *Mirror {
	return &Mirror{send: send, metrics: m, timeout: mirrorTimeout}
}

// Send starts a copy of req to authority. It must be called before req's body is read; the copy leaves once the
// primary has read the whole body.
func (m *Mirror) Send(req *pipeline.Request, authority string) {
	if m == nil {
		return
	}
	if req.HTTP.ContentLength > MirrorBodyLimit {
		m.metrics.MirrorSkipped("body_too_large")
		return
	}
	if m.inFlight.Add(1) > MaxMirrorsInFlight {
		m.inFlight.Add(-1)
		m.metrics.MirrorSkipped("too_many")
		return
	}
	timeout := m.timeout
	if req.Rule != nil && req.Rule.RequestTimeout > 0 {
		timeout = req.Rule.RequestTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.HTTP.Context()), timeout)
	out := req.HTTP.Clone(ctx) // its own header and URL; the client's address, TLS state and protocol
	// The copy shares no map with the primary, which goes on changing its own: it is its own client.
	cp := &pipeline.Request{HTTP: out, Client: out, Start: time.Now(), Dir: req.Dir,
		OrigProto: req.OrigProto, NoHost: req.NoHost, Out: req.Out, Policy: req.Policy, Rule: req.Rule, Backend: authority}
	done := func() {
		cancel()
		m.inFlight.Add(-1)
	}
	body := req.HTTP.Body
	switch {
	case body == nil || body == http.NoBody:
		out.Body = nil
		go m.run(cp, done)
	case req.HTTP.GetBody != nil && req.HTTP.ContentLength >= 0 && req.HTTP.ContentLength <= MirrorBodyLimit:
		// A body the forwarder already holds in memory.
		b, err := req.HTTP.GetBody()
		var data []byte
		if err == nil {
			data, err = io.ReadAll(b)
		}
		if err != nil {
			done()
			m.metrics.MirrorSkipped("body_error")
			return
		}
		setBody(out, data)
		go m.run(cp, done)
	default:
		// The copy leaves when the primary has read the whole body.
		req.HTTP.Body = &teeBody{src: body, onEOF: func(data []byte) {
			setBody(out, data)
			go m.run(cp, done)
		}, onAbandon: func(reason string) {
			done()
			m.metrics.MirrorSkipped(reason)
		}}
	}
}

func setBody(r *http.Request, data []byte) {
	r.ContentLength = int64(len(data))
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	if len(data) == 0 {
		r.Body = nil
	}
}

// run sends one copy and throws its answer away.
func (m *Mirror) run(cp *pipeline.Request, done func()) {
	defer done()
	m.metrics.MirrorSent()
	resp, err := m.send.Handle(cp)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// teeBody keeps a copy of what the primary reads of a request body, for a mirror: onEOF gets it when the body is
// read to its end within MirrorBodyLimit, onAbandon otherwise (the body grew past the limit, failed, or was closed
// before its end). Exactly one of them is called, once.
type teeBody struct {
	src       io.ReadCloser
	buf       []byte
	onEOF     func([]byte)
	onAbandon func(reason string)
	once      sync.Once
	stopped   atomic.Bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 && !t.stopped.Load() {
		if len(t.buf)+n > MirrorBodyLimit {
			t.buf = nil
			t.finish(func() { t.onAbandon("body_too_large") })
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	switch {
	case err == io.EOF:
		t.finish(func() { t.onEOF(t.buf) })
	case err != nil:
		t.finish(func() { t.onAbandon("body_error") })
	}
	return n, err
}

func (t *teeBody) Close() error {
	t.finish(func() { t.onAbandon("body_error") })
	return t.src.Close()
}

func (t *teeBody) finish(f func()) {
	t.once.Do(func() {
		t.stopped.Store(true)
		f()
	})
}
