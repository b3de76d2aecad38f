// Package policy is the proxy's view of the control plane's outbound policies: how requests to a target are
// routed (rules matched by Gateway API precedence, weighted backends), retried, timed out, and when its endpoints
// are taken out of balancing. It watches policies on demand, as discovery watches endpoints, and translates each
// answer once into types the request path reads without further work. It applies nothing itself: the layers of
// the request path do, and it must not reach into them.
package policy

import (
	"sync/atomic"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// Outbound is the translated policy of one target. It is immutable once built; a new answer from the control
// plane is a new Outbound.
type Outbound struct {
	Routes  []*Route
	Accrual *Accrual          // nil: failure accrual off
	Labels  map[string]string // where the policy came from (kind, name, namespace)
	// Protocol is what the control plane says the target speaks; PROTOCOL_UNSPECIFIED and PROTOCOL_DETECT mean
	// the proxy finds out.
	Protocol policyv1.Protocol

	// index is every rule's matches in precedence order, built by Translate and Default, or on the first Match of
	// an Outbound built by hand.
	index atomic.Pointer[[]entry]
}

// Route is one route (an HTTPRoute, or the default route) of a policy.
type Route struct {
	Labels map[string]string // kind, name, namespace... of the route, for metrics
	Rules  []*Rule
}

// Rule is one rule of a route: what it matches and what happens to the requests it matched.
type Rule struct {
	Route    *Route
	Matches  []Match // any one of them; none matches every request
	Backends []Backend
	Filters  []*policyv1.Filter // as the control plane sent them
	// FaultActive counts, by the index of each Fault filter in Filters, the requests it is faulting now (for
	// its max_active); nil without Fault filters.
	FaultActive []atomic.Int32
	Retry       *Retry // nil: no retries
	// RequestTimeout bounds the whole request, retries included, until its response headers arrive;
	// BackendTimeout bounds each attempt at a backend the same way; IdleTimeout is how long a request or
	// response stream may go without a frame. 0: no limit.
	RequestTimeout, BackendTimeout, IdleTimeout time.Duration
}

// Backend is where a share of a rule's requests goes: Weight out of the sum of the rule's weights. A weight of 0
// gets no requests (Gateway API).
type Backend struct {
	Authority   string
	Weight      uint32
	Filters     []*policyv1.Filter
	FaultActive []atomic.Int32 // as Rule's
}

// faultCounters are the FaultActive of filters: nil without a Fault among them.
func faultCounters(filters []*policyv1.Filter) []atomic.Int32 {
	for _, f := range filters {
		if f.GetFault() != nil {
			return make([]atomic.Int32, len(filters))
		}
	}
	return nil
}

// Retry says which failed attempts are tried again, at most Limit times per request.
type Retry struct {
	Limit         int           // at least 1
	PerTryTimeout time.Duration // 0: no per-attempt limit
	statuses      [statusWords]uint64
	grpc          uint64 // bit n: gRPC status code n
}

// HTTP statuses are 100-599; statuses is a bit set of them.
const (
	minStatus   = 100
	maxStatus   = 599
	statusWords = (maxStatus + 1 + 63) / 64
)

// OnStatus reports whether an attempt answered with the HTTP status is retried.
func (r *Retry) OnStatus(status int) bool {
	if r == nil || status < minStatus || status > maxStatus {
		return false
	}
	return r.statuses[status/64]&(1<<(status%64)) != 0
}

// OnGRPC reports whether an attempt that ended with the gRPC status code is retried.
func (r *Retry) OnGRPC(code int) bool {
	if r == nil || code < 0 || code > maxGRPCCode {
		return false
	}
	return r.grpc&(1<<code) != 0
}

// maxGRPCCode is the largest gRPC status code (UNAUTHENTICATED).
const maxGRPCCode = 16

// Accrual takes an endpoint out of balancing after ConsecutiveFailures failures in a row and probes it again
// after a penalty that starts at MinPenalty and doubles after each failed probe up to MaxPenalty, each penalty
// varied at random by up to JitterRatio of itself.
type Accrual struct {
	ConsecutiveFailures int
	MinPenalty          time.Duration
	MaxPenalty          time.Duration
	JitterRatio         float64
}

// defaultLabels name the policy and route of a target the control plane has said nothing about, as the control
// plane names its own default.
func defaultLabels() map[string]string {
	return map[string]string{"kind": "default", "name": "default"}
}

// Default is the policy of a target before (or without) the control plane: every request goes to the target
// itself, with no retries, timeouts or failure accrual.
func Default(target string) *Outbound {
	o := &Outbound{Routes: defaultRoutes(target), Labels: defaultLabels(), Protocol: policyv1.Protocol_PROTOCOL_DETECT}
	o.buildIndex()
	return o
}

// defaultRoutes is the one route of Default: one rule that matches every request and sends it to target.
func defaultRoutes(target string) []*Route {
	route := &Route{Labels: defaultLabels()}
	route.Rules = []*Rule{{Route: route, Backends: []Backend{{Authority: target, Weight: 1}}}}
	return []*Route{route}
}
