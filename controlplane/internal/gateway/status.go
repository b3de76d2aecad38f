package gateway

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/names"
)

// ControllerName is the controllerName of the route parent status the gateway controller writes for its
// Gateways (names.GatewayController).
const ControllerName gatewayv1.GatewayController = names.GatewayController

// Conditions here carry the object's generation and no transition time: the status writer keeps the live one
// while a condition's status stays, and sets it when the status changes (metav1.Condition requires one).

// ClassConditions are the status conditions of a sinew GatewayClass: Accepted (False with InvalidParameters
// when it has a parametersRef: sinew's gateway takes no parameters) and SupportedVersion.
func ClassConditions(c *gatewayv1.GatewayClass) []metav1.Condition {
	accepted := condition(gatewayv1.GatewayClassConditionStatusAccepted, true, gatewayv1.GatewayClassReasonAccepted,
		"Accepted by "+names.GatewayController, c.Generation)
	if c.Spec.ParametersRef != nil {
		accepted = condition(gatewayv1.GatewayClassConditionStatusAccepted, false, gatewayv1.GatewayClassReasonInvalidParameters,
			"parametersRef is not supported: sinew's gateway takes no parameters", c.Generation)
	}
	return []metav1.Condition{accepted,
		condition(gatewayv1.GatewayClassConditionStatusSupportedVersion, true, gatewayv1.GatewayClassReasonSupportedVersion,
			"Gateway API version supported", c.Generation)}
}

// Infrastructure is what the controller knows of the proxies that serve a Gateway (its Deployment and Service).
type Infrastructure struct {
	// Ready: the gateway's proxies are running and ready (its Deployment has available replicas).
	Ready bool
	// Reason and Message explain a Programmed condition of False when not Ready; default Pending.
	Reason, Message string
	// Addresses are where clients reach the gateway (its Service's), for status.addresses.
	Addresses []gatewayv1.GatewayStatusAddress
}

// Status is the status of a sinew Gateway: its conditions (Accepted; Programmed from infra), addresses (infra's)
// and, for each listener in spec order, its conditions (Accepted, Conflicted, ResolvedRefs, Programmed), its
// supported kinds and the number of routes attached to it (Accepted routes, whether or not the listener is
// valid). It says nothing about a Gateway that is not sinew's: callers check Ours.
func Status(snap *model.Snapshot, gw *gatewayv1.Gateway, infra Infrastructure) gatewayv1.GatewayStatus {
	c := attached(snap, gw)
	ev, routes := c.ev, c.ra
	gen := gw.Generation
	out := gatewayv1.GatewayStatus{Addresses: infra.Addresses}

	accepted := gatewayAccepted(ev)
	accepted.ObservedGeneration = gen
	programmed := condition(gatewayv1.GatewayConditionProgrammed, true, gatewayv1.GatewayReasonProgrammed, "Programmed: its proxies are ready", gen)
	switch {
	case accepted.Status != metav1.ConditionTrue:
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonInvalid, "the Gateway is not accepted", gen)
	case !infra.Ready:
		reason, msg := infra.Reason, infra.Message
		if reason == "" {
			reason = string(gatewayv1.GatewayReasonPending)
		}
		if msg == "" {
			msg = "waiting for its proxies to be ready"
		}
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayConditionReason(reason), msg, gen)
	}
	out.Conditions = []metav1.Condition{accepted, programmed}

	for i, l := range ev.listeners {
		ls := gatewayv1.ListenerStatus{Name: l.spec.Name, SupportedKinds: l.supportedKinds, AttachedRoutes: int32(len(routes.byListener[i]))}
		if ls.SupportedKinds == nil {
			ls.SupportedKinds = []gatewayv1.RouteGroupKind{}
		}
		acc := condition(gatewayv1.ListenerConditionAccepted, true, gatewayv1.ListenerReasonAccepted, "Accepted", gen)
		if !l.accepted {
			acc = condition(gatewayv1.ListenerConditionAccepted, false, gatewayv1.ListenerConditionReason(l.acceptedReason), l.acceptedMessage, gen)
		}
		conf := condition(gatewayv1.ListenerConditionConflicted, false, gatewayv1.ListenerReasonNoConflicts, "No conflicts", gen)
		if l.conflictReason != "" {
			conf = condition(gatewayv1.ListenerConditionConflicted, true, gatewayv1.ListenerConditionReason(l.conflictReason), l.conflictMessage, gen)
		}
		refs := condition(gatewayv1.ListenerConditionResolvedRefs, true, gatewayv1.ListenerReasonResolvedRefs, "Resolved all references", gen)
		if l.refsReason != "" {
			refs = condition(gatewayv1.ListenerConditionResolvedRefs, false, gatewayv1.ListenerConditionReason(l.refsReason), l.refsMessage, gen)
		}
		prog := condition(gatewayv1.ListenerConditionProgrammed, true, gatewayv1.ListenerReasonProgrammed, "Programmed", gen)
		switch {
		case !l.programmable():
			prog = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid, "not served: "+l.problem(), gen)
		case accepted.Status != metav1.ConditionTrue:
			prog = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid, "not served: the Gateway is not accepted", gen)
		case !infra.Ready:
			prog = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonPending, "waiting for the gateway's proxies to be ready", gen)
		}
		ls.Conditions = []metav1.Condition{acc, conf, refs, prog}
		out.Listeners = append(out.Listeners, ls)
	}
	return out
}

// gatewayAccepted is a Gateway's Accepted condition, without generation: False for what sinew's gateway does
// not support (static addresses, infrastructure parameters) or when no listener can be served; True with
// ListenersNotValid when some cannot.
func gatewayAccepted(ev *evaluation) metav1.Condition {
	gw := ev.gw
	if len(gw.Spec.Addresses) > 0 {
		return condition(gatewayv1.GatewayConditionAccepted, false, gatewayv1.GatewayReasonUnsupportedAddress,
			"spec.addresses is not supported: the gateway's Service assigns its address", 0)
	}
	if inf := gw.Spec.Infrastructure; inf != nil && inf.ParametersRef != nil {
		return condition(gatewayv1.GatewayConditionAccepted, false, gatewayv1.GatewayReasonInvalidParameters,
			"spec.infrastructure.parametersRef is not supported: sinew's gateway takes no parameters", 0)
	}
	var invalid []string
	for _, l := range ev.listeners {
		if !l.programmable() {
			invalid = append(invalid, fmt.Sprintf("%s: %s", l.describe(), l.problem()))
		}
	}
	switch {
	case len(invalid) == 0:
		return condition(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonAccepted, "Accepted", 0)
	case len(invalid) == len(ev.listeners):
		return condition(gatewayv1.GatewayConditionAccepted, false, gatewayv1.GatewayReasonListenersNotValid,
			"no listener can be served: "+strings.Join(invalid, "; "), 0)
	}
	return condition(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonListenersNotValid,
		"some listeners cannot be served: "+strings.Join(invalid, "; "), 0)
}

// problem says why a listener cannot be served ("" when it can).
func (l *listener) problem() string {
	switch {
	case !l.accepted:
		return l.acceptedMessage
	case l.conflictReason != "":
		return l.conflictMessage
	case l.certsInvalid:
		return l.refsMessage
	}
	return ""
}

// RouteParentStatuses is the status a route of either kind gets for each of its parentRefs that names a sinew
// Gateway, in parentRef order, under ControllerName: Accepted (True when it attaches to at least one listener;
// False with NoMatchingParent when no listener has the sectionName or port, NotAllowedByListeners when the
// listeners' allowedRoutes do not admit its kind or namespace, NoMatchingListenerHostname when none of its
// hostnames intersects theirs, RouteReasonConflicted when an older route of the other kind with the same
// hostnames takes every listener it selects) and ResolvedRefs (routes.ResolvedRefs: InvalidKind, RefNotPermitted for a
// backend in another namespace without a ReferenceGrant, BackendNotFound). ParentRefs to Gateways that the model
// does not hold or that are not sinew's get no entry: they are not this controller's.
func RouteParentStatuses(snap *model.Snapshot, rt *api.Route) []gatewayv1.RouteParentStatus {
	parents, _ := gatewayParents(snap, rt)
	if len(parents) == 0 {
		return nil
	}
	resolved := routes.ResolvedRefs(snap, rt, backendPermitted(snap, rt))
	resolved.ObservedGeneration = rt.Generation
	out := make([]gatewayv1.RouteParentStatus, 0, len(parents))
	for _, res := range parents {
		accepted := condition(gatewayv1.RouteConditionAccepted, false, gatewayv1.RouteConditionReason(res.reason), res.message, rt.Generation)
		if res.accepted {
			msg := "Accepted"
			if problems := routes.FilterProblems(snap, rt); len(problems) > 0 {
				msg += "; " + strings.Join(problems, "; ")
			}
			accepted = condition(gatewayv1.RouteConditionAccepted, true, gatewayv1.RouteReasonAccepted, msg, rt.Generation)
		}
		out = append(out, gatewayv1.RouteParentStatus{
			ParentRef:      rt.ParentRefs[res.index],
			ControllerName: ControllerName,
			Conditions:     []metav1.Condition{accepted, resolved},
		})
	}
	return out
}
