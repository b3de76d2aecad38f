package cmd

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
)

func TestVizInstallGolden(t *testing.T) {
	anchors := "identityTrustAnchorsPEM=" + filepath.Join("testdata", "ca.crt")
	cases := map[string]struct {
		cluster bool
		args    []string
	}{
		// from the cluster: what `sinew install` put there
		"viz-install.golden.yaml": {cluster: true},
		"viz-install-own-prometheus.golden.yaml": {cluster: true, args: []string{
			"--set", "prometheusUrl=http://prometheus.monitoring.svc.cluster.local:9090"}},
		"viz-install-overrides.golden.yaml": {args: []string{"--ignore-cluster", "--set-file", anchors,
			"--set", "trustDomain=mesh.example,clusterDomain=k8s.example,logLevel=debug,prometheus.retention=2h",
			"--set-string", "enforcedHostRegex=^viz[.]example[.]com(:[0-9]+)?$,image.tag=v9,podLabels.team=mesh",
			"--set", "prometheus.image=ghcr.io/sinewmesh/prometheus-debian:2.42.0,prometheus.discovery=http",
			"--set", "resources.requests.cpu=100m,prometheus.resources.limits.memory=1Gi"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			env := testEnv(t, nil)
			if c.cluster {
				env = testEnv(t, installed(t, "", ""))
			}
			out := mustRun(t, env, append([]string{"install"}, c.args...)...)
			goldenYAML(t, name, out)
			objs := decodeAll(t, out)
			checkVizObjects(t, objs, c.cluster)
			checkPrometheusConfig(t, objs)
		})
	}
}

// checkVizObjects checks what every rendering must hold: the label uninstall selects on, the names of the
// contract, and the trust anchors of the cluster unchanged.
func checkVizObjects(t *testing.T, objs []runtime.Object, fromCluster bool) {
	t.Helper()
	var dep *appsv1.Deployment
	var prometheus bool
	for _, o := range objs {
		m, err := metaOf(o)
		if err != nil {
			t.Fatal(err)
		}
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if m.GetLabels()["sinew.dev/extension"] != "viz" {
			t.Errorf("%s %s lacks the label sinew.dev/extension: viz", kind, m.GetName())
		}
		if ns := m.GetNamespace(); ns != "" && ns != "sinew-viz" {
			t.Errorf("%s %s is in namespace %s", kind, m.GetName(), ns)
		}
		switch x := o.(type) {
		case *appsv1.Deployment:
			switch x.Name {
			case "sinew-viz":
				dep = x
			case "prometheus":
				prometheus = true
			}
			if x.Spec.Template.Annotations["sinew.dev/inject"] != "disabled" {
				t.Errorf("deployment %s's pods are not opted out of injection", x.Name)
			}
			for _, c := range x.Spec.Template.Spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("container %s/%s may run as root or write its root filesystem", x.Name, c.Name)
				}
			}
		case *corev1.ConfigMap:
			if x.Name == "sinew-viz-trust-roots" && fromCluster {
				want := strings.TrimSpace(string(fixture(t, "ca.crt")))
				if strings.TrimSpace(x.Data["ca-bundle.crt"]) != want {
					t.Errorf("sinew-viz-trust-roots holds\n%s\nwant the cluster's anchors\n%s", x.Data["ca-bundle.crt"], want)
				}
			}
		}
	}
	if dep == nil {
		t.Fatal("no sinew-viz deployment")
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != "tap" {
		t.Errorf("sinew-viz runs as service account %q, want tap", pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--listen=:8084", "--admin-addr=:9995", "--namespace=sinew-viz", "--service-account=tap",
		"--identity-token-file=/var/run/secrets/sinew.dev/serviceaccount/token",
		"--identity-trust-anchors-file=/var/run/sinew/identity/trust-roots/ca-bundle.crt"} {
		if !strings.Contains(args, want) {
			t.Errorf("sinew-viz args lack %s: %s", want, args)
		}
	}
	if strings.Contains(args, "prometheus.monitoring") == prometheus {
		t.Errorf("a Prometheus is deployed (%v) although sinew-viz reads another, or none is and it reads ours: %s", prometheus, args)
	}
	var audience string
	for _, v := range pod.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					audience = s.ServiceAccountToken.Audience
				}
			}
		}
	}
	if audience != "identity.sinew.dev" {
		t.Errorf("projected token audience %q, want identity.sinew.dev", audience)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != 9995 {
		t.Errorf("sinew-viz readiness probe: %+v", p)
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, errors.New("not an object with metadata")
	}
	return m, nil
}

// checkPrometheusConfig compares the sinew-proxy job's relabeling with the one docs/observability/viz.md
// documents, and has promtool check the whole file when it is installed.
func checkPrometheusConfig(t *testing.T, objs []runtime.Object) {
	t.Helper()
	var config string
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == "prometheus-config" {
			config = cm.Data["prometheus.yml"]
		}
	}
	if config == "" {
		return // prometheusUrl: none deployed
	}
	var got struct {
		Global        map[string]any   `json:"global"`
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict([]byte(config), &got, yaml.DisallowUnknownFields); err != nil {
		t.Fatalf("prometheus.yml: %v\n%s", err, config)
	}
	if len(got.ScrapeConfigs) != 1 || got.ScrapeConfigs[0]["job_name"] != "sinew-proxy" {
		t.Fatalf("prometheus.yml has not exactly the job sinew-proxy:\n%s", config)
	}
	if want := documentedRelabeling(t); !reflect.DeepEqual(got.ScrapeConfigs[0]["relabel_configs"], want) {
		a, _ := yaml.Marshal(want)
		b, _ := yaml.Marshal(got.ScrapeConfigs[0]["relabel_configs"])
		t.Errorf("the sinew-proxy relabeling is not the documented one:\n%s", goldenfile.LineDiff(string(a), string(b)))
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (Debian: apt-get install prometheus): prometheus.yml not checked by Prometheus itself")
		return
	}
	file := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "config", file).CombinedOutput()
	if err != nil && strings.Contains(string(out), "field kubernetes_sd_configs not found") {
		// Debian's Prometheus is built without Kubernetes discovery; check the rest of the file with it
		t.Logf("this promtool has no Kubernetes discovery: checking the file with an equivalent static target")
		alt := strings.Replace(config, "kubernetes_sd_configs:\n  - role: pod", "static_configs:\n  - targets: [\"127.0.0.1:4191\"]", 1)
		if alt == config {
			t.Fatalf("could not replace the kubernetes_sd_configs block:\n%s", config)
		}
		if err := os.WriteFile(file, []byte(alt), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = exec.Command(promtool, "check", "config", file).CombinedOutput()
	}
	if err != nil {
		t.Errorf("promtool check config: %v\n%s\n%s", err, out, config)
	}
}

// documentedRelabeling is the relabeling of the sinew-proxy job in docs/observability/viz.md's label contract.
func documentedRelabeling(t *testing.T) any {
	t.Helper()
	b, err := os.ReadFile("../../docs/observability/viz.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "```yaml\n- job_name: sinew-proxy\n")
	if i < 0 {
		t.Fatal("docs/observability/viz.md has no yaml block starting with the sinew-proxy job")
	}
	block := doc[i+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	var jobs []map[string]any
	if err := yaml.Unmarshal([]byte(block), &jobs); err != nil {
		t.Fatalf("the documented job is not YAML: %v\n%s", err, block)
	}
	return jobs[0]["relabel_configs"]
}

func TestVizInstallNeedsTheControlPlane(t *testing.T) {
	r := run(t, testEnv(t, newCluster()), "install")
	if r.code == 0 || !strings.Contains(r.stderr, "the sinew control plane is not installed in namespace sinew") ||
		!strings.Contains(r.stderr, "sinew install | kubectl apply -f -") {
		t.Fatalf("viz install without a control plane: exit %d\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("printed manifests although it failed")
	}
	r = run(t, testEnv(t, nil), "install")
	if r.code == 0 || !strings.Contains(r.stderr, "--ignore-cluster") {
		t.Fatalf("viz install without a cluster: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, testEnv(t, nil), "install", "--ignore-cluster")
	if r.code == 0 || !strings.Contains(r.stderr, "identityTrustAnchorsPEM is required") {
		t.Fatalf("viz install --ignore-cluster without anchors: exit %d\n%s", r.code, r.stderr)
	}
}

func TestVizInstallReadsTrustDomain(t *testing.T) {
	env := testEnv(t, installed(t, "mesh.example", "k8s.example"))
	out := mustRun(t, env, "install")
	for _, want := range []string{"--trust-domain=mesh.example", "--cluster-domain=k8s.example",
		"--identity-addr=sinew-identity.sinew.svc.k8s.example.:8080", "http://prometheus.sinew-viz.svc.k8s.example:9090"} {
		if !strings.Contains(out, want) {
			t.Errorf("viz install over a control plane with its own domains lacks %s", want)
		}
	}
}

func TestVizInstallRefusesBadValues(t *testing.T) {
	for args, want := range map[string]string{
		"--set prometheus.imag=x":           "unknown value prometheus.imag (the chart's values are listed in charts/sinew-viz/values.yaml)",
		"--set logLevel=loud":               `value logLevel: "loud" is not one of`,
		"--set prometheus.discovery=consul": `value prometheus.discovery: "consul" is not one of kubernetes, http`,
		"--set prometheusUrl=prometheus:90": `value prometheusUrl: "prometheus:90" is not an http:// or https:// URL`,
		"-o toml":                           `--output "toml"`,
	} {
		r := run(t, testEnv(t, installed(t, "", "")), append([]string{"install"}, strings.Fields(args)...)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("viz install %s: exit %d\n%s\nwant an error containing %q", args, r.code, r.stderr, want)
		}
	}
}

func TestVizUninstall(t *testing.T) {
	c := installed(t, "", "")
	out := mustRun(t, testEnv(t, c), "install")
	for _, o := range decodeAll(t, out) {
		if err := c.kube.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	// an object of the control plane, not the extension's, must not be printed
	if _, err := c.kube.RbacV1().ClusterRoles().Create(context.Background(), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := mustRun(t, testEnv(t, c), "uninstall")
	var refs []string
	for _, d := range goldenfile.YAMLDocs(t, got) {
		m := d.(map[string]any)
		refs = append(refs, m["kind"].(string)+"/"+m["metadata"].(map[string]any)["name"].(string))
	}
	want := []string{"ClusterRoleBinding/sinew-viz", "ClusterRoleBinding/sinew-viz-prometheus",
		"ClusterRole/sinew-viz", "ClusterRole/sinew-viz-prometheus", "Namespace/sinew-viz"}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("viz uninstall printed %v, want %v", refs, want)
	}
	// installed into a namespace it did not create (Helm): the namespace stays, so its objects are printed one by one
	if err := c.kube.CoreV1().Namespaces().Delete(context.Background(), vizExtNamespace, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	refs = nil
	for _, d := range goldenfile.YAMLDocs(t, mustRun(t, testEnv(t, c), "uninstall")) {
		m := d.(map[string]any)["metadata"].(map[string]any)
		ns, _ := m["namespace"].(string)
		refs = append(refs, d.(map[string]any)["kind"].(string)+"/"+ns+"/"+m["name"].(string))
	}
	want = []string{"ClusterRoleBinding//sinew-viz", "ClusterRoleBinding//sinew-viz-prometheus",
		"ClusterRole//sinew-viz", "ClusterRole//sinew-viz-prometheus",
		"Deployment/sinew-viz/prometheus", "Deployment/sinew-viz/sinew-viz",
		"Service/sinew-viz/prometheus", "Service/sinew-viz/sinew-viz",
		"ConfigMap/sinew-viz/prometheus-config", "ConfigMap/sinew-viz/sinew-viz-trust-roots",
		"ServiceAccount/sinew-viz/prometheus", "ServiceAccount/sinew-viz/tap"}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("viz uninstall with the namespace kept printed %v, want %v", refs, want)
	}
	// nothing installed: nothing printed, and it says so
	r := run(t, testEnv(t, installed(t, "", "")), "uninstall")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "not installed") {
		t.Errorf("viz uninstall without the extension: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
