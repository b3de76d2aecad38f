package metricsapi

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/viz/internal/promql"
)

// Re-exported so callers outside viz can build requests.
type (
	// Kind is a resource kind: deployment, pod or namespace.
	Kind = promql.Kind
	// Resource names one resource or all resources of a kind.
	Resource = promql.Resource
	// StatRequest is what `stat` asks for.
	StatRequest = promql.StatRequest
)

// Resource kinds.
const (
	KindDeployment = promql.KindDeployment
	KindPod        = promql.KindPod
	KindNamespace  = promql.KindNamespace
	KindService    = promql.KindService
)

// ParseResource reads "kind" or "kind/name" in namespace ns.
func ParseResource(s, ns string) (Resource, error) { return promql.ParseResource(s, ns) }

// ParseWindow reads a time window such as "1m".
func ParseWindow(s string) (time.Duration, error) { return promql.ParseWindow(s) }

// ProxyJob is the scrape job name the label contract requires for proxy targets.
const ProxyJob = promql.ProxyJob

// StatRow is one resource's golden metrics. Pointers are nil when there was no data.
type StatRow struct {
	Namespace   string   `json:"namespace"`
	Kind        Kind     `json:"kind"`
	Name        string   `json:"name"`
	MeshedPods  *int     `json:"meshedPodCount,omitempty"`
	TotalPods   *int     `json:"totalPodCount,omitempty"`
	SuccessRate *float64 `json:"success"`      // 0..1
	RPS         *float64 `json:"rps"`          // responses per second
	LatencyP50  *float64 `json:"latencyMsP50"` // milliseconds
	LatencyP95  *float64 `json:"latencyMsP95"`
	LatencyP99  *float64 `json:"latencyMsP99"`
	TCPConns    *float64 `json:"tcpConnections"`
	ReadBps     *float64 `json:"tcpReadBytesPerSec"`
	WriteBps    *float64 `json:"tcpWriteBytesPerSec"`
}

// Stat runs the stat queries, all evaluated at time at (zero: now), and merges their answers into rows sorted by
// namespace and name.
func Stat(ctx context.Context, q Querier, req StatRequest, at time.Time) ([]StatRow, error) {
	if at.IsZero() {
		at = time.Now()
	}
	qs, err := promql.Stat(req)
	if err != nil {
		return nil, err
	}
	rows := map[[2]string]*StatRow{}
	row := func(s Sample) *StatRow {
		k := [2]string{s.Labels[qs.NamespaceLabel], s.Labels[qs.NameLabel]}
		if req.Resource.Kind == KindNamespace {
			k[1] = k[0]
		}
		r, ok := rows[k]
		if !ok {
			r = &StatRow{Namespace: k[0], Kind: req.Resource.Kind, Name: k[1]}
			rows[k] = r
		}
		return r
	}
	success := map[*StatRow]float64{}
	steps := []step[StatRow]{
		{qs.Meshed, func(r *StatRow, v float64) { n := int(v); r.MeshedPods = &n }},
		{qs.Pods, func(r *StatRow, v float64) { n := int(v); r.TotalPods = &n }},
		{qs.Total, func(r *StatRow, v float64) { r.RPS = &v }},
		{qs.Success, func(r *StatRow, v float64) { success[r] = v }},
		{qs.P50, func(r *StatRow, v float64) { r.LatencyP50 = &v }},
		{qs.P95, func(r *StatRow, v float64) { r.LatencyP95 = &v }},
		{qs.P99, func(r *StatRow, v float64) { r.LatencyP99 = &v }},
		{qs.TCPConns, func(r *StatRow, v float64) { r.TCPConns = &v }},
		{qs.ReadBytes, func(r *StatRow, v float64) { r.ReadBps = &v }},
		{qs.WriteBytes, func(r *StatRow, v float64) { r.WriteBps = &v }},
	}
	if err := collect(ctx, q, at, steps, row); err != nil {
		return nil, err
	}
	out := make([]StatRow, 0, len(rows))
	for _, r := range rows {
		if r.RPS != nil && *r.RPS > 0 {
			sr := success[r] / *r.RPS
			r.SuccessRate = &sr
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// step is one query behind a table and where its answer goes in a row; an empty query is skipped.
type step[R any] struct {
	query string
	set   func(*R, float64)
}

// collect runs the steps' queries, all at time at, and hands each sample's value to its step's set, on the row that
// row picks for the sample's labels.
func collect[R any](ctx context.Context, q Querier, at time.Time, steps []step[R], row func(Sample) *R) error {
	for _, st := range steps {
		if st.query == "" {
			continue
		}
		samples, err := q.Query(ctx, st.query, at)
		if err != nil {
			return err
		}
		for _, s := range samples {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				continue // histogram_quantile over no traffic: no data, not a number to print
			}
			st.set(row(s), s.Value)
		}
	}
	return nil
}

// Edge is traffic seen between two resources, with the identities each side verified.
type Edge struct {
	SrcNamespace string `json:"srcNamespace"`
	Src          string `json:"src"`
	DstNamespace string `json:"dstNamespace"`
	Dst          string `json:"dst"`
	ClientID     string `json:"clientId"`
	ServerID     string `json:"serverId"`
	// Secured is true when the hop was mesh mTLS; otherwise NoTLSReason says why not (the proxy's tls label).
	Secured     bool   `json:"secured"`
	NoTLSReason string `json:"noTlsReason,omitempty"`
}

// Edges lists edges between resources of kind in namespace ns ("" for all) seen within window. The server identity
// is what the source's proxy verified; the client identity is what the destination's proxy verified, matched to the
// source by the SPIFFE ID's namespace and service account (the service account named like the source, or the only
// mTLS client from the source's namespace).
func Edges(ctx context.Context, q Querier, kind Kind, ns string, window time.Duration, at time.Time) ([]Edge, error) {
	if at.IsZero() {
		at = time.Now()
	}
	qs, err := promql.Edges(kind, ns, window)
	if err != nil {
		return nil, err
	}
	out, err := q.Query(ctx, qs.Outbound, at)
	if err != nil {
		return nil, err
	}
	in, err := q.Query(ctx, qs.Inbound, at)
	if err != nil {
		return nil, err
	}
	l, dl := kind.Label(), kind.DstLabel()
	clients := map[[2]string][]string{} // destination → mTLS client identities
	for _, s := range in {
		if s.Labels["tls"] == "true" && s.Labels["client_id"] != "" {
			k := [2]string{s.Labels["namespace"], s.Labels[l]}
			clients[k] = append(clients[k], s.Labels["client_id"])
		}
	}
	edges := map[[4]string]*Edge{}
	for _, s := range out {
		e := Edge{SrcNamespace: s.Labels["namespace"], Src: s.Labels[l], DstNamespace: s.Labels["dst_namespace"], Dst: s.Labels[dl]}
		if e.Dst == "" {
			continue // an unmeshed or external destination has no resource to draw an edge to
		}
		k := [4]string{e.SrcNamespace, e.Src, e.DstNamespace, e.Dst}
		prev, ok := edges[k]
		if !ok {
			prev = &e
			edges[k] = prev
			prev.Secured = true
		}
		// One plaintext series makes the edge unsecured: say so rather than hide it behind the mTLS traffic.
		if tls := s.Labels["tls"]; tls != "true" {
			prev.Secured, prev.NoTLSReason = false, tls
		} else if prev.ServerID == "" {
			prev.ServerID = s.Labels["server_id"]
		}
	}
	result := make([]Edge, 0, len(edges))
	for _, e := range edges {
		e.ClientID = matchClient(clients[[2]string{e.DstNamespace, e.Dst}], e.SrcNamespace, e.Src)
		result = append(result, *e)
	}
	slices.SortFunc(result, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.SrcNamespace, b.SrcNamespace), cmp.Compare(a.Src, b.Src),
			cmp.Compare(a.DstNamespace, b.DstNamespace), cmp.Compare(a.Dst, b.Dst))
	})
	return result, nil
}

func matchClient(ids []string, ns, name string) string {
	var sameNS []string
	for _, id := range ids {
		_, idNS, sa, err := meshtls.ParseID(id)
		if err != nil || idNS != ns {
			continue
		}
		if sa == name {
			return id
		}
		sameNS = append(sameNS, id)
	}
	if len(sameNS) == 1 {
		return sameNS[0]
	}
	return ""
}
