package check

import (
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func gwCRD(plural, kind, version, channel string) *apiextv1.CustomResourceDefinition {
	ann := map[string]string{}
	if version != "" {
		ann[gatewayAPIVersionAnnot] = version
	}
	if channel != "" {
		ann[gatewayAPIChannelAnnot] = channel
	}
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + gatewayAPIGroup, Annotations: ann},
		Spec:       apiextv1.CustomResourceDefinitionSpec{Group: gatewayAPIGroup, Names: apiextv1.CustomResourceDefinitionNames{Kind: kind, Plural: plural}},
	}
}

func TestGatewayAPICheck(t *testing.T) {
	sinewCRD := &apiextv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "servers.policy.sinew.dev"},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "policy.sinew.dev", Names: apiextv1.CustomResourceDefinitionNames{Kind: "Server"}}}
	cases := []struct {
		name   string
		crds   []runtime.Object
		status Status
		want   []string // in the table's text
	}{
		{"absent", []runtime.Object{sinewCRD}, Warned,
			[]string{"‼ the Gateway API CRDs that routes need are installed", "missing: httproutes.gateway.networking.k8s.io, grpcroutes.gateway.networking.k8s.io",
				"routes (HTTPRoute, GRPCRoute) cannot be used", "sinew install --crds | kubectl apply -f -", HintBase + "#gateway-api-crds"}},
		{"grpcroute absent", []runtime.Object{gwCRD("httproutes", "HTTPRoute", "v1.6.3", "standard")}, Warned,
			[]string{"missing: grpcroutes.gateway.networking.k8s.io;", "found: v1.6.3 (standard): HTTPRoute"}},
		{"older", []runtime.Object{gwCRD("httproutes", "HTTPRoute", "v1.2.1", "standard"), gwCRD("grpcroutes", "GRPCRoute", "v1.6.3", "standard")}, Warned,
			[]string{"older than v1.6.3: httproutes.gateway.networking.k8s.io (v1.2.1)", "found: v1.2.1 (standard): HTTPRoute; v1.6.3 (standard): GRPCRoute"}},
		{"unversioned", []runtime.Object{gwCRD("httproutes", "HTTPRoute", "", ""), gwCRD("grpcroutes", "GRPCRoute", "v1.6.3", "standard")}, Warned,
			[]string{"httproutes.gateway.networking.k8s.io (no bundle version)"}},
		{"current", []runtime.Object{sinewCRD, gwCRD("httproutes", "HTTPRoute", "v1.6.3", "standard"), gwCRD("grpcroutes", "GRPCRoute", "v1.6.3", "standard"),
			gwCRD("gateways", "Gateway", "v1.6.3", "standard")}, OK,
			[]string{"✔ the Gateway API CRDs that routes need are installed\n    found: v1.6.3 (standard): GRPCRoute, Gateway, HTTPRoute\n"}},
		{"newer", []runtime.Object{gwCRD("httproutes", "HTTPRoute", "v1.7.0", "experimental"), gwCRD("grpcroutes", "GRPCRoute", "v1.7.0", "experimental")}, OK,
			[]string{"found: v1.7.0 (experimental): GRPCRoute, HTTPRoute"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := &Env{APIExt: apiextfake.NewSimpleClientset(tc.crds...), GatewayAPIVersion: "v1.6.3"}
			rep := runCat(t, env, Category{ID: "sinew-crds", Checks: []Check{gatewayAPICheck()}})
			if len(rep.Results) != 1 || rep.Results[0].Status != tc.status {
				t.Fatalf("results %+v, want %s", rep.Results, tc.status)
			}
			if !rep.Success {
				t.Error("a Gateway API warning failed the run")
			}
			var b strings.Builder
			WriteTable(&b, rep)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output does not have %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"v1.6.3", "v1.6.3", 0, true}, {"v1.2.1", "v1.6.3", -1, true}, {"v1.10.0", "v1.6.3", 1, true},
		{"v2.0.0", "v1.6.3", 1, true}, {"v1.6.3-rc.1", "v1.6.3", -1, true}, {"v1.6.3", "v1.6.3-rc.2", 1, true},
		{"1.6.3", "v1.6.3", 0, false}, {"v1.6", "v1.6.3", 0, false}, {"", "v1.6.3", 0, false},
	} {
		got, ok := CompareVersions(tc.a, tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
