package routes

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// ControllerName is the controllerName of the route status the control plane writes.
const ControllerName gatewayv1.GatewayController = "sinew.dev/policy-controller"

// ReasonConflicted is the Accepted=False reason of a route that a route of the other kind overrides on its parent
// (Conflicts); the Gateway API defines none for this, and Linkerd uses this one.
const ReasonConflicted gatewayv1.RouteConditionReason = "RouteReasonConflicted"

// ParentStatuses is the status the control plane gives a route of either kind for each of its Service parents, in
// parentRef order: Accepted (True; False with NoMatchingParent for a Service or port that does not exist, or
// with RouteReasonConflicted when a route of the other kind applies there instead) and ResolvedRefs
// (True; False with InvalidKind or BackendNotFound for the first kind of backend that cannot be used, the message
// naming each). A Server parent (an inbound route, for per-route authorization) is Accepted when the Server
// exists, with ResolvedRefs True: such a route only matches requests. Conditions carry the route's
// generation and no transition time: the writer keeps the one already there while a condition's status does not
// change. Parents of other kinds are other controllers' and get no entry. It is pure.
func ParentStatuses(snap *model.Snapshot, rt *api.Route) []gatewayv1.RouteParentStatus {
	resolved := ResolvedRefs(snap, rt, nil)
	resolved.ObservedGeneration = rt.Generation
	conflicts := Conflicts(snap, rt)
	var out []gatewayv1.RouteParentStatus
	for i, p := range rt.ParentRefs {
		if api.ParentIsServer(p) {
			out = append(out, serverParentStatus(snap, rt, p))
			continue
		}
		if !api.ParentIsService(p) {
			continue
		}
		accepted := accepted(snap, rt, p, conflicts[i])
		accepted.ObservedGeneration = rt.Generation
		out = append(out, gatewayv1.RouteParentStatus{
			ParentRef:      p,
			ControllerName: ControllerName,
			Conditions:     []metav1.Condition{accepted, resolved},
		})
	}
	return out
}

// serverParentStatus is the status of a route for a Server parent.
func serverParentStatus(snap *model.Snapshot, rt *api.Route, p gatewayv1.ParentReference) gatewayv1.RouteParentStatus {
	accepted := condition(gatewayv1.RouteConditionAccepted, false, gatewayv1.RouteReasonNoMatchingParent,
		fmt.Sprintf("Server %s does not exist in namespace %s", p.Name, rt.Namespace))
	if p.Namespace != nil && string(*p.Namespace) != rt.Namespace {
		accepted.Message = fmt.Sprintf("Server %s/%s is in another namespace: a route authorizes requests to Servers of its own namespace only", *p.Namespace, p.Name)
	} else {
		for _, srv := range snap.Policies().Servers {
			if srv.Metadata.Namespace == rt.Namespace && srv.Metadata.Name == string(p.Name) {
				msg := "Accepted: an inbound route of the Server, for its authorization policy"
				if ignored := inboundIgnored(rt); ignored != "" {
					msg += "; " + ignored
				}
				accepted = condition(gatewayv1.RouteConditionAccepted, true, gatewayv1.RouteReasonAccepted, msg)
				break
			}
		}
	}
	accepted.ObservedGeneration = rt.Generation
	resolved := condition(gatewayv1.RouteConditionResolvedRefs, true, gatewayv1.RouteReasonResolvedRefs, "Resolved all references")
	resolved.ObservedGeneration = rt.Generation
	return gatewayv1.RouteParentStatus{ParentRef: p, ControllerName: ControllerName, Conditions: []metav1.Condition{accepted, resolved}}
}

// inboundIgnored says what an inbound route's rules hold that inbound routing does not apply.
func inboundIgnored(rt *api.Route) string {
	for _, r := range rt.Rules {
		if len(r.Filters) > 0 || len(r.BackendRefs) > 0 {
			return "its filters and backendRefs are not applied to inbound requests"
		}
	}
	return ""
}

func condition(t gatewayv1.RouteConditionType, ok bool, reason gatewayv1.RouteConditionReason, msg string) metav1.Condition {
	status := metav1.ConditionTrue
	if !ok {
		status = metav1.ConditionFalse
	}
	return metav1.Condition{Type: string(t), Status: status, Reason: string(reason), Message: msg}
}

func accepted(snap *model.Snapshot, rt *api.Route, p gatewayv1.ParentReference, conflicts []Conflict) metav1.Condition {
	no := func(reason gatewayv1.RouteConditionReason, format string, args ...any) metav1.Condition {
		return condition(gatewayv1.RouteConditionAccepted, false, reason, fmt.Sprintf(format, args...))
	}
	if why := missingParent(snap, rt, p); why != "" {
		return no(gatewayv1.RouteReasonNoMatchingParent, "%s", why)
	}
	if len(conflicts) > 0 {
		return no(ReasonConflicted, "%s", conflictMessage(conflicts))
	}
	msg := "Accepted"
	if problems := FilterProblems(snap, rt); len(problems) > 0 {
		msg += "; " + strings.Join(problems, "; ")
	}
	return condition(gatewayv1.RouteConditionAccepted, true, gatewayv1.RouteReasonAccepted, msg)
}

// FilterProblems says what of the route's filters the proxies cannot apply (their requests fail) or leave out (a
// mirror whose backend is unusable), as the translation says it: for the Accepted condition's message.
func FilterProblems(snap *model.Snapshot, rt *api.Route) []string {
	t := translator{snap: snap, rt: rt}
	for i, r := range rt.Rules {
		t.filters(fmt.Sprintf("spec.rules[%d].filters", i), r.Filters, "the rule's requests get "+t.answer(t.filterStatus()))
		for j, b := range r.BackendRefs {
			t.filters(fmt.Sprintf("spec.rules[%d].backendRefs[%d].filters", i, j), b.Filters, "the backend's share gets "+t.answer(t.filterStatus()))
		}
	}
	return t.problems
}

// ResolvedRefs is the ResolvedRefs condition of the route's backends, which depends on the kind of parent only
// through refPermitted: whether a backendRef may name a Service of another namespace (nil: always, as for a mesh
// route; a Gateway's routes need a ReferenceGrant, else RefNotPermitted). Of several failures, the reason is
// the gravest kind's (InvalidKind, RefNotPermitted, BackendNotFound) and the message names each. It carries no
// generation.
func ResolvedRefs(snap *model.Snapshot, rt *api.Route, refPermitted func(namespace, name string) bool) metav1.Condition {
	var (
		reason gatewayv1.RouteConditionReason
		msgs   []string
	)
	rank := map[gatewayv1.RouteConditionReason]int{gatewayv1.RouteReasonInvalidKind: 3, gatewayv1.RouteReasonRefNotPermitted: 2,
		gatewayv1.RouteReasonBackendNotFound: 1}
	fail := func(r gatewayv1.RouteConditionReason, field, format string, args ...any) {
		if rank[r] > rank[reason] {
			reason = r
		}
		msgs = append(msgs, field+": "+fmt.Sprintf(format, args...))
	}
	for i, r := range rt.Rules {
		for j, b := range r.BackendRefs {
			field := fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j)
			ns := rt.Namespace
			if b.Namespace != nil {
				ns = string(*b.Namespace)
			}
			if !api.BackendIsService(b.BackendObjectReference) {
				fail(gatewayv1.RouteReasonInvalidKind, field, "backends of kind %s are not supported", backendKind(b.BackendObjectReference))
				continue
			}
			name := string(b.Name)
			if ns != rt.Namespace {
				name = ns + "/" + name // mesh routes need no ReferenceGrant (GEP-1294)
				if refPermitted != nil && !refPermitted(ns, string(b.Name)) {
					fail(gatewayv1.RouteReasonRefNotPermitted, field, "no ReferenceGrant in namespace %s allows %ss of namespace %s to refer to Service %s",
						ns, rt.Kind, rt.Namespace, b.Name)
					continue
				}
			}
			svc, ok := snap.Service(ns, string(b.Name))
			if !ok {
				fail(gatewayv1.RouteReasonBackendNotFound, field, "Service %s does not exist", name)
				continue
			}
			if b.Port != nil {
				if _, ok := svc.Port(uint16(*b.Port)); !ok {
					fail(gatewayv1.RouteReasonBackendNotFound, field, "Service %s has no port %d", name, *b.Port)
				}
			}
		}
	}
	if reason == "" {
		return condition(gatewayv1.RouteConditionResolvedRefs, true, gatewayv1.RouteReasonResolvedRefs, "Resolved all references")
	}
	return condition(gatewayv1.RouteConditionResolvedRefs, false, reason,
		strings.Join(msgs, "; ")+"; requests for these backends get "+Answer(rt.Kind, backendStatus(rt.Kind)))
}

// backendKind names a backendRef's kind as Kind.group, or Kind for the core group.
func backendKind(b gatewayv1.BackendObjectReference) string {
	g, k := "", api.KindService
	if b.Group != nil {
		g = string(*b.Group)
	}
	if b.Kind != nil {
		k = string(*b.Kind)
	}
	if g == "" {
		return k
	}
	return k + "." + g
}
