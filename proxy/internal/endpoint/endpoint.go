package endpoint

import (
	"context"
	"maps"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/balance"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
)

// Endpoint is one balanced destination with its connections and resolved metrics.
type Endpoint struct {
	Info   discovery.Endpoint
	Bal    *balance.Endpoint
	Labels metrics.Labels
	m      *metrics.Metrics

	byAuthority sync.Map // authority -> *metrics.Series
	tcpM        atomic.Pointer[metrics.Conn]
	// lastUsed (unix nanos) lets pass-through endpoints, which no discovery update ever removes, be swept.
	lastUsed atomic.Int64
	// dialing is the time spent connecting (TCP and mTLS handshakes) since TakeDialTime last took it.
	dialing atomic.Int64

	// Meshed endpoints: HTTP/1 requests (Upgrade included) travel as HTTP/1.1 over a pool of mTLS connections,
	// HTTP/2 requests over multiplexed HTTP/2; see docs/architecture/decisions/0004-http1-between-proxies.md.
	// Unmeshed endpoints use the shared plain transports.
	h2     *http.Transport
	h1c    *h1Client // meshed HTTP/1 requests
	h1Once sync.Once
	h1     *http.Transport // meshed Upgrade requests
	dialer *Dialer
	plain  *Plain
}

func newEndpoint(info discovery.Endpoint, setLabels map[string]string, m *metrics.Metrics, d *Dialer, plain *Plain) *Endpoint {
	dst := mergedLabels(setLabels, info.Labels)
	tlsLabel := "no_identity"
	switch {
	case info.Meshed():
		tlsLabel = "true"
	case info.NoTLSReason != "":
		tlsLabel = info.NoTLSReason
	}
	e := &Endpoint{
		Info:   info,
		m:      m,
		dialer: d,
		plain:  plain,
		Labels: metrics.Labels{Direction: "outbound", TargetAddr: info.Addr, TLS: tlsLabel, ServerID: info.Identity, Dst: dst},
	}
	e.Bal = balance.NewEndpoint(info.Addr, info.Weight, e)
	if info.Meshed() {
		hdr := transport.Header{Proto: transport.ProtoH2, Port: info.TargetPort}
		h2c := new(http.Protocols)
		h2c.SetUnencryptedHTTP2(true)
		// HTTP/2 without TLS as far as net/http knows: the mesh mTLS is inside the connection the dialer returns.
		e.h2 = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return e.timed(func() (net.Conn, error) { return d.Mesh(ctx, info.Addr, info.Identity, hdr) })
			},
			Protocols:          h2c,
			DisableCompression: true,
			IdleConnTimeout:    10 * time.Minute,
			HTTP2: &http.HTTP2Config{
				SendPingTimeout: 10 * time.Second,
				PingTimeout:     3 * time.Second,
				// Peers are proxies on fast links: larger windows than the defaults, so one connection carries
				// big responses without stalling on window updates.
				MaxReceiveBufferPerConnection: 4 << 20,
				MaxReceiveBufferPerStream:     1 << 20,
			},
		}
		h1hdr := transport.Header{Proto: transport.ProtoHTTP1, Port: info.TargetPort}
		// Below the peer's idle timeout (90 s), so the peer never closes a connection this side reuses.
		e.h1c = newH1Client(func(ctx context.Context) (net.Conn, error) {
			return e.timed(func() (net.Conn, error) { return d.Mesh(ctx, info.Addr, info.Identity, h1hdr) })
		}, 1024, 60*time.Second)
	}
	return e
}

// NewPassthrough is an endpoint outside the mesh at addr, reached with the plain transports.
func NewPassthrough(addr string, m *metrics.Metrics, d *Dialer, plain *Plain) *Endpoint {
	e := newEndpoint(discovery.Endpoint{Addr: addr, Weight: 1}, nil, m, d, plain)
	e.Touch()
	return e
}

// timed runs dial and adds its duration to the time spent connecting.
func (e *Endpoint) timed(dial func() (net.Conn, error)) (net.Conn, error) {
	start := time.Now()
	c, err := dial()
	e.dialing.Add(int64(time.Since(start)))
	return c, err
}

// TakeDialTime returns the time spent connecting since it was last called, and starts counting again. The
// balancer subtracts it from a request's latency: a request that had to wait for a new connection says nothing
// about how fast the endpoint answers, and a handshake counted as latency would keep a new endpoint looking slow.
func (e *Endpoint) TakeDialTime() time.Duration { return time.Duration(e.dialing.Swap(0)) }

// Touch marks the endpoint used now.
func (e *Endpoint) Touch() { e.lastUsed.Store(time.Now().UnixNano()) }

// IdleSince reports whether the endpoint was last used before t.
func (e *Endpoint) IdleSince(t time.Time) bool { return e.lastUsed.Load() < t.UnixNano() }

// same reports whether info describes this endpoint unchanged.
func (e *Endpoint) same(info discovery.Endpoint) bool { return reflect.DeepEqual(e.Info, info) }

// Series is the endpoint's metrics for requests to authority.
func (e *Endpoint) Series(authority string) *metrics.Series {
	if s, ok := e.byAuthority.Load(authority); ok {
		return s.(*metrics.Series)
	}
	l := e.Labels
	l.Authority = authority
	s, _ := e.byAuthority.LoadOrStore(authority, e.m.Series(l))
	return s.(*metrics.Series)
}

// TCPMetrics is the endpoint's connection metrics for opaque traffic.
func (e *Endpoint) TCPMetrics() *metrics.Conn {
	if c := e.tcpM.Load(); c != nil {
		return c
	}
	c := e.m.Conn(e.Labels, "dst")
	e.tcpM.Store(c)
	return c
}

// Meshed reports whether a sinew proxy answers for this endpoint.
func (e *Endpoint) Meshed() bool { return e.Info.Meshed() }

// RoundTrip sends r to this endpoint; r.URL.Host must already be the endpoint's address. http2 is the protocol
// the client spoke, which the request keeps on the way; upgrade requests need HTTP/1; origProto and noHost keep
// an HTTP/1.0 request's semantics on the way to an unmeshed endpoint (a peer proxy learns them from a header).
func (e *Endpoint) RoundTrip(r *http.Request, http2, upgrade bool, origProto string, noHost bool) (*http.Response, error) {
	if !e.Info.Meshed() {
		return e.plain.RoundTrip(r, http2, upgrade, origProto, noHost)
	}
	switch {
	case upgrade:
		return e.meshH1().RoundTrip(r)
	case !http2:
		return e.h1c.RoundTrip(r)
	}
	return e.h2.RoundTrip(r)
}

func (e *Endpoint) meshH1() *http.Transport {
	e.h1Once.Do(func() {
		hdr := transport.Header{Proto: transport.ProtoHTTP1, Port: e.Info.TargetPort}
		e.h1 = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return e.timed(func() (net.Conn, error) { return e.dialer.Mesh(ctx, e.Info.Addr, e.Info.Identity, hdr) })
			},
			MaxIdleConnsPerHost: 1024,
			// Below the peer's idle timeout (90 s), so the peer never closes a connection this side reuses.
			IdleConnTimeout:    60 * time.Second,
			DisableCompression: true,
		}
	})
	return e.h1
}

// DialTCP opens a connection for opaque traffic.
func (e *Endpoint) DialTCP(ctx context.Context) (net.Conn, error) {
	if e.Info.Meshed() {
		return e.dialer.Mesh(ctx, e.Info.Addr, e.Info.Identity, transport.Header{Proto: transport.ProtoOpaque, Port: e.Info.TargetPort})
	}
	return e.dialer.Plain(ctx, e.Info.Addr)
}

// retire lets in-flight requests finish and closes connections once idle.
func (e *Endpoint) retire() {
	if e.h2 == nil {
		return
	}
	e.h1c.closeIdle()
	e.h2.CloseIdleConnections()
	time.AfterFunc(time.Minute, func() {
		e.h1c.closeIdle()
		e.h2.CloseIdleConnections()
		if e.h1 != nil {
			e.h1.CloseIdleConnections()
		}
	})
}

// mergedLabels is an endpoint's dst_ labels: the set's (namespace, service), overridden by the endpoint's own.
func mergedLabels(set, ep map[string]string) map[string]string {
	m := maps.Clone(set)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, ep)
	return m
}
