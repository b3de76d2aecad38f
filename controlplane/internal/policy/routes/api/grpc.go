package api

import (
	"fmt"
	"regexp"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GRPCRoute is the Gateway API's GRPCRoute.
type GRPCRoute = gatewayv1.GRPCRoute

// The syntax the CRD's CEL rules require of an Exact method match's service and method.
var (
	grpcServiceRE = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcFilterTypes are the filter types a GRPCRoute may use: a subset of HTTPRoute's, with the same fields.
var grpcFilterTypes = map[gatewayv1.GRPCRouteFilterType]bool{
	gatewayv1.GRPCRouteFilterRequestHeaderModifier:  true,
	gatewayv1.GRPCRouteFilterResponseHeaderModifier: true,
	gatewayv1.GRPCRouteFilterRequestMirror:          true,
	gatewayv1.GRPCRouteFilterExtensionRef:           true,
}

// ValidateGRPC checks a GRPCRoute as the CRD's schema and CEL rules do; errors carry field paths. Like Validate,
// it does not check what depends on other objects.
func ValidateGRPC(r *GRPCRoute) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	validateParents(r.Spec.ParentRefs, add)
	if len(r.Spec.Rules) > 16 {
		add("spec.rules", "at most 16, got %d", len(r.Spec.Rules))
	}
	total := 0
	for i, rule := range r.Spec.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		total += len(rule.Matches)
		if len(rule.Matches) > 64 {
			add(field+".matches", "at most 64, got %d", len(rule.Matches))
		}
		for j, m := range rule.Matches {
			validateGRPCMatch(fmt.Sprintf("%s.matches[%d]", field, j), m, add)
		}
		validateGRPCFilters(field+".filters", rule.Filters, add)
		validateBackends(field, grpcBackends(rule.BackendRefs), add)
		for j, b := range rule.BackendRefs {
			validateGRPCFilterTypes(fmt.Sprintf("%s.backendRefs[%d].filters", field, j), b.Filters, add)
		}
	}
	if total > 128 {
		add("spec.rules", "at most 128 matches across all rules, got %d", total)
	}
	return join(errs)
}

func validateGRPCMatch(field string, m gatewayv1.GRPCRouteMatch, add func(field, format string, args ...any)) {
	if mm := m.Method; mm != nil {
		kind := gatewayv1.GRPCMethodMatchExact
		if mm.Type != nil {
			kind = *mm.Type
		}
		service, method := deref(mm.Service), deref(mm.Method)
		if service == "" && method == "" {
			add(field+".method", "one or both of service or method must be specified")
		}
		for _, part := range []struct{ name, value string }{{"service", service}, {"method", method}} {
			if len(part.value) > 1024 {
				add(field+".method."+part.name, "at most 1024 characters, got %d", len(part.value))
			}
		}
		switch kind {
		case gatewayv1.GRPCMethodMatchExact:
			if service != "" && !grpcServiceRE.MatchString(service) {
				add(field+".method.service", "%q is not a service name (%s)", service, grpcServiceRE)
			}
			if method != "" && !grpcMethodRE.MatchString(method) {
				add(field+".method.method", "%q is not a method name (%s)", method, grpcMethodRE)
			}
		case gatewayv1.GRPCMethodMatchRegularExpression:
			for _, part := range []struct{ name, value string }{{"service", service}, {"method", method}} {
				if part.value == "" {
					continue
				}
				if err := CompileRegex(part.value); err != nil {
					add(field+".method."+part.name, "%v", err)
				}
			}
		default:
			add(field+".method.type", "must be Exact or RegularExpression, got %q", kind)
		}
	}
	if len(m.Headers) > 16 {
		add(field+".headers", "at most 16, got %d", len(m.Headers))
	}
	seen := map[gatewayv1.GRPCHeaderName]bool{}
	for k, h := range m.Headers {
		hf := fmt.Sprintf("%s.headers[%d]", field, k)
		if !ValidHeaderName(string(h.Name)) {
			add(hf+".name", "%q is not a header name", h.Name)
		}
		if seen[h.Name] {
			add(hf+".name", "%q appears twice", h.Name)
		}
		seen[h.Name] = true
		if h.Value == "" || len(h.Value) > 4096 {
			add(hf+".value", "must be 1-4096 characters, got %d", len(h.Value))
		}
		validateValueMatch(hf, (*string)(h.Type), h.Value, add)
	}
}

// validateGRPCFilters checks a GRPCRoute's filters: the types it allows, then what HTTPRoute's filters of the
// same types must satisfy.
func validateGRPCFilters(field string, fs []gatewayv1.GRPCRouteFilter, add func(field, format string, args ...any)) {
	if validateGRPCFilterTypes(field, fs, add) {
		validateFilters(field, HTTPFilters(fs), add)
	}
}

// validateGRPCFilterTypes reports filter types a GRPCRoute does not have; false when there is one.
func validateGRPCFilterTypes(field string, fs []gatewayv1.GRPCRouteFilter, add func(field, format string, args ...any)) bool {
	ok := true
	for i, f := range fs {
		if !grpcFilterTypes[f.Type] {
			add(fmt.Sprintf("%s[%d].type", field, i), "must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef, got %q", f.Type)
			ok = false
		}
	}
	return ok
}

// HTTPFilters is a GRPCRoute's filters in HTTPRoute's type: the same filter types with the same fields.
func HTTPFilters(fs []gatewayv1.GRPCRouteFilter) []gatewayv1.HTTPRouteFilter {
	if fs == nil {
		return nil
	}
	out := make([]gatewayv1.HTTPRouteFilter, len(fs))
	for i, f := range fs {
		out[i] = gatewayv1.HTTPRouteFilter{
			Type:                   gatewayv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
	}
	return out
}

// grpcBackends is a GRPCRoute rule's backendRefs in HTTPRoute's type.
func grpcBackends(refs []gatewayv1.GRPCBackendRef) []gatewayv1.HTTPBackendRef {
	if refs == nil {
		return nil
	}
	out := make([]gatewayv1.HTTPBackendRef, len(refs))
	for i, b := range refs {
		out[i] = gatewayv1.HTTPBackendRef{BackendRef: b.BackendRef, Filters: HTTPFilters(b.Filters)}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
