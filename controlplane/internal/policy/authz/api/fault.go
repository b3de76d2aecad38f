package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// KindHTTPFault is fault injection for routes: a Gateway API HTTPRoute or GRPCRoute rule (or backend) refers to
// one with an ExtensionRef filter. The Gateway API defines no fault filter of its own.
const KindHTTPFault = "HTTPFault"

// HTTPFault delays and/or aborts a share of the requests of the route rules that refer to it.
type HTTPFault struct {
	APIVersion string        `json:"apiVersion,omitempty"`
	Kind       string        `json:"kind,omitempty"`
	Metadata   Meta          `json:"metadata"`
	Spec       HTTPFaultSpec `json:"spec"`
}

// HTTPFaultSpec is the fault's spec: at least one of Abort and Delay.
type HTTPFaultSpec struct {
	Abort *FaultAbort `json:"abort,omitempty"`
	Delay *FaultDelay `json:"delay,omitempty"`
	// MaxActiveFaults caps the requests each proxy is faulting at once; past it, requests pass untouched.
	MaxActiveFaults *int `json:"maxActiveFaults,omitempty"`
}

// FaultAbort answers a share of the requests itself: HTTPStatus, or for gRPC requests GRPCStatus when set (a code
// name, such as UNAVAILABLE).
type FaultAbort struct {
	HTTPStatus *int     `json:"httpStatus,omitempty"`
	GRPCStatus *string  `json:"grpcStatus,omitempty"`
	Percentage *float64 `json:"percentage,omitempty"` // 0–100, default 100
}

// FaultDelay holds a share of the requests for FixedDelay before sending them on.
type FaultDelay struct {
	FixedDelay string   `json:"fixedDelay"` // a Go or Gateway API duration, such as 500ms
	Percentage *float64 `json:"percentage,omitempty"`
}

// ObjectKind implements Object.
func (*HTTPFault) ObjectKind() string { return KindHTTPFault }

// ObjectMeta implements Object.
func (o *HTTPFault) ObjectMeta() *Meta { return &o.Metadata }

var _ Object = (*HTTPFault)(nil)

// maxFaultDelay bounds a delay: a fault is a test of a client's patience, not a way to park requests for good.
const maxFaultDelay = time.Hour

// Validate implements Object, as the CRD's schema and CEL rules do.
func (o *HTTPFault) Validate() error {
	var errs []error
	s := &o.Spec
	if s.Abort == nil && s.Delay == nil {
		errs = append(errs, errors.New("spec: give at least one of abort and delay"))
	}
	pct := func(field string, p *float64) {
		if p != nil && (*p < 0 || *p > 100) {
			errs = append(errs, fmt.Errorf("%s.percentage: must be between 0 and 100, got %v", field, *p))
		}
	}
	if a := s.Abort; a != nil {
		if a.HTTPStatus == nil && a.GRPCStatus == nil {
			errs = append(errs, errors.New("spec.abort: give httpStatus, grpcStatus or both"))
		}
		if a.HTTPStatus != nil && (*a.HTTPStatus < 200 || *a.HTTPStatus > 599) {
			errs = append(errs, fmt.Errorf("spec.abort.httpStatus: must be between 200 and 599, got %d", *a.HTTPStatus))
		}
		if a.GRPCStatus != nil {
			if _, err := GRPCCode(*a.GRPCStatus); err != nil {
				errs = append(errs, fmt.Errorf("spec.abort.grpcStatus: %w", err))
			}
		}
		pct("spec.abort", a.Percentage)
	}
	if d := s.Delay; d != nil {
		v, err := time.ParseDuration(d.FixedDelay)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("spec.delay.fixedDelay: %q is not a duration (such as 500ms or 2s)", d.FixedDelay))
		case v <= 0 || v > maxFaultDelay:
			errs = append(errs, fmt.Errorf("spec.delay.fixedDelay: must be more than 0 and at most %v, got %v", maxFaultDelay, v))
		}
		pct("spec.delay", d.Percentage)
	}
	if m := s.MaxActiveFaults; m != nil && (*m < 1 || *m > 1000000) {
		errs = append(errs, fmt.Errorf("spec.maxActiveFaults: must be between 1 and 1000000, got %d", *m))
	}
	return join(errs)
}

// GRPCCode reads a gRPC status code by its name (UNAVAILABLE) or number (14); OK is not an abort.
func GRPCCode(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 16 {
			return 0, fmt.Errorf("%d is not a gRPC status code other than OK (1 to 16)", n)
		}
		return uint32(n), nil
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(s)))); err != nil || c == codes.OK {
		return 0, fmt.Errorf("%q is not the name of a gRPC status code other than OK (such as UNAVAILABLE)", s)
	}
	return uint32(c), nil
}

// Ratio is a percentage as a share, 0..1: 1 when unset.
func Ratio(p *float64) float64 {
	if p == nil {
		return 1
	}
	return *p / 100
}
