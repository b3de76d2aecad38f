package metrics

import (
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The outbound route families, named and labelled as Linkerd's (2.16+) Gateway API route metrics: which parent
// (the Service the client called), which route (an HTTPRoute or GRPCRoute of it, or the default route) and which
// backend each attempt went to. They are counted per attempt at a backend, where response_total is counted, so
// their totals match: a retried request counts once per attempt.
const (
	familyBackendRequests = "outbound_http_route_backend_requests_total"
	familyBackendStatuses = "outbound_http_route_backend_response_statuses_total"
	familyBackendDuration = "outbound_http_route_backend_response_duration_seconds"
)

// RouteDurationBuckets are outbound_http_route_backend_response_duration_seconds's bounds: Linkerd's (0.025, 0.05,
// 0.1, 0.25, 0.5, 1, 10 s) with finer ones below 25 ms and between 1 and 10 s, so that percentiles of a fast
// in-cluster service are not all interpolated inside the first bucket. A dashboard written for Linkerd's buckets
// still finds each of them.
var RouteDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// MaxRouteBackends bounds the route families' cardinality: each proxy labels at most this many distinct
// (parent, route, backend) triples as themselves, the first it sees; every later one is counted under OtherRoute
// (route_name and backend_name). Routes and backends come from the control plane's policies, so the real number
// is what the mesh's HTTPRoutes define for the services this proxy calls; the bound only keeps route churn (a
// canary tool creating routes under new names) from growing a proxy's series without limit.
const MaxRouteBackends = 500

// RouteKey names one (parent, route, backend) triple: the parent the application called (the Service the control
// plane says the target is; without one, the target authority or address, whose labels are read from it), the
// labels of the route that matched (kind, name, namespace, as the control plane sends them), and the backend
// authority the split chose.
type RouteKey struct {
	Target                                              string // the authority or address the application called
	ParentKind, ParentName, ParentNamespace, ParentPort string // "" kind: read from Target
	RouteKind, RouteName, RouteNamespace                string
	Backend                                             string
}

// routeNames are the labels of the route families, in the order of RouteKey.values.
var routeNames = []string{
	"parent_kind", "parent_name", "parent_namespace", "parent_port",
	"route_kind", "route_name", "route_namespace",
	"backend_kind", "backend_name", "backend_namespace", "backend_port",
}

func (k RouteKey) values() []string {
	pk, pn, pns, pp := k.ParentKind, k.ParentName, k.ParentNamespace, k.ParentPort
	if pk == "" {
		pk, pn, pns, pp = authorityLabels(k.Target)
	}
	bk, bn, bns, bp := authorityLabels(k.Backend)
	if k.Backend == k.Target {
		// The default route sends to the target itself, which may be an address: it is the parent.
		bk, bn, bns, bp = pk, pn, pns, pp
	}
	return []string{pk, pn, pns, pp, k.RouteKind, k.RouteName, k.RouteNamespace, bk, bn, bns, bp}
}

// authorityLabels splits a target or backend authority into a kind, name, namespace and port: a Service's
// name.namespace.svc.<domain>:port (or name.namespace:port) is kind Service; anything else (an IP address, one
// label) keeps its host as the name, without a kind.
func authorityLabels(authority string) (kind, name, namespace, port string) {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority
	}
	if net.ParseIP(host) != nil {
		return "", host, "", port
	}
	name, rest, ok := strings.Cut(host, ".")
	if !ok {
		return "", host, "", port
	}
	namespace, _, _ = strings.Cut(rest, ".")
	return "Service", name, namespace, port
}

// routeFamilies are the route families and their admitted keys.
type routeFamilies struct {
	requests *prometheus.CounterVec
	statuses *prometheus.CounterVec
	duration *prometheus.HistogramVec
	table    *admitTable[RouteKey]
	resolved sync.Map // RouteKey -> *RouteStats; admitted keys only
	otherO   sync.Once
	other    *RouteStats
}

func newRouteFamilies() *routeFamilies {
	return &routeFamilies{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: familyBackendRequests, Help: "Outbound HTTP attempts, by parent, route and the backend the split chose.",
		}, routeNames),
		statuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: familyBackendStatuses, Help: "Outbound HTTP responses by parent, route and backend, counted when the response stream ends.",
		}, append(append([]string{}, routeNames...), "http_status", "grpc_status", "classification")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: familyBackendDuration, Help: "Time to the response headers of outbound HTTP attempts, by parent, route and backend, in seconds.",
			Buckets: RouteDurationBuckets,
		}, routeNames),
		table: newAdmitTable[RouteKey](MaxRouteBackends),
	}
}

func (f *routeFamilies) collectors() []prometheus.Collector {
	return []prometheus.Collector{f.requests, f.statuses, f.duration}
}

// RouteStats is the resolved route series of one RouteKey.
type RouteStats struct {
	requests prometheus.Counter
	duration prometheus.Observer
	statuses *prometheus.CounterVec
	base     []string
	byClass  sync.Map // respKey -> prometheus.Counter
}

// Route returns the route metrics of k. A key seen before costs one map load and no allocation.
func (m *Metrics) Route(k RouteKey) *RouteStats {
	f := m.routes
	if rs, ok := f.resolved.Load(k); ok {
		return rs.(*RouteStats)
	}
	if !f.table.admit(k) {
		f.otherO.Do(func() {
			f.other = f.newRouteStats(RouteKey{ParentKind: OtherRoute, ParentName: OtherRoute, RouteName: OtherRoute, Backend: OtherRoute})
		})
		return f.other
	}
	rs, _ := f.resolved.LoadOrStore(k, f.newRouteStats(k))
	return rs.(*RouteStats)
}

func (f *routeFamilies) newRouteStats(k RouteKey) *RouteStats {
	base := k.values()
	return &RouteStats{requests: f.requests.WithLabelValues(base...), duration: f.duration.WithLabelValues(base...), statuses: f.statuses, base: base}
}

// Request counts an attempt.
func (r *RouteStats) Request() { r.requests.Inc() }

// ObserveLatency records the time to the response headers, in milliseconds as Response.ObserveLatency takes it.
func (r *RouteStats) ObserveLatency(ms float64) { r.duration.Observe(ms / 1000) }

// End counts a response whose stream ended; grpcStatus is -1 when it carried none.
func (r *RouteStats) End(status, grpcStatus int, failed bool) {
	k := respKey{status, grpcStatus, failed}
	if c, ok := r.byClass.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	grpc := ""
	if grpcStatus >= 0 {
		grpc = strconv.Itoa(grpcStatus)
	}
	class := "success"
	if failed {
		class = "failure"
	}
	c, _ := r.byClass.LoadOrStore(k, r.statuses.WithLabelValues(append(append([]string{}, r.base...), strconv.Itoa(status), grpc, class)...))
	c.(prometheus.Counter).Inc()
}

// Route returns the route metrics of k, as Metrics.Route: the outbound side reaches them through an endpoint's Series.
func (s *Series) Route(k RouteKey) *RouteStats { return s.m.Route(k) }
