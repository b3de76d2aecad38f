package metricsapi

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/sinewmesh/sinew/viz/internal/promql"
)

// AuthzRequest is what `authz` asks for: the authorization decisions at one resource's proxies.
type AuthzRequest = promql.AuthzRequest

// Server kinds (srv_kind) and the route names `authz` shows, as Linkerd's `viz authz` does.
const (
	// ServerKindDefault is a port no Server selects, governed by a default inbound policy; ServerKindServer is a
	// port a Server resource selects.
	ServerKindDefault = "default"
	ServerKindServer  = "server"
	// RouteDefault is every request of a server without routes (and its connections); RouteProbe is the
	// kubelet's probes, which the proxies admit with the authorization default/probe. A server with HTTPRoutes
	// shows each route's decisions under the route's name.
	RouteDefault = "default"
	RouteProbe   = "probe"
)

// AuthzRow is what one authorization admitted on one server, or, with AuthzKind and AuthzName empty, what the
// server denied. Pointers are nil when there was no data.
//
// The response metrics carry no server or authorization, so SuccessRate and the latencies are those of every
// response at the application addresses (target_addr, per pod) where the server made decisions: the same for every
// row of a server. A denied row has none of them, nor RPS.
type AuthzRow struct {
	Route      string `json:"route"`
	ServerKind string `json:"serverKind"`
	ServerName string `json:"serverName"`
	AuthzKind  string `json:"authorizationKind,omitempty"`
	AuthzName  string `json:"authorizationName,omitempty"`
	// UnauthorizedRPS is the rate of requests the server denied (0 on an authorization's row).
	UnauthorizedRPS *float64 `json:"unauthorizedRps"`
	SuccessRate     *float64 `json:"success"` // 0..1
	RPS             *float64 `json:"rps"`     // requests the authorization admitted, per second
	LatencyP50      *float64 `json:"latencyMsP50"`
	LatencyP95      *float64 `json:"latencyMsP95"`
	LatencyP99      *float64 `json:"latencyMsP99"`
	// TCPAllowed and TCPDenied are opaque connections per second (inbound_tcp_authz_*_total).
	TCPAllowed *float64 `json:"tcpAllowedPerSec,omitempty"`
	TCPDenied  *float64 `json:"tcpDeniedPerSec,omitempty"`
}

// Denied tells a server's row of denied traffic from an authorization's row.
func (r AuthzRow) Denied() bool { return r.AuthzKind == "" && r.AuthzName == "" }

// Server is the SERVER column: a Server's name, or default:<policy> for a port under a default policy, as
// Linkerd shows them.
func (r AuthzRow) Server() string {
	if r.ServerKind == ServerKindServer {
		return r.ServerName
	}
	return r.ServerKind + ":" + r.ServerName
}

// Authorization is the AUTHORIZATION column: kind/name (authorizationpolicy/web-public, default/probe), or ""
// for denied traffic.
func (r AuthzRow) Authorization() string {
	if r.Denied() {
		return ""
	}
	return r.AuthzKind + "/" + r.AuthzName
}

type serverKey struct{ kind, name string }

type authzKey struct {
	server                  serverKey
	route, authzKind, authz string
}

type targetKey [3]string // AuthzTargetLabels' values

func targetOf(s Sample) targetKey {
	var k targetKey
	for i, l := range promql.AuthzTargetLabels {
		k[i] = s.Labels[l]
	}
	return k
}

// Authz runs the authorization queries, all evaluated at time at (zero: now), and merges their answers into one
// row per (server, authorization) pair seen in the window and one per server that denied something, sorted by
// server, route and authorization, denials last.
func Authz(ctx context.Context, q Querier, req AuthzRequest, at time.Time) ([]AuthzRow, error) {
	if at.IsZero() {
		at = time.Now()
	}
	qs, err := promql.Authz(req)
	if err != nil {
		return nil, err
	}
	answers := map[string][]Sample{}
	for _, query := range []string{qs.HTTPAllow, qs.HTTPDeny, qs.TCPAllow, qs.TCPDeny, qs.Total, qs.Success, qs.Buckets} {
		samples, err := q.Query(ctx, query, at)
		if err != nil {
			return nil, err
		}
		answers[query] = samples
	}
	rows := map[authzKey]*AuthzRow{}
	row := func(s Sample, denied bool) *AuthzRow {
		k := authzKey{server: serverKey{s.Labels[promql.LabelSrvKind], s.Labels[promql.LabelSrvName]}, route: s.Labels[promql.LabelRouteName]}
		if !denied {
			k.authzKind, k.authz = s.Labels[promql.LabelAuthzKind], s.Labels[promql.LabelAuthzName]
		}
		if k.route == "" { // connections, and proxies older than route_name
			k.route = RouteDefault
			if k.authzKind == ServerKindDefault && k.authz == RouteProbe {
				k.route = RouteProbe
			}
		}
		r, ok := rows[k]
		if !ok {
			r = &AuthzRow{Route: k.route, ServerKind: k.server.kind, ServerName: k.server.name, AuthzKind: k.authzKind, AuthzName: k.authz}
			rows[k] = r
		}
		return r
	}
	add := func(p **float64, v float64) {
		if *p == nil {
			*p = new(float64)
		}
		**p += v
	}
	targets := map[serverKey]map[targetKey]bool{}
	served := func(s Sample) {
		k := serverKey{s.Labels[promql.LabelSrvKind], s.Labels[promql.LabelSrvName]}
		if targets[k] == nil {
			targets[k] = map[targetKey]bool{}
		}
		targets[k][targetOf(s)] = true
	}
	for _, s := range finite(answers[qs.HTTPAllow]) {
		r := row(s, false)
		add(&r.RPS, s.Value)
		add(&r.UnauthorizedRPS, 0)
		served(s)
	}
	for _, s := range finite(answers[qs.HTTPDeny]) {
		add(&row(s, true).UnauthorizedRPS, s.Value)
		served(s)
	}
	for _, s := range finite(answers[qs.TCPAllow]) {
		add(&row(s, false).TCPAllowed, s.Value)
	}
	for _, s := range finite(answers[qs.TCPDeny]) {
		add(&row(s, true).TCPDenied, s.Value)
	}

	// What the application answered at each target, summed over each server's targets.
	total, success := map[targetKey]float64{}, map[targetKey]float64{}
	for _, s := range finite(answers[qs.Total]) {
		total[targetOf(s)] += s.Value
	}
	for _, s := range finite(answers[qs.Success]) {
		success[targetOf(s)] += s.Value
	}
	buckets := map[targetKey]map[float64]float64{}
	for _, s := range finite(answers[qs.Buckets]) {
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			continue
		}
		t := targetOf(s)
		if buckets[t] == nil {
			buckets[t] = map[float64]float64{}
		}
		buckets[t][le] += s.Value
	}
	type golden struct{ sr, p50, p95, p99 *float64 }
	perServer := map[serverKey]golden{}
	for srv, ts := range targets {
		var tot, ok float64
		merged := map[float64]float64{}
		for t := range ts {
			tot += total[t]
			ok += success[t]
			for le, v := range buckets[t] {
				merged[le] += v
			}
		}
		var g golden
		if tot > 0 {
			sr := ok / tot
			g.sr = &sr
		}
		quantile := func(q float64) *float64 {
			v := bucketQuantile(q, merged)
			if math.IsNaN(v) {
				return nil
			}
			return &v
		}
		g.p50, g.p95, g.p99 = quantile(0.5), quantile(0.95), quantile(0.99)
		perServer[srv] = g
	}

	out := make([]AuthzRow, 0, len(rows))
	for k, r := range rows {
		if !r.Denied() && r.RPS != nil {
			g := perServer[k.server]
			r.SuccessRate, r.LatencyP50, r.LatencyP95, r.LatencyP99 = g.sr, g.p50, g.p95, g.p99
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b AuthzRow) int {
		return cmp.Or(cmp.Compare(a.Server(), b.Server()), cmp.Compare(boolInt(a.Denied()), boolInt(b.Denied())),
			cmp.Compare(a.Route, b.Route), cmp.Compare(a.Authorization(), b.Authorization()))
	})
	return out, nil
}

// finite drops NaN and infinite samples: no data, not numbers to add up.
func finite(ss []Sample) []Sample {
	out := ss[:0:0]
	for _, s := range ss {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			out = append(out, s)
		}
	}
	return out
}

// bucketQuantile is PromQL's histogram_quantile over cumulative bucket counts by upper bound (le): it
// interpolates linearly inside the bucket that holds the q-th observation, and answers NaN when there are no
// observations, no +Inf bucket, or q is not in [0, 1]. Viz computes it itself because a server's buckets are summed over targets that
// only a join on labels the response metrics lack could pick in PromQL.
func bucketQuantile(q float64, counts map[float64]float64) float64 {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return math.NaN()
	}
	type bucket struct{ le, count float64 }
	bs := make([]bucket, 0, len(counts))
	for le, c := range counts {
		bs = append(bs, bucket{le, c})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) < 2 || !math.IsInf(bs[len(bs)-1].le, 1) {
		return math.NaN()
	}
	// Rates of different series are sampled apart, so counts can dip; Prometheus evens them out the same way.
	for i := 1; i < len(bs); i++ {
		bs[i].count = math.Max(bs[i].count, bs[i-1].count)
	}
	observations := bs[len(bs)-1].count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(bs)-1, func(i int) bool { return bs[i].count >= rank })
	if b == len(bs)-1 {
		return bs[len(bs)-2].le
	}
	if b == 0 && bs[0].le <= 0 {
		return bs[0].le
	}
	start, end, count := 0.0, bs[b].le, bs[b].count
	if b > 0 {
		start = bs[b-1].le
		count -= bs[b-1].count
		rank -= bs[b-1].count
	}
	return start + (end-start)*(rank/count)
}
