// Package metrics defines the proxy's traffic metrics with Linkerd's names, labels and buckets, so existing
// dashboards and queries work. Label sets are resolved once (Series for HTTP, Conn for TCP) and cached by the
// caller: the per-request cost is a few atomic adds, not a label-map lookup. The route_* metrics of each request
// path (PathStats) are cached on their Series the same way, and their number is bounded (MaxRoutes). The
// outbound_http_route_* metrics of each (parent, route, backend) of the control plane's routes (RouteStats) are
// cached on Metrics, also bounded (MaxRouteBackends).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are response_latency_ms's bucket bounds (milliseconds), as in Linkerd.
var LatencyBuckets = []float64{1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000}

// DstLabels are the endpoint labels exported with a dst_ prefix on outbound metrics.
var DstLabels = []string{"namespace", "service", "deployment", "pod", "serviceaccount", "zone"}

// Labels identify a stream of traffic.
type Labels struct {
	Direction  string // inbound | outbound
	Authority  string // outbound only (Linkerd drops it inbound to bound cardinality)
	TargetAddr string
	TLS        string // "true" or a reason ("no_identity", "disabled")
	ClientID   string
	ServerID   string
	Dst        map[string]string // keys from DstLabels
}

// authorityIndex is the authority label's place in values() and baseNames().
const authorityIndex = 1

func (l Labels) values() []string {
	v := []string{l.Direction, l.Authority, l.TargetAddr, l.TLS, l.ClientID, l.ServerID}
	for _, k := range DstLabels {
		v = append(v, l.Dst[k])
	}
	return v
}

func baseNames() []string {
	n := []string{"direction", "authority", "target_addr", "tls", "client_id", "server_id"}
	for _, k := range DstLabels {
		n = append(n, "dst_"+k)
	}
	return n
}

// Metrics is the set of traffic metric families of one proxy.
type Metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	// The route_* families: the same labels plus rt_route, with authority set in both directions.
	routeRequests  *prometheus.CounterVec
	routeResponses *prometheus.CounterVec
	routeLatency   *prometheus.HistogramVec
	pathTables     map[string]*pathTable // by direction
	tcpOpen        *prometheus.CounterVec
	tcpClose       *prometheus.CounterVec
	tcpConns       *prometheus.GaugeVec
	tcpRead        *prometheus.CounterVec
	tcpWrite       *prometheus.CounterVec
	errors         *prometheus.CounterVec
	routes         *routeFamilies // outbound_http_route_*: by parent, route and backend
	mirrorSent     prometheus.Counter
	mirrorSkipped  *prometheus.CounterVec
}

// New registers the families on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	base := baseNames()
	withResp := append(append([]string{}, base...), "status_code", "classification", "grpc_status_code")
	withStatus := append(append([]string{}, base...), "status_code")
	routeBase := append(append([]string{}, base...), "rt_route")
	tcpBase := append(append([]string{}, base...), "peer")
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "request_total", Help: "Total HTTP requests.",
		}, base),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "response_total", Help: "Total HTTP responses, counted when the response stream ends.",
		}, withResp),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "response_latency_ms", Help: "Time to first byte of the response, in milliseconds.", Buckets: LatencyBuckets,
		}, withStatus),
		routeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "route_request_total", Help: "Total HTTP requests, by route (rt_route: gRPC method or request path).",
		}, routeBase),
		routeResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "route_response_total", Help: "Total HTTP responses by route, counted when the response stream ends.",
		}, append(append([]string{}, routeBase...), "status_code", "classification", "grpc_status_code")),
		routeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "route_response_latency_ms", Help: "Time to first byte of the response by route, in milliseconds.", Buckets: LatencyBuckets,
		}, append(append([]string{}, routeBase...), "status_code")),
		pathTables: map[string]*pathTable{"inbound": newPathTable(), "outbound": newPathTable()},
		tcpOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_open_total", Help: "Total TCP connections opened.",
		}, tcpBase),
		tcpClose: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_close_total", Help: "Total TCP connections closed.",
		}, append(append([]string{}, tcpBase...), "classification")),
		tcpConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tcp_open_connections", Help: "TCP connections currently open.",
		}, tcpBase),
		tcpRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_read_bytes_total", Help: "Bytes read from the peer.",
		}, tcpBase),
		tcpWrite: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_write_bytes_total", Help: "Bytes written to the peer.",
		}, tcpBase),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_errors_total", Help: "Errors the proxy answered or closed connections for, by direction and kind.",
		}, []string{"direction", "error"}),
		routes: newRouteFamilies(),
		mirrorSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbound_http_mirror_requests_total", Help: "Copies of requests sent to a route's mirror backend (their outcome is in outbound_http_route_backend_*).",
		}),
		mirrorSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbound_http_mirror_skipped_total", Help: "Requests a route's mirror filter chose that no copy was sent for, by why: body_too_large, body_error, too_many.",
		}, []string{"reason"}),
	}
	collectors := []prometheus.Collector{m.requests, m.responses, m.latency, m.routeRequests, m.routeResponses, m.routeLatency, m.tcpOpen, m.tcpClose, m.tcpConns, m.tcpRead, m.tcpWrite, m.errors,
		m.mirrorSent, m.mirrorSkipped}
	for _, c := range append(collectors, m.routes.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MirrorSent counts a copy of a request sent to a mirror; MirrorSkipped one that was not, and why.
func (m *Metrics) MirrorSent()                 { m.mirrorSent.Inc() }
func (m *Metrics) MirrorSkipped(reason string) { m.mirrorSkipped.WithLabelValues(reason).Inc() }

// Error counts an error by kind ("detect_timeout", "bad_transport_header", "tls_handshake", ...).
func (m *Metrics) Error(direction, kind string) { m.errors.WithLabelValues(direction, kind).Inc() }

// Conn is the resolved metrics of one TCP label set.
type Conn struct {
	open, read, write prometheus.Counter
	conns             prometheus.Gauge
	success, failure  prometheus.Counter
}

// Conn resolves TCP metrics for l, as seen from peer "src" (the accepted side) or "dst" (the dialed side).
func (m *Metrics) Conn(l Labels, peer string) *Conn {
	v := append(l.values(), peer)
	return &Conn{
		open:    m.tcpOpen.WithLabelValues(v...),
		read:    m.tcpRead.WithLabelValues(v...),
		write:   m.tcpWrite.WithLabelValues(v...),
		conns:   m.tcpConns.WithLabelValues(v...),
		success: m.tcpClose.WithLabelValues(append(append([]string{}, v...), "success")...),
		failure: m.tcpClose.WithLabelValues(append(append([]string{}, v...), "failure")...),
	}
}

// Opened counts a new connection.
func (c *Conn) Opened() { c.open.Inc(); c.conns.Inc() }

// Closed counts a connection's end.
func (c *Conn) Closed(failed bool) {
	c.conns.Dec()
	if failed {
		c.failure.Inc()
	} else {
		c.success.Inc()
	}
}

// Read adds bytes read from the peer.
func (c *Conn) Read(n int) { c.read.Add(float64(n)) }

// Wrote adds bytes written to the peer.
func (c *Conn) Wrote(n int) { c.write.Add(float64(n)) }
