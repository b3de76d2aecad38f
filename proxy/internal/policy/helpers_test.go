package policy

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// TestMain fails the package when a goroutine this package started outlives its tests (every Client's Run has
// returned by then, so its watches must have ended too).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if stacks, leaked := leakedGoroutines(5 * time.Second); leaked {
			fmt.Fprintf(os.Stderr, "goroutines of package policy still running after its tests:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to timeout for every goroutine running this package's client code to end.
func leakedGoroutines(timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		all := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(all, "\n\n") {
			if strings.Contains(g, "proxy/internal/policy.(*Client)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return "", false
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n"), true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Builders of the control plane's messages, to keep tables short.

func pathExact(p string) *policyv1.HttpMatch_PathMatch {
	return &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Exact{Exact: p}}
}

func pathPrefix(p string) *policyv1.HttpMatch_PathMatch {
	return &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: p}}
}

func pathRegex(p string) *policyv1.HttpMatch_PathMatch {
	return &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Regex{Regex: p}}
}

func header(name, value string) *policyv1.HttpMatch_HeaderMatch {
	return &policyv1.HttpMatch_HeaderMatch{Name: name, Value: &policyv1.HttpMatch_HeaderMatch_Exact{Exact: value}}
}

func headerRegex(name, expr string) *policyv1.HttpMatch_HeaderMatch {
	return &policyv1.HttpMatch_HeaderMatch{Name: name, Value: &policyv1.HttpMatch_HeaderMatch_Regex{Regex: expr}}
}

func query(name, value string) *policyv1.HttpMatch_QueryParamMatch {
	return &policyv1.HttpMatch_QueryParamMatch{Name: name, Value: &policyv1.HttpMatch_QueryParamMatch_Exact{Exact: value}}
}

func queryRegex(name, expr string) *policyv1.HttpMatch_QueryParamMatch {
	return &policyv1.HttpMatch_QueryParamMatch{Name: name, Value: &policyv1.HttpMatch_QueryParamMatch_Regex{Regex: expr}}
}

// rule is a rule sending to backend, matching any of matches.
func rule(backend string, matches ...*policyv1.HttpMatch) *policyv1.RouteRule {
	return &policyv1.RouteRule{Matches: matches, Backends: []*policyv1.WeightedBackend{{Authority: backend, Weight: 1}}}
}

// route is a route named name.
func route(name string, rules ...*policyv1.RouteRule) *policyv1.HttpRoute {
	return &policyv1.HttpRoute{Labels: map[string]string{"kind": "HTTPRoute", "name": name}, Rules: rules}
}

func outbound(routes ...*policyv1.HttpRoute) *policyv1.OutboundPolicy {
	return &policyv1.OutboundPolicy{Protocol: policyv1.Protocol_PROTOCOL_HTTP2, Routes: routes,
		Labels: map[string]string{"kind": "Service", "name": "web-svc"}}
}

// backends lists a rule's backends' authorities.
func backends(r *Rule) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, b := range r.Backends {
		out = append(out, b.Authority)
	}
	return out
}
