package layer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Policy is the Authorizer of inbound policy: each request is checked against the current policy of the port its
// connection came to, so a changed policy applies to the next request on open connections, then against the
// port's local rate limit (429). On a port with inbound routes, a request that matches none is answered 404. A
// port whose policy has not arrived holds the request up to Wait for it, then refuses it (503): authorization
// never fails open.
type Policy struct {
	Metrics *authz.Metrics
	Wait    time.Duration
	Log     *slog.Logger
}

var _ Authorizer = (*Policy)(nil)

// Authorize admits the request, or returns an error wrapping pipeline.ErrDenied or pipeline.ErrNoPolicy.
func (p *Policy) Authorize(req *pipeline.Request) error {
	ic := req.In
	if ic == nil || ic.Authz == nil {
		return fmt.Errorf("%w: the connection has no inbound port policy", pipeline.ErrNoPolicy)
	}
	srv := ic.Authz.Current()
	if srv == nil {
		ctx, cancel := context.WithTimeout(req.Client.Context(), p.Wait)
		s, err := ic.Authz.Server(ctx)
		cancel()
		if err != nil {
			p.Metrics.HTTP(nil, authz.Decision{}, ic.AuthzConn)
			return fmt.Errorf("%w: port %d: %w", pipeline.ErrNoPolicy, ic.Authz.Port, err)
		}
		srv = s
	}
	d := srv.Decide(authz.Client{Addr: ic.Peer, ID: ic.ClientID}, req.HTTP, req.Start)
	if d.NoRoute {
		p.Metrics.RouteNotFound(srv, ic.AuthzConn)
		return fmt.Errorf("%w: none of %s %s's routes matches %s %s", pipeline.ErrNoRoute, srv.Kind, srv.Name, req.HTTP.Method, req.HTTP.URL.Path)
	}
	a := d.Authz
	p.Metrics.HTTP(srv, d, ic.AuthzConn)
	// Headers the port's token providers fill from claims are the proxy's to set, never the client's.
	srv.StripClaimHeaders(req.HTTP)
	if a == nil {
		if d.Unauthenticated() {
			// The token's text is never part of the error: it is logged.
			return &pipeline.UnauthenticatedError{Realm: srv.Name, Invalid: errors.Is(d.TokenErr, authz.ErrInvalidToken),
				Reason: d.TokenErr.Error()}
		}
		where := srv.Kind + " " + srv.Name
		if d.Route != nil {
			where += " route " + d.Route.Name
		}
		return fmt.Errorf("%w: %s admits no such client (tls=%s, client_id=%q, address %s)",
			pipeline.ErrDenied, where, ic.TLS, ic.ClientID, ic.Peer)
	}
	if d.Provider != nil {
		d.Provider.Apply(req.HTTP, d.Token)
	}
	// The port's rate limit counts admitted requests; kubelet probes are exempt, so a busy pod stays ready.
	if srv.Limiter != nil && a != authz.Probe {
		if ok, limit, wait := srv.Limiter.Allow(ic.ClientID, req.Start); !ok {
			p.Metrics.RateLimited(srv, limit, ic.AuthzConn)
			return &pipeline.RateLimitedError{Limit: limit, RetryAfter: wait}
		}
	}
	if a.Audit && p.Log.Enabled(req.Client.Context(), slog.LevelInfo) {
		p.Log.Info("request admitted by an audit policy", "srv_kind", srv.Kind, "srv_name", srv.Name,
			"authz_name", a.Name, "tls", ic.TLS, "client_id", ic.ClientID, "client_addr", ic.Peer.String(),
			"method", req.HTTP.Method, "path", req.HTTP.URL.Path)
	}
	return nil
}
