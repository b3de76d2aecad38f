package layer

import (
	"fmt"
	"net/http"

	"github.com/sinewmesh/sinew/proxy/internal/gateway"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// GatewayRoute is the route layer of a gateway proxy: of the listeners on the port the request came to, the one
// that serves the request's host name (the most specific), then of that listener's routes the host name that
// matches most specifically, then the rule by Gateway API precedence. A request that no listener, host name or
// rule serves is answered 404. The configuration is read once per request, so a new one applies to the next
// request on open connections.
func GatewayRoute(config func() *gateway.Config) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			host := gateway.RequestHost(req.HTTP.Host)
			p := config().Ports[req.In.Dst.Port()]
			if p == nil {
				return nil, fmt.Errorf("%w: port %d has no listener", pipeline.ErrNoRoute, req.In.Dst.Port())
			}
			l := p.Listener(host)
			if l == nil {
				return nil, fmt.Errorf("%w: no listener of port %d serves host %q", pipeline.ErrNoRoute, p.Number, host)
			}
			h := l.Host(host)
			if h == nil {
				return nil, fmt.Errorf("%w: no route of listener %s serves host %q", pipeline.ErrNoRoute, l.Name, host)
			}
			req.Policy = h.Policy
			req.Rule, req.Match = h.Policy.Find(req.HTTP)
			if req.Rule == nil {
				return nil, pipeline.ErrNoRoute
			}
			return next.Handle(req)
		})
	}
}
