package layer

import (
	"net/http"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

// The inbound seams: authorization, route matching, timeouts and fault injection of inbound policy. The policy
// they apply arrives with the authorization issue (InboundServer from the policy service); until then each is
// given a decider that allows or passes everything, and the chain already has them in their final order.

// Authorizer decides whether a request may reach the application: nil to allow, an error wrapping
// pipeline.ErrDenied to refuse (403, gRPC PERMISSION_DENIED).
type Authorizer interface {
	Authorize(*pipeline.Request) error
}

// AllowAll is the authorizer of a proxy without inbound policy.
type AllowAll struct{}

// Authorize allows the request.
func (AllowAll) Authorize(*pipeline.Request) error { return nil }

// Authorize refuses what a refuses; it runs on every request, so a policy change applies to open connections.
// A refused request never reaches Observe, so it is shown to tap here: its answer (403, 401, 404, 429, 503) and
// why, as the stream's error.
func Authorize(a Authorizer, hub *tap.Hub) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if err := a.Authorize(req); err != nil {
				if hub.Active() {
					tapRefusal(hub, req, err)
				}
				return nil, err
			}
			return next.Handle(req)
		})
	}
}

// tapRefusal shows tap a request the proxy answered itself with the failure err.
func tapRefusal(hub *tap.Hub, req *pipeline.Request, err error) {
	status, grpc := failureStatus(req, err)
	tapFailure(hub.Start(func() *tap.Meta { return tapMeta(hub, req) }), status, grpc, err)
}

// Injector answers some requests itself, instead of the application, to test how clients cope with failures:
// it returns a response (or an error) to inject, or nil, nil to let the request through.
type Injector interface {
	Inject(*pipeline.Request) (*http.Response, error)
}

// NoFaults injects nothing.
type NoFaults struct{}

// Inject lets every request through.
func (NoFaults) Inject(*pipeline.Request) (*http.Response, error) { return nil, nil }

// Faults answers with what i injects, or passes the request on.
func Faults(i Injector) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			resp, err := i.Inject(req)
			if resp != nil || err != nil {
				return resp, err
			}
			return next.Handle(req)
		})
	}
}

// Router finds the inbound route rule of a request: a rule (which may carry a timeout), nil for none (the request
// goes on without one), or an error wrapping pipeline.ErrNoRoute to answer 404.
type Router interface {
	Route(*pipeline.Request) (*policy.Rule, error)
}

// NoRoutes is the router of a proxy without inbound routes.
type NoRoutes struct{}

// Route matches nothing; every request goes on.
func (NoRoutes) Route(*pipeline.Request) (*policy.Rule, error) { return nil, nil }

// InboundRoute sets the request's rule from rt.
func InboundRoute(rt Router) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			rule, err := rt.Route(req)
			if err != nil {
				return nil, err
			}
			req.Rule = rule
			return next.Handle(req)
		})
	}
}
