package api

import (
	"errors"
	"fmt"
)

// KindHTTPLocalRateLimitPolicy limits the HTTP requests a Server's port admits, per proxy.
const KindHTTPLocalRateLimitPolicy = "HTTPLocalRateLimitPolicy"

// HTTPLocalRateLimitPolicy is a Server's local rate limit: a total, a per-identity fair share, and overrides for
// given service accounts. One per Server; the oldest wins when there are more.
type HTTPLocalRateLimitPolicy struct {
	APIVersion string                       `json:"apiVersion,omitempty"`
	Kind       string                       `json:"kind,omitempty"`
	Metadata   Meta                         `json:"metadata"`
	Spec       HTTPLocalRateLimitPolicySpec `json:"spec"`
}

// HTTPLocalRateLimitPolicySpec is the policy's spec; at least one limit is set.
type HTTPLocalRateLimitPolicySpec struct {
	TargetRef TargetRef           `json:"targetRef"`
	Total     *RequestRate        `json:"total,omitempty"`
	Identity  *RequestRate        `json:"identity,omitempty"`
	Overrides []RateLimitOverride `json:"overrides,omitempty"`
}

// RequestRate is a number of requests per second.
type RequestRate struct {
	RequestsPerSecond int `json:"requestsPerSecond"`
}

// RateLimitOverride gives the service accounts of ClientRefs their own per-identity limit.
type RateLimitOverride struct {
	RequestsPerSecond int   `json:"requestsPerSecond"`
	ClientRefs        []Ref `json:"clientRefs"`
}

// ObjectKind implements Object.
func (*HTTPLocalRateLimitPolicy) ObjectKind() string { return KindHTTPLocalRateLimitPolicy }

// ObjectMeta implements Object.
func (o *HTTPLocalRateLimitPolicy) ObjectMeta() *Meta { return &o.Metadata }

var _ Object = (*HTTPLocalRateLimitPolicy)(nil)

const maxRate = 1000000

// Validate implements Object, as the CRD's schema and CEL rules do.
func (o *HTTPLocalRateLimitPolicy) Validate() error {
	var errs []error
	s := &o.Spec
	if t := s.TargetRef; t.Kind != KindServer || t.Group != Group {
		errs = append(errs, fmt.Errorf("spec.targetRef: must be a Server (group %s); got kind %q group %q", Group, t.Kind, t.Group))
	}
	if s.TargetRef.Name == "" {
		errs = append(errs, errors.New("spec.targetRef.name: required"))
	}
	if s.Total == nil && s.Identity == nil && len(s.Overrides) == 0 {
		errs = append(errs, errors.New("spec: give at least one of total, identity and overrides"))
	}
	rate := func(field string, n int) {
		if n < 1 || n > maxRate {
			errs = append(errs, fmt.Errorf("%s.requestsPerSecond: must be between 1 and %d, got %d", field, maxRate, n))
		}
	}
	if s.Total != nil {
		rate("spec.total", s.Total.RequestsPerSecond)
	}
	if s.Identity != nil {
		rate("spec.identity", s.Identity.RequestsPerSecond)
		if s.Total != nil && s.Identity.RequestsPerSecond > s.Total.RequestsPerSecond {
			errs = append(errs, errors.New("spec.identity.requestsPerSecond: must not exceed spec.total.requestsPerSecond"))
		}
	}
	for i, ov := range s.Overrides {
		f := fmt.Sprintf("spec.overrides[%d]", i)
		rate(f, ov.RequestsPerSecond)
		if len(ov.ClientRefs) == 0 {
			errs = append(errs, fmt.Errorf("%s.clientRefs: at least one client is required", f))
		}
		for j, r := range ov.ClientRefs {
			if r.Kind != "ServiceAccount" || r.Group != "" || r.Name == "" {
				errs = append(errs, fmt.Errorf("%s.clientRefs[%d]: must name a ServiceAccount (core group, empty), got kind %q group %q name %q", f, j, r.Kind, r.Group, r.Name))
			}
		}
	}
	return join(errs)
}
