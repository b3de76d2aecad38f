package routes

import (
	"fmt"
	"slices"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Problems lists, sorted, what the translation of the snapshot's HTTPRoutes and GRPCRoutes ignores or cannot
// honour: parents that are not Services, Servers or Gateways (whose problems the gateway package reports) or
// do not exist, a route that a route of the other kind
// overrides on a Service port (Conflicts), backends that do not resolve and filters the proxies cannot apply
// (their requests fail). Each line starts with "HTTPRoute namespace/name:" (or GRPCRoute). They are the same for
// every proxy, so they are computed once per snapshot.
func Problems(snap *model.Snapshot, clusterDomain string) []string {
	var out []string
	for _, rt := range snap.Routes() {
		for _, p := range routeProblems(snap, rt, clusterDomain) {
			out = append(out, fmt.Sprintf("%s %s/%s: %s", rt.Kind, rt.Namespace, rt.Name, p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func routeProblems(snap *model.Snapshot, rt *api.Route, clusterDomain string) []string {
	var out []string
	attached, gatewayParents := false, 0
	conflicts := Conflicts(snap, rt)
	for i, p := range rt.ParentRefs {
		field := fmt.Sprintf("spec.parentRefs[%d]", i)
		if api.ParentIsServer(p) {
			attached = true // an inbound route: the authz translation's, which reports its own problems
			continue
		}
		if api.ParentIsGateway(p) {
			gatewayParents++ // an ingress route: the gateway package reports its problems
			continue
		}
		if !api.ParentIsService(p) {
			out = append(out, fmt.Sprintf("%s: parents other than Services, Servers and Gateways (%s) are not supported; ignored", field, refKind(p.Group, p.Kind)))
			continue
		}
		if why := missingParent(snap, rt, p); why != "" {
			out = append(out, fmt.Sprintf("%s: %s", field, why))
			continue
		}
		if c := conflicts[i]; len(c) > 0 {
			out = append(out, fmt.Sprintf("%s: %s", field, conflictMessage(c)))
		}
		attached = true
	}
	if gatewayParents > 0 && gatewayParents == len(rt.ParentRefs) {
		return nil // the gateway package reports the rules' problems too, with its ReferenceGrants
	}
	if len(rt.ParentRefs) > 0 && !attached && gatewayParents == 0 {
		out = append(out, "no parent it can attach to; the route has no effect")
	}
	// What the rules cannot honour does not depend on the parent.
	t := translator{snap: snap, rt: rt, clusterDomain: clusterDomain}
	t.route(nil, model.ServicePort{}, nil)
	return append(out, t.problems...)
}

// missingParent says why a Service parentRef names nothing (the Service, its port by number or by name does not
// exist), or "" when it names a Service port.
func missingParent(snap *model.Snapshot, rt *api.Route, p gatewayv1.ParentReference) string {
	ns := parentNamespace(rt, p)
	name := string(p.Name)
	if ns != rt.Namespace {
		name = ns + "/" + name // a consumer route
	}
	svc, ok := snap.Service(ns, string(p.Name))
	if !ok {
		return fmt.Sprintf("Service %s does not exist", name)
	}
	if p.Port != nil {
		if _, ok := svc.Port(uint16(*p.Port)); !ok {
			return fmt.Sprintf("Service %s has no port %d", name, *p.Port)
		}
	}
	if p.SectionName != nil && !slices.ContainsFunc(svc.Ports, func(sp model.ServicePort) bool { return sp.Name == string(*p.SectionName) }) {
		return fmt.Sprintf("Service %s has no port named %s", name, *p.SectionName)
	}
	return ""
}

// conflictMessage says which routes of the other kind apply instead, on which ports.
func conflictMessage(cs []Conflict) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("port %d: %s %s", c.Port, c.Winner.Kind, c.Winner.Name))
	}
	return fmt.Sprintf("an HTTPRoute and a GRPCRoute may not both attach to a Service port; the older applies, so this route has no effect on %s",
		strings.Join(parts, ", "))
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
