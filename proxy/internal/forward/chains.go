package forward

import (
	"slices"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/budget"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/gateway"
	"github.com/sinewmesh/sinew/proxy/internal/layer"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

// The proxy's two request paths, top to bottom. Every request runs through one of these; each layer is a file in
// proxy/internal/layer with its own tests. The order is the contract: a layer may rely on what the layers above
// it decided (see pipeline.Request for who sets what).

// Retry budget, as Linkerd's: retries may add 20 % to the requests, plus 10 per second, over 10 seconds.
const (
	retryRatio     = 0.2
	retryMinPerSec = 10
	retryBudgetTTL = 10 * time.Second
)

// outboundChain: from the local application to a destination. An ingress-mode proxy first chooses each
// request's target by its authority.
func outboundChain(pols layer.Policies, eps *layer.Endpoints, hub *tap.Hub, ingress Ingress) pipeline.Handler {
	attempt, mirror := attemptChain(eps, hub)
	target := pipeline.Pass
	if ingress.Enabled {
		target = layer.Ingress(eps, ingress.Namespace) // the Service the request's authority names
	}
	return pipeline.Chain(attempt, slices.Concat([]pipeline.Layer{
		target,
		layer.Route(pols, eps.Discovery), // the target's policy and the rule that matches (404 when none does)
	}, afterRoute(mirror))...)
}

// gatewayChain: from a client outside the mesh, through a gateway listener, to a backend in the mesh. The
// listener port's inbound policy first (client networks, JWT, rate limits), then the outbound chain with the
// routes of the listener and host name the request names.
func gatewayChain(authz layer.Authorizer, config func() *gateway.Config, eps *layer.Endpoints, hub *tap.Hub) pipeline.Handler {
	attempt, mirror := attemptChain(eps, hub)
	return pipeline.Chain(attempt, slices.Concat([]pipeline.Layer{
		layer.Meter(),               // every request, as the gateway's own (inbound) traffic
		layer.Authorize(authz, hub), // the edge policy of the listener port, on every request
		layer.GatewayRoute(config),  // the listener, host name and rule the request gets (404 when none)
	}, afterRoute(mirror))...)
}

// afterRoute is what the outbound and gateway chains do once a rule matched, top to bottom.
func afterRoute(mirror *layer.Mirror) []pipeline.Layer {
	return []pipeline.Layer{
		layer.Filters(mirror), // the rule's filters: headers, rewrites, redirects, mirrors, faults
		layer.Timeout(),       // the rule's request timeout, across all attempts
		layer.Retry(budget.New(retryRatio, retryMinPerSec, retryBudgetTTL)), // attempts, with a budget
		layer.Split(mirror), // a backend per attempt, by weight, and the backend's filters
	}
}

// attemptChain is one attempt at the backend the split chose; mirrored copies of requests take the same way.
func attemptChain(eps *layer.Endpoints, hub *tap.Hub) (pipeline.Handler, *layer.Mirror) {
	attempt := pipeline.Chain(layer.ToEndpoint(), // the endpoint's connection pool, then the mesh dialer
		layer.Balance(eps), // an endpoint per attempt, avoiding the last one; failure accrual
		layer.Observe(hub), // metrics and tap of each attempt
	)
	return attempt, layer.NewMirror(attempt, eps.Metrics)
}

// inboundChain: from a client (a peer proxy, or a plaintext client) to the local application. Connection
// policy (mTLS mode, TCP authorization) is decided per connection, before HTTP, in Inbound.Handle.
func inboundChain(authz layer.Authorizer, routes layer.Router, faults layer.Injector, plain *endpoint.Plain, hub *tap.Hub) pipeline.Handler {
	return pipeline.Chain(layer.ToApp(plain), // the application on this host
		layer.Authorize(authz, hub), // HTTP authorization, on every request (tap sees refusals)
		layer.InboundRoute(routes),  // the inbound route that matches
		layer.Timeout(),             // the route's request timeout
		layer.Faults(faults),        // injected failures
		layer.Observe(hub),          // metrics and tap
	)
}
