package authz

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts decisions with Linkerd's names and labels (inbound_{http,tcp}_authz_{allow,deny}_total).
type Metrics struct {
	httpAllow, httpDeny, tcpAllow, tcpDeny *prometheus.CounterVec
	rateLimited                            *prometheus.CounterVec
	cache                                  sync.Map // Conn -> the deny counter of ports without a policy
}

// Conn is what the counters say of the connection: target_addr, tls and client_id.
type Conn struct {
	TargetAddr, TLS, ClientID string
}

// NewMetrics registers the families on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	allow := []string{"target_addr", "srv_kind", "srv_name", "authz_kind", "authz_name", "tls", "client_id"}
	deny := []string{"target_addr", "srv_kind", "srv_name", "tls", "client_id"}
	m := &Metrics{
		httpAllow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_authz_allow_total", Help: "HTTP requests an authorization admitted.",
		}, allow),
		httpDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_authz_deny_total", Help: "HTTP requests no authorization admitted (answered 403).",
		}, deny),
		tcpAllow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_tcp_authz_allow_total", Help: "TCP connections an authorization admitted.",
		}, allow),
		tcpDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_tcp_authz_deny_total", Help: "TCP connections no authorization admitted (refused).",
		}, deny),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_ratelimit_rejected_total", Help: "HTTP requests a local rate limit refused (answered 429), by the limit that refused them (total, identity, override).",
		}, []string{"target_addr", "srv_kind", "srv_name", "ratelimit_name", "limit", "tls", "client_id"}),
	}
	for _, c := range []prometheus.Collector{m.httpAllow, m.httpDeny, m.tcpAllow, m.tcpDeny, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// HTTP counts a request's decision: a is the authorization that admitted it, nil when denied. srv is nil when
// the port had no policy.
func (m *Metrics) HTTP(srv *Server, a *Authorization, c Conn) {
	m.count(m.httpAllow, m.httpDeny, srv, a, c, 0)
}

// TCP counts a connection's decision, as HTTP does a request's.
func (m *Metrics) TCP(srv *Server, a *Authorization, c Conn) {
	m.count(m.tcpAllow, m.tcpDeny, srv, a, c, 1)
}

// count finds the counter in a cache on the authorization (or the server, for a denial): a lookup by the
// connection's labels only, since the policy objects are replaced, caches and all, when the policy changes.
func (m *Metrics) count(allow, deny *prometheus.CounterVec, srv *Server, a *Authorization, c Conn, proto int) {
	var cache *sync.Map
	switch {
	case a != nil:
		cache = &a.counters[proto]
	case srv != nil:
		cache = &srv.denials[proto]
	default:
		cache = &m.cache
	}
	if v, ok := cache.Load(c); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	srvKind, srvName := "default", "unknown"
	if srv != nil {
		srvKind, srvName = srv.Kind, srv.Name
	}
	var ctr prometheus.Counter
	if a != nil {
		ctr = allow.WithLabelValues(c.TargetAddr, srvKind, srvName, a.Kind, a.Name, c.TLS, c.ClientID)
	} else {
		ctr = deny.WithLabelValues(c.TargetAddr, srvKind, srvName, c.TLS, c.ClientID)
	}
	cache.Store(c, ctr)
	ctr.Inc()
}

type limitKey struct {
	conn  Conn
	limit string
}

// RateLimited counts a request that srv's limiter refused because of limit.
func (m *Metrics) RateLimited(srv *Server, limit string, c Conn) {
	k := limitKey{c, limit}
	if v, ok := srv.Limiter.rejected.Load(k); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	ctr := m.rateLimited.WithLabelValues(c.TargetAddr, srv.Kind, srv.Name, srv.Limiter.Name, limit, c.TLS, c.ClientID)
	srv.Limiter.rejected.Store(k, ctr)
	ctr.Inc()
}
