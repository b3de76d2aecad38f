// Package routes translates Gateway API HTTPRoutes and GRPCRoutes whose parent is a Service (GAMMA mesh routes)
// into the outbound policy routes that clients' proxies enforce. Both kinds are read through api.Route, so that
// attaching, backends, filters and failures are one piece of code; only the matches differ (a gRPC method becomes
// a path match). It is pure: model in, proto out. It does not decide what a target is (destination.ServiceOf
// does), nor the Service's annotation defaults (the parent package does; they come in as a template rule), and it
// never drops what it cannot honour silently: such a part makes its requests fail (500, or UNAVAILABLE for a
// GRPCRoute's backend), as the Gateway API says for an invalid backend, and is listed by Problems.
package routes

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Route labels, on each HttpRoute: what the proxy's /debug/config and sinew diagnostics show, and what its route
// metrics carry as route_kind, route_name and route_namespace (outbound_http_route_backend_*), and its inbound
// authorization metrics as route_name.
const (
	LabelKind      = "kind"
	LabelName      = "name"
	LabelNamespace = "namespace"
)

// FailureStatus is what a request gets when its rule or backend cannot be honoured: a backend that does not
// resolve, or a filter the proxies cannot apply yet (Gateway API: 500 for an invalid backend's share).
// GRPCFailureStatus is what the share of a GRPCRoute's invalid backend gets instead: the proxies answer gRPC
// requests with the gRPC status of the HTTP one, and 503 is UNAVAILABLE, which the Gateway API asks for there.
const (
	FailureStatus     = 500
	GRPCFailureStatus = 503
)

// Outbound is the routes attached to port sp of svc for a client in namespace clientNamespace ("" when unknown):
// the consumer routes of the client's namespace when it has any (GEP-1294: routes in the client's namespace
// whose parent is a Service of another namespace; they apply to that namespace's clients only), else the producer
// routes (in the Service's namespace, for every client). They come in the order that breaks precedence ties
// (oldest route first, then by namespace/name; rules in their order; the proxy ranks matches by Gateway API
// precedence and keeps this order among equals). Of HTTPRoutes and GRPCRoutes on the same port, only the kind of
// the oldest applies (Conflicts). defaults is a rule holding the Service's annotation defaults: a rule gets each
// of its retry and timeouts unless the route sets it (a timeout of "0s" included, which means none). nil when no
// route attaches: the target keeps its default route.
func Outbound(snap *model.Snapshot, svc *model.Service, sp model.ServicePort, clusterDomain, clientNamespace string, defaults *policyv1.RouteRule) []*policyv1.HttpRoute {
	var out []*policyv1.HttpRoute
	for _, rt := range attached(snap, svc, sp, clientNamespace) {
		t := translator{snap: snap, rt: rt, clusterDomain: clusterDomain}
		out = append(out, t.route(svc, sp, defaults))
	}
	return out
}

// attached is the routes that apply to port sp of svc for a client in clientNamespace, oldest first: the client
// namespace's consumer routes, else the producer routes; of those, only the routes of the oldest one's kind.
func attached(snap *model.Snapshot, svc *model.Service, sp model.ServicePort, clientNamespace string) []*api.Route {
	var producer, consumer []*api.Route
	for _, rt := range snap.Routes() {
		isConsumer := clientNamespace != "" && clientNamespace != svc.Namespace && rt.Namespace == clientNamespace
		if rt.Namespace != svc.Namespace && !isConsumer {
			continue
		}
		if !attaches(rt, svc, sp) {
			continue
		}
		if isConsumer {
			consumer = append(consumer, rt)
		} else {
			producer = append(producer, rt)
		}
	}
	if len(consumer) > 0 {
		producer = consumer
	}
	if len(producer) == 0 {
		return nil
	}
	kind := producer[0].Kind
	return slices.DeleteFunc(producer, func(rt *api.Route) bool { return rt.Kind != kind })
}

// Conflict is a route that attaches to a Service port where a route of the other kind, older, applies: the
// Gateway API lets only one kind attach (GRPCRoute: of an HTTPRoute and a GRPCRoute on one listener, "exactly
// one" is accepted, the oldest, then the first by namespace/name); sinew reads a Service port as that listener.
// Routes conflict only within one namespace: a producer route with producer routes, a consumer route with the
// consumer routes of its namespace.
type Conflict struct {
	Port   uint16
	Winner *api.Route
}

// Conflicts lists, for each parentRef of rt (by index), the ports of its Service where a route of the other kind
// applies instead of rt.
func Conflicts(snap *model.Snapshot, rt *api.Route) map[int][]Conflict {
	var out map[int][]Conflict
	for i, p := range rt.ParentRefs {
		if !api.ParentIsService(p) {
			continue
		}
		svc, ok := snap.Service(parentNamespace(rt, p), string(p.Name))
		if !ok {
			continue
		}
		for _, sp := range svc.Ports {
			if !attachesRef(rt, p, svc, sp) {
				continue
			}
			// The oldest route of rt's namespace on this port decides the kind.
			for _, other := range snap.Routes() {
				if other.Namespace != rt.Namespace || !attaches(other, svc, sp) {
					continue
				}
				if other.Kind != rt.Kind {
					if out == nil {
						out = map[int][]Conflict{}
					}
					out[i] = append(out[i], Conflict{Port: sp.Port, Winner: other})
				}
				break
			}
		}
	}
	return out
}

// attaches reports whether one of the route's parentRefs names port sp of svc.
func attaches(rt *api.Route, svc *model.Service, sp model.ServicePort) bool {
	for _, p := range rt.ParentRefs {
		if attachesRef(rt, p, svc, sp) {
			return true
		}
	}
	return false
}

// attachesRef reports whether parentRef p of rt names port sp of svc. A parentRef without a port (or
// sectionName) takes every port.
func attachesRef(rt *api.Route, p gatewayv1.ParentReference, svc *model.Service, sp model.ServicePort) bool {
	if !api.ParentIsService(p) || string(p.Name) != svc.Name || parentNamespace(rt, p) != svc.Namespace {
		return false
	}
	if p.Port != nil && uint16(*p.Port) != sp.Port {
		return false
	}
	return p.SectionName == nil || string(*p.SectionName) == sp.Name
}

func parentNamespace(rt *api.Route, p gatewayv1.ParentReference) string {
	if p.Namespace != nil {
		return string(*p.Namespace)
	}
	return rt.Namespace
}

// Labels are the labels of a route's HttpRoute.
func Labels(rt *api.Route) map[string]string {
	return map[string]string{LabelKind: rt.Kind, LabelName: rt.Name, LabelNamespace: rt.Namespace}
}

// Gateway is the HttpRoute of rt on a Gateway listener (an ingress route), serving hostnames there (already
// intersected with the listener's), and what of it cannot be honoured. Its rules translate as a mesh route's,
// with two differences: a backendRef to another namespace needs refPermitted to allow it (a ReferenceGrant
// there; Gateway API), else its share gets 500; and a rule without backendRefs has no parent Service to fall
// back on, so its requests get 500 unless a redirect answers them.
func Gateway(snap *model.Snapshot, rt *api.Route, clusterDomain string, hostnames []string, refPermitted func(namespace, name string) bool) (*policyv1.HttpRoute, []string) {
	t := translator{snap: snap, rt: rt, clusterDomain: clusterDomain, gateway: true, refPermitted: refPermitted}
	out := t.route(nil, model.ServicePort{}, nil)
	out.Hostnames = hostnames
	return out, t.problems
}

// translator translates one route, collecting what it cannot honour.
type translator struct {
	snap          *model.Snapshot
	rt            *api.Route
	clusterDomain string
	problems      []string
	// gateway: the route is translated for a Gateway listener, where a rule without backends has nowhere to go.
	gateway bool
	// refPermitted says whether a backendRef may name a Service of another namespace; nil: always (mesh routes
	// need no ReferenceGrant, GEP-1294).
	refPermitted func(namespace, name string) bool
}

func (t *translator) problem(field, format string, args ...any) {
	t.problems = append(t.problems, field+": "+fmt.Sprintf(format, args...))
}

// failure is a filter that answers every request with status, saying why.
func (t *translator) failure(status uint32, why string) *policyv1.Filter {
	return &policyv1.Filter{Kind: &policyv1.Filter_FailureInjector_{FailureInjector: &policyv1.Filter_FailureInjector{
		Status:  status,
		Message: fmt.Sprintf("%s %s/%s: %s", t.rt.Kind, t.rt.Namespace, t.rt.Name, why),
		Ratio:   1,
	}}}
}

// backendStatus is what the share of a backend that cannot be used gets: 500, or UNAVAILABLE (503) for a
// GRPCRoute's; filterStatus what the requests of a filter the proxies cannot apply get (500; gRPC INTERNAL).
func (t *translator) backendStatus() uint32 { return backendStatus(t.rt.Kind) }

func backendStatus(kind string) uint32 {
	if kind == api.KindGRPCRoute {
		return GRPCFailureStatus
	}
	return FailureStatus
}

func (t *translator) filterStatus() uint32 { return FailureStatus }

// answer names what a client gets for status, as problems say it: "500", or the gRPC status for a GRPCRoute.
func (t *translator) answer(status uint32) string {
	return Answer(t.rt.Kind, status)
}

// Answer names what a client of a route of kind gets when the proxy answers status: "500", or for a GRPCRoute
// the gRPC status the proxies send for it ("gRPC UNAVAILABLE").
func Answer(kind string, status uint32) string {
	if kind != api.KindGRPCRoute {
		return strconv.Itoa(int(status))
	}
	if status == GRPCFailureStatus {
		return "gRPC UNAVAILABLE"
	}
	return "gRPC INTERNAL"
}

func (t *translator) route(parent *model.Service, sp model.ServicePort, defaults *policyv1.RouteRule) *policyv1.HttpRoute {
	out := &policyv1.HttpRoute{Labels: Labels(t.rt)}
	for i, r := range t.rt.Rules {
		out.Rules = append(out.Rules, t.rule(fmt.Sprintf("spec.rules[%d]", i), r, parent, sp, defaults))
	}
	if len(out.Rules) == 0 {
		// A route without rules sends everything to its parent, as one rule with neither matches nor backends.
		out.Rules = append(out.Rules, t.rule("spec.rules", api.Rule{}, parent, sp, defaults))
	}
	return out
}

func (t *translator) rule(field string, r api.Rule, parent *model.Service, sp model.ServicePort, defaults *policyv1.RouteRule) *policyv1.RouteRule {
	out := &policyv1.RouteRule{Matches: Matches(r)}
	out.Filters = t.filters(field+".filters", r.Filters, "the rule's requests get "+t.answer(t.filterStatus()))
	for i, b := range r.BackendRefs {
		out.Backends = append(out.Backends, t.backend(fmt.Sprintf("%s.backendRefs[%d]", field, i), b, weightShare(r.BackendRefs, i)))
	}
	if len(r.BackendRefs) > 0 && totalWeight(r.BackendRefs) == 0 {
		// Every weight is 0: no backend may get traffic, so none of the rule's requests can be served.
		t.problem(field+".backendRefs", "every weight is 0; the rule's requests get %s", t.answer(t.backendStatus()))
		out.Filters = []*policyv1.Filter{t.failure(t.backendStatus(), field+".backendRefs: every weight is 0")}
	}
	if len(r.BackendRefs) == 0 && parent != nil {
		// No backendRefs: the requests go to the parent Service itself (GAMMA; as Linkerd does).
		out.Backends = []*policyv1.WeightedBackend{{Authority: t.authority(parent.Name, parent.Namespace, sp.Port), Weight: 1}}
	}
	if len(r.BackendRefs) == 0 && t.gateway && !redirects(r.Filters) {
		// A gateway has no parent Service to send them to.
		t.problem(field+".backendRefs", "none, and no redirect; the rule's requests get %s", t.answer(t.backendStatus()))
		out.Filters = append(out.Filters, t.failure(t.backendStatus(), field+": no backendRefs"))
	}

	requestSet, backendSet := false, false
	if to := r.Timeouts; to != nil {
		if to.Request != nil {
			requestSet = true
			out.RequestTimeout = t.duration(field+".timeouts.request", *to.Request)
		}
		if to.BackendRequest != nil {
			backendSet = true
			out.BackendRequestTimeout = t.duration(field+".timeouts.backendRequest", *to.BackendRequest)
		}
	}
	if rt := r.Retry; rt != nil {
		out.Retry = t.retry(field+".retry", rt)
	}
	if r.SessionPersistence != nil {
		t.problem(field+".sessionPersistence", "not supported yet; requests are balanced without it")
	}
	if defaults != nil {
		if r.Retry == nil && defaults.Retry != nil {
			out.Retry = proto.CloneOf(defaults.Retry)
		}
		if !requestSet && defaults.RequestTimeout != nil {
			out.RequestTimeout = proto.CloneOf(defaults.RequestTimeout)
		}
		if !backendSet && defaults.BackendRequestTimeout != nil {
			out.BackendRequestTimeout = proto.CloneOf(defaults.BackendRequestTimeout)
		}
		if defaults.IdleTimeout != nil {
			out.IdleTimeout = proto.CloneOf(defaults.IdleTimeout)
		}
	}
	return out
}

// redirects reports whether the filters answer every request with a redirect.
func redirects(fs []gatewayv1.HTTPRouteFilter) bool {
	return slices.ContainsFunc(fs, func(f gatewayv1.HTTPRouteFilter) bool { return f.Type == gatewayv1.HTTPRouteFilterRequestRedirect })
}

// weightShare describes backendRefs[i]'s share of its rule's requests, for problems: "10 of 100".
func weightShare(refs []gatewayv1.HTTPBackendRef, i int) string {
	return fmt.Sprintf("%d of %d", weight(refs[i]), totalWeight(refs))
}

func totalWeight(refs []gatewayv1.HTTPBackendRef) uint64 {
	var total uint64
	for _, b := range refs {
		total += uint64(weight(b))
	}
	return total
}

func weight(b gatewayv1.HTTPBackendRef) uint32 {
	if b.Weight == nil {
		return 1
	}
	return uint32(max(*b.Weight, 0))
}

// Matches are a rule's matches in the contract's form, for either kind. Inbound routes (a route whose parent is
// a Server, which the authz translation turns into InboundServer.routes) use them alone: their rules match
// requests for authorization and carry no backends.
func Matches(r api.Rule) []*policyv1.HttpMatch {
	out := make([]*policyv1.HttpMatch, 0, len(r.HTTPMatches)+len(r.GRPCMatches))
	for _, m := range r.HTTPMatches {
		out = append(out, match(m))
	}
	for _, m := range r.GRPCMatches {
		out = append(out, grpcMatch(m))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// grpcMatch translates a GRPCRoute match into a match on the request's path, /service/method, which is how gRPC
// names the method it calls; the method is POST, so it is not matched. With Exact: a service and a method are
// the exact path; a service alone is the prefix /service/ (every method of that service: the proxy compares
// prefixes by path element, so /pkg.Svc/ does not take /pkg.Svc2/X); a method alone is a regular expression
// (any service). With RegularExpression, the path is matched by /(service)/(method), an omitted part taking
// any name. The proxy's ranking then gives GRPCRoute's precedence: a service and method (exact path) over a
// service (prefix), over a method alone or an expression, over no method; then more headers. A match without a
// method has no path condition.
func grpcMatch(m gatewayv1.GRPCRouteMatch) *policyv1.HttpMatch {
	out := &policyv1.HttpMatch{}
	if mm := m.Method; mm != nil {
		var service, method string
		if mm.Service != nil {
			service = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		regex := mm.Type != nil && *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression
		switch {
		case regex:
			part := func(expr string) string {
				if expr == "" {
					return "[^/]+"
				}
				return "(?:" + expr + ")"
			}
			out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Regex{Regex: "/" + part(service) + "/" + part(method)}}
		case service != "" && method != "":
			out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Exact{Exact: "/" + service + "/" + method}}
		case service != "":
			out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: "/" + service + "/"}}
		case method != "":
			out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Regex{Regex: "/[^/]+/" + regexp.QuoteMeta(method)}}
		}
	}
	for _, h := range m.Headers {
		hm := &policyv1.HttpMatch_HeaderMatch{Name: string(h.Name)}
		if h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression {
			hm.Value = &policyv1.HttpMatch_HeaderMatch_Regex{Regex: h.Value}
		} else {
			hm.Value = &policyv1.HttpMatch_HeaderMatch_Exact{Exact: h.Value}
		}
		out.Headers = append(out.Headers, hm)
	}
	return out
}

// match translates one match; an omitted path is the prefix "/", an omitted match type Exact.
func match(m gatewayv1.HTTPRouteMatch) *policyv1.HttpMatch {
	out := &policyv1.HttpMatch{}
	kind, value := gatewayv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		if m.Path.Type != nil {
			kind = *m.Path.Type
		}
		if m.Path.Value != nil {
			value = *m.Path.Value
		}
	}
	switch kind {
	case gatewayv1.PathMatchExact:
		out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Exact{Exact: value}}
	case gatewayv1.PathMatchRegularExpression:
		out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Regex{Regex: value}}
	default:
		out.Path = &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: value}}
	}
	for _, h := range m.Headers {
		hm := &policyv1.HttpMatch_HeaderMatch{Name: string(h.Name)}
		if h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression {
			hm.Value = &policyv1.HttpMatch_HeaderMatch_Regex{Regex: h.Value}
		} else {
			hm.Value = &policyv1.HttpMatch_HeaderMatch_Exact{Exact: h.Value}
		}
		out.Headers = append(out.Headers, hm)
	}
	for _, q := range m.QueryParams {
		qm := &policyv1.HttpMatch_QueryParamMatch{Name: string(q.Name)}
		if q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression {
			qm.Value = &policyv1.HttpMatch_QueryParamMatch_Regex{Regex: q.Value}
		} else {
			qm.Value = &policyv1.HttpMatch_QueryParamMatch_Exact{Exact: q.Value}
		}
		out.QueryParams = append(out.QueryParams, qm)
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out
}

// filters translates a rule's or backend's filters. A filter the proxies cannot apply (CORS, ExternalAuth, an
// ExtensionRef to anything but an existing HTTPFault) makes the requests it would have changed fail instead of
// going on without it: the result is then a single failure filter. A mirror whose backend cannot be used is left
// out: the requests themselves are unaffected.
func (t *translator) filters(field string, fs []gatewayv1.HTTPRouteFilter, consequence string) []*policyv1.Filter {
	var out []*policyv1.Filter
	for i, f := range fs {
		ff := fmt.Sprintf("%s[%d]", field, i)
		unsupported := func(why string) []*policyv1.Filter {
			t.problem(ff, "%s; %s", why, consequence)
			return []*policyv1.Filter{t.failure(t.filterStatus(), fmt.Sprintf("%s: %s", ff, why))}
		}
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_RequestHeaderModifier{RequestHeaderModifier: headerModifier(f.RequestHeaderModifier)}})
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_ResponseHeaderModifier{ResponseHeaderModifier: headerModifier(f.ResponseHeaderModifier)}})
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_Redirect_{Redirect: redirectFilter(f.RequestRedirect)}})
		case gatewayv1.HTTPRouteFilterURLRewrite:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_UrlRewrite_{UrlRewrite: rewriteFilter(f.URLRewrite)}})
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if m := t.mirror(ff+".requestMirror", f.RequestMirror); m != nil {
				out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_Mirror_{Mirror: m}})
			}
		case gatewayv1.HTTPRouteFilterExtensionRef:
			fault, why := t.fault(f.ExtensionRef)
			if why != "" {
				return unsupported(why)
			}
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_Fault_{Fault: fault}})
		default:
			return unsupported(fmt.Sprintf("filter %s is not supported yet", f.Type))
		}
	}
	return out
}

func redirectFilter(r *gatewayv1.HTTPRequestRedirectFilter) *policyv1.Filter_Redirect {
	out := &policyv1.Filter_Redirect{Status: 302}
	if r == nil {
		return out
	}
	if r.Scheme != nil {
		out.Scheme = *r.Scheme
	}
	if r.Hostname != nil {
		out.Host = string(*r.Hostname)
	}
	if r.Port != nil {
		out.Port = uint32(*r.Port)
	}
	if r.StatusCode != nil {
		out.Status = uint32(*r.StatusCode)
	}
	out.PathModifier = pathModifier(r.Path)
	return out
}

func rewriteFilter(r *gatewayv1.HTTPURLRewriteFilter) *policyv1.Filter_UrlRewrite {
	out := &policyv1.Filter_UrlRewrite{}
	if r == nil {
		return out
	}
	if r.Hostname != nil {
		out.Host = string(*r.Hostname)
	}
	out.Path = pathModifier(r.Path)
	return out
}

func pathModifier(m *gatewayv1.HTTPPathModifier) *policyv1.Filter_PathModifier {
	switch {
	case m == nil:
		return nil
	case m.Type == gatewayv1.PrefixMatchHTTPPathModifier && m.ReplacePrefixMatch != nil:
		return &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Prefix{Prefix: *m.ReplacePrefixMatch}}
	case m.Type == gatewayv1.FullPathHTTPPathModifier && m.ReplaceFullPath != nil:
		return &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Full{Full: *m.ReplaceFullPath}}
	}
	return nil
}

// mirror translates a RequestMirror; nil (with a problem) when its backend cannot be used.
func (t *translator) mirror(field string, m *gatewayv1.HTTPRequestMirrorFilter) *policyv1.Filter_Mirror {
	if m == nil {
		return nil
	}
	b := m.BackendRef
	ns, port := t.backendRef(b)
	if why := t.unusableBackend(b, ns, port); why != "" {
		t.problem(field+".backendRef", "%s; requests are not mirrored", why)
		return nil
	}
	ratio := 1.0
	switch {
	case m.Percent != nil:
		ratio = float64(*m.Percent) / 100
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den > 0 {
			ratio = float64(m.Fraction.Numerator) / float64(den)
		}
	}
	return &policyv1.Filter_Mirror{Authority: t.authority(string(b.Name), ns, port), Ratio: min(max(ratio, 0), 1)}
}

// fault translates an ExtensionRef to an HTTPFault of the route's namespace; why says what is wrong otherwise.
func (t *translator) fault(ref *gatewayv1.LocalObjectReference) (*policyv1.Filter_Fault, string) {
	if ref == nil {
		return nil, "an ExtensionRef filter without extensionRef"
	}
	if string(ref.Group) != authzapi.Group || string(ref.Kind) != authzapi.KindHTTPFault {
		return nil, fmt.Sprintf("ExtensionRef to kind %s (group %q) is not supported; only %s (group %s)", ref.Kind, ref.Group, authzapi.KindHTTPFault, authzapi.Group)
	}
	for _, f := range t.snap.Policies().HTTPFaults {
		if f.Metadata.Namespace == t.rt.Namespace && f.Metadata.Name == string(ref.Name) {
			return FaultFilter(f), ""
		}
	}
	return nil, fmt.Sprintf("%s %s/%s does not exist", authzapi.KindHTTPFault, t.rt.Namespace, ref.Name)
}

// FaultFilter is an HTTPFault in the contract's form.
func FaultFilter(f *authzapi.HTTPFault) *policyv1.Filter_Fault {
	out := &policyv1.Filter_Fault{}
	if m := f.Spec.MaxActiveFaults; m != nil {
		out.MaxActive = uint32(*m)
	}
	if a := f.Spec.Abort; a != nil {
		out.Abort = &policyv1.Filter_Fault_Abort{Ratio: authzapi.Ratio(a.Percentage), HttpStatus: 500}
		if a.HTTPStatus != nil {
			out.Abort.HttpStatus = uint32(*a.HTTPStatus)
		}
		if a.GRPCStatus != nil {
			out.Abort.GrpcCode, _ = authzapi.GRPCCode(*a.GRPCStatus) // validated
		}
	}
	if d := f.Spec.Delay; d != nil {
		v, _ := time.ParseDuration(d.FixedDelay) // validated
		out.Delay = &policyv1.Filter_Fault_Delay{Fixed: durationpb.New(v), Ratio: authzapi.Ratio(d.Percentage)}
	}
	return out
}

func headerModifier(h *gatewayv1.HTTPHeaderFilter) *policyv1.Filter_HeaderModifier {
	out := &policyv1.Filter_HeaderModifier{}
	if h == nil {
		return out
	}
	for _, s := range h.Set {
		if out.Set == nil {
			out.Set = map[string]string{}
		}
		out.Set[string(s.Name)] = s.Value
	}
	for _, a := range h.Add {
		if out.Add == nil {
			out.Add = map[string]string{}
		}
		out.Add[string(a.Name)] = a.Value
	}
	out.Remove = slices.Clone(h.Remove)
	return out
}

// backend translates one backendRef: a Service of any namespace (mesh routes need no ReferenceGrant, GEP-1294).
// One the proxies cannot send to (not a Service, a Service or port that does not exist) keeps its weight, and its
// share gets 500.
func (t *translator) backend(field string, b gatewayv1.HTTPBackendRef, share string) *policyv1.WeightedBackend {
	ns, port := t.backendRef(b.BackendObjectReference)
	out := &policyv1.WeightedBackend{Authority: t.authority(string(b.Name), ns, port), Weight: weight(b)}
	if why := t.unusableBackend(b.BackendObjectReference, ns, port); why != "" {
		t.problem(field, "%s; its share of the rule's requests (%s) gets %s", why, share, t.answer(t.backendStatus()))
		out.Filters = []*policyv1.Filter{t.failure(t.backendStatus(), field+": "+why)}
		return out
	}
	out.Filters = t.filters(field+".filters", b.Filters,
		fmt.Sprintf("its share of the rule's requests (%s) gets %s", share, t.answer(t.filterStatus())))
	return out
}

// backendRef is the namespace (the route's unless b names one) and port of a backend reference.
func (t *translator) backendRef(b gatewayv1.BackendObjectReference) (ns string, port uint16) {
	ns = t.rt.Namespace
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	if b.Port != nil {
		port = uint16(*b.Port)
	}
	return ns, port
}

// unusableBackend says why the proxies cannot send to b (port of a Service in namespace ns); "" when they can.
func (t *translator) unusableBackend(b gatewayv1.BackendObjectReference, ns string, port uint16) string {
	if !api.BackendIsService(b) {
		group, kind := "", api.KindService
		if b.Group != nil {
			group = string(*b.Group)
		}
		if b.Kind != nil {
			kind = string(*b.Kind)
		}
		return fmt.Sprintf("backends of kind %s (group %q) are not supported", kind, group)
	}
	name := string(b.Name)
	if ns != t.rt.Namespace {
		name = ns + "/" + name
		if t.refPermitted != nil && !t.refPermitted(ns, string(b.Name)) {
			return fmt.Sprintf("no ReferenceGrant in namespace %s allows %ss of namespace %s to refer to Service %s", ns, t.rt.Kind, t.rt.Namespace, b.Name)
		}
	}
	svc, ok := t.snap.Service(ns, string(b.Name))
	if !ok {
		return fmt.Sprintf("Service %s does not exist", name)
	}
	if _, ok := svc.Port(port); !ok {
		return fmt.Sprintf("Service %s has no port %d", name, port)
	}
	return ""
}

// authority is the name a proxy resolves for port of a Service.
func (t *translator) authority(name, namespace string, port uint16) string {
	return name + "." + namespace + ".svc." + t.clusterDomain + ":" + strconv.Itoa(int(port))
}

// duration translates a timeout; "0s" is none (nil). Validation has checked the syntax.
func (t *translator) duration(field string, d gatewayv1.Duration) *durationpb.Duration {
	v, err := api.ParseDuration(d)
	if err != nil {
		t.problem(field, "%v; no timeout", err)
		return nil
	}
	if v == 0 {
		return nil
	}
	return durationpb.New(v)
}

// retry translates a route's retry: attempts (default 1) are the retries after the first attempt, on the listed
// statuses. The proxies retry at once, within their retry budget: a backoff is not honoured yet.
func (t *translator) retry(field string, r *gatewayv1.HTTPRouteRetry) *policyv1.Retry {
	out := &policyv1.Retry{Limit: 1}
	if r.Attempts != nil {
		out.Limit = uint32(max(*r.Attempts, 0))
	}
	for _, c := range r.Codes {
		out.StatusCodes = append(out.StatusCodes, uint32(c))
	}
	if r.Backoff != nil {
		if d, err := api.ParseDuration(*r.Backoff); err == nil && d > 0 {
			t.problem(field+".backoff", "a backoff (%s) is not supported yet; retries are sent at once", time.Duration(d))
		}
	}
	if out.Limit == 0 {
		return nil
	}
	return out
}
