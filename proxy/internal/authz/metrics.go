package authz

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts decisions with Linkerd's names and labels (inbound_{http,tcp}_authz_{allow,deny}_total).
type Metrics struct {
	httpAllow, httpDeny, tcpAllow, tcpDeny *prometheus.CounterVec
	rateLimited, routeNotFound             *prometheus.CounterVec
	cache, tcpCache                        sync.Map // Conn -> the deny counter of ports without a policy (HTTP, TCP)
}

// Conn is what the counters say of the connection: target_addr, tls and client_id.
type Conn struct {
	TargetAddr, TLS, ClientID string
}

// NewMetrics registers the families on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	allow := []string{"target_addr", "srv_kind", "srv_name", "authz_kind", "authz_name", "tls", "client_id"}
	deny := []string{"target_addr", "srv_kind", "srv_name", "tls", "client_id"}
	// HTTP decisions also say which route the request was on: an HTTPRoute of the Server, "default" on a port
	// without routes, "probe" for the kubelet's probes.
	httpAllow := []string{"target_addr", "srv_kind", "srv_name", "route_name", "authz_kind", "authz_name", "tls", "client_id"}
	httpDeny := []string{"target_addr", "srv_kind", "srv_name", "route_name", "tls", "client_id"}
	m := &Metrics{
		httpAllow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_authz_allow_total", Help: "HTTP requests an authorization admitted.",
		}, httpAllow),
		httpDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_authz_deny_total", Help: "HTTP requests no authorization admitted (answered 403, or 401 for a missing or invalid token).",
		}, httpDeny),
		routeNotFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_http_route_not_found_total", Help: "HTTP requests to a port with routes that matched none of them (answered 404).",
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
	for _, c := range []prometheus.Collector{m.httpAllow, m.httpDeny, m.tcpAllow, m.tcpDeny, m.rateLimited, m.routeNotFound} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// HTTP counts a request's decision: d.Authz admitted it, or nobody did (a request that matched no route is
// counted by RouteNotFound instead). srv is nil when the port had no policy.
func (m *Metrics) HTTP(srv *Server, d Decision, c Conn) {
	a := d.Authz
	var cache *sync.Map
	switch {
	case a != nil:
		cache = &a.counters[0]
	case d.Route != nil:
		cache = &d.Route.denials
	case srv != nil:
		cache = &srv.denials[0]
	default:
		cache = &m.cache
	}
	if cached(cache, c) {
		return
	}
	srvKind, srvName := serverLabels(srv)
	var ctr prometheus.Counter
	switch {
	case a != nil:
		ctr = m.httpAllow.WithLabelValues(c.TargetAddr, srvKind, srvName, a.route, a.Kind, a.Name, c.TLS, c.ClientID)
	case d.Route != nil:
		ctr = m.httpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, d.Route.Name, c.TLS, c.ClientID)
	default:
		ctr = m.httpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, RouteDefault, c.TLS, c.ClientID)
	}
	cache.Store(c, ctr)
	ctr.Inc()
}

// RouteNotFound counts a request to srv that matched none of its routes.
func (m *Metrics) RouteNotFound(srv *Server, c Conn) {
	if cached(&srv.notFound, c) {
		return
	}
	ctr := m.routeNotFound.WithLabelValues(c.TargetAddr, srv.Kind, srv.Name, c.TLS, c.ClientID)
	srv.notFound.Store(c, ctr)
	ctr.Inc()
}

// TCP counts a connection's decision: a admitted it, nil when denied. srv is nil when the port had no policy.
func (m *Metrics) TCP(srv *Server, a *Authorization, c Conn) {
	var cache *sync.Map
	switch {
	case a != nil:
		cache = &a.counters[1]
	case srv != nil:
		cache = &srv.denials[1]
	default:
		cache = &m.tcpCache
	}
	if cached(cache, c) {
		return
	}
	srvKind, srvName := serverLabels(srv)
	var ctr prometheus.Counter
	if a != nil {
		ctr = m.tcpAllow.WithLabelValues(c.TargetAddr, srvKind, srvName, a.Kind, a.Name, c.TLS, c.ClientID)
	} else {
		ctr = m.tcpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, c.TLS, c.ClientID)
	}
	cache.Store(c, ctr)
	ctr.Inc()
}

// cached increments the counter cache holds for c, if any. The caches live on the policy objects (an
// authorization, a route, a server) and are keyed by the connection's labels only; they go with the objects when
// the policy changes.
func cached(cache *sync.Map, c Conn) bool {
	if v, ok := cache.Load(c); ok {
		v.(prometheus.Counter).Inc()
		return true
	}
	return false
}

func serverLabels(srv *Server) (kind, name string) {
	if srv == nil {
		return "default", "unknown"
	}
	return srv.Kind, srv.Name
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
