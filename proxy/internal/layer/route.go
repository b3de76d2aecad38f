package layer

import (
	"context"
	"net/http"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Policies finds the outbound policy of a target; implemented by policy.Client (a nil client gives every target
// the default policy).
type Policies interface {
	Get(target string) *policy.Watch
}

var _ Policies = (*policy.Client)(nil)

// Route looks up the target's outbound policy and the rule that matches the request; no matching rule answers
// 404. The first request to a target waits up to wait for the policy service's first answer; if none comes (the
// control plane is down), the target gets the default policy until one does: one rule that sends everything to
// the target, without retries or timeouts.
func Route(pols Policies, wait time.Duration) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			w := pols.Get(req.Out.Target)
			if !w.Answered() {
				ctx, cancel := context.WithTimeout(req.HTTP.Context(), wait)
				_, _ = w.Wait(ctx) // on timeout the default policy serves
				cancel()
			}
			p := w.Policy()
			req.Policy = p
			req.Rule, req.Match = p.Find(req.HTTP)
			if req.Rule == nil {
				return nil, pipeline.ErrNoRoute
			}
			return next.Handle(req)
		})
	}
}
