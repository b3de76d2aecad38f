package routes

import (
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// Matches are a rule's matches in the contract's form. Inbound routes (an HTTPRoute whose parent is a Server,
// which the authz translation turns into InboundServer.routes) use them alone: their rules match requests for
// authorization and carry no backends.
func Matches(r gatewayv1.HTTPRouteRule) []*policyv1.HttpMatch {
	out := make([]*policyv1.HttpMatch, 0, len(r.Matches))
	for _, m := range r.Matches {
		out = append(out, match(m))
	}
	return out
}
