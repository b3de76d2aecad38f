package authz

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/meshtls"
)

// KindRateLimit labels a rate limit that came from an HTTPLocalRateLimitPolicy.
const KindRateLimit = "httplocalratelimitpolicy"

// rateLimitsOf lists the HTTPLocalRateLimitPolicies that target srv, the one that applies first (the oldest, then
// by name).
func rateLimitsOf(pol *api.Policies, srv *api.Server) []*api.HTTPLocalRateLimitPolicy {
	var out []*api.HTTPLocalRateLimitPolicy
	for _, rl := range pol.RateLimits {
		if rl.Metadata.Namespace == srv.Metadata.Namespace && rl.Spec.TargetRef.Name == srv.Metadata.Name {
			out = append(out, rl)
		}
	}
	slices.SortFunc(out, func(a, b *api.HTTPLocalRateLimitPolicy) int {
		return cmp.Or(a.Metadata.CreationTimestamp.Compare(b.Metadata.CreationTimestamp), strings.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	return out
}

// translateRateLimit is the rate limit of srv's port, or nil for none.
func translateRateLimit(snap *model.Snapshot, cfg Config, srv *api.Server) *policyv1.RateLimit {
	rls := rateLimitsOf(snap.Policies(), srv)
	if len(rls) == 0 {
		return nil
	}
	rl := rls[0]
	out := &policyv1.RateLimit{
		Labels: map[string]string{"kind": KindRateLimit, "name": rl.Metadata.Name, "namespace": rl.Metadata.Namespace},
	}
	if t := rl.Spec.Total; t != nil {
		out.TotalRps = uint32(t.RequestsPerSecond)
	}
	if id := rl.Spec.Identity; id != nil {
		out.IdentityRps = uint32(id.RequestsPerSecond)
	}
	for _, ov := range rl.Spec.Overrides {
		o := &policyv1.RateLimitOverride{Rps: uint32(ov.RequestsPerSecond)}
		for _, ref := range ov.ClientRefs {
			o.Identities = append(o.Identities, meshtls.ID(cfg.TrustDomain, cmp.Or(ref.Namespace, rl.Metadata.Namespace), ref.Name))
		}
		out.Overrides = append(out.Overrides, o)
	}
	return out
}

// rateLimitProblems reports rate limits that target no Server, and Servers with more than one.
func rateLimitProblems(pol *api.Policies) []string {
	var out []string
	for _, rl := range pol.RateLimits {
		if !hasServer(pol, rl.Metadata.Namespace, rl.Spec.TargetRef.Name) {
			out = append(out, fmt.Sprintf("%s %s: targets Server %s, which does not exist", api.KindHTTPLocalRateLimitPolicy, rl.Metadata.Key(), rl.Spec.TargetRef.Name))
		}
	}
	for _, srv := range pol.Servers {
		if rls := rateLimitsOf(pol, srv); len(rls) > 1 {
			names := make([]string, len(rls))
			for i, rl := range rls {
				names[i] = rl.Metadata.Name
			}
			out = append(out, fmt.Sprintf("%s %s: %d rate limit policies target it (%s); only %s applies", api.KindServer, srv.Metadata.Key(), len(rls), strings.Join(names, ", "), names[0]))
		}
	}
	return out
}
