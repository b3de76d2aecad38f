// Package policy serves the inbound and outbound policy APIs. Inbound ports get the policy of the Server that
// selects them (Server, ServerAuthorization, AuthorizationPolicy and the authentication kinds, translated by
// authz), or their default inbound policy; every outbound target routes to itself, with the retries, timeouts
// and failure accrual of the Service it resolves to (its annotations), unless HTTPRoutes attach to the Service
// (translated by routes); sinew's ingress gateways get their listeners, certificates and routes (translated by
// gateway), only by their own identity. The translation functions are pure (model
// in, proto out); streams are re-evaluated on model changes and only resent when the result differs.
package policy

import (
	"strconv"
	"strings"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/destination"
	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
)

// Inbound is the policy of one port of a workload ("namespace/name"). A workload the model does not know (yet)
// gets the cluster's default policy.
func Inbound(snap *model.Snapshot, cfg authz.Config, workload string, port uint32) *policyv1.InboundServer {
	var w *model.Workload
	if ns, name, ok := strings.Cut(workload, "/"); ok {
		w, _ = snap.Workload(ns, name)
	}
	return authz.Inbound(snap, cfg, w, uint16(port))
}

// Outbound is the routing policy for a target authority or ip:port. A target that resolves to a Service (its
// name in clusterDomain, or one of its ClusterIPs, at one of its ports; as destination.ServiceOf decides) gets the
// routes of the HTTPRoutes attached to that Service port for the client sourceWorkload ("namespace/name"; its
// namespace's consumer routes, else the producer routes), or else its default route; either way with the
// Service's outbound defaults where a route does not say otherwise.
func Outbound(snap *model.Snapshot, target, clusterDomain, sourceWorkload string) *policyv1.OutboundPolicy {
	labels := map[string]string{"kind": "default", "name": "default"}
	rule := &policyv1.RouteRule{
		Backends: []*policyv1.WeightedBackend{{Authority: target, Weight: 1}},
	}
	p := &policyv1.OutboundPolicy{
		Protocol: policyv1.Protocol_PROTOCOL_DETECT,
		Routes: []*policyv1.HttpRoute{{
			Labels: labels,
			Rules:  []*policyv1.RouteRule{rule},
		}},
		Labels: labels,
	}
	if t, err := destination.ParseTarget(target, clusterDomain); err == nil {
		if svc, sp, _, ok := destination.ServiceOf(snap, t); ok {
			// The parent the proxies' route metrics name (parent_kind, parent_name, ...): a client that called an
			// address knows no more than the address.
			p.Labels = map[string]string{"kind": "Service", "name": svc.Name, "namespace": svc.Namespace, "port": strconv.Itoa(int(sp.Port))}
			applyServiceDefaults(p, rule, svc.Outbound)
			clientNamespace, _, _ := strings.Cut(sourceWorkload, "/")
			if rs := routes.Outbound(snap, svc, sp, clusterDomain, clientNamespace, rule); len(rs) > 0 {
				p.Routes = rs
			}
		}
	}
	return p
}

// Problems is what the translation of the snapshot's policies ignores or cannot honour: the inbound kinds'
// (authz.Problems), the mesh routes' (routes.Problems) and sinew's Gateways' and their routes'
// (gateway.Problems), each list sorted.
func Problems(snap *model.Snapshot, cfg authz.Config, clusterDomain string) []string {
	out := append(authz.Problems(snap, cfg), routes.Problems(snap, clusterDomain)...)
	return append(out, gateway.Problems(snap, clusterDomain)...)
}
