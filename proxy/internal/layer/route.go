package layer

import (
	"net/http"

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
// 404. Until the policy service first answers for a target, the target gets the default policy: one rule that
// sends everything to the target, without retries or timeouts.
func Route(pols Policies) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			p := pols.Get(req.Out.Target).Policy()
			req.Policy = p
			req.Rule = p.Match(req.HTTP)
			if req.Rule == nil {
				return nil, pipeline.ErrNoRoute
			}
			return next.Handle(req)
		})
	}
}
