package policy

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

const target = "web-svc.emojivoto.svc.cluster.local:80"

// isDefaultRoutes reports whether o routes as Default(target) does: one rule, every request, to target.
func isDefaultRoutes(o *Outbound) bool {
	if len(o.Routes) != 1 || len(o.Routes[0].Rules) != 1 {
		return false
	}
	r := o.Routes[0].Rules[0]
	return r.Route == o.Routes[0] && len(r.Matches) == 0 && len(r.Backends) == 1 &&
		r.Backends[0].Authority == target && r.Backends[0].Weight == 1 && r.Retry == nil &&
		r.RequestTimeout == 0 && r.BackendTimeout == 0 && r.IdleTimeout == 0 && o.Routes[0].Labels["kind"] == "default"
}

func TestDefault(t *testing.T) {
	t.Parallel()
	o := Default(target)
	if !isDefaultRoutes(o) || o.Accrual != nil || o.Protocol != policyv1.Protocol_PROTOCOL_DETECT {
		t.Fatalf("Default: %+v", o)
	}
	if got := o.Match(get(t, "/anything?x=1")); got != o.Routes[0].Rules[0] {
		t.Errorf("Default matched %v, want its one rule", got)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	sec := durationpb.New
	for _, c := range []struct {
		name string
		in   *policyv1.OutboundPolicy
		// problems are substrings of the problems reported, in order.
		problems []string
		check    func(t *testing.T, o *Outbound)
	}{
		{
			name: "nil is the default",
			in:   nil,
			check: func(t *testing.T, o *Outbound) {
				if !isDefaultRoutes(o) {
					t.Errorf("routes %+v", o.Routes)
				}
			},
		},
		{
			name: "the control plane's default, with a Service's annotations",
			in: &policyv1.OutboundPolicy{
				Protocol: policyv1.Protocol_PROTOCOL_DETECT,
				Labels:   map[string]string{"kind": "default", "name": "default"},
				Routes: []*policyv1.HttpRoute{{
					Labels: map[string]string{"kind": "default", "name": "default"},
					Rules: []*policyv1.RouteRule{{
						Backends: []*policyv1.WeightedBackend{{Authority: target, Weight: 1}},
						Retry: &policyv1.Retry{Limit: 2, PerTryTimeout: sec(300 * time.Millisecond), GrpcCodes: []uint32{14, 4},
							StatusRanges: []*policyv1.StatusRange{{First: 502, Last: 504}}, StatusCodes: []uint32{429}},
						RequestTimeout:        sec(2 * time.Second),
						BackendRequestTimeout: sec(time.Second),
						IdleTimeout:           sec(30 * time.Second),
					}},
				}},
				FailureAccrual: &policyv1.FailureAccrual{ConsecutiveFailures: 5, MinPenalty: sec(10 * time.Second),
					MaxPenalty: sec(time.Minute), JitterRatio: 0.5},
			},
			check: func(t *testing.T, o *Outbound) {
				if len(o.Routes) != 1 || len(o.Routes[0].Rules) != 1 {
					t.Fatalf("routes %+v", o.Routes)
				}
				r := o.Routes[0].Rules[0]
				if r.Route != o.Routes[0] || len(r.Matches) != 0 || !slices.Equal(backends(r), []string{target}) {
					t.Errorf("rule %+v", r)
				}
				if r.RequestTimeout != 2*time.Second || r.BackendTimeout != time.Second || r.IdleTimeout != 30*time.Second {
					t.Errorf("timeouts %v %v %v", r.RequestTimeout, r.BackendTimeout, r.IdleTimeout)
				}
				if r.Retry == nil || r.Retry.Limit != 2 || r.Retry.PerTryTimeout != 300*time.Millisecond {
					t.Fatalf("retry %+v", r.Retry)
				}
				for status, want := range map[int]bool{429: true, 501: false, 502: true, 503: true, 504: true, 505: false, 200: false, 0: false, 1000: false, -1: false} {
					if got := r.Retry.OnStatus(status); got != want {
						t.Errorf("OnStatus(%d) = %v, want %v", status, got, want)
					}
				}
				for code, want := range map[int]bool{14: true, 4: true, 13: false, 0: false, 64: false, -1: false} {
					if got := r.Retry.OnGRPC(code); got != want {
						t.Errorf("OnGRPC(%d) = %v, want %v", code, got, want)
					}
				}
				want := Accrual{ConsecutiveFailures: 5, MinPenalty: 10 * time.Second, MaxPenalty: time.Minute, JitterRatio: 0.5}
				if o.Accrual == nil || *o.Accrual != want {
					t.Errorf("accrual %+v, want %+v", o.Accrual, want)
				}
				if o.Protocol != policyv1.Protocol_PROTOCOL_DETECT || o.Labels["kind"] != "default" {
					t.Errorf("protocol %v labels %v", o.Protocol, o.Labels)
				}
			},
		},
		{
			name: "a retry with limit 0 is no retry",
			in: outbound(route("r", &policyv1.RouteRule{Retry: &policyv1.Retry{Limit: 0, StatusCodes: []uint32{503}},
				Backends: []*policyv1.WeightedBackend{{Authority: "a:80", Weight: 1}}})),
			check: func(t *testing.T, o *Outbound) {
				if r := o.Routes[0].Rules[0].Retry; r != nil || r.OnStatus(503) {
					t.Errorf("retry %+v, want none", r)
				}
			},
		},
		{
			name: "statuses and codes that are not are ignored",
			in: outbound(route("r", &policyv1.RouteRule{Retry: &policyv1.Retry{Limit: 1,
				StatusCodes:  []uint32{503, 99, 600},
				StatusRanges: []*policyv1.StatusRange{{First: 504, Last: 500}, {First: 500, Last: 700}, {First: 0, Last: 0}},
				GrpcCodes:    []uint32{14, 17},
			}})),
			problems: []string{"status_codes[1]", "status_codes[2]", "status_ranges[0]", "status_ranges[1]", "status_ranges[2]", "grpc_codes[1]"},
			check: func(t *testing.T, o *Outbound) {
				r := o.Routes[0].Rules[0].Retry
				if r == nil || !r.OnStatus(503) || r.OnStatus(500) || r.OnStatus(504) || !r.OnGRPC(14) {
					t.Errorf("retry %+v, want 503 and UNAVAILABLE only", r)
				}
			},
		},
		{
			name: "malformed and negative durations are none",
			in: outbound(route("r", &policyv1.RouteRule{
				Retry:                 &policyv1.Retry{Limit: 1, PerTryTimeout: sec(-time.Second)},
				RequestTimeout:        &durationpb.Duration{Seconds: 1, Nanos: -5},
				BackendRequestTimeout: sec(-time.Millisecond),
				IdleTimeout:           &durationpb.Duration{Nanos: 2e9},
			})),
			problems: []string{"rules[0].retry.per_try_timeout: negative", "rules[0].request_timeout", "rules[0].backend_request_timeout: negative", "rules[0].idle_timeout"},
			check: func(t *testing.T, o *Outbound) {
				r := o.Routes[0].Rules[0]
				if r.Retry.PerTryTimeout != 0 || r.RequestTimeout != 0 || r.BackendTimeout != 0 || r.IdleTimeout != 0 {
					t.Errorf("durations %v %v %v %v, want none", r.Retry.PerTryTimeout, r.RequestTimeout, r.BackendTimeout, r.IdleTimeout)
				}
			},
		},
		{
			name: "a rule with a bad expression is dropped, the rest kept",
			in: outbound(
				route("a", rule("bad:80", &policyv1.HttpMatch{Path: pathPrefix("/ok")}, &policyv1.HttpMatch{Path: pathRegex("/(")}),
					rule("good:80", &policyv1.HttpMatch{Path: pathPrefix("/api")})),
				route("b", rule("b:80")),
			),
			problems: []string{"routes[0].rules[0].matches[1]: path: expression \"/(\""},
			check: func(t *testing.T, o *Outbound) {
				if len(o.Routes) != 2 || len(o.Routes[0].Rules) != 1 || !slices.Equal(backends(o.Routes[0].Rules[0]), []string{"good:80"}) {
					t.Fatalf("routes %+v", o.Routes)
				}
				if got := backends(o.Match(get(t, "/ok"))); !slices.Equal(got, []string{"b:80"}) {
					t.Errorf("/ok went to %v, want the other route (the dropped rule matches nothing)", got)
				}
				if o.Protocol != policyv1.Protocol_PROTOCOL_HTTP2 || o.Labels["name"] != "web-svc" {
					t.Errorf("protocol %v labels %v", o.Protocol, o.Labels)
				}
			},
		},
		{
			name: "a policy left without routes routes to the target, and keeps the rest",
			in: &policyv1.OutboundPolicy{
				Protocol: policyv1.Protocol_PROTOCOL_GRPC,
				Routes: []*policyv1.HttpRoute{
					route("a", rule("a:80", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{headerRegex("x-a", "[")}})),
					route("empty"),
				},
				FailureAccrual: &policyv1.FailureAccrual{ConsecutiveFailures: 7, MaxPenalty: sec(time.Minute)},
				Labels:         map[string]string{"kind": "Service"},
			},
			problems: []string{"routes[0].rules[0].matches[0]: headers[0] (x-a): expression"},
			check: func(t *testing.T, o *Outbound) {
				if !isDefaultRoutes(o) {
					t.Errorf("routes %+v, want the default's", o.Routes)
				}
				if o.Protocol != policyv1.Protocol_PROTOCOL_GRPC || o.Labels["kind"] != "Service" || o.Accrual == nil || o.Accrual.ConsecutiveFailures != 7 {
					t.Errorf("protocol %v labels %v accrual %+v, want the policy's", o.Protocol, o.Labels, o.Accrual)
				}
			},
		},
		{
			name: "no routes at all",
			in:   &policyv1.OutboundPolicy{Protocol: policyv1.Protocol_PROTOCOL_OPAQUE},
			check: func(t *testing.T, o *Outbound) {
				if !isDefaultRoutes(o) || o.Protocol != policyv1.Protocol_PROTOCOL_OPAQUE {
					t.Errorf("%+v", o)
				}
			},
		},
		{
			name: "matches that cannot be compiled",
			in: outbound(route("r",
				rule("relative-exact:80", &policyv1.HttpMatch{Path: pathExact("foo")}),
				rule("relative-prefix:80", &policyv1.HttpMatch{Path: pathPrefix("")}),
				rule("no-header-name:80", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("", "x")}}),
				rule("bad-header-name:80", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("x canary", "x")}}),
				rule("no-header-value:80", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{{Name: "x-canary"}}}),
				rule("no-query-name:80", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("", "x")}}),
				rule("bad-query-regex:80", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{queryRegex("q", "a{2,1}")}}),
				rule("no-query-value:80", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{{Name: "q"}}}),
				rule("kept:80"),
			)),
			problems: []string{
				"rules[0].matches[0]: path: exact path \"foo\" does not start with /",
				"rules[1].matches[0]: path: prefix \"\" does not start with /",
				"rules[2].matches[0]: headers[0]: \"\" is not a header name",
				"rules[3].matches[0]: headers[0]: \"x canary\" is not a header name",
				"rules[4].matches[0]: headers[0] (x-canary): no value",
				"rules[5].matches[0]: query_params[0]: no name",
				"rules[6].matches[0]: query_params[0] (q): expression",
				"rules[7].matches[0]: query_params[0] (q): no value",
			},
			check: func(t *testing.T, o *Outbound) {
				if len(o.Routes[0].Rules) != 1 || !slices.Equal(backends(o.Routes[0].Rules[0]), []string{"kept:80"}) {
					t.Errorf("rules %+v, want only the last", o.Routes[0].Rules)
				}
			},
		},
		{
			name: "compiled matches",
			in: outbound(route("r", rule("a:80",
				&policyv1.HttpMatch{Path: pathPrefix("/foo/"), Method: "POST",
					Headers:     []*policyv1.HttpMatch_HeaderMatch{header("x-canary", "1"), headerRegex("X-CANARY", "2"), headerRegex("x-user", "a.*")},
					QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("v", "1"), query("v", "2"), query("V", "3")}},
				&policyv1.HttpMatch{Path: pathPrefix("///")},
				&policyv1.HttpMatch{Path: &policyv1.HttpMatch_PathMatch{}},
			))),
			check: func(t *testing.T, o *Outbound) {
				ms := o.Routes[0].Rules[0].Matches
				if len(ms) != 3 {
					t.Fatalf("matches %+v", ms)
				}
				m := ms[0]
				if m.Path.Kind != PathPrefix || m.Path.Value != "/foo" || m.Method != "POST" {
					t.Errorf("path %+v method %q, want the prefix without its trailing /", m.Path, m.Method)
				}
				// Only the first condition on a name counts (Gateway API); header names compare without case, query
				// parameter names with it.
				if len(m.Headers) != 2 || m.Headers[0].Name != "X-Canary" || m.Headers[0].Value != "1" || m.Headers[1].Name != "X-User" || m.Headers[1].Regex == nil {
					t.Errorf("headers %+v", m.Headers)
				}
				if len(m.Query) != 2 || m.Query[0] != (ValueMatch{Name: "v", Value: "1"}) || m.Query[1] != (ValueMatch{Name: "V", Value: "3"}) {
					t.Errorf("query %+v", m.Query)
				}
				if ms[1].Path != (PathMatch{Kind: PathPrefix, Value: "/"}) || ms[2].Path.Kind != PathAny {
					t.Errorf("paths %+v, %+v: want the root prefix and no condition", ms[1].Path, ms[2].Path)
				}
			},
		},
		{
			name: "backends",
			in: outbound(route("r", &policyv1.RouteRule{Backends: []*policyv1.WeightedBackend{
				{Authority: "v1:80", Weight: 90, Filters: []*policyv1.Filter{{}}},
				{Authority: "", Weight: 5},
				{Authority: "v2:80", Weight: 0},
			}})),
			problems: []string{"rules[0].backends[1]: no authority"},
			check: func(t *testing.T, o *Outbound) {
				bs := o.Routes[0].Rules[0].Backends
				if len(bs) != 2 || bs[0].Authority != "v1:80" || bs[0].Weight != 90 || len(bs[0].Filters) != 1 ||
					bs[1].Authority != "v2:80" || bs[1].Weight != 0 {
					t.Errorf("backends %+v, want v1 (90, its filter) and v2 (0: no requests)", bs)
				}
			},
		},
		{
			name:     "accrual without failures to count",
			in:       &policyv1.OutboundPolicy{FailureAccrual: &policyv1.FailureAccrual{MaxPenalty: sec(time.Minute)}},
			problems: []string{"failure_accrual.consecutive_failures"},
			check: func(t *testing.T, o *Outbound) {
				if o.Accrual != nil {
					t.Errorf("accrual %+v, want off", o.Accrual)
				}
			},
		},
		{
			name:     "accrual without a max penalty",
			in:       &policyv1.OutboundPolicy{FailureAccrual: &policyv1.FailureAccrual{ConsecutiveFailures: 1, MaxPenalty: sec(-time.Second)}},
			problems: []string{"failure_accrual.max_penalty: negative", "failure_accrual.max_penalty: no max penalty"},
			check: func(t *testing.T, o *Outbound) {
				if o.Accrual != nil {
					t.Errorf("accrual %+v, want off", o.Accrual)
				}
			},
		},
		{
			name: "accrual's penalties and jitter out of order",
			in: &policyv1.OutboundPolicy{FailureAccrual: &policyv1.FailureAccrual{ConsecutiveFailures: 3,
				MinPenalty: sec(2 * time.Minute), MaxPenalty: sec(time.Minute), JitterRatio: math.NaN()}},
			problems: []string{"failure_accrual.min_penalty: 2m0s exceeds the max penalty 1m0s", "failure_accrual.jitter_ratio"},
			check: func(t *testing.T, o *Outbound) {
				want := Accrual{ConsecutiveFailures: 3, MinPenalty: time.Minute, MaxPenalty: time.Minute}
				if o.Accrual == nil || *o.Accrual != want {
					t.Errorf("accrual %+v, want %+v", o.Accrual, want)
				}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o, problems := Translate(target, c.in)
			if len(problems) != len(c.problems) {
				t.Errorf("problems %q, want %d: %q", problems, len(c.problems), c.problems)
			} else {
				for i, p := range problems {
					if !strings.Contains(p.Error(), c.problems[i]) {
						t.Errorf("problem %d: %q, want it to say %q", i, p, c.problems[i])
					}
				}
			}
			for _, route := range o.Routes {
				for _, r := range route.Rules {
					if r.Route != route {
						t.Errorf("a rule of route %v points to route %v", route.Labels, r.Route.Labels)
					}
				}
			}
			c.check(t, o)
		})
	}
}
