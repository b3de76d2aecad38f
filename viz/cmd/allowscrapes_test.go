package cmd

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

func TestAllowScrapesGolden(t *testing.T) {
	env := testEnv(t, nil)
	goldenfile.CheckYAML(t, filepath.Join("testdata", "allow-scrapes", "emojivoto.golden.yaml"), mustRun(t, env, "allow-scrapes", "-n", "emojivoto"))
	goldenfile.CheckYAML(t, filepath.Join("testdata", "allow-scrapes", "networks.golden.yaml"),
		mustRun(t, env, "allow-scrapes", "-n", "emojivoto", "--prometheus-networks", "10.244.0.0/16, 192.168.1.7"))

	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, env, "allow-scrapes", "-n", "emojivoto", "-o", "json")), &list); err != nil || list.Kind != "List" || len(list.Items) != 6 {
		t.Errorf("-o json: %v, %+v; want a List of 6 objects", err, list)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"allow-scrapes"}, `required flag(s) "namespace" not set`},
		{[]string{"allow-scrapes", "-n", "Not_A_Namespace"}, "--namespace"},
		{[]string{"allow-scrapes", "-n", "emojivoto", "--prometheus-networks", "10.0.0.0/33"}, `"10.0.0.0/33" is not a network`},
		{[]string{"allow-scrapes", "-n", "emojivoto", "--prometheus-networks", " , "}, "at least one network"},
		{[]string{"allow-scrapes", "-n", "emojivoto", "-o", "table"}, "want yaml or json"},
	} {
		if r := run(t, env, c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("sinew viz %s: exit %d %q, want an error with %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// TestAllowScrapesFitsTheCRDs checks every object allow-scrapes prints against the schema of its CRD as `sinew
// install --crds` renders it: known fields only (the API server would prune the others silently), required fields,
// types, enums, patterns and bounds. The repository has no CEL evaluator, so the CRDs' x-kubernetes-validations
// rules are restated below for these objects; TestAllowScrapesCELRulesAreKnown fails when the CRDs' rules change.
func TestAllowScrapesFitsTheCRDs(t *testing.T) {
	crds := policyCRDs(t)
	for _, ns := range []string{"emojivoto", "default"} {
		objs, err := allowScrapes(ns, names.DefaultClusterNetworks)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(o.YAML), &doc); err != nil {
				t.Fatalf("%s: %v", o.Ref(), err)
			}
			crd, ok := crds[o.Kind]
			if !ok {
				t.Fatalf("%s: no CRD of kind %s in group %s", o.Ref(), o.Kind, policyGroup)
			}
			if doc["apiVersion"] != crd.Spec.Group+"/"+crd.Spec.Versions[0].Name || !crd.Spec.Versions[0].Served {
				t.Errorf("%s: apiVersion %v, want the served %s/%s", o.Ref(), doc["apiVersion"], crd.Spec.Group, crd.Spec.Versions[0].Name)
			}
			for _, err := range checkSchema(doc, crd.Spec.Versions[0].Schema.OpenAPIV3Schema, "") {
				t.Errorf("%s: %v", o.Ref(), err)
			}
			for _, err := range checkCELRules(o.Kind, doc) {
				t.Errorf("%s: %v", o.Ref(), err)
			}
		}
	}
}

// TestAllowScrapesCELRulesAreKnown lists the CEL rules of the CRDs allow-scrapes prints: checkCELRules restates
// them, so a change here needs a look there.
func TestAllowScrapesCELRulesAreKnown(t *testing.T) {
	known := map[string]int{"Server": 2, "NetworkAuthentication": 0, "AuthorizationPolicy": 2, "MeshTLSAuthentication": 3}
	for kind, crd := range policyCRDs(t) {
		want, ok := known[kind]
		if !ok {
			continue
		}
		var rules []string
		collectRules(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &rules)
		// the label selector's rule on matchExpressions is not reached by allow-scrapes' empty selectors
		rules = slices.DeleteFunc(rules, func(r string) bool { return strings.HasPrefix(r, "self.operator in") })
		if len(rules) != want {
			t.Errorf("%s has %d CEL rules, checkCELRules knows %d: look at them again:\n%s", kind, len(rules), want, strings.Join(rules, "\n"))
		}
	}
}

func policyCRDs(t *testing.T) map[string]*apiextv1.CustomResourceDefinition {
	t.Helper()
	c, err := charts.Load(charts.CRDs, testVersion)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charts.Render(c, "", nil, charts.InstallOrder)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*apiextv1.CustomResourceDefinition{}
	for _, o := range objs {
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict([]byte(o.YAML), &crd); err != nil {
			t.Fatalf("%s: %v", o.Ref(), err)
		}
		if crd.Spec.Group == policyGroup && len(crd.Spec.Versions) == 1 {
			out[crd.Spec.Names.Kind] = &crd
		}
	}
	return out
}

func collectRules(s *apiextv1.JSONSchemaProps, out *[]string) {
	if s == nil {
		return
	}
	for _, r := range s.XValidations {
		*out = append(*out, r.Rule)
	}
	for _, p := range s.Properties {
		collectRules(&p, out)
	}
	if s.Items != nil {
		collectRules(s.Items.Schema, out)
	}
	for i := range s.AnyOf {
		collectRules(&s.AnyOf[i], out)
	}
}

// checkSchema reports where v does not fit the structural schema s.
func checkSchema(v any, s *apiextv1.JSONSchemaProps, path string) []error {
	if s == nil {
		return nil
	}
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", cmpPath(path), fmt.Sprintf(format, a...)))
	}
	if s.XIntOrString {
		switch v.(type) {
		case string, float64, int, int64:
		default:
			fail("want an integer or a string, got %T", v)
		}
		return errs
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("want an object, got %T", v)
			return errs
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				fail("required field %s is missing", r)
			}
		}
		if len(s.Properties) == 0 && s.AdditionalProperties == nil {
			return errs // metadata: checked by the API server itself
		}
		for k, x := range m {
			if p, ok := s.Properties[k]; ok {
				errs = append(errs, checkSchema(x, &p, path+"."+k)...)
			} else if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
				errs = append(errs, checkSchema(x, s.AdditionalProperties.Schema, path+"."+k)...)
			} else {
				fail("unknown field %s (the API server would drop it)", k)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("want an array, got %T", v)
			return errs
		}
		if s.MinItems != nil && int64(len(a)) < *s.MinItems || s.MaxItems != nil && int64(len(a)) > *s.MaxItems {
			fail("%d items, want %v to %v", len(a), s.MinItems, s.MaxItems)
		}
		for i, x := range a {
			errs = append(errs, checkSchema(x, s.Items.Schema, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want a string, got %T", v)
			return errs
		}
		if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e apiextv1.JSON) bool { return string(e.Raw) == fmt.Sprintf("%q", str) }) {
			fail("%q is not one of the enum's values", str)
		}
		if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(str) {
			fail("%q does not match %s", str, s.Pattern)
		}
		if s.MaxLength != nil && int64(len(str)) > *s.MaxLength || s.MinLength != nil && int64(len(str)) < *s.MinLength {
			fail("%q has a length out of bounds", str)
		}
	case "integer":
		if _, ok := v.(float64); !ok {
			fail("want an integer, got %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean, got %T", v)
		}
	}
	return errs
}

func cmpPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return strings.TrimPrefix(p, ".")
}

// checkCELRules restates the CRDs' x-kubernetes-validations rules for the objects allow-scrapes prints.
func checkCELRules(kind string, doc map[string]any) []error {
	spec, _ := doc["spec"].(map[string]any)
	has := func(m map[string]any, k string) bool { _, ok := m[k]; return ok }
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch kind {
	case "Server":
		// has(self.podSelector) != has(self.workloadSelector); the port is a number or a port name
		if has(spec, "podSelector") == has(spec, "workloadSelector") {
			fail("give exactly one of podSelector and workloadSelector")
		}
		switch p := spec["port"].(type) {
		case string:
			if len(p) > 15 || !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`).MatchString(p) || !regexp.MustCompile(`[a-z]`).MatchString(p) {
				fail("port %q is not a port name", p)
			}
		case float64:
			if p < 1 || p > 65535 {
				fail("port %v is out of range", p)
			}
		}
	case "AuthorizationPolicy":
		// targetRef: a Server of group policy.sinew.dev (the only kind allow-scrapes targets)
		ref, _ := spec["targetRef"].(map[string]any)
		if ref["kind"] != "Server" || ref["group"] != policyGroup {
			fail("targetRef %v: want a Server of group %s", ref, policyGroup)
		}
		// each authentication is one of policy.sinew.dev's kinds with that group, or a core ServiceAccount
		refs, _ := spec["requiredAuthenticationRefs"].([]any)
		for _, r := range refs {
			r, _ := r.(map[string]any)
			switch r["kind"] {
			case "MeshTLSAuthentication", "NetworkAuthentication", "JWTAuthentication":
				if r["group"] != policyGroup {
					fail("authentication %v: want group %s", r, policyGroup)
				}
			case "ServiceAccount":
				if g, ok := r["group"]; ok && g != "" {
					fail("authentication %v: want the core group", r)
				}
			default:
				fail("authentication %v: unknown kind", r)
			}
		}
	case "MeshTLSAuthentication":
		// has(self.identities) != has(self.identityRefs); identityRefs name core objects; identities' forms
		if has(spec, "identities") == has(spec, "identityRefs") {
			fail("give exactly one of identities and identityRefs")
		}
		refs, _ := spec["identityRefs"].([]any)
		for _, r := range refs {
			if g, ok := r.(map[string]any)["group"]; ok && g != "" {
				fail("identityRef %v: leave group empty", r)
			}
		}
		ids, _ := spec["identities"].([]any)
		for _, id := range ids {
			s, _ := id.(string)
			if s != "*" && !strings.HasPrefix(s, "*.") && !strings.HasPrefix(s, "spiffe://") {
				fail("identity %q: want '*', '*.<suffix>' or a SPIFFE ID", s)
			}
		}
	}
	return errs
}
