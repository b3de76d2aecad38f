package metricsapi

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/sinewmesh/sinew/viz/internal/promql"
)

// RoutesRequest is what `routes` asks for: the routes one resource serves, or with To, the routes it calls on To.
type RoutesRequest = promql.RoutesRequest

// OtherRoute is the route (and authority) the proxies count requests under once they have seen as many distinct
// routes as they label (docs/observability/metrics.md).
const OtherRoute = "[other]"

// RouteRow is one route's golden metrics. Pointers are nil when there was no data.
type RouteRow struct {
	Route       string   `json:"route"`
	Authority   string   `json:"authority"`
	SuccessRate *float64 `json:"success"`      // 0..1
	RPS         *float64 `json:"rps"`          // responses per second
	LatencyP50  *float64 `json:"latencyMsP50"` // milliseconds
	LatencyP95  *float64 `json:"latencyMsP95"`
	LatencyP99  *float64 `json:"latencyMsP99"`
}

// Routes runs the route queries, all evaluated at time at (zero: now), and merges their answers into rows sorted by
// route and authority, with OtherRoute last. Routes without requests in the window are left out.
func Routes(ctx context.Context, q Querier, req RoutesRequest, at time.Time) ([]RouteRow, error) {
	if at.IsZero() {
		at = time.Now()
	}
	qs, err := promql.Routes(req)
	if err != nil {
		return nil, err
	}
	rows := map[[2]string]*RouteRow{}
	row := func(s Sample) *RouteRow {
		k := [2]string{s.Labels[qs.RouteLabel], s.Labels[qs.AuthorityLabel]}
		r, ok := rows[k]
		if !ok {
			r = &RouteRow{Route: k[0], Authority: k[1]}
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
	for _, r := range rows {
		if r.RPS == nil || *r.RPS == 0 {
			// Seen once but idle in the window: the proxies keep a route's counters after its last request, and a
			// table of up to 100 observed paths is only readable with the live ones.
			continue
		}
		sr := success[r] / *r.RPS
		r.SuccessRate = &sr
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RouteRow) int {
		return cmp.Or(cmp.Compare(boolInt(a.Route == OtherRoute), boolInt(b.Route == OtherRoute)),
			cmp.Compare(a.Route, b.Route), cmp.Compare(a.Authority, b.Authority))
	})
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
