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
	srvKind, srvName := serverLabels(srv)
	switch {
	case a != nil:
		inc(&a.counters[0], c, func() prometheus.Counter {
			return m.httpAllow.WithLabelValues(c.TargetAddr, srvKind, srvName, a.route, a.Kind, a.Name, c.TLS, c.ClientID)
		})
	case d.Route != nil:
		inc(&d.Route.denials, c, func() prometheus.Counter {
			return m.httpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, d.Route.Name, c.TLS, c.ClientID)
		})
	default:
		cache := &m.cache
		if srv != nil {
			cache = &srv.denials[0]
		}
		inc(cache, c, func() prometheus.Counter {
			return m.httpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, RouteDefault, c.TLS, c.ClientID)
		})
	}
}

// RouteNotFound counts a request to srv that matched none of its routes.
func (m *Metrics) RouteNotFound(srv *Server, c Conn) {
	inc(&srv.notFound, c, func() prometheus.Counter {
		return m.routeNotFound.WithLabelValues(c.TargetAddr, srv.Kind, srv.Name, c.TLS, c.ClientID)
	})
}

// TCP counts a connection's decision: a admitted it, nil when denied. srv is nil when the port had no policy.
func (m *Metrics) TCP(srv *Server, a *Authorization, c Conn) {
	srvKind, srvName := serverLabels(srv)
	if a != nil {
		inc(&a.counters[1], c, func() prometheus.Counter {
			return m.tcpAllow.WithLabelValues(c.TargetAddr, srvKind, srvName, a.Kind, a.Name, c.TLS, c.ClientID)
		})
		return
	}
	cache := &m.tcpCache
	if srv != nil {
		cache = &srv.denials[1]
	}
	inc(cache, c, func() prometheus.Counter {
		return m.tcpDeny.WithLabelValues(c.TargetAddr, srvKind, srvName, c.TLS, c.ClientID)
	})
}

// inc increments the counter cache holds for c, made by mk the first time. The caches live on the policy objects
// (an authorization, a route, a server, a limiter) and are keyed by the connection's labels only; they go with
// the objects when the policy changes, so a lookup never needs the policy's labels.
func inc[K comparable](cache *sync.Map, k K, mk func() prometheus.Counter) {
	if v, ok := cache.Load(k); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	ctr := mk()
	cache.Store(k, ctr)
	ctr.Inc()
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
	inc(&srv.Limiter.rejected, limitKey{c, limit}, func() prometheus.Counter {
		return m.rateLimited.WithLabelValues(c.TargetAddr, srv.Kind, srv.Name, srv.Limiter.Name, limit, c.TLS, c.ClientID)
	})
}
