package api

import (
	"strings"
	"testing"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"0s": 0, "10s": 10 * time.Second, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond, "1h": time.Hour} {
		if got, err := ParseDuration(gatewayv1.Duration(in)); err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10", "1.5s", "-1s", "1d", "123456s", "1h1m1s1ms1h"} {
		if _, err := ParseDuration(gatewayv1.Duration(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// TestValidate: what the CRD's schema and CEL rules refuse is refused, with field paths; a valid route passes.
func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, want string }{
		{`{parentRefs: [{group: "", kind: Service, name: web, port: 80}], rules: [{matches: [{path: {type: RegularExpression, value: "/a.*"}, headers: [{name: x-a, type: RegularExpression, value: "b+"}], method: GET}], backendRefs: [{name: web, port: 80}], timeouts: {request: 2s, backendRequest: 1s}}]}`, ""},
		{`{parentRefs: [{group: "", kind: Service, name: ""}]}`, "spec.parentRefs[0].name: required"},
		{`{rules: [{matches: [{path: {type: Suffix, value: /a}}]}]}`, `spec.rules[0].matches[0].path.type: must be Exact, PathPrefix or RegularExpression, got "Suffix"`},
		{`{rules: [{matches: [{path: {type: RegularExpression, value: "("}}]}]}`, "spec.rules[0].matches[0].path.value: error parsing regexp"},
		{`{rules: [{matches: [{headers: [{name: "a b", value: x}]}]}]}`, `spec.rules[0].matches[0].headers[0].name: "a b" is not a header name`},
		{`{rules: [{matches: [{method: FETCH}]}]}`, `spec.rules[0].matches[0].method: must be one of`},
		{`{rules: [{timeouts: {request: 1s, backendRequest: 2s}}]}`, "spec.rules[0].timeouts.backendRequest: 2s exceeds timeouts.request (1s)"},
		{`{rules: [{timeouts: {request: 1.5s}}]}`, `spec.rules[0].timeouts.request: "1.5s" is not a duration`},
		{`{rules: [{filters: [{type: RequestHeaderModifier}]}]}`, "spec.rules[0].filters[0].requestHeaderModifier: required for a filter of type RequestHeaderModifier"},
		{`{rules: [{filters: [{type: URLRewrite, requestHeaderModifier: {}}]}]}`, "spec.rules[0].filters[0]: sets requestHeaderModifier, but its type is URLRewrite; spec.rules[0].filters[0].urlRewrite: required"},
		{`{rules: [{filters: [{type: Teleport}]}]}`, `spec.rules[0].filters[0].type: unknown filter type "Teleport"`},
		{`{rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {}}, {type: RequestHeaderModifier, requestHeaderModifier: {}}]}]}`, "spec.rules[0].filters[1]: a second RequestHeaderModifier filter"},
		{`{rules: [{backendRefs: [{name: w, port: 80, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: "a:b", value: c}]}}]}]}]}`, `spec.rules[0].backendRefs[0].filters[0]: "a:b" is not a header name`},
		{`{rules: [{retry: {codes: [200]}}]}`, "spec.rules[0].retry.codes[0]: must be 400-599, got 200"},
		{`{rules: [{matches: [{path: {type: PathPrefix, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}, {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, fraction: {numerator: 1, denominator: 4}}}]}]}`, ""},
		{`{rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]}`, "spec.rules[0].filters[0].urlRewrite.path: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"},
		{`{rules: [{filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath}}}]}]}`, "spec.rules[0].filters[0].requestRedirect.path.replaceFullPath: required for type ReplaceFullPath"},
		{`{rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200}}]}]}`, "spec.rules[0].filters[0].requestRedirect.statusCode: must be 301, 302, 303, 307 or 308, got 200"},
		{`{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, percent: 10, fraction: {numerator: 1}}}]}]}`, "spec.rules[0].filters[0].requestMirror: give percent or fraction, not both"},
		{`{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, fraction: {numerator: 5, denominator: 4}}}]}]}`, "spec.rules[0].filters[0].requestMirror.fraction: numerator must be between 0 and the denominator"},
	} {
		var rt HTTPRoute
		if err := yaml.UnmarshalStrict([]byte("metadata: {name: r}\nspec: "+tc.spec), &rt); err != nil {
			t.Fatal(err)
		}
		err := Validate(&rt)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.spec, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %s", tc.spec, err, tc.want)
		}
	}
}

// TestValidateGRPC: what the GRPCRoute CRD's schema and CEL rules refuse is refused, with field paths; a valid
// route passes.
func TestValidateGRPC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, want string }{
		{`{parentRefs: [{group: "", kind: Service, name: web, port: 80}], rules: [{matches: [{method: {service: a.B, method: C}, headers: [{name: x-a, value: b}]}, {method: {type: RegularExpression, method: "C.*"}}], filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: y}]}}], backendRefs: [{name: web, port: 80, weight: 3}]}]}`, ""},
		{`{rules: [{matches: [{method: {type: Exact}}]}]}`, "spec.rules[0].matches[0].method: one or both of service or method must be specified"},
		{`{rules: [{matches: [{method: {service: "a/b"}}]}]}`, `spec.rules[0].matches[0].method.service: "a/b" is not a service name`},
		{`{rules: [{matches: [{method: {method: "a.b"}}]}]}`, `spec.rules[0].matches[0].method.method: "a.b" is not a method name`},
		{`{rules: [{matches: [{method: {type: RegularExpression, service: "("}}]}]}`, "spec.rules[0].matches[0].method.service: error parsing regexp"},
		{`{rules: [{matches: [{method: {type: Prefix, service: a}}]}]}`, `spec.rules[0].matches[0].method.type: must be Exact or RegularExpression, got "Prefix"`},
		{`{rules: [{matches: [{headers: [{name: x, value: ""}]}]}]}`, "spec.rules[0].matches[0].headers[0].value: must be 1-4096 characters, got 0"},
		{`{rules: [{matches: [{headers: [{name: x, value: a}, {name: x, value: b}]}]}]}`, `spec.rules[0].matches[0].headers[1].name: "x" appears twice`},
		{`{rules: [{filters: [{type: URLRewrite}]}]}`, `spec.rules[0].filters[0].type: must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef, got "URLRewrite"`},
		{`{rules: [{filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {}}, {type: ResponseHeaderModifier, responseHeaderModifier: {}}]}]}`, "spec.rules[0].filters[1]: a second ResponseHeaderModifier filter"},
		{`{rules: [{filters: [{type: ExtensionRef}]}]}`, "spec.rules[0].filters[0].extensionRef: required for a filter of type ExtensionRef"},
		{`{rules: [{backendRefs: [{name: w}]}]}`, "spec.rules[0].backendRefs[0].port: required for a Service backend"},
		{`{rules: [{backendRefs: [{name: w, port: 80, weight: -1}]}]}`, "spec.rules[0].backendRefs[0].weight: must be 0-1000000, got -1"},
	} {
		var rt GRPCRoute
		if err := yaml.UnmarshalStrict([]byte("metadata: {name: r}\nspec: "+tc.spec), &rt); err != nil {
			t.Fatal(err)
		}
		err := ValidateGRPC(&rt)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.spec, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %s", tc.spec, err, tc.want)
		}
	}
}
