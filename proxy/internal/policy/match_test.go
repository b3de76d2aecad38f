package policy

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// get is a GET of target (a path with an optional query) as a server reads it.
func get(t testing.TB, target string, headers ...string) *http.Request {
	t.Helper()
	return request(t, http.MethodGet, target, headers...)
}

// request is a request as a server reads it off the wire; headers are "Name: value" lines as the client wrote
// them.
func request(t testing.TB, method, target string, headers ...string) *http.Request {
	t.Helper()
	raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: web-svc\r\n%s\r\n", method, target, strings.Join(append(headers, ""), "\r\n"))
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("request %q: %v", raw, err)
	}
	return r
}

// TestMatchPrecedence drives Match through the precedence rules of Gateway API's HTTPRoute (exact path over
// prefix, longer prefix first, then method, then more headers, then more query parameters; ties keep route and
// rule order) and through what each kind of condition matches.
func TestMatchPrecedence(t *testing.T) {
	t.Parallel()
	type want struct {
		method, target string
		headers        []string
		backend        string // "": no rule matches
	}
	for _, c := range []struct {
		name     string
		policy   *policyv1.OutboundPolicy
		requests []want
	}{
		{
			name: "exact over prefix",
			policy: outbound(route("r",
				rule("prefix", &policyv1.HttpMatch{Path: pathPrefix("/foo")}),
				rule("exact", &policyv1.HttpMatch{Path: pathExact("/foo")}),
			)),
			requests: []want{
				{target: "/foo", backend: "exact"},
				{target: "/foo/", backend: "prefix"},
				{target: "/foo/bar", backend: "prefix"},
				{target: "/foo?x=1", backend: "exact"},
			},
		},
		{
			name: "longer prefix first, on path elements",
			policy: outbound(
				route("root", rule("root", &policyv1.HttpMatch{Path: pathPrefix("/")})),
				route("foo", rule("foo", &policyv1.HttpMatch{Path: pathPrefix("/foo")})),
				route("foobar", rule("foobar", &policyv1.HttpMatch{Path: pathPrefix("/foo/bar/")})),
			),
			requests: []want{
				{target: "/foo/bar/baz", backend: "foobar"},
				{target: "/foo/bar", backend: "foobar"},
				{target: "/foo/barn", backend: "foo"},
				{target: "/foo/x", backend: "foo"},
				{target: "/foo", backend: "foo"},
				{target: "/foobar", backend: "root"},
				{target: "/", backend: "root"},
			},
		},
		{
			name: "a longer prefix over a method",
			policy: outbound(route("r",
				rule("method", &policyv1.HttpMatch{Path: pathPrefix("/"), Method: "POST"}),
				rule("prefix", &policyv1.HttpMatch{Path: pathPrefix("/api")}),
			)),
			requests: []want{
				{method: "POST", target: "/api/x", backend: "prefix"},
				{method: "POST", target: "/x", backend: "method"},
				{method: "GET", target: "/x", backend: ""},
			},
		},
		{
			name: "a method over headers",
			policy: outbound(route("r",
				rule("headers", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("x-a", "1"), header("x-b", "1")}}),
				rule("method", &policyv1.HttpMatch{Method: "GET"}),
			)),
			requests: []want{
				{target: "/", headers: []string{"x-a: 1", "x-b: 1"}, backend: "method"},
				{method: "PUT", target: "/", headers: []string{"x-a: 1", "x-b: 1"}, backend: "headers"},
				{method: "PUT", target: "/", headers: []string{"x-a: 1"}, backend: ""},
			},
		},
		{
			name: "more headers over fewer, over query parameters",
			policy: outbound(route("r",
				rule("query", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("a", "1"), query("b", "1"), query("c", "1")}}),
				rule("one", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("x-a", "1")}}),
				rule("two", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("x-a", "1"), header("x-b", "1")}}),
			)),
			requests: []want{
				{target: "/?a=1&b=1&c=1", headers: []string{"x-a: 1", "x-b: 1"}, backend: "two"},
				{target: "/?a=1&b=1&c=1", headers: []string{"x-a: 1"}, backend: "one"},
				{target: "/?a=1&b=1&c=1", backend: "query"},
			},
		},
		{
			name: "more query parameters over fewer",
			policy: outbound(route("r",
				rule("one", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("a", "1")}}),
				rule("two", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("a", "1"), query("b", "1")}}),
			)),
			requests: []want{
				{target: "/?b=1&a=1", backend: "two"},
				{target: "/?a=1", backend: "one"},
				{target: "/?a=2&b=1", backend: ""},
			},
		},
		{
			name: "ties keep route, then rule, order",
			policy: outbound(
				route("first", rule("first-a", &policyv1.HttpMatch{Path: pathPrefix("/api")}), rule("first-b", &policyv1.HttpMatch{Path: pathPrefix("/api")})),
				route("second", rule("second", &policyv1.HttpMatch{Path: pathPrefix("/api/")})),
			),
			requests: []want{{target: "/api/v1", backend: "first-a"}},
		},
		{
			name: "a rule ranks by the best of its matches that matches",
			policy: outbound(route("r",
				rule("either", &policyv1.HttpMatch{Path: pathExact("/x")}, &policyv1.HttpMatch{Path: pathPrefix("/")}),
				rule("y", &policyv1.HttpMatch{Path: pathPrefix("/y")}),
			)),
			requests: []want{
				{target: "/x", backend: "either"},
				{target: "/y/z", backend: "y"},
				{target: "/z", backend: "either"},
			},
		},
		{
			name: "a regular expression below a prefix, above the catch-all",
			policy: outbound(route("r",
				rule("catch-all"),
				rule("regex", &policyv1.HttpMatch{Path: pathRegex("/users/[0-9a-z]+")}),
				rule("root", &policyv1.HttpMatch{Path: pathPrefix("/")}),
				rule("prefix", &policyv1.HttpMatch{Path: pathPrefix("/users/admin")}),
			)),
			requests: []want{
				{target: "/users/42", backend: "regex"},
				{target: "/users/42/x", backend: "catch-all"}, // anchored: the whole path must match
				{target: "/users/admin", backend: "prefix"},   // both match
				{target: "/other", backend: "catch-all"},
			},
		},
		{
			name: "no rule matches",
			policy: outbound(route("r",
				rule("exact", &policyv1.HttpMatch{Path: pathExact("/foo")}),
			)),
			requests: []want{{target: "/bar", backend: ""}, {target: "/foo/", backend: ""}},
		},
		{
			name: "header names without case, values exactly, any value of a repeated header",
			policy: outbound(route("r",
				rule("canary", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{header("X-Canary", "yes")}}),
				rule("user", &policyv1.HttpMatch{Headers: []*policyv1.HttpMatch_HeaderMatch{headerRegex("x-user", "ad(min|m)")}}),
			)),
			requests: []want{
				{target: "/", headers: []string{"x-canary: yes"}, backend: "canary"},
				{target: "/", headers: []string{"X-CANARY: yes"}, backend: "canary"},
				{target: "/", headers: []string{"x-canary: YES"}, backend: ""},
				{target: "/", headers: []string{"x-canary: no", "x-canary: yes"}, backend: "canary"},
				{target: "/", headers: []string{"x-user: adm"}, backend: "user"},
				{target: "/", headers: []string{"x-user: admins"}, backend: ""},
				{target: "/", headers: []string{"x-user: the admin"}, backend: ""},
			},
		},
		{
			name: "query parameters: the first value, decoded; names exactly",
			policy: outbound(route("r",
				rule("v1", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("version", "1 beta")}}),
				rule("v2", &policyv1.HttpMatch{QueryParams: []*policyv1.HttpMatch_QueryParamMatch{queryRegex("v", "[0-9]")}}),
			)),
			requests: []want{
				{target: "/?version=1+beta", backend: "v1"},
				{target: "/?vers%69on=1%20beta", backend: "v1"},
				{target: "/?version=2&version=1+beta", backend: ""},
				{target: "/?Version=1+beta", backend: ""},
				{target: "/?version=%zz&version=1+beta", backend: "v1"}, // a pair that does not decode is skipped
				{target: "/?v=7", backend: "v2"},
				{target: "/?v=77", backend: ""},
				{target: "/?x=1&v", backend: ""},
			},
		},
		{
			name: "paths as sent, the root when there is none",
			policy: outbound(route("r",
				rule("encoded", &policyv1.HttpMatch{Path: pathExact("/a%2Fb")}),
				rule("root", &policyv1.HttpMatch{Path: pathExact("/")}),
			)),
			requests: []want{
				{target: "/a%2Fb", backend: "encoded"},
				{target: "/a/b", backend: ""},
				{target: "http://web-svc", backend: "root"},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o, problems := Translate(target, c.policy)
			if len(problems) > 0 {
				t.Fatalf("problems: %v", problems)
			}
			for _, w := range c.requests {
				method := w.method
				if method == "" {
					method = http.MethodGet
				}
				rule := o.Match(request(t, method, w.target, w.headers...))
				got := ""
				if rule != nil {
					got = rule.Backends[0].Authority
				}
				if got != w.backend {
					t.Errorf("%s %s %q: rule %q, want %q", method, w.target, w.headers, got, w.backend)
				}
			}
		})
	}
}

// TestMatchOfHandBuiltPolicy: an Outbound built as a literal (as tests of the request path's layers build them)
// ranks its rules on first use.
func TestMatchOfHandBuiltPolicy(t *testing.T) {
	t.Parallel()
	route := &Route{}
	api := &Rule{Route: route, Matches: []Match{{Path: PathMatch{Kind: PathPrefix, Value: "/api/"}}}, Backends: []Backend{{Authority: "api", Weight: 1}}}
	all := &Rule{Route: route, Backends: []Backend{{Authority: "all", Weight: 1}}}
	route.Rules = []*Rule{all, api}
	o := &Outbound{Routes: []*Route{route}}
	for path, want := range map[string]*Rule{"/api/x": api, "/api": api, "/apix": all, "/": all} {
		if got := o.Match(get(t, path)); got != want {
			t.Errorf("%s: %v, want %v", path, backends(got), backends(want))
		}
	}
	var none *Outbound
	if none.Match(get(t, "/")) != nil || (&Outbound{}).Match(get(t, "/")) != nil {
		t.Error("a policy without rules matched")
	}
}

// tenRules is a policy of ten rules of the kinds a route table holds; the request benchMatch sends matches only
// the last-ranked.
func tenRules() *policyv1.OutboundPolicy {
	var rules []*policyv1.RouteRule
	for i := range 4 {
		rules = append(rules, rule(fmt.Sprintf("exact-%d", i), &policyv1.HttpMatch{Path: pathExact(fmt.Sprintf("/api/v%d/health", i))}))
	}
	for i := range 3 {
		rules = append(rules, rule(fmt.Sprintf("prefix-%d", i), &policyv1.HttpMatch{Path: pathPrefix(fmt.Sprintf("/api/v%d", i)), Method: "POST"}))
	}
	rules = append(rules,
		rule("canary", &policyv1.HttpMatch{Path: pathPrefix("/"), Headers: []*policyv1.HttpMatch_HeaderMatch{header("x-canary", "1")}}),
		rule("users", &policyv1.HttpMatch{Path: pathRegex("/users/[0-9]+")}),
		rule("versioned", &policyv1.HttpMatch{Path: pathPrefix("/"), Headers: []*policyv1.HttpMatch_HeaderMatch{header("x-user", "admin")},
			QueryParams: []*policyv1.HttpMatch_QueryParamMatch{query("version", "2")}}),
	)
	return outbound(route("table", rules...))
}

func benchRequest(t testing.TB) *http.Request {
	return get(t, "/api/v3/items?page=2&version=2", "X-User: admin", "Accept: application/json", "User-Agent: bench")
}

// TestMatchDoesNotAllocate: matching costs no allocation, with the default policy or with a table of rules. Not
// parallel: AllocsPerRun counts every goroutine's allocations.
func TestMatchDoesNotAllocate(t *testing.T) {
	r := benchRequest(t)
	table, _ := Translate(target, tenRules())
	if got := backends(table.Match(r)); !slices.Equal(got, []string{"versioned"}) {
		t.Fatalf("the benchmark's request went to %v", got)
	}
	for name, o := range map[string]*Outbound{"catch-all": Default(target), "ten rules": table} {
		if n := testing.AllocsPerRun(100, func() { o.Match(r) }); n != 0 {
			t.Errorf("%s: %v allocations per Match, want 0", name, n)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	table, _ := Translate(target, tenRules())
	for _, c := range []struct {
		name string
		o    *Outbound
	}{{"catch-all", Default(target)}, {"ten-rules", table}} {
		b.Run(c.name, func(b *testing.B) {
			r := benchRequest(b)
			b.ReportAllocs()
			for b.Loop() {
				if c.o.Match(r) == nil {
					b.Fatal("no rule matched")
				}
			}
		})
	}
}
