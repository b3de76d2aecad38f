package policy

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// applyServiceDefaults puts a Service's outbound defaults (from its annotations) on the policy of a target that
// resolves to it: retry and timeouts on the default route's rule, failure accrual on the policy, since it belongs
// to the balancer of the Service's endpoints rather than to a route. Unset defaults leave their fields unset.
func applyServiceDefaults(p *policyv1.OutboundPolicy, rule *policyv1.RouteRule, d model.OutboundDefaults) {
	if r := d.Retry; r != nil {
		retry := &policyv1.Retry{Limit: r.Limit, PerTryTimeout: duration(r.PerTryTimeout)}
		for _, s := range r.HTTPStatuses {
			retry.StatusRanges = append(retry.StatusRanges, &policyv1.StatusRange{First: uint32(s.First), Last: uint32(s.Last)})
		}
		retry.GrpcCodes = append(retry.GrpcCodes, r.GRPCCodes...)
		rule.Retry = retry
	}
	rule.RequestTimeout = duration(d.RequestTimeout)
	rule.BackendRequestTimeout = duration(d.ResponseTimeout)
	rule.IdleTimeout = duration(d.IdleTimeout)
	if fa := d.FailureAccrual; fa != nil {
		p.FailureAccrual = &policyv1.FailureAccrual{
			ConsecutiveFailures: fa.ConsecutiveFailures,
			MinPenalty:          durationpb.New(time.Duration(fa.MinPenalty)),
			MaxPenalty:          durationpb.New(time.Duration(fa.MaxPenalty)),
			JitterRatio:         fa.JitterRatio,
		}
	}
}

// duration is d as a proto Duration, or nil (unset) for zero.
func duration(d model.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(time.Duration(d))
}
