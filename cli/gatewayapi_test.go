package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
)

// The Gateway API standard CRDs of the pinned bundle (charts/sinew-crds/gateway-api, copied there by make build).
var bundleCRDs = []string{
	"backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes", "listenersets",
	"referencegrants", "tcproutes", "tlsroutes", "udproutes",
}

func bundleCRDNames() []string {
	out := make([]string, 0, len(bundleCRDs))
	for _, p := range bundleCRDs {
		out = append(out, p+"."+charts.GatewayAPIGroup)
	}
	return out
}

func gatewayCRD(plural, kind, bundleVersion, channel string) *apiextv1.CustomResourceDefinition {
	ann := map[string]string{}
	if bundleVersion != "" {
		ann[charts.GatewayAPIBundleVersionAnnotation] = bundleVersion
	}
	if channel != "" {
		ann[charts.GatewayAPIChannelAnnotation] = channel
	}
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + charts.GatewayAPIGroup, Annotations: ann},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: charts.GatewayAPIGroup,
			Names: apiextv1.CustomResourceDefinitionNames{Kind: kind, Plural: plural}},
	}
}

// gatewayAPIPrinted are the Gateway API CRDs in an install --crds output, each checked to be the pinned bundle's.
func gatewayAPIPrinted(t *testing.T, out string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, d := range goldenfile.YAMLDocs(t, out) {
		m := d.(map[string]any)
		meta, _ := m["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		if !strings.HasSuffix(name, "."+charts.GatewayAPIGroup) {
			continue
		}
		ann, _ := meta["annotations"].(map[string]any)
		if m["kind"] != "CustomResourceDefinition" || ann[charts.GatewayAPIBundleVersionAnnotation] != charts.GatewayAPIVersion ||
			ann[charts.GatewayAPIChannelAnnotation] != "standard" {
			t.Errorf("%s: kind %v, annotations %v: want a standard CRD of bundle %s", name, m["kind"], ann, charts.GatewayAPIVersion)
		}
		got[name] = true
	}
	return got
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestInstallCRDsGatewayAPI(t *testing.T) {
	all := bundleCRDNames()

	// no cluster to look at: all of them, and a note saying how to leave them out
	r := run(t, testEnv(t, nil), "install", "--crds")
	if got := keys(gatewayAPIPrinted(t, r.stdout)); r.code != 0 || !slices.Equal(got, all) {
		t.Fatalf("install --crds without a cluster: exit %d, Gateway API CRDs %v, want %v\n%s", r.code, got, all, r.stderr)
	}
	if !strings.Contains(r.stderr, "--set installGatewayAPI=false leaves them out") {
		t.Errorf("no note on standard error:\n%s", r.stderr)
	}
	// sinew's own CRDs are still there
	if !strings.Contains(r.stdout, "name: servers.policy.sinew.dev") {
		t.Error("install --crds lost sinew's CRDs")
	}

	// an empty cluster: all of them, quietly
	r = run(t, testEnv(t, newCluster()), "install", "--crds")
	if got := keys(gatewayAPIPrinted(t, r.stdout)); r.code != 0 || !slices.Equal(got, all) || r.stderr != "" {
		t.Fatalf("install --crds on an empty cluster: exit %d, Gateway API CRDs %v\n%s", r.code, got, r.stderr)
	}

	// newer and current ones are left alone, older ones upgraded, an older experimental one left alone
	c := newCluster()
	c.ext = apiextfake.NewSimpleClientset(
		gatewayCRD("httproutes", "HTTPRoute", "v1.7.0", "standard"),
		gatewayCRD("grpcroutes", "GRPCRoute", "v1.2.1", "standard"),
		gatewayCRD("gateways", "Gateway", charts.GatewayAPIVersion, "standard"),
		gatewayCRD("gatewayclasses", "GatewayClass", "v1.6.3-rc.1", "standard"),
		gatewayCRD("tcproutes", "TCPRoute", "v1.1.0", "experimental"),
		gatewayCRD("referencegrants", "ReferenceGrant", "", ""),
	)
	r = run(t, testEnv(t, c), "install", "--crds")
	got := gatewayAPIPrinted(t, r.stdout)
	for name, want := range map[string]bool{
		"httproutes": false, "grpcroutes": true, "gateways": false, "gatewayclasses": true, "tcproutes": false,
		"referencegrants": false, "udproutes": true, "tlsroutes": true,
	} {
		if got[name+"."+charts.GatewayAPIGroup] != want {
			t.Errorf("install --crds printed %s: %v, want %v (printed %v)", name, !want, want, keys(got))
		}
	}
	for _, s := range []string{"httproutes.gateway.networking.k8s.io (v1.7.0)", "gateways.gateway.networking.k8s.io (" + charts.GatewayAPIVersion + ")",
		"tcproutes.gateway.networking.k8s.io (v1.1.0 experimental", "referencegrants.gateway.networking.k8s.io (no gateway.networking.k8s.io/bundle-version annotation)"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("standard error does not say %q:\n%s", s, r.stderr)
		}
	}

	// the value decides when given
	r = run(t, testEnv(t, c), "install", "--crds", "--set", "installGatewayAPI=false")
	if got := gatewayAPIPrinted(t, r.stdout); r.code != 0 || len(got) != 0 {
		t.Errorf("installGatewayAPI=false printed %v (exit %d)", keys(got), r.code)
	}
	r = run(t, testEnv(t, c), "install", "--crds", "--set", "installGatewayAPI=true")
	if got := keys(gatewayAPIPrinted(t, r.stdout)); r.code != 0 || !slices.Equal(got, all) {
		t.Errorf("installGatewayAPI=true printed %v (exit %d)", got, r.code)
	}
	r = run(t, testEnv(t, c), "install", "--crds", "--set", "installGatewayAPI=maybe")
	if r.code == 0 || !strings.Contains(r.stderr, "installGatewayAPI") {
		t.Errorf("installGatewayAPI=maybe: exit %d\n%s", r.code, r.stderr)
	}
	// --ignore-cluster prints them all without looking
	r = run(t, testEnv(t, c), "install", "--crds", "--ignore-cluster")
	if got := keys(gatewayAPIPrinted(t, r.stdout)); r.code != 0 || !slices.Equal(got, all) {
		t.Errorf("--ignore-cluster printed %v (exit %d)", got, r.code)
	}
}

// Installing the control plane does not require the Gateway API CRDs, and uninstall does not delete them: other
// controllers' routes may live in them.
func TestGatewayAPIIsNotSinews(t *testing.T) {
	names, err := crdNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, "."+charts.GatewayAPIGroup) {
			t.Errorf("crdNames has %s", n)
		}
	}
	objs, err := uninstallObjects("sinew", map[string]any{}, []string{charts.GatewayClassAPIVersion})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if isGatewayAPICRD(o) {
			t.Errorf("uninstall deletes %s", o.Name)
		}
	}
}

// The pinned version, go.mod's sigs.k8s.io/gateway-api and the generated chart files agree.
func TestGatewayAPIVersionPinned(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*sigs\.k8s\.io/gateway-api (v\S+)`).FindSubmatch(gomod)
	if m == nil || string(m[1]) != charts.GatewayAPIVersion {
		t.Errorf("go.mod requires sigs.k8s.io/gateway-api %q; charts.GatewayAPIVersion is %s", m, charts.GatewayAPIVersion)
	}
	files, err := filepath.Glob("../charts/sinew-crds/gateway-api/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(bundleCRDs) {
		t.Fatalf("charts/sinew-crds/gateway-api has %d CRDs, want %d: run `make build` (go run ./hack/gatewayapi)", len(files), len(bundleCRDs))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), charts.GatewayAPIBundleVersionAnnotation+": "+charts.GatewayAPIVersion+"\n") {
			t.Errorf("%s is not of bundle %s: run `make build`", f, charts.GatewayAPIVersion)
		}
	}
}
