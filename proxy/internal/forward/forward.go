// Package forward is the proxy's connection handling: it takes accepted connections, detects their protocol,
// terminates mesh mTLS, carries opaque TCP, and serves HTTP through the two request chains (chains.go, built from
// proxy/internal/layer). Outbound: application → route, retry, balance → peer proxy over mTLS, or the original
// destination. Inbound: peer proxy over mTLS (or a plaintext client) → application on localhost. It owns no
// listeners; the proxy package accepts and hands connections in.
package forward

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/layer"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

// CertSource supplies the workload certificate.
type CertSource = endpoint.CertSource

// Deps are what both directions need.
type Deps struct {
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	Certs    CertSource
	Anchors  *x509.CertPool
	Resolver layer.Resolver
	// Policies gives each outbound target its routes, retries, timeouts and failure accrual; a nil
	// *policy.Client gives every target the default policy.
	Policies layer.Policies
	// Tap receives request events when someone taps; nil disables tapping.
	Tap *tap.Hub
	// Authz is the inbound authorization policy of each port, AuthzMetrics where its decisions are counted. A nil
	// Authz enforces nothing (tests of other parts); the proxy always sets both.
	Authz        *authz.Watcher
	AuthzMetrics *authz.Metrics
}

// Timeouts bound the phases of a connection.
type Timeouts struct {
	Detect    time.Duration // waiting for the first bytes to classify a connection
	Connect   time.Duration // dialing an endpoint or the application
	Discovery time.Duration // waiting for the control plane's first answer about a new target
	Handshake time.Duration // inbound mTLS handshake + transport header
}

// trackedConn runs onClose exactly once, whoever closes the connection.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

func (c *trackedConn) CloseWrite() error { return closeWrite(c.Conn) }

// accept wraps an accepted connection so it is metered, tracked for drain, and counted closed exactly once.
func accept(srv *server, raw net.Conn, cm *metrics.Conn) (net.Conn, bool) {
	untrack, ok := srv.track(raw)
	if !ok {
		raw.Close()
		return nil, false
	}
	cm.Opened()
	return &trackedConn{Conn: &countingConn{Conn: raw, m: cm}, onClose: func() {
		cm.Closed(false)
		untrack()
	}}, true
}

// cached returns m's value for k, making it with mk the first time. Callers racing on a new key may each call
// mk; one result is kept and returned to all of them, so mk must be safe to call and discard.
func cached[K comparable, V any](m *sync.Map, k K, mk func() V) V {
	if v, ok := m.Load(k); ok {
		return v.(V)
	}
	v, _ := m.LoadOrStore(k, mk())
	return v.(V)
}

// connCtx is the base context of connections: not the Run context, so in-flight requests survive the start of
// a graceful drain; a hard stop closes the connections instead.
func connCtx() context.Context { return context.Background() }
