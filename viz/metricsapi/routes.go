package metricsapi

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/viz/internal/promql"
)

// RoutesRequest is what `routes` asks for: the routes one resource serves, or with To, the routes it calls on To;
// for a Service (svc/NAME, or --to svc/NAME), its HTTPRoutes and GRPCRoutes with their backends.
type RoutesRequest = promql.RoutesRequest

// OtherRoute is the route (and authority) the proxies count requests under once they have seen as many distinct
// routes as they label (docs/observability/metrics.md).
const OtherRoute = "[other]"

// DefaultRoute is the Route of a Service's requests that no HTTPRoute or GRPCRoute took (the proxies' default
// route), as Linkerd shows unmatched traffic.
const DefaultRoute = "[DEFAULT]"

// RouteRow is one route's golden metrics: a path row (Route and Authority), or for a Service's routes a backend
// row (RouteKind, RouteNamespace, Route, Backend and its Share). Pointers are nil when there was no data.
type RouteRow struct {
	Route           string   `json:"route"`
	Authority       string   `json:"authority"`
	Parent          string   `json:"parent,omitempty"`          // the Service the routes belong to; backend rows only
	ParentNamespace string   `json:"parentNamespace,omitempty"` // backend rows only
	RouteKind       string   `json:"routeKind,omitempty"`       // HTTPRoute, GRPCRoute or default; backend rows only
	RouteNamespace  string   `json:"routeNamespace,omitempty"`  // backend rows only
	Backend         string   `json:"backend,omitempty"`         // name:port, name.namespace:port in another namespace
	Share           *float64 `json:"share,omitempty"`           // 0..1: the backend's part of its route's responses
	SuccessRate     *float64 `json:"success"`                   // 0..1
	RPS             *float64 `json:"rps"`                       // responses per second
	LatencyP50      *float64 `json:"latencyMsP50"`              // milliseconds
	LatencyP95      *float64 `json:"latencyMsP95"`
	LatencyP99      *float64 `json:"latencyMsP99"`

	key [2]string // the route's and the backend's identity, for grouping; backend rows only
}

// RouteName is how tables show a backend row's route: Kind/name ("HTTPRoute/web-split"), or DefaultRoute.
func (r RouteRow) RouteName() string {
	if r.RouteKind == "" || r.RouteKind == "default" || r.Route == DefaultRoute || r.Route == OtherRoute {
		return r.Route
	}
	return r.RouteKind + "/" + r.Route
}

// Routes runs the route queries, all evaluated at time at (zero: now), and merges their answers into rows sorted by
// route and authority (or backend), with OtherRoute and DefaultRoute last. Routes without requests in the window
// are left out. Backend rows carry each backend's share of its route's responses.
func Routes(ctx context.Context, q Querier, req RoutesRequest, at time.Time) ([]RouteRow, error) {
	if at.IsZero() {
		at = time.Now()
	}
	qs, err := promql.Routes(req)
	if err != nil {
		return nil, err
	}
	svc, _ := req.Service()
	rows := map[[2]string]*RouteRow{}
	row := func(s Sample) *RouteRow {
		k := [2]string{s.Labels[qs.RouteLabel], s.Labels[qs.AuthorityLabel]}
		if qs.Backends {
			k = [2]string{joinLabels(s.Labels, qs.RouteLabels), joinLabels(s.Labels, qs.BackendLabels)}
		}
		r, ok := rows[k]
		if !ok {
			r = &RouteRow{Route: k[0], Authority: k[1]}
			if qs.Backends {
				r = backendRow(s.Labels, svc.Namespace)
				r.key = k
			}
			rows[k] = r
		}
		return r
	}
	success := map[*RouteRow]float64{}
	steps := []step[RouteRow]{
		{qs.Total, func(r *RouteRow, v float64) { r.RPS = &v }},
		{qs.Success, func(r *RouteRow, v float64) { success[r] = v }},
		{qs.P50, func(r *RouteRow, v float64) { r.LatencyP50 = &v }},
		{qs.P95, func(r *RouteRow, v float64) { r.LatencyP95 = &v }},
		{qs.P99, func(r *RouteRow, v float64) { r.LatencyP99 = &v }},
	}
	if err := collect(ctx, q, at, steps, row); err != nil {
		return nil, err
	}
	out := make([]RouteRow, 0, len(rows))
	routeRPS := map[string]float64{}
	for _, r := range rows {
		if r.RPS == nil || *r.RPS == 0 {
			// Seen once but idle in the window: the proxies keep a route's counters after its last request, and a
			// table of up to 100 observed paths is only readable with the live ones.
			continue
		}
		sr := success[r] / *r.RPS
		r.SuccessRate = &sr
		routeRPS[r.key[0]] += *r.RPS
		out = append(out, *r)
	}
	if qs.Backends {
		for i := range out {
			share := *out[i].RPS / routeRPS[out[i].key[0]]
			out[i].Share = &share
		}
	}
	slices.SortFunc(out, func(a, b RouteRow) int {
		return cmp.Or(cmp.Compare(a.ParentNamespace, b.ParentNamespace), cmp.Compare(a.Parent, b.Parent),
			cmp.Compare(lastRank(a.Route), lastRank(b.Route)), cmp.Compare(a.RouteKind, b.RouteKind),
			cmp.Compare(a.RouteNamespace, b.RouteNamespace), cmp.Compare(a.Route, b.Route),
			cmp.Compare(a.Authority, b.Authority), cmp.Compare(a.Backend, b.Backend))
	})
	return out, nil
}

// backendRow is the row of one (route, backend) sample of a Service; ns is the namespace asked for (a backend
// there is shown by its name alone).
func backendRow(l map[string]string, ns string) *RouteRow {
	r := &RouteRow{Parent: l["parent_name"], ParentNamespace: l["parent_namespace"], RouteKind: l["route_kind"],
		RouteNamespace: l["route_namespace"], Route: l["route_name"]}
	if r.RouteKind == "default" {
		r.Route, r.RouteNamespace = DefaultRoute, ""
	}
	r.Backend = l["backend_name"]
	if ns == "" {
		ns = r.ParentNamespace
	}
	if bns := l["backend_namespace"]; bns != "" && bns != ns {
		r.Backend += "." + bns
	}
	if p := l["backend_port"]; p != "" {
		r.Backend += ":" + p
	}
	return r
}

func joinLabels(l map[string]string, names []string) string {
	v := make([]string, len(names))
	for i, n := range names {
		v[i] = l[n]
	}
	return strings.Join(v, "\x00")
}

// lastRank orders the catch-all rows after the named routes: DefaultRoute, then OtherRoute.
func lastRank(route string) int {
	switch route {
	case DefaultRoute:
		return 1
	case OtherRoute:
		return 2
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
