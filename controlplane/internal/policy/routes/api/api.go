// Package api holds what the control plane reads of the Gateway API route kinds (gateway.networking.k8s.io/v1
// HTTPRoute and GRPCRoute, in the upstream Go types) and their validation: the checks the CRDs' schemas and CEL rules make, so
// that local-mode files, which no API server checks, are refused for the same mistakes. Both sources decode
// documents into these types and hand them to the model unchanged; the translation into proxy policy lives in the
// parent package routes. It must not import the model, client-go or anything that knows where the objects came
// from.
package api

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Group and Version of the kinds; APIVersion is how documents spell both.
const (
	Group      = gatewayv1.GroupName
	Version    = "v1"
	APIVersion = Group + "/" + Version
)

// The route kinds read, and the resources the API server serves them as.
const (
	KindHTTPRoute      = "HTTPRoute"
	ResourceHTTPRoutes = "httproutes"
	KindGRPCRoute      = "GRPCRoute"
	ResourceGRPCRoutes = "grpcroutes"
)

// HTTPRoute is the Gateway API's HTTPRoute.
type HTTPRoute = gatewayv1.HTTPRoute

// KindService is the kind of a Service parentRef or backendRef (of the core group, "").
const KindService = "Service"

// IsService reports whether a reference of group and kind (nil: the defaults, def) names a core Service.
func IsService(group *gatewayv1.Group, kind *gatewayv1.Kind, defGroup, defKind string) bool {
	g, k := defGroup, defKind
	if group != nil {
		g = string(*group)
	}
	if kind != nil {
		k = string(*kind)
	}
	return (g == "" || g == "core") && k == KindService
}

// ParentIsService reports whether a parentRef names a Service (a mesh route; GAMMA). A parentRef's group and kind
// default to the Gateway's, so a Service parent spells both.
func ParentIsService(p gatewayv1.ParentReference) bool {
	return IsService(p.Group, p.Kind, gatewayv1.GroupName, "Gateway")
}

// KindGateway is the kind of a Gateway parentRef (of the Gateway API's group, the default).
const KindGateway = "Gateway"

// ParentIsGateway reports whether a parentRef names a Gateway (an ingress route: the gateway package attaches
// it). Both group and kind default to the Gateway's.
func ParentIsGateway(p gatewayv1.ParentReference) bool {
	return (p.Group == nil || string(*p.Group) == Group) && (p.Kind == nil || string(*p.Kind) == KindGateway)
}

// ParentIsServer reports whether a parentRef names a sinew Server (group policy.sinew.dev): an inbound route,
// whose rules match requests for the Server's authorization policy, as Linkerd's routes on a Server do.
func ParentIsServer(p gatewayv1.ParentReference) bool {
	return p.Group != nil && string(*p.Group) == "policy.sinew.dev" && p.Kind != nil && string(*p.Kind) == "Server"
}

// BackendIsService reports whether a backendRef names a Service (the default).
func BackendIsService(b gatewayv1.BackendObjectReference) bool {
	return IsService(b.Group, b.Kind, "", KindService)
}

// durationRE is the Gateway API's duration syntax (GEP-2257): up to four number-unit pairs.
var durationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// ParseDuration reads a Gateway API duration ("10s", "1m30s", "500ms"); "0s" is zero, which the spec reads as
// no timeout.
func ParseDuration(d gatewayv1.Duration) (time.Duration, error) {
	if !durationRE.MatchString(string(d)) {
		return 0, fmt.Errorf("%q is not a duration (1h, 30s, 500ms, 1m30s)", string(d))
	}
	return time.ParseDuration(string(d))
}

// CompileRegex checks an expression the way the proxy compiles it: RE2, matching the whole value.
func CompileRegex(expr string) error {
	_, err := regexp.Compile(`^(?:` + expr + `)$`)
	return err
}

var methods = []gatewayv1.HTTPMethod{
	gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut,
	gatewayv1.HTTPMethodDelete, gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions, gatewayv1.HTTPMethodTrace,
	gatewayv1.HTTPMethodPatch,
}

// Validate checks an HTTPRoute as the CRD's schema and CEL rules do; errors carry field paths. It does not check
// what depends on other objects (whether a backend exists): the translation reports that.
func Validate(r *HTTPRoute) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	validateParents(r.Spec.ParentRefs, add)
	if len(r.Spec.Rules) > 16 {
		add("spec.rules", "at most 16, got %d", len(r.Spec.Rules))
	}
	for i, rule := range r.Spec.Rules {
		validateRule(fmt.Sprintf("spec.rules[%d]", i), rule, add)
	}
	return join(errs)
}

// validateParents checks the parentRefs every route kind shares.
func validateParents(refs []gatewayv1.ParentReference, add func(field, format string, args ...any)) {
	if len(refs) > 32 {
		add("spec.parentRefs", "at most 32, got %d", len(refs))
	}
	for i, p := range refs {
		field := fmt.Sprintf("spec.parentRefs[%d]", i)
		if p.Name == "" {
			add(field+".name", "required")
		}
		if p.Port != nil && (*p.Port < 1 || *p.Port > 65535) {
			add(field+".port", "must be 1-65535, got %d", *p.Port)
		}
	}
}

// validateBackends checks a rule's backendRefs, in HTTPRoute's form (a GRPCRoute's are converted).
func validateBackends(field string, refs []gatewayv1.HTTPBackendRef, add func(field, format string, args ...any)) {
	if len(refs) > 16 {
		add(field+".backendRefs", "at most 16, got %d", len(refs))
	}
	for j, b := range refs {
		bf := fmt.Sprintf("%s.backendRefs[%d]", field, j)
		if b.Name == "" {
			add(bf+".name", "required")
		}
		if BackendIsService(b.BackendObjectReference) && b.Port == nil {
			add(bf+".port", "required for a Service backend")
		}
		if b.Port != nil && (*b.Port < 1 || *b.Port > 65535) {
			add(bf+".port", "must be 1-65535, got %d", *b.Port)
		}
		if b.Weight != nil && (*b.Weight < 0 || *b.Weight > 1000000) {
			add(bf+".weight", "must be 0-1000000, got %d", *b.Weight)
		}
		validateFilters(bf+".filters", b.Filters, add)
	}
}

func validateRule(field string, rule gatewayv1.HTTPRouteRule, add func(field, format string, args ...any)) {
	if len(rule.Matches) > 64 {
		add(field+".matches", "at most 64, got %d", len(rule.Matches))
	}
	for j, m := range rule.Matches {
		validateMatch(fmt.Sprintf("%s.matches[%d]", field, j), m, add)
	}
	validateFilters(field+".filters", rule.Filters, add)
	validateBackends(field, rule.BackendRefs, add)
	validatePathModifiers(field, rule, add)
	if t := rule.Timeouts; t != nil {
		var request, backend time.Duration
		var err error
		if t.Request != nil {
			if request, err = ParseDuration(*t.Request); err != nil {
				add(field+".timeouts.request", "%v", err)
			}
		}
		if t.BackendRequest != nil {
			if backend, err = ParseDuration(*t.BackendRequest); err != nil {
				add(field+".timeouts.backendRequest", "%v", err)
			}
		}
		if request > 0 && backend > request {
			add(field+".timeouts.backendRequest", "%s exceeds timeouts.request (%s)", backend, request)
		}
	}
	if rt := rule.Retry; rt != nil {
		if rt.Attempts != nil && *rt.Attempts < 0 {
			add(field+".retry.attempts", "must not be negative")
		}
		for k, c := range rt.Codes {
			if c < 400 || c > 599 {
				add(fmt.Sprintf("%s.retry.codes[%d]", field, k), "must be 400-599, got %d", c)
			}
		}
		if rt.Backoff != nil {
			if _, err := ParseDuration(*rt.Backoff); err != nil {
				add(field+".retry.backoff", "%v", err)
			}
		}
	}
}

func validateMatch(field string, m gatewayv1.HTTPRouteMatch, add func(field, format string, args ...any)) {
	if p := m.Path; p != nil {
		kind := gatewayv1.PathMatchPathPrefix
		if p.Type != nil {
			kind = *p.Type
		}
		value := "/"
		if p.Value != nil {
			value = *p.Value
		}
		switch kind {
		case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
			if !strings.HasPrefix(value, "/") {
				add(field+".path.value", "must be an absolute path (start with /), got %q", value)
			}
			if strings.Contains(value, "//") {
				add(field+".path.value", "must not contain //")
			}
		case gatewayv1.PathMatchRegularExpression:
			if err := CompileRegex(value); err != nil {
				add(field+".path.value", "%v", err)
			}
		default:
			add(field+".path.type", "must be Exact, PathPrefix or RegularExpression, got %q", kind)
		}
	}
	for k, h := range m.Headers {
		hf := fmt.Sprintf("%s.headers[%d]", field, k)
		if !ValidHeaderName(string(h.Name)) {
			add(hf+".name", "%q is not a header name", h.Name)
		}
		validateValueMatch(hf, (*string)(h.Type), h.Value, add)
	}
	for k, q := range m.QueryParams {
		qf := fmt.Sprintf("%s.queryParams[%d]", field, k)
		if q.Name == "" {
			add(qf+".name", "required")
		}
		validateValueMatch(qf, (*string)(q.Type), q.Value, add)
	}
	if m.Method != nil && !slices.Contains(methods, *m.Method) {
		add(field+".method", "must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got %q", *m.Method)
	}
}

func validateValueMatch(field string, kind *string, value string, add func(field, format string, args ...any)) {
	k := "Exact"
	if kind != nil {
		k = *kind
	}
	switch k {
	case "Exact":
	case "RegularExpression":
		if err := CompileRegex(value); err != nil {
			add(field+".value", "%v", err)
		}
	default:
		add(field+".type", "must be Exact or RegularExpression, got %q", k)
	}
}

// validateFilters checks that each filter's type names the one field it sets, and that no header modifier
// repeats.
func validateFilters(field string, filters []gatewayv1.HTTPRouteFilter, add func(field, format string, args ...any)) {
	if len(filters) > 16 {
		add(field, "at most 16, got %d", len(filters))
	}
	seen := map[gatewayv1.HTTPRouteFilterType]bool{}
	for i, f := range filters {
		ff := fmt.Sprintf("%s[%d]", field, i)
		set := []struct {
			t     gatewayv1.HTTPRouteFilterType
			isSet bool
		}{
			{gatewayv1.HTTPRouteFilterRequestHeaderModifier, f.RequestHeaderModifier != nil},
			{gatewayv1.HTTPRouteFilterResponseHeaderModifier, f.ResponseHeaderModifier != nil},
			{gatewayv1.HTTPRouteFilterRequestMirror, f.RequestMirror != nil},
			{gatewayv1.HTTPRouteFilterRequestRedirect, f.RequestRedirect != nil},
			{gatewayv1.HTTPRouteFilterURLRewrite, f.URLRewrite != nil},
			{gatewayv1.HTTPRouteFilterCORS, f.CORS != nil},
			{gatewayv1.HTTPRouteFilterExternalAuth, f.ExternalAuth != nil},
			{gatewayv1.HTTPRouteFilterExtensionRef, f.ExtensionRef != nil},
		}
		known, typeSet := false, false
		for _, s := range set {
			if s.t == f.Type {
				known, typeSet = true, s.isSet
			} else if s.isSet {
				add(ff, "sets %s, but its type is %s", lowerFirst(string(s.t)), f.Type)
			}
		}
		if !known {
			add(ff+".type", "unknown filter type %q", f.Type)
			continue
		}
		if !typeSet {
			add(ff+"."+lowerFirst(string(f.Type)), "required for a filter of type %s", f.Type)
		}
		if f.Type != gatewayv1.HTTPRouteFilterRequestMirror && f.Type != gatewayv1.HTTPRouteFilterExtensionRef {
			if seen[f.Type] {
				add(ff, "a second %s filter; at most one is allowed", f.Type)
			}
			seen[f.Type] = true
		}
		for _, m := range []*gatewayv1.HTTPHeaderFilter{f.RequestHeaderModifier, f.ResponseHeaderModifier} {
			if m == nil {
				continue
			}
			for _, h := range append(slices.Clone(m.Set), m.Add...) {
				if !ValidHeaderName(string(h.Name)) {
					add(ff, "%q is not a header name", h.Name)
				}
			}
			for _, name := range m.Remove {
				if !ValidHeaderName(name) {
					add(ff, "%q is not a header name", name)
				}
			}
		}
	}
	if seen[gatewayv1.HTTPRouteFilterRequestRedirect] && seen[gatewayv1.HTTPRouteFilterURLRewrite] {
		add(field, "may specify either RequestRedirect or URLRewrite, but not both")
	}
}

// validatePathModifiers checks the path modifiers of a rule's redirects and rewrites: each sets the field its type
// names, and replacing the matched prefix needs every match of the rule to match a prefix (so that there is one).
func validatePathModifiers(field string, rule gatewayv1.HTTPRouteRule, add func(field, format string, args ...any)) {
	prefixOnly := len(rule.Matches) > 0
	for _, m := range rule.Matches {
		if m.Path == nil || m.Path.Type == nil || *m.Path.Type != gatewayv1.PathMatchPathPrefix {
			prefixOnly = false
		}
	}
	check := func(ff string, pm *gatewayv1.HTTPPathModifier) {
		if pm == nil {
			return
		}
		switch pm.Type {
		case gatewayv1.FullPathHTTPPathModifier:
			if pm.ReplaceFullPath == nil {
				add(ff+".replaceFullPath", "required for type ReplaceFullPath")
			} else if !strings.HasPrefix(*pm.ReplaceFullPath, "/") {
				add(ff+".replaceFullPath", "must start with /, got %q", *pm.ReplaceFullPath)
			}
		case gatewayv1.PrefixMatchHTTPPathModifier:
			if pm.ReplacePrefixMatch == nil {
				add(ff+".replacePrefixMatch", "required for type ReplacePrefixMatch")
			}
			if !prefixOnly {
				add(ff, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match")
			}
		default:
			add(ff+".type", "must be ReplaceFullPath or ReplacePrefixMatch, got %q", pm.Type)
		}
	}
	for i, f := range rule.Filters {
		ff := fmt.Sprintf("%s.filters[%d]", field, i)
		if f.RequestRedirect != nil {
			check(ff+".requestRedirect.path", f.RequestRedirect.Path)
			if sc := f.RequestRedirect.StatusCode; sc != nil && *sc != 301 && *sc != 302 && *sc != 303 && *sc != 307 && *sc != 308 {
				add(ff+".requestRedirect.statusCode", "must be 301, 302, 303, 307 or 308, got %d", *sc)
			}
		}
		if f.URLRewrite != nil {
			check(ff+".urlRewrite.path", f.URLRewrite.Path)
		}
		if m := f.RequestMirror; m != nil {
			if m.Percent != nil && m.Fraction != nil {
				add(ff+".requestMirror", "give percent or fraction, not both")
			}
			if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
				add(ff+".requestMirror.percent", "must be 0-100, got %d", *m.Percent)
			}
			if fr := m.Fraction; fr != nil && (fr.Numerator < 0 || fr.Denominator != nil && (*fr.Denominator < 1 || fr.Numerator > *fr.Denominator)) {
				add(ff+".requestMirror.fraction", "numerator must be between 0 and the denominator (at least 1)")
			}
		}
	}
}

// lowerFirst turns a filter type into its field's name: URLRewrite → urlRewrite, CORS → cors.
func lowerFirst(s string) string {
	switch s {
	case string(gatewayv1.HTTPRouteFilterURLRewrite):
		return "urlRewrite"
	case string(gatewayv1.HTTPRouteFilterCORS):
		return "cors"
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// ValidHeaderName reports whether name is a token (RFC 9110), as the proxy requires of header names.
func ValidHeaderName(name string) bool {
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

// join puts field errors on one line, so that a log line or a file error names them all.
func join(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
