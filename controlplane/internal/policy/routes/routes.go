// Package routes translates Gateway API HTTPRoutes whose parent is a Service (GAMMA mesh routes) into the
// outbound policy routes that clients' proxies enforce. It is pure: model in, proto out. It does not decide what
// a target is (destination.ServiceOf does), nor the Service's annotation defaults (the parent package does; they
// come in as a template rule), and it never drops what it cannot honour silently: such a part makes its requests
// fail with 500, as the Gateway API says for an invalid backend, and is listed by Problems.
package routes

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Route labels, on each HttpRoute: what the proxy's /debug/config and sinew diagnostics show, and what its route
// metrics are to carry as route_kind, route_name and route_namespace (the proxy does not export them yet).
const (
	LabelKind      = "kind"
	LabelName      = "name"
	LabelNamespace = "namespace"
)

// FailureStatus is what a request gets when its rule or backend cannot be honoured: a backend that does not
// resolve, or a filter the proxies cannot apply yet (Gateway API: 500 for an invalid backend's share).
const FailureStatus = 500

// Outbound is the routes attached to port sp of svc for a client in namespace clientNamespace ("" when unknown):
// the consumer routes of the client's namespace when it has any (GEP-1294: routes in the client's namespace
// whose parent is a Service of another namespace; they apply to that namespace's clients only), else the producer
// routes (in the Service's namespace, for every client). They come in the order that breaks precedence ties
// (oldest route first, then by namespace/name; rules in their order; the proxy ranks matches by Gateway API
// precedence and keeps this order among equals). defaults is a rule holding the Service's annotation defaults:
// a rule gets each of its retry and timeouts unless the route sets it (a timeout of "0s" included, which means
// none). nil when no route attaches: the target keeps its default route.
func Outbound(snap *model.Snapshot, svc *model.Service, sp model.ServicePort, clusterDomain, clientNamespace string, defaults *policyv1.RouteRule) []*policyv1.HttpRoute {
	var producer, consumer []*policyv1.HttpRoute
	for _, rt := range snap.HTTPRoutes() {
		isConsumer := clientNamespace != "" && clientNamespace != svc.Namespace && rt.Namespace == clientNamespace
		if rt.Namespace != svc.Namespace && !isConsumer {
			continue
		}
		if !attaches(rt, svc, sp) {
			continue
		}
		t := translator{snap: snap, rt: rt, clusterDomain: clusterDomain}
		if isConsumer {
			consumer = append(consumer, t.route(svc, sp, defaults))
		} else {
			producer = append(producer, t.route(svc, sp, defaults))
		}
	}
	if len(consumer) > 0 {
		return consumer
	}
	return producer
}

// attaches reports whether one of the route's parentRefs names port sp of svc. A parentRef without a port (or
// sectionName) takes every port.
func attaches(rt *api.HTTPRoute, svc *model.Service, sp model.ServicePort) bool {
	for _, p := range rt.Spec.ParentRefs {
		if !api.ParentIsService(p) || string(p.Name) != svc.Name || parentNamespace(rt, p) != svc.Namespace {
			continue
		}
		if p.Port != nil && uint16(*p.Port) != sp.Port {
			continue
		}
		if p.SectionName != nil && string(*p.SectionName) != sp.Name {
			continue
		}
		return true
	}
	return false
}

func parentNamespace(rt *api.HTTPRoute, p gatewayv1.ParentReference) string {
	if p.Namespace != nil {
		return string(*p.Namespace)
	}
	return rt.Namespace
}

// Labels are the labels of a route's HttpRoute.
func Labels(rt *api.HTTPRoute) map[string]string {
	return map[string]string{LabelKind: api.KindHTTPRoute, LabelName: rt.Name, LabelNamespace: rt.Namespace}
}

// translator translates one route, collecting what it cannot honour.
type translator struct {
	snap          *model.Snapshot
	rt            *api.HTTPRoute
	clusterDomain string
	problems      []string
}

func (t *translator) problem(field, format string, args ...any) {
	t.problems = append(t.problems, field+": "+fmt.Sprintf(format, args...))
}

// failure is a filter that answers every request with FailureStatus, saying why.
func (t *translator) failure(why string) *policyv1.Filter {
	return &policyv1.Filter{Kind: &policyv1.Filter_FailureInjector_{FailureInjector: &policyv1.Filter_FailureInjector{
		Status:  FailureStatus,
		Message: fmt.Sprintf("HTTPRoute %s/%s: %s", t.rt.Namespace, t.rt.Name, why),
		Ratio:   1,
	}}}
}

func (t *translator) route(parent *model.Service, sp model.ServicePort, defaults *policyv1.RouteRule) *policyv1.HttpRoute {
	out := &policyv1.HttpRoute{Labels: Labels(t.rt)}
	for i, r := range t.rt.Spec.Rules {
		out.Rules = append(out.Rules, t.rule(fmt.Sprintf("spec.rules[%d]", i), r, parent, sp, defaults))
	}
	if len(out.Rules) == 0 {
		// A route without rules sends everything to its parent, as one rule with neither matches nor backends.
		out.Rules = append(out.Rules, t.rule("spec.rules", gatewayv1.HTTPRouteRule{}, parent, sp, defaults))
	}
	return out
}

func (t *translator) rule(field string, r gatewayv1.HTTPRouteRule, parent *model.Service, sp model.ServicePort, defaults *policyv1.RouteRule) *policyv1.RouteRule {
	out := &policyv1.RouteRule{}
	for _, m := range r.Matches {
		out.Matches = append(out.Matches, match(m))
	}
	out.Filters = t.filters(field+".filters", r.Filters, "the rule's requests get 500")
	for i, b := range r.BackendRefs {
		out.Backends = append(out.Backends, t.backend(fmt.Sprintf("%s.backendRefs[%d]", field, i), b, weightShare(r.BackendRefs, i)))
	}
	if len(r.BackendRefs) > 0 && totalWeight(r.BackendRefs) == 0 {
		// Every weight is 0: no backend may get traffic, so none of the rule's requests can be served.
		t.problem(field+".backendRefs", "every weight is 0; the rule's requests get 500")
		out.Filters = []*policyv1.Filter{t.failure(field + ".backendRefs: every weight is 0")}
	}
	if len(r.BackendRefs) == 0 && parent != nil {
		// No backendRefs: the requests go to the parent Service itself (GAMMA; as Linkerd does).
		out.Backends = []*policyv1.WeightedBackend{{Authority: t.authority(parent.Name, parent.Namespace, sp.Port), Weight: 1}}
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

// filters translates a rule's or backend's filters. The header modifiers become the proxy's; any other filter
// cannot be applied yet, so the requests it would have changed fail instead of going on without it: the result
// is then a single failure filter.
func (t *translator) filters(field string, fs []gatewayv1.HTTPRouteFilter, consequence string) []*policyv1.Filter {
	var out []*policyv1.Filter
	for i, f := range fs {
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_RequestHeaderModifier{RequestHeaderModifier: headerModifier(f.RequestHeaderModifier)}})
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			out = append(out, &policyv1.Filter{Kind: &policyv1.Filter_ResponseHeaderModifier{ResponseHeaderModifier: headerModifier(f.ResponseHeaderModifier)}})
		default:
			ff := fmt.Sprintf("%s[%d]", field, i)
			t.problem(ff, "filter %s is not supported yet; %s", f.Type, consequence)
			return []*policyv1.Filter{t.failure(fmt.Sprintf("%s: filter %s is not supported yet", ff, f.Type))}
		}
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
	ns := t.rt.Namespace
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	var port uint16
	if b.Port != nil {
		port = uint16(*b.Port)
	}
	out := &policyv1.WeightedBackend{Authority: t.authority(string(b.Name), ns, port), Weight: weight(b)}
	consequence := fmt.Sprintf("its share of the rule's requests (%s) gets 500", share)
	fail := func(why string) *policyv1.WeightedBackend {
		t.problem(field, "%s; %s", why, consequence)
		out.Filters = []*policyv1.Filter{t.failure(field + ": " + why)}
		return out
	}
	if !api.BackendIsService(b.BackendObjectReference) {
		group, kind := "", api.KindService
		if b.Group != nil {
			group = string(*b.Group)
		}
		if b.Kind != nil {
			kind = string(*b.Kind)
		}
		return fail(fmt.Sprintf("backends of kind %s (group %q) are not supported", kind, group))
	}
	name := string(b.Name)
	if ns != t.rt.Namespace {
		name = ns + "/" + name
	}
	svc, ok := t.snap.Service(ns, string(b.Name))
	if !ok {
		return fail(fmt.Sprintf("Service %s does not exist", name))
	}
	if _, ok := svc.Port(port); !ok {
		return fail(fmt.Sprintf("Service %s has no port %d", name, port))
	}
	out.Filters = t.filters(field+".filters", b.Filters, consequence)
	return out
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
