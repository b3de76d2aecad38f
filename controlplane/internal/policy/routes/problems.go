package routes

import (
	"fmt"
	"slices"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Problems lists, sorted, what the translation of the snapshot's HTTPRoutes ignores or cannot honour: parents
// that are not Services (or Servers) or do not exist, backends that do not resolve and filters the proxies cannot
// apply (their requests get 500). Each line starts with "HTTPRoute namespace/name:".
// They are the same for every proxy, so they are computed once per snapshot.
func Problems(snap *model.Snapshot, clusterDomain string) []string {
	var out []string
	for _, rt := range snap.HTTPRoutes() {
		for _, p := range routeProblems(snap, rt, clusterDomain) {
			out = append(out, fmt.Sprintf("%s %s/%s: %s", api.KindHTTPRoute, rt.Namespace, rt.Name, p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func routeProblems(snap *model.Snapshot, rt *api.HTTPRoute, clusterDomain string) []string {
	var out []string
	attached := false
	for i, p := range rt.Spec.ParentRefs {
		field := fmt.Sprintf("spec.parentRefs[%d]", i)
		if api.ParentIsServer(p) {
			attached = true // an inbound route: the authz translation's, which reports its own problems
			continue
		}
		if !api.ParentIsService(p) {
			out = append(out, fmt.Sprintf("%s: parents other than Services and Servers (%s) are not supported yet; ignored", field, refKind(p.Group, p.Kind)))
			continue
		}
		ns := parentNamespace(rt, p)
		name := string(p.Name)
		if ns != rt.Namespace {
			name = ns + "/" + name // a consumer route
		}
		svc, ok := snap.Service(ns, string(p.Name))
		if !ok {
			out = append(out, fmt.Sprintf("%s: Service %s does not exist", field, name))
			continue
		}
		if p.Port != nil {
			if _, ok := svc.Port(uint16(*p.Port)); !ok {
				out = append(out, fmt.Sprintf("%s: Service %s has no port %d", field, name, *p.Port))
				continue
			}
		}
		attached = true
	}
	if len(rt.Spec.ParentRefs) > 0 && !attached {
		out = append(out, "no parent it can attach to; the route has no effect")
	}
	// What the rules cannot honour does not depend on the parent.
	t := translator{snap: snap, rt: rt, clusterDomain: clusterDomain}
	t.route(nil, model.ServicePort{}, nil)
	return append(out, t.problems...)
}

func refKind[G, K ~string](group *G, kind *K) string {
	g, k := "gateway.networking.k8s.io", "Gateway"
	if group != nil {
		g = string(*group)
	}
	if kind != nil {
		k = string(*kind)
	}
	if g == "" {
		return k
	}
	return k + "." + g
}
