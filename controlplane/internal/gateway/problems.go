package gateway

import (
	"fmt"
	"slices"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/names"
)

// Problems lists, sorted, what sinew's Gateways cannot serve as written: Gateways of class sinew whose
// GatewayClass does not exist, what a Gateway does not support, listeners that are not served (and why: an
// unsupported protocol, a conflict, a certificate that does not resolve) or that ignore route kinds, parentRefs
// of routes that attach to no listener of a sinew Gateway, and what the rules of routes attached to them cannot
// honour. Each line starts with "Gateway namespace/name:" or "HTTPRoute namespace/name:" (GRPCRoute).
func Problems(snap *model.Snapshot, clusterDomain string) []string {
	var out []string
	for _, gw := range snap.Gateways() {
		prefix := fmt.Sprintf("Gateway %s/%s: ", gw.Namespace, gw.Name)
		if !Ours(snap, gw) {
			if _, ok := snap.GatewayClass(string(gw.Spec.GatewayClassName)); !ok && gw.Spec.GatewayClassName == names.GatewayClass {
				out = append(out, prefix+fmt.Sprintf("GatewayClass %s does not exist (sinew install creates it); nothing serves the Gateway", names.GatewayClass))
			}
			continue
		}
		ev := evaluate(snap, gw)
		if acc := gatewayAccepted(ev); acc.Reason != string(gatewayv1.GatewayReasonAccepted) && acc.Reason != string(gatewayv1.GatewayReasonListenersNotValid) {
			out = append(out, prefix+acc.Message)
		}
		for _, l := range ev.listeners {
			switch {
			case !l.programmable():
				out = append(out, prefix+l.describe()+": "+l.problem()+"; not served")
			case l.refsReason != "":
				out = append(out, prefix+l.describe()+": "+l.refsMessage+"; ignored")
			}
		}
	}
	for _, rt := range snap.Routes() {
		prefix := fmt.Sprintf("%s %s/%s: ", rt.Kind, rt.Namespace, rt.Name)
		attached := false
		for _, p := range RouteParents(snap, rt) {
			if !p.Accepted {
				out = append(out, prefix+fmt.Sprintf("spec.parentRefs[%d]: %s; not attached", p.Index, p.Message))
			}
			attached = attached || p.Accepted
		}
		if !attached {
			continue
		}
		_, problems := routes.Gateway(snap, rt, clusterDomain, nil, backendPermitted(snap, rt))
		for _, p := range problems {
			out = append(out, prefix+p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Parent is how one parentRef of a route that names a sinew Gateway attaches.
type Parent struct {
	// Index is the parentRef's position in spec.parentRefs.
	Index int
	// Accepted: the route attaches to Listeners (their names); else Reason and Message say why not.
	Accepted        bool
	Reason, Message string
	Listeners       []string
}

// RouteParents resolves each parentRef of rt that names a sinew Gateway, in parentRef order.
func RouteParents(snap *model.Snapshot, rt *api.Route) []Parent {
	var out []Parent
	parents, evs := gatewayParents(snap, rt)
	for k, res := range parents {
		p := Parent{Index: res.index, Accepted: res.accepted, Reason: res.reason, Message: res.message}
		for _, a := range res.attachments {
			p.Listeners = append(p.Listeners, string(evs[k].listeners[a.listener].spec.Name))
		}
		out = append(out, p)
	}
	return out
}
