// Package policy serves the inbound and outbound policy APIs. For now every inbound port allows everyone and
// every outbound target routes to itself; the translation functions (model in, proto out) are where Server,
// AuthorizationPolicy and HTTPRoute support will go. Streams are re-evaluated on model changes and only resent
// when the result differs.
package policy

import (
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
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

// Outbound is the routing policy for a target authority or ip:port.
func Outbound(_ *model.Snapshot, target string) *policyv1.OutboundPolicy {
	labels := map[string]string{"kind": "default", "name": "default"}
	return &policyv1.OutboundPolicy{
		Protocol: policyv1.Protocol_PROTOCOL_DETECT,
		Routes: []*policyv1.HttpRoute{{
			Labels: labels,
			Rules: []*policyv1.RouteRule{{
				Backends: []*policyv1.WeightedBackend{{Authority: target, Weight: 1}},
			}},
		}},
		Labels: labels,
	}
}
