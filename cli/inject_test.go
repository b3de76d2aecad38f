package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/cli/internal/yamledit"
	"github.com/sinewmesh/sinew/controlplane/inject"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

const injectData = "testdata/inject"

func injectInputs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(injectData, "in", "*"))
	if err != nil || len(files) < 12 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	return files
}

var anchorsFile = filepath.Join(injectData, "trust-anchors.pem")

// manualArgs run --manual without a cluster.
func manualArgs(extra ...string) []string {
	return append([]string{"inject", "--manual", "--ignore-cluster", "--identity-trust-anchors-file", anchorsFile}, extra...)
}

// TestInjectGolden runs inject, inject --manual and uninject over every manifest of the corpus.
func TestInjectGolden(t *testing.T) {
	for _, in := range injectInputs(t) {
		for _, mode := range []struct {
			name string
			args []string
		}{
			{"inject", []string{"inject"}},
			{"manual", manualArgs()},
			{"uninject", []string{"uninject"}},
		} {
			name := filepath.Base(in) + "." + mode.name
			t.Run(name, func(t *testing.T) {
				r := run(t, testEnv(t, nil), append(mode.args, in)...)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				got := r.stdout + "\n#### stderr ####\n" + r.stderr
				compareInjectGolden(t, filepath.Join(injectData, "out", name+".golden"), got)
			})
		}
	}
}

func compareInjectGolden(t *testing.T, path, got string) {
	t.Helper()
	if goldenfile.Update() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (-update rewrites it):\n%s", path, goldenfile.LineDiff(string(want), got))
	}
}

// TestInjectRoundTrip: uninject undoes inject byte for byte, in both modes; already-meshed input passes through
// inject untouched.
func TestInjectRoundTrip(t *testing.T) {
	for _, in := range injectInputs(t) {
		t.Run(filepath.Base(in), func(t *testing.T) {
			orig, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			env := testEnv(t, nil)
			if bytes.Contains(orig, []byte("sinew.dev/inject")) || bytes.Contains(orig, []byte("sinew-proxy")) {
				if got := mustRun(t, env, "inject", in); got != string(orig) {
					t.Errorf("inject changed input that is already meshed or opted out:\n%s", goldenfile.LineDiff(string(orig), got))
				}
				return
			}
			for _, args := range [][]string{{"inject"}, manualArgs()} {
				injected := mustRun(t, env, append(args, in)...)
				if injected == string(orig) && !strings.Contains(filepath.Base(in), "non-workloads") {
					t.Errorf("%v changed nothing", args)
				}
				env.Stdin = strings.NewReader(injected)
				back := mustRun(t, env, "uninject", "-")
				if filepath.Base(in) == "empty-annotations.yaml" {
					// the documented exception: an explicit empty annotations map does not come back
					if !strings.Contains(back, "name: empty-annotations\nspec:") {
						t.Errorf("%v then uninject:\n%s", args, back)
					}
					continue
				}
				if back != string(orig) {
					t.Errorf("%v then uninject is not the input:\n%s", args, goldenfile.LineDiff(string(orig), back))
				}
			}
		})
	}
}

// TestInjectManualOutputDecodes: --manual writes objects the API types accept strictly (no unknown or duplicate
// fields), and every workload reported injected carries the proxy.
func TestInjectManualOutputDecodes(t *testing.T) {
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Strict: true})
	for _, in := range injectInputs(t) {
		t.Run(filepath.Base(in), func(t *testing.T) {
			r := run(t, testEnv(t, nil), append(manualArgs(), in)...)
			if r.code != 0 {
				t.Fatal(r.stderr)
			}
			// what the summary says about each object: "injected", or why it was skipped
			status := map[string]string{}
			for _, l := range strings.Split(r.stderr, "\n") {
				if kind, rest, ok := strings.Cut(l, " \""); ok {
					name, st, _ := strings.Cut(rest, "\" ")
					status[kind+"/"+name] = st
				}
			}
			checked := 0
			for _, seg := range yamledit.Split([]byte(r.stdout)) {
				d, err := yamledit.Parse(seg)
				if err != nil {
					t.Fatalf("output document %d does not parse: %v", seg.Index, err)
				}
				if d.Root() == nil || d.Root().Get("kind").Str() == "" {
					continue
				}
				js, err := d.JSON()
				if err != nil {
					t.Fatal(err)
				}
				for _, obj := range flattenLists(t, js) {
					kind := gjsonKind(obj)
					if kind == "Server" {
						continue // a sinew CRD: not in client-go's scheme
					}
					o, _, err := strict.Decode(obj, nil, nil)
					if err != nil {
						t.Errorf("%s does not decode strictly: %v", kind, err)
						continue
					}
					spec := podSpecOf(o)
					if spec == nil {
						continue
					}
					checked++
					name := o.(metav1.Object).GetName()
					st := status[strings.ToLower(kind)+"/"+name]
					want := st == "injected" || strings.Contains(st, "already injected")
					if hasProxy(spec) != want {
						t.Errorf("%s %s: reported %q, proxy present: %v", kind, name, st, hasProxy(spec))
					}
				}
			}
			if strings.Contains(r.stderr, " injected") && !strings.HasPrefix(strings.TrimSpace(r.stderr), "namespace") && checked == 0 {
				t.Error("no workload checked")
			}
		})
	}
}

func flattenLists(t *testing.T, js []byte) [][]byte {
	var probe struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &probe); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(probe.Kind, "List") {
		return [][]byte{js}
	}
	var out [][]byte
	for _, it := range probe.Items {
		if string(it) == "null" {
			continue // passed through untouched, as kubectl does
		}
		out = append(out, flattenLists(t, it)...)
	}
	return out
}

func gjsonKind(js []byte) string {
	var k struct{ Kind string }
	_ = json.Unmarshal(js, &k)
	return k.Kind
}

func podSpecOf(o runtime.Object) *corev1.PodSpec {
	switch x := o.(type) {
	case *corev1.Pod:
		return &x.Spec
	case *appsv1.Deployment:
		return &x.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &x.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &x.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		return &x.Spec.Template.Spec
	case *corev1.ReplicationController:
		if x.Spec.Template != nil {
			return &x.Spec.Template.Spec
		}
	default:
		// batch kinds through their JSON, to keep the imports short
		js, _ := json.Marshal(o)
		var job struct {
			Kind string `json:"kind"`
			Spec struct {
				Template    corev1.PodTemplateSpec `json:"template"`
				JobTemplate struct {
					Spec struct {
						Template corev1.PodTemplateSpec `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		_ = json.Unmarshal(js, &job)
		switch {
		case len(job.Spec.Template.Spec.Containers) > 0:
			return &job.Spec.Template.Spec
		case len(job.Spec.JobTemplate.Spec.Template.Spec.Containers) > 0:
			return &job.Spec.JobTemplate.Spec.Template.Spec
		}
	}
	return nil
}

func hasProxy(spec *corev1.PodSpec) bool {
	n := 0
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if c.Name == names.ProxyContainer || c.Name == names.InitContainer {
				n++
			}
		}
	}
	tok := false
	for _, v := range spec.Volumes {
		tok = tok || v.Name == names.TokenVolume
	}
	return n == 2 && tok
}

// TestInjectKubectlPipe: `kubectl get deploy -o yaml | sinew inject -` gives kubectl apply a List back.
func TestInjectKubectlPipe(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(injectData, "in", "kubectl-get-list.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(t, nil)
	env.Stdin = bytes.NewReader(in)
	out := mustRun(t, env, "inject", "-")
	var list corev1.List
	if err := yaml.UnmarshalStrict([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 2 {
		t.Fatalf("not a v1 List of 2: %s %s %d", list.APIVersion, list.Kind, len(list.Items))
	}
	for _, it := range list.Items {
		var d appsv1.Deployment
		if err := json.Unmarshal(it.Raw, &d); err != nil {
			t.Fatal(err)
		}
		if d.Spec.Template.Annotations[names.InjectAnnotation] != "enabled" {
			t.Errorf("%s: template annotations %v", d.Name, d.Spec.Template.Annotations)
		}
	}
}

// --manual --ingress gives the proxy ingress mode directly (no annotation is written on a workload).
func TestInjectManualIngress(t *testing.T) {
	in := filepath.Join(injectData, "in", "flow-and-empty.yaml")
	plain := mustRun(t, testEnv(t, nil), manualArgs(in)...)
	ingress := mustRun(t, testEnv(t, nil), manualArgs("--ingress", in)...)
	if strings.Contains(plain, "SINEW_PROXY_INGRESS_MODE") {
		t.Error("--manual without --ingress set SINEW_PROXY_INGRESS_MODE")
	}
	if !strings.Contains(ingress, "- name: SINEW_PROXY_INGRESS_MODE\n") || !strings.Contains(ingress, `value: "true"`) {
		t.Errorf("--manual --ingress lacks SINEW_PROXY_INGRESS_MODE=true:\n%s", ingress)
	}
}

func TestInjectFlagsBecomeAnnotations(t *testing.T) {
	in := filepath.Join(injectData, "in", "namespace.yaml")
	out := mustRun(t, testEnv(t, nil), "inject", "--ingress", "--proxy-log-level", "debug", "--skip-outbound-ports", "3306,5432",
		"--proxy-cpu-request", "50m", "--native-sidecar=false", "--proxy-await=false", "--registry", "reg.example/mesh/",
		"--image-tag", "2.0.0", "--opaque-ports", "4222,nats", "--shutdown-grace-period", "30s", in)
	var ns corev1.Namespace
	if err := yaml.UnmarshalStrict([]byte(out), &ns); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		names.InjectAnnotation:       "ingress",
		names.AnnProxyLogLevel:       "debug",
		names.AnnSkipOutboundPorts:   "3306,5432",
		names.AnnProxyCPURequest:     "50m",
		names.AnnProxyNativeSidecar:  "false",
		names.AnnProxyAwait:          "disabled",
		names.AnnProxyImage:          "reg.example/mesh/sinew-proxy",
		names.AnnInitImage:           "reg.example/mesh/sinew-init",
		names.AnnProxyVersion:        "2.0.0",
		names.AnnOpaquePorts:         "4222,nats",
		names.AnnShutdownGracePeriod: "30s",
	}
	for k, v := range want {
		if ns.Annotations[k] != v {
			t.Errorf("%s = %q, want %q", k, ns.Annotations[k], v)
		}
	}
	if len(ns.Annotations) != len(want) {
		t.Errorf("annotations %v", ns.Annotations)
	}
	// the annotations the flags wrote are what the injector accepts
	for k, v := range ns.Annotations {
		if k != names.InjectAnnotation {
			if err := inject.CheckAnnotation(k, v); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestInjectManualFromCluster(t *testing.T) {
	anchors, err := os.ReadFile(anchorsFile)
	if err != nil {
		t.Fatal(err)
	}
	values := `clusterDomain: corp.local
identity:
  trustDomain: mesh.corp
image:
  registry: reg.example/sinew
  tag: "3.1.0"
  pullPolicy: Always
proxy:
  logLevel: warn
  nativeSidecar: true
  await: true
  uid: 2102
  resources:
    memory:
      limit: 128Mi
proxyInit:
  skipOutboundPorts: "443,6443"
`
	c := newCluster(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sinew-config", Namespace: "sinew"}, Data: map[string]string{"values": values}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sinew-identity-trust-roots", Namespace: "sinew"}, Data: map[string]string{"ca-bundle.crt": string(anchors)}},
	)
	in := filepath.Join(injectData, "in", "flow-and-empty.yaml")
	out := mustRun(t, testEnv(t, c), "inject", "--manual", "--proxy-log-level", "debug", in)
	for _, want := range []string{
		"image: reg.example/sinew/sinew-proxy:3.1.0", "image: reg.example/sinew/sinew-init:3.1.0", "imagePullPolicy: Always",
		"value: spiffe://mesh.corp/ns/$(_pod_ns)/sa/$(_pod_sa)", "value: sinew-dst.sinew.svc.corp.local.:8086",
		"--skip-outbound-ports=443,6443", "memory: 128Mi", "value: debug", "sinew.dev/trust-root-sha256: " + inject.TrustRootHash(string(anchors)),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("manual output lacks %q", want)
		}
	}
	if strings.Contains(out, "value: warn") {
		t.Error("--proxy-log-level did not win over the installed value")
	}

	// no cluster and no anchors file: a clear error
	r := run(t, testEnv(t, nil), "inject", "--manual", in)
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "--identity-trust-anchors-file") || !strings.Contains(r.stderr, "no cluster in this test") {
		t.Errorf("manual without anchors: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, testEnv(t, newCluster()), "inject", "--manual", in)
	if r.code == 0 || !strings.Contains(r.stderr, "sinew-identity-trust-roots") {
		t.Errorf("manual against a cluster without sinew: exit %d\n%s", r.code, r.stderr)
	}
	// an anchors file but no control plane: defaults, with a warning
	r = run(t, testEnv(t, newCluster()), "inject", "--manual", "--identity-trust-anchors-file", anchorsFile, in)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: using the default proxy settings") {
		t.Errorf("manual with a file and no control plane: exit %d\n%s", r.code, r.stderr)
	}
}

func TestInjectBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(injectData, "in", "namespace.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"malformed second document", []string{"inject", write("bad.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n   labels: x\n")},
			[]string{"bad.yaml: document 2, line 10:", "mapping values are not allowed"}},
		{"malformed JSON", []string{"inject", write("bad.json", "{\n  \"kind\": \"Namespace\",\n  \"metadata\": {\"name\": \"a\",}\n}\n")},
			[]string{"bad.json: document 1, line 3, column 28:", "want a quoted key"}},
		{"not an object", []string{"uninject", write("list.yaml", "- a\n- b\n")}, []string{"list.yaml: document 1", "not a Kubernetes object"}},
		{"a List item not an object, counted from 1", []string{"inject", write("items.yaml", "kind: List\nitems:\n- null\n- 42\n")}, []string{"items.yaml: document 1: List item 2: not an object"}},
		{"a bad file after a good one prints nothing", []string{"inject", good, write("tab.yaml", "kind: Pod\nmetadata:\n\tname: x\n")},
			[]string{"tab.yaml: document 1, line 3:"}},
		{"bad flag value", []string{"inject", "--proxy-cpu-limit", "lots", "--skip-inbound-ports", "80-70", good},
			[]string{`--skip-inbound-ports "80-70": "80-70": the range ends before it starts`, `--proxy-cpu-limit "lots": not a Kubernetes quantity`}},
		{"bad output", []string{"inject", "-o", "xml", good}, []string{`--output "xml": want yaml or json`}},
		{"missing file", []string{"inject", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml: no such file"}},
		{"empty directory", []string{"uninject", t.TempDir()}, []string{"no .yaml, .yml or .json files"}},
		{"bad template in manual mode", append(manualArgs(), write("badtmpl.yaml", "kind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers: nope\n")),
			[]string{"document 1", `deployment "d"`, "not a valid pod template"}},
		{"bad override in manual mode", append(manualArgs(), write("badann.yaml", "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    config.sinew.dev/proxy-uid: root\nspec:\n  containers: [{name: a}]\n")),
			[]string{`pod "p"`, `config.sinew.dev/proxy-uid="root" on the pod template`}},
		{"no arguments", []string{"inject"}, []string{"requires at least 1 arg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, testEnv(t, nil), tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0\n%s", r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("printed to stdout on failure:\n%s", r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestInjectInputsAndFormats(t *testing.T) {
	ns := func(name string) string { return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n" }
	dir := t.TempDir()
	for p, c := range map[string]string{"b.yaml": ns("b"), "a.yml": ns("a"), "sub/c.json": `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}`, "README.md": "# not a manifest"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ns.yaml" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(ns("remote")))
	}))
	defer srv.Close()

	env := testEnv(t, nil)
	env.Stdin = strings.NewReader(ns("piped"))
	r := run(t, env, "inject", dir, srv.URL+"/ns.yaml", "-")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	wantOut := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n    sinew.dev/inject: enabled\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n  annotations:\n    sinew.dev/inject: enabled\n" +
		"---\n{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"c\", \"annotations\": {\"sinew.dev/inject\": \"enabled\"}}}\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: remote\n  annotations:\n    sinew.dev/inject: enabled\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: piped\n  annotations:\n    sinew.dev/inject: enabled\n"
	if r.stdout != wantOut {
		t.Errorf("output:\n%s", goldenfile.LineDiff(wantOut, r.stdout))
	}
	for _, n := range []string{"a", "b", "c", "remote", "piped"} {
		if !strings.Contains(r.stderr, `namespace "`+n+`" injected`) {
			t.Errorf("summary lacks %s:\n%s", n, r.stderr)
		}
	}
	if r := run(t, testEnv(t, nil), "inject", srv.URL+"/missing.yaml"); r.code == 0 || !strings.Contains(r.stderr, "404") {
		t.Errorf("a missing URL: %d %s", r.code, r.stderr)
	}

	// -o json: one JSON value per document; -o yaml: JSON input becomes YAML
	js := mustRun(t, testEnv(t, nil), "inject", "-o", "json", dir)
	dec := json.NewDecoder(strings.NewReader(js))
	n := 0
	for dec.More() {
		var o corev1.Namespace
		if err := dec.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if o.Annotations[names.InjectAnnotation] != "enabled" {
			t.Errorf("%s: %v", o.Name, o.Annotations)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d JSON documents", n)
	}
	y := mustRun(t, testEnv(t, nil), "inject", "-o", "yaml", filepath.Join(dir, "sub", "c.json"))
	if y != "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: c\n  annotations:\n    sinew.dev/inject: enabled\n" {
		t.Errorf("-o yaml of JSON input:\n%s", y)
	}
}

// TestInjectRefusesOtherMesh: a pod template with another mesh's sidecar is refused, naming the container, in both
// modes; --manual --force injects it anyway.
func TestInjectRefusesOtherMesh(t *testing.T) {
	dir := t.TempDir()
	istio := filepath.Join(dir, "istio.yaml")
	if err := os.WriteFile(istio, []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
      - name: istio-init
        image: docker.io/istio/proxyv2:1.24.0
      containers:
      - name: web
        image: example/web:1
      - name: istio-proxy
        image: docker.io/istio/proxyv2:1.24.0
`), 0o644); err != nil {
		t.Fatal(err)
	}
	linkerd := filepath.Join(dir, "linkerd.yaml")
	if err := os.WriteFile(linkerd, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    image: a\n  - name: linkerd-proxy\n    image: l\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"annotation mode", []string{"inject", istio}, `deployment "web": pod template already has istio-proxy (Istio's sidecar): a pod can be in one mesh only; use --manual --force to inject anyway`},
		{"manual", append(manualArgs(), istio), `deployment "web": pod template already has istio-proxy (Istio's sidecar): a pod can be in one mesh only; use --force to inject anyway`},
		{"bare pod", append(manualArgs(), linkerd), `pod "p": pod already has linkerd-proxy (Linkerd's sidecar): a pod can be in one mesh only; use --force`},
		{"force without manual", []string{"inject", "--force", istio}, "--force needs --manual"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, testEnv(t, nil), tc.args...)
			if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stdout %d bytes, stderr:\n%s\nwant an error containing %q", r.code, len(r.stdout), r.stderr, tc.want)
			}
		})
	}
	out := mustRun(t, testEnv(t, nil), append(manualArgs("--force"), istio)...)
	for _, want := range []string{"name: sinew-proxy", "name: istio-proxy"} {
		if !strings.Contains(out, want) {
			t.Errorf("--manual --force output lacks %q", want)
		}
	}
}
