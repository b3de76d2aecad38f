// Package svcdefaults reads a Service's outbound defaults (retries, timeouts, failure accrual) from its
// annotations, with Linkerd 2.16+'s meaning under our prefix (names.AnnRetryHTTP and the rest). Both sources use
// it, so a Service means the same in local and Kubernetes mode. It only decodes: a bad annotation is an error that
// names it, and contributes nothing, while the good ones still apply; it must never make a Service fail to load.
package svcdefaults

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

// Defaults that apply when some, but not all, of the related annotations are set.
const (
	// DefaultRetryLimit is the retry limit once any retry annotation is set.
	DefaultRetryLimit = 1
	// DefaultMaxFailures, DefaultMinPenalty, DefaultMaxPenalty and DefaultJitterRatio complete
	// balancer.sinew.dev/failure-accrual: consecutive.
	DefaultMaxFailures = 7
	DefaultMinPenalty  = time.Second
	DefaultMaxPenalty  = time.Minute
	DefaultJitterRatio = 0.5
)

// DefaultRetryHTTP is what is retried when retries are on but neither retry.sinew.dev/http nor
// retry.sinew.dev/grpc says what: every 5xx.
var DefaultRetryHTTP = []model.StatusRange{{First: 500, Last: 599}}

// grpcCodes are the gRPC status codes a retry may name (those Linkerd accepts), by their numbers in
// google.golang.org/grpc/codes.
var grpcCodes = map[string]uint32{
	"cancelled":          1,
	"deadline-exceeded":  4,
	"resource-exhausted": 8,
	"internal":           13,
	"unavailable":        14,
}

// Parse reads the outbound defaults from a Service's annotations. Each error names the annotation it is about;
// that annotation is then ignored (the others still apply, and a default takes its place where there is one).
func Parse(annotations map[string]string) (model.OutboundDefaults, []error) {
	p := parser{ann: annotations}
	var d model.OutboundDefaults
	d.Retry = p.retry()
	d.RequestTimeout = p.timeout(names.AnnTimeoutRequest)
	d.ResponseTimeout = p.timeout(names.AnnTimeoutResponse)
	d.IdleTimeout = p.timeout(names.AnnTimeoutIdle)
	d.FailureAccrual = p.failureAccrual()
	return d, p.errs
}

type parser struct {
	ann  map[string]string
	errs []error
}

// get returns the annotation's trimmed value.
func (p *parser) get(name string) (string, bool) {
	v, ok := p.ann[name]
	return strings.TrimSpace(v), ok
}

func (p *parser) fail(name, value string, err error) {
	p.errs = append(p.errs, fmt.Errorf("annotation %s: %q: %w", name, value, err))
}

func (p *parser) retry() *model.Retry {
	r := &model.Retry{Limit: DefaultRetryLimit}
	set := false
	if v, ok := p.get(names.AnnRetryHTTP); ok {
		if ranges, err := parseStatuses(v); err != nil {
			p.fail(names.AnnRetryHTTP, v, err)
		} else {
			r.HTTPStatuses, set = ranges, true
		}
	}
	if v, ok := p.get(names.AnnRetryGRPC); ok {
		if codes, err := parseGRPCCodes(v); err != nil {
			p.fail(names.AnnRetryGRPC, v, err)
		} else {
			r.GRPCCodes, set = codes, true
		}
	}
	if v, ok := p.get(names.AnnRetryLimit); ok {
		n, err := strconv.ParseUint(v, 10, 16)
		switch {
		case err != nil:
			p.fail(names.AnnRetryLimit, v, errors.New("must be a whole number of retries, 1-65535"))
		case n == 0:
			p.fail(names.AnnRetryLimit, v, errors.New("must be at least 1 (remove the retry annotations to turn retries off)"))
		default:
			r.Limit, set = uint32(n), true
		}
	}
	if v, ok := p.get(names.AnnRetryTimeout); ok {
		if t, err := parseDuration(v); err != nil {
			p.fail(names.AnnRetryTimeout, v, err)
		} else if t > 0 { // "0": no per-try timeout, as if unset
			r.PerTryTimeout, set = model.Duration(t), true
		}
	}
	if !set {
		return nil
	}
	if len(r.HTTPStatuses) == 0 && len(r.GRPCCodes) == 0 {
		r.HTTPStatuses = append([]model.StatusRange(nil), DefaultRetryHTTP...)
	}
	return r
}

func (p *parser) timeout(name string) model.Duration {
	v, ok := p.get(name)
	if !ok {
		return 0
	}
	t, err := parseDuration(v)
	if err != nil {
		p.fail(name, v, err)
		return 0
	}
	return model.Duration(t)
}

func (p *parser) failureAccrual() *model.FailureAccrual {
	settings := []string{names.AnnFailureAccrualMaxFailures, names.AnnFailureAccrualMinPenalty,
		names.AnnFailureAccrualMaxPenalty, names.AnnFailureAccrualJitterRatio}
	mode, ok := p.get(names.AnnFailureAccrual)
	if !ok {
		for _, name := range settings {
			if v, ok := p.get(name); ok {
				p.fail(name, v, fmt.Errorf("has no effect without %s: consecutive", names.AnnFailureAccrual))
			}
		}
		return nil
	}
	if mode != "consecutive" {
		p.fail(names.AnnFailureAccrual, mode, errors.New(`the only mode is "consecutive"`))
		return nil
	}
	fa := &model.FailureAccrual{
		ConsecutiveFailures: DefaultMaxFailures,
		MinPenalty:          model.Duration(DefaultMinPenalty),
		MaxPenalty:          model.Duration(DefaultMaxPenalty),
		JitterRatio:         DefaultJitterRatio,
	}
	if v, ok := p.get(names.AnnFailureAccrualMaxFailures); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			p.fail(names.AnnFailureAccrualMaxFailures, v, errors.New("must be a whole number of failures, at least 1"))
		} else {
			fa.ConsecutiveFailures = uint32(n)
		}
	}
	if v, ok := p.get(names.AnnFailureAccrualMaxPenalty); ok {
		t, err := parseDuration(v)
		switch {
		case err != nil:
			p.fail(names.AnnFailureAccrualMaxPenalty, v, err)
		case t == 0:
			p.fail(names.AnnFailureAccrualMaxPenalty, v, errors.New("must be more than 0"))
		default:
			fa.MaxPenalty = model.Duration(t)
		}
	}
	// The min penalty is read after the max, which it must not exceed; when it is bad, the default takes its
	// place, capped by the max.
	fa.MinPenalty = min(fa.MinPenalty, fa.MaxPenalty)
	if v, ok := p.get(names.AnnFailureAccrualMinPenalty); ok {
		t, err := parseDuration(v)
		switch {
		case err != nil:
			p.fail(names.AnnFailureAccrualMinPenalty, v, err)
		case model.Duration(t) > fa.MaxPenalty:
			p.fail(names.AnnFailureAccrualMinPenalty, v, fmt.Errorf("exceeds the max penalty %s", time.Duration(fa.MaxPenalty)))
		default:
			fa.MinPenalty = model.Duration(t)
		}
	}
	if v, ok := p.get(names.AnnFailureAccrualJitterRatio); ok {
		j, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(j) || j < 0 || j > 100 {
			p.fail(names.AnnFailureAccrualJitterRatio, v, errors.New("must be a number from 0 to 100"))
		} else {
			fa.JitterRatio = j
		}
	}
	return fa
}

// parseStatuses reads a comma-separated list of HTTP statuses: "504", ranges "500-504", "5xx" (500-599) and
// "gateway-error" (502-504).
func parseStatuses(v string) ([]model.StatusRange, error) {
	var out []model.StatusRange
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			return nil, errors.New("empty list element")
		case strings.EqualFold(item, "5xx"):
			out = append(out, model.StatusRange{First: 500, Last: 599})
		case strings.EqualFold(item, "gateway-error"):
			out = append(out, model.StatusRange{First: 502, Last: 504})
		default:
			first, last, isRange := strings.Cut(item, "-")
			if !isRange {
				last = first
			}
			a, errA := parseStatus(first)
			b, errB := parseStatus(last)
			if errA != nil || errB != nil || a > b {
				return nil, fmt.Errorf(`%q: want a status (100-599), a range "500-504", "5xx" or "gateway-error"`, item)
			}
			out = append(out, model.StatusRange{First: a, Last: b})
		}
	}
	return out, nil
}

func parseStatus(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n < 100 || n > 599 {
		return 0, errors.New("not an HTTP status")
	}
	return uint16(n), nil
}

// parseGRPCCodes reads a comma-separated list of gRPC status code names (grpcCodes).
func parseGRPCCodes(v string) ([]uint32, error) {
	var out []uint32
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		code, ok := grpcCodes[strings.ToLower(item)]
		if !ok {
			return nil, fmt.Errorf("%q: want cancelled, deadline-exceeded, internal, resource-exhausted or unavailable", item)
		}
		out = append(out, code)
	}
	return out, nil
}

// parseDuration reads a non-negative duration: Go's syntax ("500ms", "10s", "1m30s") plus whole days ("1d"),
// which Linkerd also accepts. "0" is allowed and means none.
func parseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil || n > 106751 {
			return 0, errors.New(`want a duration such as "500ms", "10s", "1m" or "1d"`)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	t, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New(`want a duration such as "500ms", "10s", "1m" or "1d"`)
	}
	if t < 0 {
		return 0, errors.New("must not be negative")
	}
	return t, nil
}
