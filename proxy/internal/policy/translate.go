package policy

import (
	"fmt"
	"math"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// Translate turns the control plane's policy for target into an Outbound, compiling its matches once. What the
// proxy cannot use is left out, and each such part is reported in problems with its field path:
//   - a rule with a match that does not compile (a bad expression, a path not starting with "/", a header or query
//     parameter without a name or value) is dropped, and a route left without rules with it;
//   - a backend without an authority is dropped;
//   - a malformed or negative timeout is no timeout; a malformed retry status or gRPC code is not retried on;
//   - a failure accrual without failures to count or a penalty is off.
//
// A policy left without routes routes as Default does, with the rest of what the control plane said. A nil policy
// is Default.
func Translate(target string, p *policyv1.OutboundPolicy) (o *Outbound, problems []error) {
	if p == nil {
		return Default(target), nil
	}
	t := translator{}
	o = &Outbound{Labels: p.GetLabels(), Protocol: p.GetProtocol()}
	for i, pr := range p.GetRoutes() {
		if route := t.route(fmt.Sprintf("routes[%d]", i), pr); route != nil {
			o.Routes = append(o.Routes, route)
		}
	}
	if len(o.Routes) == 0 {
		o.Routes = defaultRoutes(target)
	}
	o.Accrual = t.accrual("failure_accrual", p.GetFailureAccrual())
	o.buildIndex()
	return o, t.problems
}

// translator collects the problems of one translation.
type translator struct{ problems []error }

func (t *translator) problem(field, format string, args ...any) {
	t.problems = append(t.problems, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (t *translator) route(field string, pr *policyv1.HttpRoute) *Route {
	route := &Route{Labels: pr.GetLabels()}
	for i, prule := range pr.GetRules() {
		if rule := t.rule(fmt.Sprintf("%s.rules[%d]", field, i), route, prule); rule != nil {
			route.Rules = append(route.Rules, rule)
		}
	}
	if len(route.Rules) == 0 {
		return nil
	}
	return route
}

// rule translates one rule, or drops it (nil) when one of its matches does not compile: a rule that matched less
// than it says, or more, would route requests where nobody asked.
func (t *translator) rule(field string, route *Route, pr *policyv1.RouteRule) *Rule {
	rule := &Rule{Route: route, Filters: pr.GetFilters(), FaultActive: faultCounters(pr.GetFilters())}
	for i, pm := range pr.GetMatches() {
		m, err := compileMatch(pm)
		if err != nil {
			t.problem(fmt.Sprintf("%s.matches[%d]", field, i), "%v; rule dropped", err)
			return nil
		}
		rule.Matches = append(rule.Matches, m)
	}
	for i, pb := range pr.GetBackends() {
		if pb.GetAuthority() == "" {
			t.problem(fmt.Sprintf("%s.backends[%d]", field, i), "no authority; backend dropped")
			continue
		}
		rule.Backends = append(rule.Backends, Backend{Authority: pb.GetAuthority(), Weight: pb.GetWeight(), Filters: pb.GetFilters(),
			FaultActive: faultCounters(pb.GetFilters())})
	}
	rule.Retry = t.retry(field+".retry", pr.GetRetry())
	rule.RequestTimeout = t.duration(field+".request_timeout", pr.GetRequestTimeout())
	rule.BackendTimeout = t.duration(field+".backend_request_timeout", pr.GetBackendRequestTimeout())
	rule.IdleTimeout = t.duration(field+".idle_timeout", pr.GetIdleTimeout())
	return rule
}

// compileMatch compiles one match. Of several header (or query) conditions on the same name only the first
// counts, as Gateway API says.
func compileMatch(pm *policyv1.HttpMatch) (Match, error) {
	var m Match
	switch k := pm.GetPath().GetKind().(type) {
	case nil:
	case *policyv1.HttpMatch_PathMatch_Exact:
		if !strings.HasPrefix(k.Exact, "/") {
			return m, fmt.Errorf("path: exact path %q does not start with /", k.Exact)
		}
		m.Path = PathMatch{Kind: PathExact, Value: k.Exact}
	case *policyv1.HttpMatch_PathMatch_Prefix:
		if !strings.HasPrefix(k.Prefix, "/") {
			return m, fmt.Errorf("path: prefix %q does not start with /", k.Prefix)
		}
		prefix := strings.TrimRight(k.Prefix, "/") // Gateway API ignores a trailing "/"
		if prefix == "" {
			prefix = "/"
		}
		m.Path = PathMatch{Kind: PathPrefix, Value: prefix}
	case *policyv1.HttpMatch_PathMatch_Regex:
		re, err := compileRegex(k.Regex)
		if err != nil {
			return m, fmt.Errorf("path: %w", err)
		}
		m.Path = PathMatch{Kind: PathRegex, Value: k.Regex, Regex: re}
	default:
		return m, fmt.Errorf("path: match of unknown kind %T", k)
	}
	m.Method = pm.GetMethod()

	seen := map[string]bool{}
	for i, h := range pm.GetHeaders() {
		if !validHeaderName(h.GetName()) {
			return m, fmt.Errorf("headers[%d]: %q is not a header name", i, h.GetName())
		}
		// A request's header names are canonical too: net/http refuses names it cannot make so.
		name := textproto.CanonicalMIMEHeaderKey(h.GetName())
		v, err := compileValue(name, h.GetValue())
		if err != nil {
			return m, fmt.Errorf("headers[%d] (%s): %w", i, h.GetName(), err)
		}
		if !seen[name] {
			seen[name] = true
			m.Headers = append(m.Headers, v)
		}
	}
	clear(seen)
	for i, q := range pm.GetQueryParams() {
		if q.GetName() == "" {
			return m, fmt.Errorf("query_params[%d]: no name", i)
		}
		v, err := compileValue(q.GetName(), q.GetValue())
		if err != nil {
			return m, fmt.Errorf("query_params[%d] (%s): %w", i, q.GetName(), err)
		}
		if !seen[q.GetName()] {
			seen[q.GetName()] = true
			m.Query = append(m.Query, v)
		}
	}
	return m, nil
}

// compileValue compiles the value condition of a header or query match, given as its oneof.
func compileValue(name string, value any) (ValueMatch, error) {
	switch v := value.(type) {
	case *policyv1.HttpMatch_HeaderMatch_Exact:
		return ValueMatch{Name: name, Value: v.Exact}, nil
	case *policyv1.HttpMatch_QueryParamMatch_Exact:
		return ValueMatch{Name: name, Value: v.Exact}, nil
	case *policyv1.HttpMatch_HeaderMatch_Regex:
		re, err := compileRegex(v.Regex)
		return ValueMatch{Name: name, Value: v.Regex, Regex: re}, err
	case *policyv1.HttpMatch_QueryParamMatch_Regex:
		re, err := compileRegex(v.Regex)
		return ValueMatch{Name: name, Value: v.Regex, Regex: re}, err
	case nil:
		return ValueMatch{}, fmt.Errorf("no value to match")
	default:
		return ValueMatch{}, fmt.Errorf("value match of unknown kind %T", v)
	}
}

// compileRegex compiles an expression that must match the whole of a value (RE2 syntax, as Gateway API
// specifies).
func compileRegex(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	return re, nil
}

// validHeaderName reports whether name is a token (RFC 9110): the names a request can carry, and those textproto
// canonicalizes.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if c >= 0x80 || c <= ' ' || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 || c == 0x7f {
			return false
		}
	}
	return true
}

// retry translates a retry policy; none, or one with a limit of 0, is no retries.
func (t *translator) retry(field string, pr *policyv1.Retry) *Retry {
	if pr == nil || pr.GetLimit() == 0 {
		return nil
	}
	r := &Retry{Limit: int(min(pr.GetLimit(), math.MaxInt32)), PerTryTimeout: t.duration(field+".per_try_timeout", pr.GetPerTryTimeout())}
	for i, s := range pr.GetStatusCodes() {
		if s < minStatus || s > maxStatus {
			t.problem(fmt.Sprintf("%s.status_codes[%d]", field, i), "%d is not an HTTP status (%d-%d); ignored", s, minStatus, maxStatus)
			continue
		}
		r.statuses[s/64] |= 1 << (s % 64)
	}
	for i, sr := range pr.GetStatusRanges() {
		first, last := sr.GetFirst(), sr.GetLast()
		if first < minStatus || last > maxStatus || first > last {
			t.problem(fmt.Sprintf("%s.status_ranges[%d]", field, i), "%d-%d is not a range of HTTP statuses (%d-%d); ignored", first, last, minStatus, maxStatus)
			continue
		}
		for s := first; s <= last; s++ {
			r.statuses[s/64] |= 1 << (s % 64)
		}
	}
	for i, c := range pr.GetGrpcCodes() {
		if c > maxGRPCCode {
			t.problem(fmt.Sprintf("%s.grpc_codes[%d]", field, i), "%d is not a gRPC status code (0-%d); ignored", c, maxGRPCCode)
			continue
		}
		r.grpc |= 1 << c
	}
	return r
}

// accrual translates a failure accrual; it is off without failures to count or a max penalty.
func (t *translator) accrual(field string, pa *policyv1.FailureAccrual) *Accrual {
	if pa == nil {
		return nil
	}
	if pa.GetConsecutiveFailures() == 0 {
		t.problem(field+".consecutive_failures", "0 failures in a row; failure accrual off")
		return nil
	}
	a := &Accrual{
		ConsecutiveFailures: int(min(pa.GetConsecutiveFailures(), math.MaxInt32)),
		MinPenalty:          t.duration(field+".min_penalty", pa.GetMinPenalty()),
		MaxPenalty:          t.duration(field+".max_penalty", pa.GetMaxPenalty()),
		JitterRatio:         pa.GetJitterRatio(),
	}
	if a.MaxPenalty == 0 {
		t.problem(field+".max_penalty", "no max penalty; failure accrual off")
		return nil
	}
	if a.MinPenalty > a.MaxPenalty {
		t.problem(field+".min_penalty", "%s exceeds the max penalty %s; the max penalty used", a.MinPenalty, a.MaxPenalty)
		a.MinPenalty = a.MaxPenalty
	}
	if j := a.JitterRatio; math.IsNaN(j) || j < 0 || j > 100 {
		t.problem(field+".jitter_ratio", "%v is not a ratio from 0 to 100; no jitter", j)
		a.JitterRatio = 0
	}
	return a
}

// duration is d, or 0 (none) when d is unset, malformed or negative.
func (t *translator) duration(field string, d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil {
		t.problem(field, "%v; none used", err)
		return 0
	}
	v := d.AsDuration()
	if v < 0 {
		t.problem(field, "negative (%s); none used", v)
		return 0
	}
	return v
}
