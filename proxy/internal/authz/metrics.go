package authz

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts decisions with Linkerd's names and labels (inbound_{http,tcp}_authz_{allow,deny}_total).
type Metrics struct {
	httpAllow, httpDeny, tcpAllow, tcpDeny *prometheus.CounterVec
	cache                                  sync.Map // decisionKey -> prometheus.Counter
}

// Conn is what the counters say of the connection: target_addr, tls and client_id.
type Conn struct {
	TargetAddr, TLS, ClientID string
}

type decisionKey struct {
	family                                 *prometheus.CounterVec
	srvKind, srvName, authzKind, authzName string
	conn                                   Conn
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
	}
	for _, c := range []prometheus.Collector{m.httpAllow, m.httpDeny, m.tcpAllow, m.tcpDeny} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// HTTP counts a request's decision: a is the authorization that admitted it, nil when denied. srv is nil when
// the port had no policy.
func (m *Metrics) HTTP(srv *Server, a *Authorization, c Conn) {
	m.count(m.httpAllow, m.httpDeny, srv, a, c)
}

// TCP counts a connection's decision, as HTTP does a request's.
func (m *Metrics) TCP(srv *Server, a *Authorization, c Conn) {
	m.count(m.tcpAllow, m.tcpDeny, srv, a, c)
}

func (m *Metrics) count(allow, deny *prometheus.CounterVec, srv *Server, a *Authorization, c Conn) {
	k := decisionKey{family: deny, conn: c, srvKind: "default", srvName: "unknown"}
	if srv != nil {
		k.srvKind, k.srvName = srv.Kind, srv.Name
	}
	if a != nil {
		k.family, k.authzKind, k.authzName = allow, a.Kind, a.Name
	}
	if v, ok := m.cache.Load(k); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	var ctr prometheus.Counter
	if a != nil {
		ctr = allow.WithLabelValues(c.TargetAddr, k.srvKind, k.srvName, k.authzKind, k.authzName, c.TLS, c.ClientID)
	} else {
		ctr = deny.WithLabelValues(c.TargetAddr, k.srvKind, k.srvName, c.TLS, c.ClientID)
	}
	m.cache.Store(k, ctr)
	ctr.Inc()
}
