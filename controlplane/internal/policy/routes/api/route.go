package api

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route is an HTTPRoute or a GRPCRoute as the translations read it, so that attaching, backends, filters, failures
// and status are written once for both kinds. A GRPCRoute's filters and backendRefs are given in HTTPRoute's
// types: its filter types are a subset of HTTPRoute's, with the same fields. Only the matches differ.
type Route struct {
	Kind string
	*metav1.ObjectMeta
	ParentRefs []gatewayv1.ParentReference
	// Hostnames are the host names the route serves on a Gateway listener (mesh routes ignore them).
	Hostnames []gatewayv1.Hostname
	Rules     []Rule
}

// Rule is one rule of a Route. HTTPMatches are an HTTPRoute rule's matches, GRPCMatches a GRPCRoute rule's; a
// rule with neither matches every request. Timeouts and Retry are HTTPRoute's only.
type Rule struct {
	HTTPMatches        []gatewayv1.HTTPRouteMatch
	GRPCMatches        []gatewayv1.GRPCRouteMatch
	Filters            []gatewayv1.HTTPRouteFilter
	BackendRefs        []gatewayv1.HTTPBackendRef
	Timeouts           *gatewayv1.HTTPRouteTimeouts
	Retry              *gatewayv1.HTTPRouteRetry
	SessionPersistence *gatewayv1.SessionPersistence
}

// Key is "namespace/name".
func (r *Route) Key() string { return r.Namespace + "/" + r.Name }

// FromHTTP is an HTTPRoute's Route. It shares the route's fields: never modify either.
func FromHTTP(rt *HTTPRoute) *Route {
	out := &Route{Kind: KindHTTPRoute, ObjectMeta: &rt.ObjectMeta, ParentRefs: rt.Spec.ParentRefs, Hostnames: rt.Spec.Hostnames}
	for _, r := range rt.Spec.Rules {
		out.Rules = append(out.Rules, Rule{HTTPMatches: r.Matches, Filters: r.Filters, BackendRefs: r.BackendRefs,
			Timeouts: r.Timeouts, Retry: r.Retry, SessionPersistence: r.SessionPersistence})
	}
	return out
}

// FromGRPC is a GRPCRoute's Route. It shares the route's fields: never modify either.
func FromGRPC(rt *GRPCRoute) *Route {
	out := &Route{Kind: KindGRPCRoute, ObjectMeta: &rt.ObjectMeta, ParentRefs: rt.Spec.ParentRefs, Hostnames: rt.Spec.Hostnames}
	for _, r := range rt.Spec.Rules {
		out.Rules = append(out.Rules, Rule{GRPCMatches: r.Matches, Filters: HTTPFilters(r.Filters),
			BackendRefs: grpcBackends(r.BackendRefs), SessionPersistence: r.SessionPersistence})
	}
	return out
}

// Older orders routes as the Gateway API breaks ties between them: the oldest first (creation timestamp), then
// by namespace/name, then (a name both kinds use) by kind: GRPCRoute, then HTTPRoute.
func Older(a, b *Route) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Key(), b.Key()); c != 0 {
		return c
	}
	return strings.Compare(a.Kind, b.Kind)
}
