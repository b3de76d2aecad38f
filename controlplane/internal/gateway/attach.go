package gateway

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// attachment is a route attached to one listener, serving hostnames there (the intersection of the route's
// and the listener's; empty when neither names any).
type attachment struct {
	rt        *api.Route
	listener  int
	hostnames []string
}

// translate is the attachment's HttpRoute, its rules translated as a mesh route's (routes.Gateway).
func (a attachment) translate(snap *model.Snapshot, clusterDomain string) *policyv1.HttpRoute {
	out, _ := routes.Gateway(snap, a.rt, clusterDomain, a.hostnames, backendPermitted(snap, a.rt))
	return out
}

// backendPermitted says whether rt may send to a Service of another namespace: a ReferenceGrant there allows
// routes of its kind and namespace to refer to it.
func backendPermitted(snap *model.Snapshot, rt *api.Route) func(namespace, name string) bool {
	return func(namespace, name string) bool {
		return refPermitted(snap, api.Group, rt.Kind, rt.Namespace, "", api.KindService, namespace, name)
	}
}

// parent is one parentRef of a route that names a Gateway, resolved against that Gateway's listeners.
type parent struct {
	// index is the parentRef's position in the route's parentRefs.
	index int
	ref   gatewayv1.ParentReference
	// accepted: the route attaches to at least one listener; else reason (NoMatchingParent,
	// NotAllowedByListeners, NoMatchingListenerHostname) and message say why.
	accepted        bool
	reason, message string
	attachments     []attachment
}

// namesGateway reports whether parentRef p of rt names gw.
func namesGateway(rt *api.Route, p gatewayv1.ParentReference, gw *gatewayv1.Gateway) bool {
	ns := rt.Namespace
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	return api.ParentIsGateway(p) && string(p.Name) == gw.Name && ns == gw.Namespace
}

// attachParent resolves parentRef p (at index i) of rt, which names ev's Gateway: the listeners it selects
// (sectionName, port), of those the ones whose allowedRoutes admit the route's kind and namespace, and of those
// the ones whose hostname intersects the route's hostnames.
func attachParent(snap *model.Snapshot, ev *evaluation, rt *api.Route, i int, p gatewayv1.ParentReference) parent {
	out := parent{index: i, ref: p}
	var selected []int
	for j, l := range ev.listeners {
		if p.SectionName != nil && string(*p.SectionName) != string(l.spec.Name) {
			continue
		}
		if p.Port != nil && *p.Port != l.spec.Port {
			continue
		}
		selected = append(selected, j)
	}
	if len(selected) == 0 {
		out.reason = string(gatewayv1.RouteReasonNoMatchingParent)
		var what []string
		if p.SectionName != nil {
			what = append(what, fmt.Sprintf("named %q", *p.SectionName))
		}
		if p.Port != nil {
			what = append(what, fmt.Sprintf("on port %d", *p.Port))
		}
		out.message = fmt.Sprintf("Gateway %s/%s has no listener %s", ev.gw.Namespace, ev.gw.Name, strings.Join(what, " "))
		return out
	}
	var allowed []int
	var why []string
	for _, j := range selected {
		l := ev.listeners[j]
		if reason := admits(snap, ev.gw, l, rt); reason != "" {
			why = append(why, l.describe()+": "+reason)
			continue
		}
		allowed = append(allowed, j)
	}
	if len(allowed) == 0 {
		out.reason = string(gatewayv1.RouteReasonNotAllowedByListeners)
		out.message = strings.Join(why, "; ")
		return out
	}
	for _, j := range allowed {
		l := ev.listeners[j]
		hosts, ok := intersect(l.hostname(), rt.Hostnames)
		if !ok {
			why = append(why, fmt.Sprintf("%s serves %s", l.describe(), l.hostname()))
			continue
		}
		out.attachments = append(out.attachments, attachment{rt: rt, listener: j, hostnames: hosts})
	}
	if len(out.attachments) == 0 {
		out.reason = string(gatewayv1.RouteReasonNoMatchingListenerHostname)
		out.message = fmt.Sprintf("none of the route's hostnames (%s) is served by the listeners it may attach to: %s",
			joinHostnames(rt.Hostnames), strings.Join(why, "; "))
		return out
	}
	out.accepted = true
	return out
}

// admits says why a listener's allowedRoutes do not admit rt ("" when they do): its kind is not among the
// listener's supported kinds, or its namespace is not allowed (from: Same, the default; All; Selector, by the
// namespace's labels; None).
func admits(snap *model.Snapshot, gw *gatewayv1.Gateway, l *listener, rt *api.Route) string {
	if !slices.ContainsFunc(l.supportedKinds, func(k gatewayv1.RouteGroupKind) bool { return string(k.Kind) == rt.Kind }) {
		if len(l.supportedKinds) == 0 {
			return "admits no route kinds"
		}
		return fmt.Sprintf("admits no %ss", rt.Kind)
	}
	from := gatewayv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		selector = ar.Namespaces.Selector
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
		return ""
	case gatewayv1.NamespacesFromSame:
		if rt.Namespace == gw.Namespace {
			return ""
		}
		return fmt.Sprintf("admits routes of namespace %s only", gw.Namespace)
	case gatewayv1.NamespacesFromSelector:
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return fmt.Sprintf("allowedRoutes.namespaces.selector: %v", err)
		}
		if selector != nil && sel.Matches(labels.Set(snap.NamespaceLabels(rt.Namespace))) {
			return ""
		}
		return fmt.Sprintf("its namespace selector does not select namespace %s", rt.Namespace)
	case gatewayv1.NamespacesFromNone:
		return "admits no routes (allowedRoutes.namespaces.from: None)"
	}
	return fmt.Sprintf("allowedRoutes.namespaces.from %q is not supported", from)
}

func joinHostnames(hs []gatewayv1.Hostname) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = string(h)
	}
	return strings.Join(s, ", ")
}

// intersect is the host names a route with hostnames routeHosts serves on a listener with hostname
// listenerHost ("": any), as the Gateway API defines it: a wildcard "*.example.com" matches one or more labels
// before example.com; of a wildcard and a name it matches, the name; of two wildcards, the narrower. A route
// without hostnames serves the listener's; ok is false when none intersect (the route does not attach there).
// The result is empty when neither names any.
func intersect(listenerHost string, routeHosts []gatewayv1.Hostname) (out []string, ok bool) {
	listenerHost = strings.ToLower(listenerHost)
	if len(routeHosts) == 0 {
		if listenerHost == "" {
			return nil, true
		}
		return []string{listenerHost}, true
	}
	for _, h := range routeHosts {
		r := strings.ToLower(string(h))
		m := r
		if listenerHost != "" {
			m = hostIntersection(listenerHost, r)
		}
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, len(out) > 0
}

// hostIntersection is the narrower of two host names when one matches the other, else "".
func hostIntersection(a, b string) string {
	if a == b {
		return a
	}
	aw, bw := strings.HasPrefix(a, "*."), strings.HasPrefix(b, "*.")
	// a[1:] of "*.example.com" is ".example.com": a name with that suffix has at least one label before it.
	if aw && strings.HasSuffix(b, a[1:]) {
		return b
	}
	if bw && strings.HasSuffix(a, b[1:]) {
		return a
	}
	return ""
}

// routeAttachments are the routes attached to one Gateway: by listener index, oldest route first, and each
// route's Gateway parents.
type routeAttachments struct {
	byListener map[int][]attachment
	parents    map[*api.Route][]parent
}

// attachRoutes attaches every route that names ev's Gateway, oldest first. A route attaches to a listener at
// most once, however many of its parentRefs select it. Of an HTTPRoute and a GRPCRoute whose hostnames
// intersect on a listener, only the older attaches there (GRPCRouteSpec: "exactly one", the oldest, then the
// first by namespace/name, which is the order of snap.Routes); a route kept off every listener it selects is
// not Accepted (RouteReasonConflicted, as for mesh routes).
func attachRoutes(snap *model.Snapshot, ev *evaluation) routeAttachments {
	out := routeAttachments{byListener: map[int][]attachment{}, parents: map[*api.Route][]parent{}}
	for _, rt := range snap.Routes() {
		seen := map[int]bool{}
		for i, p := range rt.ParentRefs {
			if !namesGateway(rt, p, ev.gw) {
				continue
			}
			res := attachParent(snap, ev, rt, i, p)
			var kept []attachment
			var conflicts []string
			for _, a := range res.attachments {
				if winner := kindConflict(out.byListener[a.listener], a); winner != nil {
					conflicts = append(conflicts, fmt.Sprintf("%s: %s %s/%s", ev.listeners[a.listener].describe(), winner.Kind, winner.Namespace, winner.Name))
					continue
				}
				kept = append(kept, a)
			}
			res.attachments = kept
			if res.accepted && len(kept) == 0 {
				res.accepted, res.reason = false, string(routes.ReasonConflicted)
				res.message = "an HTTPRoute and a GRPCRoute with the same hostnames may not both attach to a listener; the older does, on " +
					strings.Join(conflicts, ", ")
			}
			out.parents[rt] = append(out.parents[rt], res)
			for _, a := range kept {
				if !seen[a.listener] {
					seen[a.listener] = true
					out.byListener[a.listener] = append(out.byListener[a.listener], a)
				}
			}
		}
	}
	return out
}

// kindConflict is the route of the other kind among attached (older, on the same listener) whose hostnames
// there intersect a's, or nil.
func kindConflict(attached []attachment, a attachment) *api.Route {
	for _, b := range attached {
		if b.rt.Kind != a.rt.Kind && hostnamesIntersect(a.hostnames, b.hostnames) {
			return b.rt
		}
	}
	return nil
}

// hostnamesIntersect reports whether two routes' hostnames on one listener share a host; an empty list is
// every host.
func hostnamesIntersect(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if hostIntersection(x, y) != "" {
				return true
			}
		}
	}
	return false
}

// gatewayParents resolves each parentRef of rt that names a sinew Gateway, in parentRef order, with the
// Gateway's listeners (for their names). The Gateway's other routes are attached too, since an older route of
// the other kind may keep rt off a listener.
func gatewayParents(snap *model.Snapshot, rt *api.Route) ([]parent, []*evaluation) {
	var (
		out []parent
		evs []*evaluation
	)
	for i, p := range rt.ParentRefs {
		if !api.ParentIsGateway(p) {
			continue
		}
		ns := rt.Namespace
		if p.Namespace != nil {
			ns = string(*p.Namespace)
		}
		gw, ok := snap.Gateway(ns, string(p.Name))
		if !ok || !Ours(snap, gw) {
			continue
		}
		c := attached(snap, gw)
		for _, res := range c.ra.parents[rt] {
			if res.index == i {
				out = append(out, res)
				evs = append(evs, c.ev)
			}
		}
	}
	return out, evs
}

// gatewayRoutes is a Gateway's listeners and the routes attached to them.
type gatewayRoutes struct {
	ev *evaluation
	ra routeAttachments
}

// memo keeps the attachments of the last snapshot's Gateways: the status of each route needs all the routes of
// its Gateways attached (kindConflict), so computing them per route would cost the square of their number.
// Snapshots are immutable, so a result computed for one stays right; a new snapshot replaces the memo.
var memo struct {
	sync.Mutex
	snap      *model.Snapshot
	byGateway map[*gatewayv1.Gateway]gatewayRoutes
}

// attached is gw's listeners and attached routes in snap, computed once per snapshot. Never modify it.
func attached(snap *model.Snapshot, gw *gatewayv1.Gateway) gatewayRoutes {
	memo.Lock()
	if memo.snap == snap {
		if c, ok := memo.byGateway[gw]; ok {
			memo.Unlock()
			return c
		}
	}
	memo.Unlock()
	ev := evaluate(snap, gw)
	c := gatewayRoutes{ev: ev, ra: attachRoutes(snap, ev)}
	memo.Lock()
	defer memo.Unlock()
	if memo.snap != snap {
		memo.snap, memo.byGateway = snap, map[*gatewayv1.Gateway]gatewayRoutes{}
	}
	memo.byGateway[gw] = c
	return c
}
