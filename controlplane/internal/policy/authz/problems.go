package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Problems lists, sorted, what the translation of the snapshot's policies ignores or cannot honour: Servers that
// select the same port of a workload (the oldest applies), authorizations that admit nobody because of
// something unsupported or missing, and targets that do not exist. They are the same for every proxy, so they
// are computed once per snapshot rather than per port.
func Problems(snap *model.Snapshot, cfg Config) []string {
	pol := snap.Policies()
	var out []string
	add := func(kind string, m *api.Meta, msg string) {
		out = append(out, fmt.Sprintf("%s %s: %s", kind, m.Key(), msg))
	}
	out = append(out, conflicts(snap)...)
	out = append(out, plaintextImpossible(snap)...)
	out = append(out, rateLimitProblems(pol)...)
	out = append(out, keyProblems(pol, cfg)...)
	out = append(out, inboundRouteProblems(snap)...)
	for _, sa := range pol.ServerAuthorizations {
		_, problems := translateServerAuthorization(cfg, sa)
		for _, p := range problems {
			add(api.KindServerAuthorization, &sa.Metadata, p)
		}
		if ref := sa.Spec.Server; ref.Name != "" && !hasServer(pol, sa.Metadata.Namespace, ref.Name) {
			add(api.KindServerAuthorization, &sa.Metadata, fmt.Sprintf("Server %s does not exist", ref.Name))
		}
	}
	for _, ap := range pol.AuthorizationPolicies {
		_, _, problems := translateAuthorizationPolicy(pol, cfg, ap)
		for _, p := range problems {
			add(api.KindAuthorizationPolicy, &ap.Metadata, p)
		}
		switch t := ap.Spec.TargetRef; {
		case t.Kind == routesapi.KindHTTPRoute || t.Kind == routesapi.KindGRPCRoute:
			if p := routeTargetProblem(snap, ap); p != "" {
				add(api.KindAuthorizationPolicy, &ap.Metadata, p)
			}
		case t.Kind == "Namespace" && t.Name != ap.Metadata.Namespace:
			add(api.KindAuthorizationPolicy, &ap.Metadata, fmt.Sprintf("targets namespace %s: a policy applies only to its own namespace; it has no effect", t.Name))
		case t.Kind == api.KindServer && !hasServer(pol, ap.Metadata.Namespace, t.Name):
			add(api.KindAuthorizationPolicy, &ap.Metadata, fmt.Sprintf("targets Server %s, which does not exist", t.Name))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// routeTargetProblem says why a policy that targets an HTTPRoute or a GRPCRoute has no effect: the route does
// not exist, or no Server is its parent (an authorization applies to inbound routes only).
func routeTargetProblem(snap *model.Snapshot, ap *api.AuthorizationPolicy) string {
	for _, rt := range snap.Routes() {
		if !targetsRoute(ap, rt) {
			continue
		}
		for _, srv := range snap.Policies().Servers {
			if attachesToServer(rt, srv) {
				return ""
			}
		}
		return fmt.Sprintf("targets %s %s, whose parents are not Servers: authorizations apply to inbound routes (a Server parent); the policy has no effect", rt.Kind, rt.Name)
	}
	return fmt.Sprintf("targets %s %s, which does not exist", ap.Spec.TargetRef.Kind, ap.Spec.TargetRef.Name)
}

// inboundRouteProblems reports what routes on Servers say that inbound routing does not do: filters and backends
// are ignored (the request goes to the workload unchanged), and a route whose Server does not exist.
func inboundRouteProblems(snap *model.Snapshot) []string {
	var out []string
	for _, rt := range snap.Routes() {
		for i, p := range rt.ParentRefs {
			if !routesapi.ParentIsServer(p) {
				continue
			}
			if !hasServer(snap.Policies(), rt.Namespace, string(p.Name)) {
				out = append(out, fmt.Sprintf("%s %s/%s: spec.parentRefs[%d]: Server %s does not exist", rt.Kind, rt.Namespace, rt.Name, i, p.Name))
			}
			for j, r := range rt.Rules {
				if len(r.Filters) > 0 || len(r.BackendRefs) > 0 {
					out = append(out, fmt.Sprintf("%s %s/%s: spec.rules[%d]: filters and backendRefs of a route on a Server are not applied (requests go to the workload unchanged)", rt.Kind, rt.Namespace, rt.Name, j))
				}
			}
			break
		}
	}
	return out
}

func hasServer(pol *api.Policies, ns, name string) bool {
	for _, s := range pol.Servers {
		if s.Metadata.Namespace == ns && s.Metadata.Name == name {
			return true
		}
	}
	return false
}

// conflicts reports Servers that select the same workload port, one line per pair of Servers and port.
func conflicts(snap *model.Snapshot) []string {
	type key struct {
		winner, loser string
		port          uint16
	}
	hits := map[key][]string{}
	for _, w := range snap.Workloads() {
		byPort := map[uint16][]*api.Server{}
		for _, srv := range snap.Policies().Servers {
			if selectsWorkload(srv, w) {
				if p := serverPort(srv, w); p != 0 {
					byPort[p] = append(byPort[p], srv)
				}
			}
		}
		for port, srvs := range byPort {
			if len(srvs) < 2 {
				continue
			}
			slices.SortFunc(srvs, olderFirst)
			for _, loser := range srvs[1:] {
				k := key{srvs[0].Metadata.Key(), loser.Metadata.Key(), port}
				hits[k] = append(hits[k], w.Name)
			}
		}
	}
	var out []string
	for k, ws := range hits {
		slices.Sort(ws)
		list := strings.Join(ws, ", ")
		if len(ws) > 3 {
			list = fmt.Sprintf("%s and %d more", strings.Join(ws[:3], ", "), len(ws)-3)
		}
		out = append(out, fmt.Sprintf("Server %s: selects port %d of %s, like Server %s, which applies (older, or first by name)",
			k.loser, k.port, list, k.winner))
	}
	return out
}

// plaintextImpossible reports Servers whose mtlsMode DISABLE selects a port that cannot take plaintext: a port
// other than the first of a local-mode Workload, whose proxy takes plaintext clients for its first port only.
// Meshed clients keep using mTLS to such a port (the destination service never sends them to a port the proxy
// does not serve in plaintext). The annotation cannot do this: the local source refuses it.
func plaintextImpossible(snap *model.Snapshot) []string {
	if !snap.HasServerMTLSModes() {
		return nil
	}
	hits := map[string][]string{}
	for _, w := range snap.Workloads() {
		if !w.ExplicitInbound || !w.Meshed() {
			continue
		}
		for _, wp := range w.Ports {
			srv, _ := serverFor(snap, w, wp.Port)
			if srv == nil || srv.Spec.MTLSMode != api.MTLSDisable {
				continue
			}
			if _, ok := w.PlaintextPort(wp.Port); !ok {
				k := srv.Metadata.Key()
				hits[k] = append(hits[k], fmt.Sprintf("%s:%d", w.Name, wp.Port))
			}
		}
	}
	var out []string
	for k, ws := range hits {
		slices.Sort(ws)
		out = append(out, fmt.Sprintf("Server %s: mtlsMode DISABLE on %s: a local-mode Workload takes plaintext on its first port only; meshed clients keep using mTLS there",
			k, strings.Join(ws, ", ")))
	}
	return out
}
