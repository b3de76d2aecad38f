// Package metrics defines the proxy's traffic metrics with Linkerd's names, labels and buckets, so existing
// dashboards and queries work. Label sets are resolved once per route or connection (Route, Conn) and cached by
// the caller: the per-request cost is a few atomic adds, not a label-map lookup. Per-route metrics (RouteStats)
// are cached on their Route the same way, and their number is bounded (MaxRoutes).
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"

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
	routeTables    map[string]*routeTable // by direction
	tcpOpen        *prometheus.CounterVec
	tcpClose       *prometheus.CounterVec
	tcpConns       *prometheus.GaugeVec
	tcpRead        *prometheus.CounterVec
	tcpWrite       *prometheus.CounterVec
	errors         *prometheus.CounterVec
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
		routeTables: map[string]*routeTable{"inbound": newRouteTable(), "outbound": newRouteTable()},
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
	}
	for _, c := range []prometheus.Collector{m.requests, m.responses, m.latency, m.routeRequests, m.routeResponses, m.routeLatency, m.tcpOpen, m.tcpClose, m.tcpConns, m.tcpRead, m.tcpWrite, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Error counts an error by kind ("detect_timeout", "bad_transport_header", "tls_handshake", ...).
func (m *Metrics) Error(direction, kind string) { m.errors.WithLabelValues(direction, kind).Inc() }

// Route is the resolved metrics of one HTTP label set.
type Route struct {
	labelSet
	m *Metrics

	table  *routeTable
	stats  sync.Map // routeKey -> *RouteStats; admitted routes only, so at most MaxRoutes entries
	otherO sync.Once
	other  *RouteStats
}

// labelSet is the request counter of one label set (a Route's, or one of its routes') and its response metrics,
// resolved once per response class.
type labelSet struct {
	requests prometheus.Counter
	total    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	base     []string
	byClass  sync.Map // respKey -> *Response; read on every response, written once per class
}

type respKey struct {
	status int
	grpc   int // -1 when absent
	failed bool
}

// Response is the resolved metrics of one response class.
type Response struct {
	total   prometheus.Counter
	latency prometheus.Observer
}

// Route resolves an HTTP label set. Cache the result.
func (m *Metrics) Route(l Labels) *Route {
	base := l.values()
	return &Route{
		labelSet: labelSet{requests: m.requests.WithLabelValues(base...), total: m.responses, latency: m.latency, base: base},
		m:        m,
		table:    m.routeTables[l.Direction],
	}
}

// Request counts a request.
func (s *labelSet) Request() { s.requests.Inc() }

// Response returns the counters for a response; grpcStatus is -1 when the response carried none.
func (s *labelSet) Response(status, grpcStatus int, failed bool) *Response {
	k := respKey{status, grpcStatus, failed}
	if resp, ok := s.byClass.Load(k); ok {
		return resp.(*Response)
	}
	code := strconv.Itoa(status)
	class := "success"
	if failed {
		class = "failure"
	}
	grpc := ""
	if grpcStatus >= 0 {
		grpc = strconv.Itoa(grpcStatus)
	}
	resp := &Response{
		total:   s.total.WithLabelValues(append(append([]string{}, s.base...), code, class, grpc)...),
		latency: s.latency.WithLabelValues(append(append([]string{}, s.base...), code)...),
	}
	v, _ := s.byClass.LoadOrStore(k, resp)
	return v.(*Response)
}

// ObserveLatency records time to first byte in milliseconds.
func (r *Response) ObserveLatency(ms float64) { r.latency.Observe(ms) }

// End counts the response once its stream ended.
func (r *Response) End() { r.total.Inc() }

// MaxRoutes bounds the route_* metrics' cardinality: each proxy labels at most this many distinct (rt_route,
// authority) pairs per direction as themselves, the first ones it sees; every later pair is counted under
// OtherRoute. Paths come from clients (and, inbound, from any peer), so without a bound one scanner could add a
// series per URL it tries. 100 is well above what a service's API has (emojivoto: a handful) while keeping a
// proxy's route series, times the histogram's buckets, in the low thousands. It is a constant until route
// definitions reach the proxy (HTTPRoute/GRPCRoute), which will name routes instead of counting paths.
const MaxRoutes = 100

// OtherRoute is the rt_route and authority of requests beyond MaxRoutes.
const OtherRoute = "[other]"

type routeKey struct{ authority, route string }

// routeTable is one direction's admitted routes, shared by all of its Routes. It is consulted only when a Route
// has not cached a pair yet: once per admitted pair and Route, and on every request of a pair that was not
// admitted (those are deliberately not cached, so they cannot grow memory either). Once full it never changes, so
// those lookups read it without the lock.
type routeTable struct {
	mu   sync.Mutex
	seen map[routeKey]struct{}
	full atomic.Bool // set, under mu, after the write that filled seen; seen is read-only from then on
}

func newRouteTable() *routeTable { return &routeTable{seen: map[routeKey]struct{}{}} }

func (t *routeTable) admit(k routeKey) bool {
	if t.full.Load() {
		_, ok := t.seen[k]
		return ok
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[k]; ok {
		return true
	}
	if len(t.seen) >= MaxRoutes {
		return false
	}
	t.seen[k] = struct{}{}
	t.full.Store(len(t.seen) == MaxRoutes)
	return true
}

// RouteStats is the resolved route_* metrics of one route under a Route's label set: Request and Response as on
// a Route.
type RouteStats struct{ labelSet }

// Stats returns the route metrics of a request to authority (its :authority or Host) for route (its rt_route).
// A cached pair costs one map load and no allocation.
func (r *Route) Stats(authority, route string) *RouteStats {
	k := routeKey{authority, route}
	if s, ok := r.stats.Load(k); ok {
		return s.(*RouteStats)
	}
	if r.table == nil || !r.table.admit(k) {
		r.otherO.Do(func() { r.other = r.newStats(routeKey{OtherRoute, OtherRoute}) })
		return r.other
	}
	s, _ := r.stats.LoadOrStore(k, r.newStats(k))
	return s.(*RouteStats)
}

func (r *Route) newStats(k routeKey) *RouteStats {
	base := append(append([]string{}, r.base...), k.route)
	base[authorityIndex] = k.authority // set in both directions for routes
	return &RouteStats{labelSet{requests: r.m.routeRequests.WithLabelValues(base...), total: r.m.routeResponses, latency: r.m.routeLatency, base: base}}
}

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
