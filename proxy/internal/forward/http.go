package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/balance"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// Headers the proxies exchange. origProtoHeader marks an HTTP/1 request carried over HTTP/2 between proxies so
// the inbound proxy restores HTTP/1 for the application; clientIDHeader tells the application who called.
const (
	origProtoHeader = "Sinew-Orig-Proto"
	clientIDHeader  = "Sinew-Client-Id"
)

// reqState is what the forwarder decided for one request.
type reqState struct {
	start     time.Time
	series    *metrics.Series
	path      *metrics.PathStats // the same request's route_* metrics
	addr      string             // where to send it
	rt        http.RoundTripper  // how
	ep        *balance.Endpoint  // for latency feedback; nil when not balanced
	origProto bool               // add origProtoHeader
	tap       *tap.Request       // nil unless someone taps this request
}

type stateKey struct{}

func withState(r *http.Request, st *reqState) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *(bufPool.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { bufPool.Put(&b) }

// newReverseProxy builds the request forwarder shared by both directions. It forwards transparently: the
// authority and any forwarding headers the application set are kept, and none are added.
func newReverseProxy(log *slog.Logger, direction string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := stateFrom(pr.In.Context())
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = st.addr
			for _, h := range forwardingHeaders {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
			if st.origProto {
				pr.Out.Header.Set(origProtoHeader, "HTTP/1.1")
			}
			// Request trailers arrive after the body, into pr.In.Trailer; the clone ReverseProxy sends holds a
			// copy of the map made before that, so the values were lost. Share the map instead.
			pr.Out.Trailer = pr.In.Trailer
			// The proxy answers "Expect: 100-continue" itself (net/http does when the body is first read). Passed
			// on, the next hop answered too and ReverseProxy relayed its 100, so the client got two.
			pr.Out.Header.Del("Expect")
		},
		Transport: stateTransport{},
		ModifyResponse: func(resp *http.Response) error {
			st := stateFrom(resp.Request.Context())
			m := &meteredBody{st: st, status: resp.StatusCode, grpc: grpcStatus(resp.Header), ttfb: msSince(st.start), resp: resp}
			if st.tap != nil {
				st.tap.Response(resp.StatusCode, resp.Header)
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The body is the upgraded stream; ReverseProxy needs it unwrapped.
				m.finish()
				return nil
			}
			m.ReadCloser = resp.Body
			resp.Body = m
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st := stateFrom(r.Context())
			status, grpc := writeFailure(w, r, log, direction, err)
			st.respond(status, grpc, true, msSince(st.start))
			if st.tap != nil {
				st.tap.Response(status, w.Header())
				st.tap.End(grpc, 0, err.Error())
			}
		},
		BufferPool: bufferPool{},
		ErrorLog:   slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// stateTransport sends the request with the round tripper the forwarder chose and feeds the latency back to the
// balancer (time to response headers, the signal peak-EWMA uses).
type stateTransport struct{}

func (stateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	if st.ep == nil {
		return st.rt.RoundTrip(req)
	}
	start := st.ep.Start()
	resp, err := st.rt.RoundTrip(req)
	st.ep.Done(start, err != nil || resp.StatusCode >= 500)
	return resp, err
}

// startRequest counts a request on its label set and on its path, and remembers the path's metrics for the
// response. The path (rt_route) is the request's path without the query string, deliberately: a query would make
// a series per value; for gRPC that path is the method, "/package.Service/Method". The authority is the request's
// :authority or Host.
func (st *reqState) startRequest(r *http.Request) {
	st.series.Request()
	st.path = st.series.Path(r.Host, r.URL.Path)
	st.path.Request()
}

// respond counts a response, with its time to first byte in milliseconds, on the request's label set and path.
func (st *reqState) respond(status, grpc int, failed bool, ttfbMs float64) {
	r := st.series.Response(status, grpc, failed)
	r.ObserveLatency(ttfbMs)
	r.End()
	r = st.path.Response(status, grpc, failed)
	r.ObserveLatency(ttfbMs)
	r.End()
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

func grpcStatus(h http.Header) int {
	// Canonical already, so Get does not allocate a canonical copy of the key on every response.
	v := h.Get("Grpc-Status")
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// meteredBody records response_total and response_latency_ms when the response stream ends, so gRPC statuses
// from trailers are counted.
type meteredBody struct {
	io.ReadCloser
	st     *reqState
	resp   *http.Response
	status int
	grpc   int
	ttfb   float64 // milliseconds
	done   bool
	n      uint64 // response bytes read
	err    error  // why the stream failed; nil when it ended normally
}

func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	m.n += uint64(n)
	if err != nil && !m.done {
		if !errors.Is(err, io.EOF) {
			m.err = err
		}
		m.finish()
	}
	return n, err
}

func (m *meteredBody) Close() error {
	err := m.ReadCloser.Close()
	if !m.done {
		m.finish()
	}
	return err
}

func (m *meteredBody) finish() {
	m.done = true
	grpc := m.grpc
	if grpc < 0 && m.resp != nil {
		grpc = grpcStatus(m.resp.Trailer)
	}
	failed := m.err != nil
	if grpc >= 0 {
		failed = failed || grpc != 0
	} else {
		failed = failed || m.status >= 500
	}
	m.st.respond(m.status, grpc, failed, m.ttfb)
	if m.st.tap != nil {
		reset := ""
		if m.err != nil {
			reset = m.err.Error()
		}
		m.st.tap.End(grpc, m.n, reset)
	}
}

func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// plainTransports talk to applications and to endpoints that are not meshed.
type plainTransports struct {
	h1  *http.Transport
	h2c *http2.Transport
}

func newPlainTransports(connectTimeout time.Duration) *plainTransports {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &plainTransports{
		h1: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			// Never negotiate anything on our own: we speak the protocol the client spoke.
			ForceAttemptHTTP2: false,
		},
		h2c: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			DisableCompression: true,
			ReadIdleTimeout:    30 * time.Second,
			PingTimeout:        10 * time.Second,
		},
	}
}

// pick chooses by the protocol the client spoke.
func (p *plainTransports) pick(r *http.Request) http.RoundTripper {
	if r.ProtoMajor == 2 {
		return p.h2c
	}
	return p.h1
}

func (p *plainTransports) closeIdle() {
	p.h1.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
}
