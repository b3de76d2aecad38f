// Package promql builds the PromQL that viz runs against Prometheus for `stat`, `edges`, `routes` and `authz`. It is
// pure: requests in, query strings out, so the exact queries are golden-tested. It must not talk to Prometheus.
//
// Label contract (docs/observability/viz.md): every proxy scrape target carries the target labels `namespace`,
// `deployment` and `pod` of the workload the proxy serves (added by Prometheus at scrape time), and the proxy's own
// metrics carry `dst_namespace`, `dst_deployment`, `dst_pod` on outbound traffic.
package promql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ProxyJob is the Prometheus job name of the proxies' scrape targets; `up{job=ProxyJob}` counts meshed pods.
const ProxyJob = "sinew-proxy"

// Kind is a resource kind viz can group by.
type Kind string

// The resource kinds.
const (
	KindDeployment Kind = "deployment"
	KindPod        Kind = "pod"
	KindNamespace  Kind = "namespace"
	// KindService is a Service: the parent of HTTPRoutes and GRPCRoutes. Only `routes` takes it (as the resource
	// or --to): the proxies label route traffic by parent Service, the golden metrics by workload.
	KindService Kind = "service"
)

// ParseKind accepts Linkerd's spellings and their short forms. "workload" is a deployment; "all" is deployments.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "deployment", "deployments", "deploy", "workload", "workloads", "all":
		return KindDeployment, nil
	case "pod", "pods", "po":
		return KindPod, nil
	case "namespace", "namespaces", "ns":
		return KindNamespace, nil
	case "service", "services", "svc":
		return KindService, nil
	}
	return "", fmt.Errorf("unknown resource type %q (want deployment, workload, pod, namespace, service or all)", s)
}

// Label is the target label that holds a resource of this kind's name.
func (k Kind) Label() string { return string(k) }

// DstLabel is the outbound metric label that holds the destination's name of this kind.
func (k Kind) DstLabel() string { return "dst_" + string(k) }

// Resource names a resource, or all resources of a kind when Name is empty. Namespace "" means every namespace.
type Resource struct {
	Kind      Kind
	Namespace string
	Name      string
}

// ParseResource reads "kind", "kind/name" in namespace ns.
func ParseResource(s, ns string) (Resource, error) {
	kindStr, name, _ := strings.Cut(s, "/")
	k, err := ParseKind(kindStr)
	if err != nil {
		return Resource{}, err
	}
	if strings.Contains(name, "/") {
		return Resource{}, fmt.Errorf("resource %q: want TYPE or TYPE/NAME", s)
	}
	r := Resource{Kind: k, Namespace: ns, Name: name}
	if k == KindNamespace && name != "" {
		r.Namespace = name
	}
	return r, nil
}

// StatRequest is what `stat` asks for.
type StatRequest struct {
	Resource Resource
	// From and To, when set, restrict to traffic from that resource into Resource, or from Resource to that one.
	// At most one of them.
	From, To *Resource
	Window   time.Duration
}

// Validate reports a request that cannot be turned into queries.
func (r StatRequest) Validate() error {
	for _, res := range []*Resource{&r.Resource, r.From, r.To} {
		if res != nil && res.Kind == KindService {
			return errServiceRoutesOnly
		}
	}
	if r.From != nil && r.To != nil {
		return fmt.Errorf("--from and --to cannot be used together")
	}
	if r.Window < time.Second {
		return fmt.Errorf("time window %s is too short (minimum 1s)", r.Window)
	}
	if r.Window%time.Second != 0 {
		return fmt.Errorf("time window %s must be whole seconds", r.Window)
	}
	return nil
}

// errServiceRoutesOnly refuses a Service where only workloads are measured.
var errServiceRoutesOnly = fmt.Errorf("services are shown by `routes` only (svc/NAME: its routes and their backends); use deploy/NAME here")

// StatQueries are the queries behind one `stat` table; each returns one series per resource, grouped by
// GroupLabels.
type StatQueries struct {
	// GroupLabels identify a row: the namespace label and the kind's label (src or dst side, see below).
	NamespaceLabel, NameLabel string

	Meshed, Pods          string // up == 1 targets, and all targets, per resource
	Success, Total        string // response rates; success rate = Success / Total, RPS = Total
	P50, P95, P99         string
	TCPConns              string
	ReadBytes, WriteBytes string
}

// Stat builds the queries for req. Without --from/--to the resource's inbound traffic is measured at its own proxies
// (what it serves); with --to, its outbound traffic to that resource; with --from, the outbound traffic of that
// resource into this one (rows are then keyed by the destination labels).
func Stat(req StatRequest) (StatQueries, error) {
	if err := req.Validate(); err != nil {
		return StatQueries{}, err
	}
	res := req.Resource
	w := formatWindow(req.Window)
	var q StatQueries
	var sel selector
	direction := "inbound"
	q.NamespaceLabel, q.NameLabel = "namespace", res.Kind.Label()
	if req.From != nil {
		direction = "outbound"
		sel.add(req.From.Kind.Label(), req.From.Name)
		sel.add("namespace", req.From.Namespace)
		q.NamespaceLabel, q.NameLabel = "dst_namespace", res.Kind.DstLabel()
	}
	sel.add(q.NameLabel, res.Name)
	sel.add(q.NamespaceLabel, res.Namespace)
	if req.To != nil {
		direction = "outbound"
		sel.add(req.To.Kind.DstLabel(), req.To.Name)
		sel.add("dst_namespace", req.To.Namespace)
	}
	by := groupBy(q.NamespaceLabel, q.NameLabel)
	traffic := append(selector{{"direction", direction}}, sel...)
	rate := func(metric string, extra ...matcher) string {
		return fmt.Sprintf("rate(%s%s[%s])", metric, append(append(selector{}, traffic...), extra...), w)
	}
	q.Total = fmt.Sprintf("sum by (%s) (%s)", by, rate("response_total"))
	q.Success = fmt.Sprintf("sum by (%s) (%s)", by, rate("response_total", matcher{"classification", "success"}))
	quantile := func(p string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (le, %s) (%s))", p, by, rate("response_latency_ms_bucket"))
	}
	q.P50, q.P95, q.P99 = quantile("0.5"), quantile("0.95"), quantile("0.99")
	// The accepted side of an inbound connection is peer="src"; the dialed side of an outbound one is peer="dst".
	peer := matcher{"peer", "src"}
	if direction == "outbound" {
		peer = matcher{"peer", "dst"}
	}
	q.TCPConns = fmt.Sprintf("sum by (%s) (tcp_open_connections%s)", by, append(append(selector{}, traffic...), peer))
	q.ReadBytes = fmt.Sprintf("sum by (%s) (%s)", by, rate("tcp_read_bytes_total", peer))
	q.WriteBytes = fmt.Sprintf("sum by (%s) (%s)", by, rate("tcp_write_bytes_total", peer))
	if req.From == nil {
		// Meshed pods of the resource (not meaningful for rows keyed by destination labels).
		up := append(selector{{"job", ProxyJob}}, sel...)
		if req.To != nil {
			up = append(selector{{"job", ProxyJob}}, matchersFor(res)...)
		}
		q.Meshed = fmt.Sprintf("sum by (%s) (up%s)", by, up)
		q.Pods = fmt.Sprintf("count by (%s) (up%s)", by, up)
	}
	return q, nil
}

// EdgeQueries are the two sides of `edges`: what each source's proxies sent (with the server identity they verified)
// and what each destination's proxies accepted (with the client identity they verified).
type EdgeQueries struct {
	Kind              Kind
	Outbound, Inbound string
}

// Edges builds the edge queries for resources of kind in namespace ns ("" for all).
func Edges(kind Kind, ns string, window time.Duration) (EdgeQueries, error) {
	if kind == KindNamespace || kind == KindService {
		return EdgeQueries{}, fmt.Errorf("edges are between deployments or pods, not %ss", kind)
	}
	if err := (StatRequest{Window: window}).Validate(); err != nil {
		return EdgeQueries{}, err
	}
	w := formatWindow(window)
	out := selector{{"direction", "outbound"}}
	in := selector{{"direction", "inbound"}}
	if ns != "" {
		// Outbound rows are kept when the source is in ns, inbound rows when the destination is.
		out = append(out, matcher{"namespace", ns})
		in = append(in, matcher{"namespace", ns})
	}
	l, dl := kind.Label(), kind.DstLabel()
	return EdgeQueries{
		Kind: kind,
		Outbound: fmt.Sprintf("sum by (namespace, %s, dst_namespace, %s, server_id, tls) (rate(request_total%s[%s])) > 0",
			l, dl, out, w),
		Inbound: fmt.Sprintf("sum by (namespace, %s, client_id, tls) (rate(request_total%s[%s])) > 0", l, in, w),
	}, nil
}

type matcher struct{ name, value string }

type selector []matcher

func (s *selector) add(name, value string) {
	if value != "" {
		*s = append(*s, matcher{name, value})
	}
}

func (s selector) String() string {
	if len(s) == 0 {
		return ""
	}
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = fmt.Sprintf("%s=%s", m.name, quote(m.value))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func matchersFor(r Resource) selector {
	var s selector
	s.add(r.Kind.Label(), r.Name)
	s.add("namespace", r.Namespace)
	return s
}

func groupBy(ns, name string) string {
	if ns == name {
		return ns
	}
	return ns + ", " + name
}

// escaper escapes what a PromQL double-quoted string cannot hold as is.
var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// quote renders a PromQL string literal; label values come from users, so escape rather than trust.
func quote(v string) string { return `"` + escaper.Replace(v) + `"` }

var durationRE = regexp.MustCompile(`^([0-9]+)(ms|s|m|h|d)$`)

// ParseWindow reads a time window as Linkerd's -t does ("30s", "1m", "2h") or as a Go duration.
func ParseWindow(s string) (time.Duration, error) {
	if m := durationRE.FindStringSubmatch(s); m != nil && m[2] == "d" {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return 0, fmt.Errorf("bad time window %q: %w", s, err)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad time window %q: want a duration like 30s, 1m or 1h", s)
	}
	return d, nil
}

// formatWindow renders whole seconds as PromQL's shortest unit.
func formatWindow(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	}
	return fmt.Sprintf("%ds", s)
}

// RoutesRequest is what `routes` asks for: the routes a resource serves, or with To, the routes it calls on To.
type RoutesRequest struct {
	Resource Resource
	To       *Resource
	Window   time.Duration
}

// Validate reports a request that cannot be turned into queries.
func (r RoutesRequest) Validate() error {
	if r.Resource.Name == "" {
		return fmt.Errorf("routes are shown for one resource, like deploy/web; %s names none", r.Resource.Kind)
	}
	if r.To != nil && r.To.Name == "" && r.To.Kind != KindNamespace && r.To.Kind != KindService {
		return fmt.Errorf("--to wants one resource, like deploy/voting (or svc: every Service it calls)")
	}
	if r.Resource.Kind == KindService && r.To != nil {
		return fmt.Errorf("svc/%s shows the Service's routes as all its clients call them; to see one client's, "+
			"ask for the client with --to svc/%s", r.Resource.Name, r.Resource.Name)
	}
	return StatRequest{Window: r.Window}.Validate()
}

// Service returns the Service whose routes the request asks for (the resource, or --to), if it names one; a
// Service without a name (--to svc) is every Service the resource calls.
func (r RoutesRequest) Service() (Resource, bool) {
	if r.Resource.Kind == KindService {
		return r.Resource, true
	}
	if r.To != nil && r.To.Kind == KindService {
		return *r.To, true
	}
	return Resource{}, false
}

// RouteQueries are the queries behind one `routes` table; each returns one series per row. A path row is keyed
// by RouteLabel and AuthorityLabel; a backend row (Backends) by RouteLabels (the route) and BackendLabels.
type RouteQueries struct {
	RouteLabel, AuthorityLabel string
	// Backends: the rows are a Service's routes and their backends, from the outbound_http_route_backend_*
	// families, keyed by RouteLabels and BackendLabels.
	Backends                   bool
	RouteLabels, BackendLabels []string
	Success, Total             string
	P50, P95, P99              string
}

// The route and backend labels of the outbound_http_route_backend_* families that a backend row is keyed by.
var (
	RouteKeyLabels   = []string{"parent_namespace", "parent_name", "route_kind", "route_namespace", "route_name"}
	BackendKeyLabels = []string{"backend_namespace", "backend_name", "backend_port"}
)

// Routes builds the route queries over the proxies' route_* metrics (docs/observability/metrics.md): without To,
// the resource's inbound traffic, measured at its own proxies; with To, its outbound traffic to that resource.
func Routes(req RoutesRequest) (RouteQueries, error) {
	if err := req.Validate(); err != nil {
		return RouteQueries{}, err
	}
	if svc, ok := req.Service(); ok {
		return backendRoutes(req, svc), nil
	}
	w := formatWindow(req.Window)
	direction := "inbound"
	var sel selector
	if req.Resource.Kind != KindNamespace {
		sel.add(req.Resource.Kind.Label(), req.Resource.Name)
	}
	sel.add("namespace", req.Resource.Namespace)
	if req.To != nil {
		direction = "outbound"
		if req.To.Kind != KindNamespace {
			sel.add(req.To.Kind.DstLabel(), req.To.Name)
		}
		sel.add("dst_namespace", req.To.Namespace)
	}
	traffic := append(selector{{"direction", direction}}, sel...)
	rate := func(metric string, extra ...matcher) string {
		return fmt.Sprintf("rate(%s%s[%s])", metric, append(append(selector{}, traffic...), extra...), w)
	}
	q := RouteQueries{RouteLabel: "rt_route", AuthorityLabel: "authority"}
	by := q.RouteLabel + ", " + q.AuthorityLabel
	q.Total = fmt.Sprintf("sum by (%s) (%s)", by, rate("route_response_total"))
	q.Success = fmt.Sprintf("sum by (%s) (%s)", by, rate("route_response_total", matcher{"classification", "success"}))
	quantile := func(p string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (le, %s) (%s))", p, by, rate("route_response_latency_ms_bucket"))
	}
	q.P50, q.P95, q.P99 = quantile("0.5"), quantile("0.95"), quantile("0.99")
	return q, nil
}

// backendRoutes builds the queries of svc's routes and backends over the outbound_http_route_backend_* families
// (docs/observability/metrics.md): as all clients call them, or with a client resource (req.Resource with --to
// svc/NAME), as that client calls them; with --to svc, every Service's that the client calls. Latencies are in milliseconds, like the path rows'.
func backendRoutes(req RoutesRequest, svc Resource) RouteQueries {
	w := formatWindow(req.Window)
	var sel selector
	sel.add("parent_name", svc.Name)
	sel.add("parent_namespace", svc.Namespace)
	if req.Resource.Kind != KindService {
		if req.Resource.Kind != KindNamespace {
			sel.add(req.Resource.Kind.Label(), req.Resource.Name)
		}
		sel.add("namespace", req.Resource.Namespace)
	}
	rate := func(metric string, extra ...matcher) string {
		return fmt.Sprintf("rate(%s%s[%s])", metric, append(append(selector{}, sel...), extra...), w)
	}
	q := RouteQueries{Backends: true, RouteLabels: RouteKeyLabels, BackendLabels: BackendKeyLabels}
	by := strings.Join(append(append([]string{}, RouteKeyLabels...), BackendKeyLabels...), ", ")
	const statuses = "outbound_http_route_backend_response_statuses_total"
	q.Total = fmt.Sprintf("sum by (%s) (%s)", by, rate(statuses))
	q.Success = fmt.Sprintf("sum by (%s) (%s)", by, rate(statuses, matcher{"classification", "success"}))
	quantile := func(p string) string {
		return fmt.Sprintf("1000 * histogram_quantile(%s, sum by (le, %s) (%s))", p, by,
			rate("outbound_http_route_backend_response_duration_seconds_bucket"))
	}
	q.P50, q.P95, q.P99 = quantile("0.5"), quantile("0.95"), quantile("0.99")
	return q
}

// AuthzRequest is what `authz` asks for: the authorization decisions at one resource's proxies.
type AuthzRequest struct {
	Resource Resource
	Window   time.Duration
}

// Validate reports a request that cannot be turned into queries.
func (r AuthzRequest) Validate() error {
	if r.Resource.Kind == KindService {
		return errServiceRoutesOnly
	}
	if r.Resource.Name == "" {
		return fmt.Errorf("authorizations are shown for one resource, like deploy/web; %s names none", r.Resource.Kind)
	}
	if r.Resource.Namespace == "" {
		return fmt.Errorf("authorizations are shown for a resource of one namespace: give -n, not -A")
	}
	return StatRequest{Window: r.Window}.Validate()
}

// The labels of the proxies' authorization metrics (docs/observability/metrics.md).
const (
	LabelTargetAddr = "target_addr"
	LabelSrvKind    = "srv_kind"
	LabelSrvName    = "srv_name"
	LabelAuthzKind  = "authz_kind"
	LabelAuthzName  = "authz_name"
	// LabelRouteName is the inbound route of an HTTP decision: an HTTPRoute on the Server, "default", "probe".
	LabelRouteName = "route_name"
)

// AuthzTargetLabels identify one application address of one pod: where a decision was made and where the same
// requests' response_* series are counted. The authorization metrics carry no direction (they are inbound only);
// the response metrics carry no server or authorization, so the two meet on these labels.
var AuthzTargetLabels = []string{"namespace", "pod", LabelTargetAddr}

// AuthzQueries are the queries behind one `authz` table.
type AuthzQueries struct {
	// HTTPAllow and HTTPDeny are request rates by target, server (and authorization, for HTTPAllow).
	HTTPAllow, HTTPDeny string
	// TCPAllow and TCPDeny are connection rates by server (and authorization, for TCPAllow).
	TCPAllow, TCPDeny string
	// Success and Total are inbound response rates by target; Buckets is their latency histogram by target and le.
	Success, Total, Buckets string
}

// Authz builds the authorization queries over the proxies' inbound_{http,tcp}_authz_{allow,deny}_total and the
// inbound response metrics of the same resource.
func Authz(req AuthzRequest) (AuthzQueries, error) {
	if err := req.Validate(); err != nil {
		return AuthzQueries{}, err
	}
	w := formatWindow(req.Window)
	var sel selector
	if req.Resource.Kind != KindNamespace {
		sel.add(req.Resource.Kind.Label(), req.Resource.Name)
	}
	sel.add("namespace", req.Resource.Namespace)
	target := strings.Join(AuthzTargetLabels, ", ")
	server := LabelSrvKind + ", " + LabelSrvName
	authz := server + ", " + LabelAuthzKind + ", " + LabelAuthzName
	sum := func(by, metric string, s selector) string {
		return fmt.Sprintf("sum by (%s) (rate(%s%s[%s]))", by, metric, s, w)
	}
	inbound := append(selector{{"direction", "inbound"}}, sel...)
	return AuthzQueries{
		HTTPAllow: sum(target+", "+authz+", "+LabelRouteName, "inbound_http_authz_allow_total", sel),
		HTTPDeny:  sum(target+", "+server+", "+LabelRouteName, "inbound_http_authz_deny_total", sel),
		TCPAllow:  sum(authz, "inbound_tcp_authz_allow_total", sel),
		TCPDeny:   sum(server, "inbound_tcp_authz_deny_total", sel),
		Total:     sum(target, "response_total", inbound),
		Success:   sum(target, "response_total", append(append(selector{}, inbound...), matcher{"classification", "success"})),
		Buckets:   sum("le, "+target, "response_latency_ms_bucket", inbound),
	}, nil
}
