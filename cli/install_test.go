package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/certs"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// testVersion is the version the tests run as, so that golden files do not depend on build flags.
const testVersion = "v0.0.0-test"

func TestMain(m *testing.M) {
	version.Version = testVersion
	os.Exit(m.Run())
}

// testNow is inside the validity of the fixed certificates in testdata/install (2025 to 2124).
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const fixtures = "testdata/install"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedCerts returns the certificates in testdata/install instead of new ones.
type fixedCerts struct{ t testing.TB }

func (f fixedCerts) Identity(string) (certs.Identity, error) {
	return certs.Identity{TrustAnchorsPEM: fixture(f.t, "ca.crt"), IssuerCertPEM: fixture(f.t, "issuer.crt"), IssuerKeyPEM: fixture(f.t, "issuer.key")}, nil
}

func (f fixedCerts) Webhook([]string) (certs.Webhook, error) {
	return certs.Webhook{CAPEM: fixture(f.t, "webhook-ca.crt"), CertPEM: fixture(f.t, "webhook.crt"), KeyPEM: fixture(f.t, "webhook.key")}, nil
}

// cluster is a fake cluster for a test.
type cluster struct {
	kube *fake.Clientset
	ext  *apiextfake.Clientset
}

func newCluster(objs ...runtime.Object) *cluster {
	return &cluster{kube: fake.NewSimpleClientset(objs...), ext: apiextfake.NewSimpleClientset()}
}

// testEnv runs commands against c (nil: no cluster reachable) with the fixed clock and certificates.
func testEnv(t testing.TB, c *cluster) *Env {
	env := &Env{
		Stdin: strings.NewReader(""), Getenv: func(string) string { return "" },
		Now: func() time.Time { return testNow }, Certs: fixedCerts{t},
	}
	env.Kube = func() (*check.Clients, error) {
		if c == nil {
			return nil, fmt.Errorf("no cluster in this test")
		}
		return &check.Clients{Kube: c.kube, APIExt: c.ext}, nil
	}
	return env
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t testing.TB, env *Env, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	code := Main(context.Background(), env, args)
	return result{code, out.String(), errb.String()}
}

func mustRun(t testing.TB, env *Env, args ...string) string {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("sinew %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// golden compares a YAML stream with testdata/install/<name> semantically (same documents, same order); -update
// rewrites the file.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.CheckYAML(t, filepath.Join(fixtures, name), got)
}

func TestInstallCRDsGolden(t *testing.T) {
	// sinew's own CRDs; the Gateway API's are upstream's files, never committed (TestInstallCRDsGatewayAPI)
	out := mustRun(t, testEnv(t, nil), "install", "--crds", "--set", "installGatewayAPI=false")
	golden(t, "crds.golden.yaml", out)
	for _, d := range goldenfile.YAMLDocs(t, out) {
		if d.(map[string]any)["kind"] != "CustomResourceDefinition" {
			t.Errorf("install --crds printed a %v", d.(map[string]any)["kind"])
		}
	}
}

func TestInstallGolden(t *testing.T) {
	cases := map[string][]string{
		"install.golden.yaml":    {"install", "--ignore-cluster"},
		"install-ha.golden.yaml": {"install", "--ignore-cluster", "--ha"},
		"install-overrides.golden.yaml": {"install", "--ignore-cluster",
			"--set", "proxy.logLevel=debug,controllerLogLevel=warn", "--set-string", "podLabels.team=mesh",
			"--set-file", "podAnnotations.note=testdata/install/note.txt", "-f", "testdata/install/overrides.yaml",
			"--registry", "registry.example/sinew", "--image-tag", "v9", "--image-pull-policy", "Always",
			"--identity-trust-domain", "mesh.example", "--cluster-domain", "k8s.example",
			"--identity-issuance-lifetime", "12h", "--default-inbound-policy", "deny",
			"--skip-inbound-ports", "25,8000-8090", "--skip-outbound-ports", "3306",
			"--proxy-cpu-request", "50m", "--proxy-memory-limit", "128Mi", "--native-sidecar=false", "--controller-replicas", "2"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			out := mustRun(t, testEnv(t, nil), args...)
			golden(t, name, out)
			decodeAll(t, out)
		})
	}
}

// decodeAll decodes every object strictly into its Kubernetes type: a field the type does not have, or a value of
// the wrong type, fails.
func decodeAll(t *testing.T, stream string) []runtime.Object {
	t.Helper()
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := gatewayv1.Install(s); err != nil { // sinew's GatewayClass
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	var objs []runtime.Object
	for i, d := range goldenfile.SplitYAML(stream) {
		obj, gvk, err := dec.Decode([]byte(d), nil, nil)
		if err != nil {
			t.Fatalf("document %d does not decode into its type: %v\n%s", i+1, err, clipLines(d, 15))
		}
		if gvk.Kind == "" {
			t.Fatalf("document %d has no kind", i+1)
		}
		objs = append(objs, obj)
	}
	return objs
}

func clipLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = append(l[:n], "...")
	}
	return strings.Join(l, "\n")
}

func TestInstallOrderAndContent(t *testing.T) {
	out := mustRun(t, testEnv(t, nil), "install", "--ignore-cluster")
	objs := decodeAll(t, out)
	if ns, ok := objs[0].(*corev1.Namespace); !ok || ns.Name != "sinew" || ns.Labels["config.sinew.dev/admission-webhooks"] != "disabled" {
		t.Fatalf("the first object is %T, want the namespace sinew with the webhook opt-out label", objs[0])
	}
	kinds := []string{}
	for _, o := range objs {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
	}
	if kinds[len(kinds)-1] != "MutatingWebhookConfiguration" {
		t.Errorf("the webhook configuration is not last: %v", kinds)
	}
	// exact kinds: a substring search would let ServiceAccount stand in for Service
	firstDeploy := slices.Index(kinds, "Deployment")
	for _, k := range []string{"Secret", "ConfigMap", "ServiceAccount", "ClusterRole", "Service"} {
		if i := slices.Index(kinds, k); i < 0 || i > firstDeploy {
			t.Errorf("%s comes after the deployments (or is missing): %v", k, kinds)
		}
	}
	// the stored values carry no key
	if strings.Contains(configValues(t, objs), "PRIVATE KEY") {
		t.Error("sinew-config holds a private key")
	}
	// the trust anchors reach the proxies and the trust-roots ConfigMap unchanged
	anchors := strings.TrimSpace(string(fixture(t, "ca.crt")))
	var roots string
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == names.TrustRootsConfigMap {
			roots = cm.Data[names.TrustRootsKey]
		}
	}
	if strings.TrimSpace(roots) != anchors {
		t.Errorf("trust roots ConfigMap holds\n%s\nwant\n%s", roots, anchors)
	}
}

func configValues(t *testing.T, objs []runtime.Object) string {
	t.Helper()
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == names.ConfigMap {
			return cm.Data["values"]
		}
	}
	t.Fatal("no sinew-config ConfigMap")
	return ""
}

func TestInstallJSON(t *testing.T) {
	env := testEnv(t, nil)
	y := goldenfile.YAMLDocs(t, mustRun(t, env, "install", "--ignore-cluster"))
	var list struct {
		Kind  string `json:"kind"`
		Items []any  `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, env, "install", "--ignore-cluster", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "List" || len(list.Items) != len(y) {
		t.Fatalf("-o json is not a List of the same %d objects (kind %q, %d items)", len(y), list.Kind, len(list.Items))
	}
	for i := range y {
		if !reflect.DeepEqual(list.Items[i], y[i]) {
			a, _ := yaml.Marshal(y[i])
			b, _ := yaml.Marshal(list.Items[i])
			t.Fatalf("-o json item %d differs from the YAML:\n%s", i, goldenfile.LineDiff(string(a), string(b)))
		}
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, iss, key := filepath.Join(fixtures, "ca.crt"), filepath.Join(fixtures, "issuer.crt"), filepath.Join(fixtures, "issuer.key")
	otherIss, otherKey := filepath.Join(fixtures, "other-issuer.crt"), filepath.Join(fixtures, "other-issuer.key")
	files := func(a, i, k string) []string {
		return []string{"--identity-trust-anchors-file", a, "--identity-issuer-certificate-file", i, "--identity-issuer-key-file", k}
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"anchors not PEM":            {files(garbage, iss, key), "trust anchors " + garbage + ": no PEM certificate"},
		"issuer not chaining":        {files(ca, otherIss, otherKey), "issuer certificate " + otherIss + `: "identity.sinew.cluster.local" does not chain to the trust anchors in ` + ca},
		"key not the issuer's":       {files(ca, iss, otherKey), "issuer key " + otherKey + ": is not the key of the issuer certificate " + iss},
		"issuer is the anchor's key": {files(ca, key, key), "issuer certificate " + key + ": no PEM certificate"},
		"anchors as issuer key":      {files(ca, iss, ca), "issuer key " + ca + ": no PEM private key"},
		"missing file":               {files(filepath.Join(dir, "nope.crt"), iss, key), "--identity-trust-anchors-file: open " + filepath.Join(dir, "nope.crt")},
		"only one file":              {[]string{"--identity-trust-anchors-file", ca}, "give all three of"},
		"bad --set":                  {[]string{"--set", "proxy.logLevel"}, `--set "proxy.logLevel": key "logLevel" has no value`},
		"unknown value":              {[]string{"--set", "proxy.logLvl=debug"}, "unknown value proxy.logLvl"},
		"bad enum":                   {[]string{"--set", "defaultInboundPolicy=allow"}, `value defaultInboundPolicy: "allow" is not one of`},
		"bad network":                {[]string{"--set", "probeNetworks=0.0.0.0/0\\,10.0.0.0/33"}, `value probeNetworks: "10.0.0.0/33" is not a network`},
		"bad flag enum":              {[]string{"--default-inbound-policy", "allow"}, `value defaultInboundPolicy: "allow" is not one of`},
		"bad ports":                  {[]string{"--skip-inbound-ports", "25,x"}, `value proxyInit.skipInboundPorts: "x" is not a port`},
		"port out of range":          {[]string{"--skip-outbound-ports", "70000"}, `value proxyInit.skipOutboundPorts: "70000" is not a port between 1 and 65535`},
		"bad quantity":               {[]string{"--proxy-cpu-request", "lots"}, `value proxy.resources.cpu.request: "lots" is not a quantity`},
		"bad replicas":               {[]string{"--controller-replicas", "0"}, "--controller-replicas 0: must be at least 1"},
		"bad output":                 {[]string{"-o", "toml"}, `--output "toml"`},
		"bad values file":            {[]string{"-f", garbage}, "--values " + garbage + ": not a YAML map"},
		"map replaced by value":      {[]string{"--set", "proxy=1"}, "value proxy: must be a map"},
		"string for a bool":          {[]string{"--set-string", "proxy.await=false"}, "value proxy.await: text is not true or false"},
		"number as a label":          {[]string{"--set", "podLabels.version=2"}, "value podLabels.version: 2 is not text"},
		"unknown value in a file":    {[]string{"-f", valuesFile(t, dir, "identity:\n  issuer:\n    lifetime: 1h\n")}, "unknown value identity.issuer.lifetime"},
		"bad trust domain":           {[]string{"--identity-trust-domain", "Not_A_Domain"}, `value identity.trustDomain: "Not_A_Domain" is not a lower-case DNS name`},
		"bad anchors value":          {[]string{"--set-file", "identity.trustAnchorsPEM=" + garbage}, "trust anchors (value identity.trustAnchorsPEM): no PEM certificate"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := run(t, testEnv(t, nil), append([]string{"install", "--ignore-cluster"}, c.args...)...)
			if r.code == 0 {
				t.Fatalf("install succeeded; want an error containing %q", c.want)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("error:\n%s\nwant it to contain %q", r.stderr, c.want)
			}
			if r.stdout != "" {
				t.Errorf("printed manifests although it failed:\n%s", clipLines(r.stdout, 5))
			}
		})
	}
}

func valuesFile(t *testing.T, dir, content string) string {
	t.Helper()
	name := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestInstallFreeFormValues: below a free-form value (labels, node selector, resources) any key goes, merged over
// the chart's default.
func TestInstallFreeFormValues(t *testing.T) {
	out := mustRun(t, testEnv(t, nil), "install", "--ignore-cluster", "--set", "nodeSelector.disk=ssd,podLabels.team=mesh")
	for _, want := range []string{"disk: ssd", "kubernetes.io/os: linux", "team: mesh"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q", want)
		}
	}
}

func TestInstallGivenCertificates(t *testing.T) {
	out := mustRun(t, testEnv(t, nil), "install", "--ignore-cluster",
		"--identity-trust-anchors-file", filepath.Join(fixtures, "ca.crt"),
		"--identity-issuer-certificate-file", filepath.Join(fixtures, "issuer.crt"),
		"--identity-issuer-key-file", filepath.Join(fixtures, "issuer.key"))
	// the same certificates as the generator's in this test, so the same output
	golden(t, "install.golden.yaml", out)
}

// crdObjects are the CRDs of install --crds, as objects for the fake cluster.
func crdObjects(t *testing.T) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, nil), "install", "--crds")) {
		crd := o.(*apiextv1.CustomResourceDefinition)
		crd.Status.Conditions = []apiextv1.CustomResourceDefinitionCondition{{Type: apiextv1.Established, Status: apiextv1.ConditionTrue}}
		out = append(out, crd)
	}
	return out
}

func TestInstallLooksAtTheCluster(t *testing.T) {
	// no CRDs
	c := newCluster()
	r := run(t, testEnv(t, c), "install")
	if r.code == 0 || !strings.Contains(r.stderr, "sinew install --crds | kubectl apply -f -") || !strings.Contains(r.stderr, "servers.policy.sinew.dev") {
		t.Fatalf("install without CRDs: exit %d\n%s", r.code, r.stderr)
	}
	// CRDs: installs
	c = newCluster()
	c.ext = apiextfake.NewSimpleClientset(crdObjects(t)...)
	out := mustRun(t, testEnv(t, c), "install")
	golden(t, "install.golden.yaml", out)
	// already installed
	if _, err := c.kube.CoreV1().ConfigMaps("sinew").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sinew-config", Namespace: "sinew"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = run(t, testEnv(t, c), "install")
	if r.code == 0 || !strings.Contains(r.stderr, "sinew upgrade") {
		t.Fatalf("install over an installed control plane: exit %d\n%s", r.code, r.stderr)
	}
	// unreachable
	r = run(t, testEnv(t, nil), "install")
	if r.code == 0 || !strings.Contains(r.stderr, "--ignore-cluster") {
		t.Fatalf("install without a cluster: exit %d\n%s", r.code, r.stderr)
	}
}

// installed returns a fake cluster holding what `sinew install` printed with args (plus the CRDs).
func installed(t *testing.T, args ...string) *cluster {
	t.Helper()
	out := mustRun(t, testEnv(t, nil), append([]string{"install", "--ignore-cluster"}, args...)...)
	var objs []runtime.Object
	for _, o := range decodeAll(t, out) {
		if _, ok := o.(*gatewayv1.GatewayClass); !ok { // not a kind the fake clientset holds
			objs = append(objs, o)
		}
	}
	c := newCluster(objs...)
	c.ext = apiextfake.NewSimpleClientset(crdObjects(t)...)
	return c
}

func TestUpgradeKeepsCertificatesAndValues(t *testing.T) {
	c := installed(t, "--proxy-cpu-request", "75m", "--image-tag", "v0.0.0-old")
	env := testEnv(t, c)
	env.Certs = failingCerts{t} // upgrade must not make new certificates
	out := mustRun(t, env, "upgrade", "--proxy-log-level", "debug")
	// the install's values, the new flag, the CLI's version, the same certificates: what install prints with both flags
	want := mustRun(t, testEnv(t, nil), "install", "--ignore-cluster", "--proxy-cpu-request", "75m", "--proxy-log-level", "debug")
	g, w := goldenfile.YAMLDocs(t, out), goldenfile.YAMLDocs(t, want)
	if !reflect.DeepEqual(g, w) {
		for i := range w {
			if i < len(g) && !reflect.DeepEqual(g[i], w[i]) {
				gb, _ := yaml.Marshal(g[i])
				wb, _ := yaml.Marshal(w[i])
				t.Fatalf("upgrade document %d differs from a fresh install with the same settings:\n%s", i+1, goldenfile.LineDiff(string(wb), string(gb)))
			}
		}
		t.Fatalf("upgrade printed %d objects, install %d", len(g), len(w))
	}
}

type failingCerts struct{ t *testing.T }

func (f failingCerts) Identity(string) (certs.Identity, error) {
	f.t.Error("new identity certificates were generated")
	return certs.Identity{}, fmt.Errorf("no")
}

func (f failingCerts) Webhook([]string) (certs.Webhook, error) {
	f.t.Error("a new webhook certificate was generated")
	return certs.Webhook{}, fmt.Errorf("no")
}

func TestUpgradeRenewsExpiringWebhookCertificate(t *testing.T) {
	c := installed(t)
	env := testEnv(t, c)
	// the webhook fixture expires in December 2124: within 60 days of this, so upgrade replaces it
	env.Now = func() time.Time { return time.Date(2124, 11, 1, 0, 0, 0, 0, time.UTC) }
	var generated bool
	env.Certs = webhookOnly{&generated}
	out := mustRun(t, env, "upgrade")
	if !generated {
		t.Fatal("upgrade kept a webhook certificate that expires within 60 days")
	}
	if strings.Contains(out, base64Of(t, "webhook.crt")) {
		t.Error("the old webhook certificate is still in the output")
	}
	if !strings.Contains(out, base64Of(t, "issuer.crt")) {
		t.Error("the issuer certificate was not kept")
	}
}

func base64Of(t *testing.T, name string) string {
	return base64.StdEncoding.EncodeToString(fixture(t, name))
}

type webhookOnly struct{ called *bool }

func (w webhookOnly) Identity(string) (certs.Identity, error) {
	return certs.Identity{}, fmt.Errorf("no")
}
func (w webhookOnly) Webhook(n []string) (certs.Webhook, error) {
	*w.called = true
	return certs.NewGenerator(nil, 0, nil).Webhook(n)
}

func TestUpgradeWithoutInstall(t *testing.T) {
	r := run(t, testEnv(t, newCluster()), "upgrade")
	if r.code == 0 || !strings.Contains(r.stderr, "no control plane is installed") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

func TestUpgradeCRDs(t *testing.T) {
	golden(t, "crds.golden.yaml", mustRun(t, testEnv(t, nil), "upgrade", "--crds", "--set", "installGatewayAPI=false"))
	// like install --crds: an older Gateway API CRD is upgraded, a current one left alone
	c := newCluster()
	c.ext = apiextfake.NewSimpleClientset(gatewayCRD("httproutes", "HTTPRoute", "v1.2.1", "standard"),
		gatewayCRD("grpcroutes", "GRPCRoute", charts.GatewayAPIVersion, "standard"))
	r := run(t, testEnv(t, c), "upgrade", "--crds")
	got := gatewayAPIPrinted(t, r.stdout)
	if r.code != 0 || !got["httproutes.gateway.networking.k8s.io"] || got["grpcroutes.gateway.networking.k8s.io"] {
		t.Fatalf("upgrade --crds: exit %d, printed %v\n%s", r.code, got, r.stderr)
	}
}

func TestUninstall(t *testing.T) {
	c := installed(t, "--ha")
	meshed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "emojivoto"},
		Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "sinew-proxy"}}, Containers: []corev1.Container{{Name: "web"}}}}
	if _, err := c.kube.CoreV1().Pods("emojivoto").Create(context.Background(), meshed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, testEnv(t, c), "uninstall")
	if r.code == 0 || !strings.Contains(r.stderr, "emojivoto/web-1") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("uninstall with meshed pods: exit %d\n%s", r.code, r.stderr)
	}
	out := mustRun(t, testEnv(t, c), "uninstall", "--force")
	golden(t, "uninstall-ha.golden.yaml", out)
	var refs []string
	for _, d := range goldenfile.YAMLDocs(t, out) {
		m := d.(map[string]any)
		meta := m["metadata"].(map[string]any)
		refs = append(refs, fmt.Sprintf("%s/%s", m["kind"], meta["name"]))
	}
	all := strings.Join(refs, " ")
	for _, want := range []string{"MutatingWebhookConfiguration/sinew-proxy-injector-webhook-config", "ClusterRole/sinew-sinew-identity",
		"ClusterRoleBinding/sinew-sinew-destination", "CustomResourceDefinition/servers.policy.sinew.dev",
		"CustomResourceDefinition/workloads.sinew.dev", "PodDisruptionBudget/sinew-identity", "Deployment/sinew-proxy-injector"} {
		if !strings.Contains(all, want) {
			t.Errorf("uninstall does not print %s", want)
		}
	}
	if refs[0] != "MutatingWebhookConfiguration/sinew-proxy-injector-webhook-config" || refs[len(refs)-1] != "Namespace/sinew" {
		t.Errorf("uninstall order: want the webhook first and the namespace last, got %v", refs)
	}
	// with only control-plane pods it needs no --force
	c2 := installed(t)
	mustRun(t, testEnv(t, c2), "uninstall")
}

func TestVersion(t *testing.T) {
	r := run(t, testEnv(t, nil), "version")
	if r.stdout != "Client version: "+testVersion+"\nServer version: unavailable\n" {
		t.Errorf("without a cluster:\n%s", r.stdout)
	}
	if got := mustRun(t, testEnv(t, nil), "version", "--client", "--short"); got != testVersion+"\n" {
		t.Errorf("--client --short: %q", got)
	}
	c := installed(t, "--image-tag", "v1.2.3")
	if got := mustRun(t, testEnv(t, c), "version"); got != "Client version: "+testVersion+"\nServer version: v1.2.3\n" {
		t.Errorf("with a control plane:\n%s", got)
	}
	if got := mustRun(t, testEnv(t, c), "version", "--short"); got != testVersion+"\nv1.2.3\n" {
		t.Errorf("--short:\n%s", got)
	}
	if got := mustRun(t, testEnv(t, newCluster()), "version"); !strings.HasSuffix(got, "Server version: unavailable\n") {
		t.Errorf("empty cluster:\n%s", got)
	}
}

// The GatewayClass sinew is printed only where the cluster has the Gateway API's CRDs (or is not read).
func TestInstallGatewayClass(t *testing.T) {
	hasClass := func(out string) bool {
		for _, o := range decodeAll(t, out) {
			if gc, ok := o.(*gatewayv1.GatewayClass); ok && gc.Name == names.GatewayClass && gc.Spec.ControllerName == names.GatewayController {
				return true
			}
		}
		return false
	}
	if !hasClass(mustRun(t, testEnv(t, nil), "install", "--ignore-cluster")) {
		t.Error("--ignore-cluster: no GatewayClass")
	}
	if hasClass(mustRun(t, testEnv(t, nil), "install", "--ignore-cluster", "--set", "gatewayClass.create=false")) {
		t.Error("gatewayClass.create=false: a GatewayClass")
	}
	// sinew's CRDs without the Gateway API's
	c := newCluster()
	var sinewOnly []runtime.Object
	for _, o := range crdObjects(t) {
		if !strings.HasSuffix(o.(*apiextv1.CustomResourceDefinition).Name, "."+charts.GatewayAPIGroup) {
			sinewOnly = append(sinewOnly, o)
		}
	}
	c.ext = apiextfake.NewSimpleClientset(sinewOnly...)
	if hasClass(mustRun(t, testEnv(t, c), "install")) {
		t.Error("a cluster without the Gateway API: a GatewayClass")
	}
	c.ext = apiextfake.NewSimpleClientset(crdObjects(t)...)
	if !hasClass(mustRun(t, testEnv(t, c), "install")) {
		t.Error("a cluster with the Gateway API: no GatewayClass")
	}
}

// Uninstall refuses while Gateways of class sinew run proxies, naming them; without the Gateway API's CRDs it
// prints no GatewayClass.
func TestUninstallWithGateways(t *testing.T) {
	c := installed(t)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: names.GatewayResourceName("public"),
		Labels:          map[string]string{names.GatewayLabel: "public"},
		Annotations:     map[string]string{names.CreatedByAnnotation: "sinew/gateway-controller v1"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: "public", UID: "u", Controller: ptrTo(true)}}}}
	if _, err := c.kube.AppsV1().Deployments("edge").Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, testEnv(t, c), "uninstall")
	if r.code == 0 || !strings.Contains(r.stderr, "1 Gateways of the GatewayClass sinew remain (edge/public)") {
		t.Fatalf("uninstall with a Gateway: exit %d\n%s", r.code, r.stderr)
	}
	if err := c.kube.AppsV1().Deployments("edge").Delete(context.Background(), dep.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.ext = apiextfake.NewSimpleClientset()
	if out := mustRun(t, testEnv(t, c), "uninstall"); strings.Contains(out, "kind: GatewayClass") {
		t.Errorf("uninstall without the Gateway API prints the GatewayClass")
	}
}

func ptrTo[T any](v T) *T { return &v }
