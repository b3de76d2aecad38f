package forward

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/balance"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
	"golang.org/x/net/http2"
)

// CertSource supplies the workload certificate.
type CertSource interface {
	Certificate() *tls.Certificate
}

// meshDialer opens mTLS connections to peer proxies.
type meshDialer struct {
	certs   CertSource
	anchors *x509.CertPool
	net     net.Dialer
	timeout time.Duration
}

// dial connects to a peer proxy at addr that must prove identity id, and announces hdr.
func (d *meshDialer) dial(ctx context.Context, addr, id string, hdr transport.Header) (net.Conn, error) {
	if d.certs.Certificate() == nil {
		return nil, errNoCertificate
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	raw, err := d.net.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, meshtls.ClientConfig(d.anchors, id, d.certs.Certificate, meshtls.ALPN))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("mesh TLS to %s (%s): %w", addr, id, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != meshtls.ALPN {
		_ = tc.Close() // the dial failed; that error is the one to report
		return nil, fmt.Errorf("mesh TLS to %s: peer negotiated %q, not a sinew proxy", addr, p)
	}
	if _, err := tc.Write(hdr.Append(make([]byte, 0, transport.Size))); err != nil {
		_ = tc.Close() // the write's error is the one to report
		return nil, err
	}
	return tc, nil
}

// endpoint is one balanced destination with its connections and resolved metrics.
type endpoint struct {
	info   discovery.Endpoint
	bal    *balance.Endpoint
	labels metrics.Labels
	m      *metrics.Metrics

	byAuthority sync.Map // authority -> *metrics.Series
	tcpM        atomic.Pointer[metrics.Conn]
	// lastUsed (unix nanos) lets pass-through endpoints, which no discovery update ever removes, be swept.
	lastUsed atomic.Int64

	// Meshed endpoints only: one multiplexed HTTP/2 connection pool, and HTTP/1 for Upgrade requests.
	h2     *http2.Transport
	h1Once sync.Once
	h1     *http.Transport
	dialer *meshDialer
}

func newEndpoint(info discovery.Endpoint, setLabels map[string]string, m *metrics.Metrics, d *meshDialer) *endpoint {
	dst := mergedLabels(setLabels, info.Labels)
	tlsLabel := "no_identity"
	if info.Meshed() {
		tlsLabel = "true"
	}
	e := &endpoint{
		info:   info,
		m:      m,
		dialer: d,
		labels: metrics.Labels{Direction: "outbound", TargetAddr: info.Addr, TLS: tlsLabel, ServerID: info.Identity, Dst: dst},
	}
	e.bal = balance.NewEndpoint(info.Addr, info.Weight, e)
	if info.Meshed() {
		hdr := transport.Header{Proto: transport.ProtoH2, Port: info.TargetPort}
		e.h2 = &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
				return d.dial(ctx, info.Addr, info.Identity, hdr)
			},
			DisableCompression: true,
			ReadIdleTimeout:    10 * time.Second,
			PingTimeout:        3 * time.Second,
		}
	}
	return e
}

// same reports whether info describes this endpoint unchanged.
func (e *endpoint) same(info discovery.Endpoint) bool { return reflect.DeepEqual(e.info, info) }

func (e *endpoint) series(authority string) *metrics.Series {
	return cached(&e.byAuthority, authority, func() *metrics.Series {
		l := e.labels
		l.Authority = authority
		return e.m.Series(l)
	})
}

func (e *endpoint) tcpMetrics() *metrics.Conn {
	if c := e.tcpM.Load(); c != nil {
		return c
	}
	c := e.m.Conn(e.labels, "dst")
	e.tcpM.Store(c)
	return c
}

// transport picks how to send r to this endpoint.
func (e *endpoint) transport(r *http.Request, upgrade bool, plain *plainTransports) http.RoundTripper {
	if !e.info.Meshed() {
		return plain.pick(r)
	}
	if upgrade {
		e.h1Once.Do(func() {
			hdr := transport.Header{Proto: transport.ProtoHTTP1, Port: e.info.TargetPort}
			e.h1 = &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return e.dialer.dial(ctx, e.info.Addr, e.info.Identity, hdr)
				},
				MaxIdleConnsPerHost: 16,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			}
		})
		return e.h1
	}
	return e.h2
}

// dialTCP opens a connection for opaque traffic.
func (e *endpoint) dialTCP(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	if e.info.Meshed() {
		return e.dialer.dial(ctx, e.info.Addr, e.info.Identity, transport.Header{Proto: transport.ProtoOpaque, Port: e.info.TargetPort})
	}
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(ctx, "tcp", e.info.Addr)
}

// retire lets in-flight requests finish and closes connections once idle.
func (e *endpoint) retire() {
	if e.h2 == nil {
		return
	}
	e.h2.CloseIdleConnections()
	time.AfterFunc(time.Minute, func() {
		e.h2.CloseIdleConnections()
		if e.h1 != nil {
			e.h1.CloseIdleConnections()
		}
	})
}

// pool is the balancer state of one target, rebuilt when discovery reports a change. Endpoints that survive a
// change keep their latency history and connections.
type pool struct {
	target *discovery.Target
	m      *metrics.Metrics
	dialer *meshDialer

	mu    sync.Mutex
	state atomic.Pointer[poolState]
	byKey map[string]*endpoint
}

type poolState struct {
	version uint64
	snap    *discovery.Snapshot
	set     *balance.Set
}

func endpointKey(e discovery.Endpoint) string {
	return fmt.Sprintf("%s|%d|%s", e.Addr, e.TargetPort, e.Identity)
}

// current returns the set for the latest snapshot.
func (p *pool) current(snap *discovery.Snapshot) *poolState {
	if st := p.state.Load(); st != nil && st.version == snap.Version {
		return st
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.state.Load(); st != nil && st.version == snap.Version {
		return st
	}
	next := make(map[string]*endpoint, len(snap.Endpoints))
	eps := make([]*balance.Endpoint, 0, len(snap.Endpoints))
	for _, info := range snap.Endpoints {
		k := endpointKey(info)
		e, ok := p.byKey[k]
		if !ok || !e.same(info) || !maps.Equal(e.labels.Dst, mergedLabels(snap.Labels, info.Labels)) {
			e = newEndpoint(info, snap.Labels, p.m, p.dialer)
		}
		next[k] = e
		eps = append(eps, e.bal)
	}
	for k, e := range p.byKey {
		if next[k] != e {
			e.retire()
		}
	}
	p.byKey = next
	st := &poolState{version: snap.Version, snap: snap, set: balance.NewSet(eps)}
	p.state.Store(st)
	return st
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
