package layer

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/balance"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Resolver finds endpoints for an authority; implemented by discovery.Resolver.
type Resolver interface {
	Get(name string) *discovery.Target
}

var _ Resolver = (*discovery.Resolver)(nil)

// Endpoints resolves backends to endpoint pools and remembers endpoints outside the mesh. It is shared by the
// balancer layer and the opaque-TCP path, which balances connections the same way.
type Endpoints struct {
	Resolver  Resolver
	Metrics   *metrics.Metrics
	Dialer    *endpoint.Dialer
	Plain     *endpoint.Plain
	Discovery time.Duration // how long a first request to a new authority waits for discovery

	pools       sync.Map // authority -> *endpoint.Pool
	passthrough sync.Map // addr -> *endpoint.Endpoint
}

// otherEndpointWait bounds how long a request that never reached its endpoint's application waits for discovery
// to name another endpoint when the failed one is the only one known: during a rolling restart of a single
// replica, the new pod is announced moments after the old one stopped listening.
const otherEndpointWait = 2 * time.Second

// Pick chooses an endpoint of authority for one attempt, avoiding avoid (the previous attempt's) when another is
// available. With waitOther, when avoid is the only endpoint, it first waits (up to otherEndpointWait) for the
// next discovery update. origDst is where the application meant the connection to go (transparent mode), used
// when the mesh does not know authority. accrual is the target's failure-accrual policy (nil: off).
func (e *Endpoints) Pick(ctx context.Context, authority, origDst string, accrual *policy.Accrual, avoid *endpoint.Endpoint, waitOther bool) (*endpoint.Endpoint, error) {
	p := e.pool(authority)
	snap := e.snapshot(ctx, p.Target)
	if !snap.Known {
		if origDst != "" {
			return e.Passthrough(origDst), nil
		}
		return nil, fmt.Errorf("%s: %w", authority, pipeline.ErrUnresolved)
	}
	if !snap.Exists {
		// Not a name the mesh knows: send it where the application meant it to go.
		addr := origDst
		if addr == "" {
			addr = authority
		}
		return e.Passthrough(addr), nil
	}
	var a balance.Accrual
	if accrual != nil {
		a = balance.Accrual{ConsecutiveFailures: accrual.ConsecutiveFailures, MinPenalty: accrual.MinPenalty,
			MaxPenalty: accrual.MaxPenalty, JitterRatio: accrual.JitterRatio}
	}
	set := p.Set(snap, a)
	var prev *balance.Endpoint
	if avoid != nil {
		prev = avoid.Bal
	}
	be := set.PickExcept(prev)
	if waitOther && prev != nil && (be == nil || be == prev) {
		// Discovery may take the failed endpoint away before it names the new one: wait for updates until one
		// offers another endpoint, or the wait is over.
		t := time.NewTimer(otherEndpointWait)
		for be == nil || be == prev {
			next := p.Target.Next() // before the snapshot, so that no update falls in between
			set = p.Set(p.Target.Snapshot(), a)
			if be = set.PickExcept(prev); be != nil && be != prev {
				break
			}
			select {
			case <-next:
				continue
			case <-t.C:
			case <-ctx.Done():
			}
			break
		}
		t.Stop()
	}
	if be == nil {
		if set.Len() > 0 && set.AllEjected() {
			return nil, fmt.Errorf("%s: %w", authority, pipeline.ErrAllEjected)
		}
		return nil, fmt.Errorf("%s: %w", authority, pipeline.ErrNoEndpoints)
	}
	return be.Value.(*endpoint.Endpoint), nil
}

// snapshot is t's view, after waiting up to the discovery timeout for the first answer about a name not asked
// about before (still not Known when none came).
func (e *Endpoints) snapshot(ctx context.Context, t *discovery.Target) *discovery.Snapshot {
	snap := t.Snapshot()
	if !snap.Known {
		wctx, cancel := context.WithTimeout(ctx, e.Discovery)
		snap, _ = t.Wait(wctx)
		cancel()
	}
	return snap
}

func (e *Endpoints) pool(authority string) *endpoint.Pool {
	if p, ok := e.pools.Load(authority); ok {
		pl := p.(*endpoint.Pool)
		if !pl.Target.Evicted() {
			return pl
		}
		e.pools.Delete(authority)
	}
	p, _ := e.pools.LoadOrStore(authority, endpoint.NewPool(e.Resolver.Get(authority), e.Metrics, e.Dialer, e.Plain))
	return p.(*endpoint.Pool)
}

// Passthrough is the endpoint outside the mesh at addr.
func (e *Endpoints) Passthrough(addr string) *endpoint.Endpoint {
	if v, ok := e.passthrough.Load(addr); ok {
		ep := v.(*endpoint.Endpoint)
		ep.Touch()
		return ep
	}
	v, _ := e.passthrough.LoadOrStore(addr, endpoint.NewPassthrough(addr, e.Metrics, e.Dialer, e.Plain))
	ep := v.(*endpoint.Endpoint)
	ep.Touch()
	return ep
}

// Sweep forgets state no longer in use: pools whose target the resolver stopped watching, and pass-through
// endpoints unused for longer than idle. In transparent mode every distinct external ip:port creates such state,
// so without this a long-lived proxy would grow without bound. In-flight requests keep their own references.
func (e *Endpoints) Sweep(idle time.Duration) {
	e.pools.Range(func(k, v any) bool {
		if v.(*endpoint.Pool).Target.Evicted() {
			e.pools.CompareAndDelete(k, v)
		}
		return true
	})
	cutoff := time.Now().Add(-idle)
	e.passthrough.Range(func(k, v any) bool {
		// Pass-through endpoints use the shared plain transports, whose idle connections time out by themselves.
		if v.(*endpoint.Endpoint).IdleSince(cutoff) {
			e.passthrough.CompareAndDelete(k, v)
		}
		return true
	})
}

// Balance picks an endpoint of the request's backend for each attempt (a retry comes through again and gets
// another one) and feeds the attempt's outcome back to the balancer: its latency to the response headers, and
// whether it failed, for failure accrual.
func Balance(eps *Endpoints) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			origDst := ""
			if req.Backend == req.Out.Target {
				origDst = req.Out.OrigDst
			}
			var accrual *policy.Accrual
			if req.Policy != nil {
				accrual = req.Policy.Accrual
			}
			ep, err := eps.Pick(req.HTTP.Context(), req.Backend, origDst, accrual, req.Endpoint, req.Unprocessed)
			if err != nil {
				return nil, err
			}
			req.Endpoint = ep
			start := ep.Bal.Start()
			resp, err := next.Handle(req)
			// A client that went away says nothing about the endpoint.
			failed := err != nil && req.Client.Context().Err() == nil || err == nil && resp.StatusCode >= 500
			ep.Bal.Done(start.Add(ep.TakeDialTime()), failed)
			return resp, err
		})
	}
}
