// Package policy serves the inbound and outbound policy APIs. For now every inbound port allows everyone and
// every outbound target routes to itself, with the retries, timeouts and failure accrual of the Service it
// resolves to (its annotations); the translation functions (model in, proto out) are where Server,
// AuthorizationPolicy and HTTPRoute support will go. Streams are re-evaluated on model changes and only resent
// when the result differs.
package policy

import (
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/destination"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// DefaultAuthorizationName names the allow-all authorization of ports without a Server.
const DefaultAuthorizationName = "default:all-unauthenticated"

// Inbound is the policy of one port of a workload ("namespace/name").
func Inbound(_ *model.Snapshot, _ string, _ uint32) *policyv1.InboundServer {
	labels := map[string]string{"kind": "default", "name": "all-unauthenticated"}
	return &policyv1.InboundServer{
		Protocol: policyv1.Protocol_PROTOCOL_DETECT,
		MtlsMode: policyv1.MTLSMode_MTLS_MODE_OPTIONAL,
		Authorizations: []*policyv1.Authorization{{
			Name:            DefaultAuthorizationName,
			Identities:      []string{"*"},
			Unauthenticated: true,
			Labels:          labels,
		}},
		Labels: labels,
	}
}

// Outbound is the routing policy for a target authority or ip:port. A target that resolves to a Service (its
// name in clusterDomain, or one of its ClusterIPs, at one of its ports; as destination.ServiceOf decides) gets the
// Service's outbound defaults on its default route and policy.
func Outbound(snap *model.Snapshot, target, clusterDomain string) *policyv1.OutboundPolicy {
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
		if svc, _, _, ok := destination.ServiceOf(snap, t); ok {
			applyServiceDefaults(p, rule, svc.Outbound)
		}
	}
	return p
}
