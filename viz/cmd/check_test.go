package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sversion "k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sinewmesh/sinew/cli/check"
)

// rawAnswer is what a proxied GET returns in the fake cluster.
type rawAnswer struct {
	body []byte
	err  error
}

func (r rawAnswer) DoRaw(context.Context) ([]byte, error) { return r.body, r.err }
func (r rawAnswer) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(r.body))), r.err
}

// vizCluster is a fake cluster with the control plane and the viz extension installed, their pods in the given
// state, a meshed emojivoto pod, and the API server's proxy answering with answer.
func vizCluster(t *testing.T, ready bool, answer func(k8stesting.ProxyGetAction) rawAnswer) *cluster {
	t.Helper()
	c := installed(t, "", "")
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, c), "install")) {
		if err := c.kube.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
		if d, ok := o.(*appsv1.Deployment); ok {
			addPod(t, c, d.Namespace, d.Name+"-1", d.Spec.Template.Labels, ready, nil)
		}
	}
	addPod(t, c, "emojivoto", "web-1", nil, true, []corev1.Container{{Name: "sinew-proxy"}})
	c.kube.PrependProxyReactor("*", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		return true, answer(a.(k8stesting.ProxyGetAction)), nil
	})
	c.kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &k8sversion.Info{Major: "1", Minor: "32", GitVersion: "v1.32.13"}
	return c
}

func addPod(t *testing.T, c *cluster, ns, name string, labels map[string]string, ready bool, init []corev1.Container) {
	t.Helper()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{InitContainers: init, Containers: []corev1.Container{{Name: "main"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Ready: ready}}},
	}
	if _, err := c.kube.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// vizAnswers answers like a working extension: /ready, and one proxy scraped.
func vizAnswers(up string) func(a k8stesting.ProxyGetAction) rawAnswer {
	return func(a k8stesting.ProxyGetAction) rawAnswer {
		switch {
		case a.GetResource().Resource == "pods" && a.GetPath() == "/ready" && a.GetPort() == "8084":
			return rawAnswer{body: []byte("ok")}
		case a.GetResource().Resource == "services" && a.GetName() == "prometheus" && a.GetPort() == "9090" &&
			a.GetPath() == "/api/v1/query" && a.GetParams()["query"] == `up{job="sinew-proxy"}`:
			return rawAnswer{body: []byte(`{"status":"success","data":{"resultType":"vector","result":[` + up + `]}}`)}
		}
		return rawAnswer{err: errors.New("unexpected proxied request " + a.GetResource().Resource + " " + a.GetName() + ":" + a.GetPort() + a.GetPath())}
	}
}

const oneUp = `{"metric":{"job":"sinew-proxy","namespace":"emojivoto","pod":"web-1"},"value":[1700000000,"1"]}`

// runVizChecks runs the viz category against the fake cluster, with apiGet standing in for the port-forward.
func runVizChecks(t *testing.T, c *cluster, apiGet func(context.Context, string) (string, []byte, error)) (bool, map[string]string) {
	t.Helper()
	if apiGet == nil {
		apiGet = func(context.Context, string) (string, []byte, error) { return "a fake forward", []byte("ok\n"), nil }
	}
	env := &check.Env{Clients: func() (*check.Clients, error) { return &check.Clients{Kube: c.kube, APIExt: c.ext}, nil }}
	vc := &vizChecker{namespace: vizExtNamespace, apiGet: apiGet}
	rep := check.Run(context.Background(), env, []check.Category{check.KubernetesAPI(), vc.category()}, check.Options{})
	var b strings.Builder
	if err := check.WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Categories []struct {
			Checks []struct{ ID, Result, Error string } `json:"checks"`
		} `json:"categories"`
	}
	if err := json.Unmarshal([]byte(b.String()), &parsed); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range parsed.Categories {
		for _, ch := range c.Checks {
			got[ch.ID] = ch.Result + " " + ch.Error
		}
	}
	return rep.Success, got
}

func TestVizCheckHealthy(t *testing.T) {
	c := vizCluster(t, true, vizAnswers(oneUp))
	var asked string
	ok, got := runVizChecks(t, c, func(_ context.Context, path string) (string, []byte, error) {
		asked = path
		return "a fake forward", []byte("ok\n"), nil
	})
	for _, id := range []string{"viz-ns-exists", "viz-pods-ready", "viz-api-ready", "viz-prometheus-reachable", "viz-prometheus-scrapes"} {
		if !strings.HasPrefix(got[id], "success") {
			t.Errorf("%s: %s", id, got[id])
		}
	}
	if !ok || asked != "/ready" {
		t.Errorf("success %v, asked the API for %q: %v", ok, asked, got)
	}
}

func TestVizCheckCommand(t *testing.T) {
	// not installed: the namespace check fails and stops the run, in both outputs
	c := installed(t, "", "")
	c.kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &k8sversion.Info{Major: "1", Minor: "32", GitVersion: "v1.32.13"}
	r := run(t, testEnv(t, c), "check", "--wait", "0s")
	if r.code == 0 || !strings.Contains(r.stdout, "sinew-viz\n---------\n× sinew-viz namespace exists") ||
		!strings.Contains(r.stdout, "sinew viz install | kubectl apply -f -") || !strings.Contains(r.stdout, "check.md#viz-ns-exists") ||
		!strings.Contains(r.stdout, "- viz pods are ready (skipped") || !strings.Contains(r.stdout, "Status check results are ×") {
		t.Errorf("viz check without the extension: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, testEnv(t, c), "check", "--wait", "0s", "-o", "json")
	var rep struct{ Success bool }
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Success || r.code == 0 {
		t.Errorf("viz check -o json without the extension: exit %d %v\n%s", r.code, err, r.stdout)
	}
	if r := run(t, testEnv(t, c), "check", "-o", "yaml"); r.code == 0 || !strings.Contains(r.stderr, "want table or json") {
		t.Errorf("-o yaml: exit %d %s", r.code, r.stderr)
	}
}

func TestVizCheckFailures(t *testing.T) {
	// pods not ready
	ok, got := runVizChecks(t, vizCluster(t, false, vizAnswers(oneUp)), nil)
	if ok || !strings.Contains(got["viz-pods-ready"], "deployment sinew-viz: 0 of 1 pods ready") || !strings.Contains(got["viz-api-ready"], "no ready pod") {
		t.Errorf("pods not ready: success %v %v", ok, got)
	}
	// Prometheus scrapes nothing although a pod is meshed
	ok, got = runVizChecks(t, vizCluster(t, true, vizAnswers("")), nil)
	if ok || !strings.HasPrefix(got["viz-prometheus-reachable"], "success") || !strings.Contains(got["viz-prometheus-scrapes"], "emojivoto/web-1") {
		t.Errorf("no scrapes: success %v %v", ok, got)
	}
	// every target down
	down := strings.Replace(oneUp, `"1"]`, `"0"]`, 1)
	ok, got = runVizChecks(t, vizCluster(t, true, vizAnswers(down)), nil)
	if ok || !strings.Contains(got["viz-prometheus-scrapes"], "cannot scrape any") {
		t.Errorf("targets down: success %v %v", ok, got)
	}
	// Prometheus answers HTML
	ok, got = runVizChecks(t, vizCluster(t, true, func(a k8stesting.ProxyGetAction) rawAnswer {
		return rawAnswer{body: []byte("<html>login</html>")}
	}), nil)
	if ok || !strings.Contains(got["viz-prometheus-reachable"], "not its query API") {
		t.Errorf("HTML answer: success %v %v", ok, got)
	}
}

func TestVizCheckOwnPrometheus(t *testing.T) {
	c := installed(t, "", "")
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, c), "install", "--set", "prometheusUrl=https://metrics.example:9443/prom")) {
		if err := c.kube.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
		if d, ok := o.(*appsv1.Deployment); ok {
			addPod(t, c, d.Namespace, d.Name+"-1", d.Spec.Template.Labels, true, nil)
		}
	}
	c.kube.PrependProxyReactor("*", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		return true, vizAnswers(oneUp)(a.(k8stesting.ProxyGetAction)), nil
	})
	var asked string
	vc := &vizChecker{namespace: vizExtNamespace, direct: func(_ context.Context, u string) ([]byte, error) {
		asked = u
		return []byte(`{"status":"success","data":{"result":[]}}`), nil
	}}
	env := testEnv(t, c)
	cl, _ := env.Kube()
	_, err := vc.queryUp(context.Background(), &check.Env{Kube: cl.Kube})
	if err != nil {
		t.Fatal(err)
	}
	if asked != "https://metrics.example:9443/prom/api/v1/query?query=up%7Bjob%3D%22sinew-proxy%22%7D" {
		t.Errorf("asked %s", asked)
	}
}

// TestVizCheckNamesWhyAPodWaits: a Prometheus whose image cannot be pulled is Pending; the check says so, and names
// the container and the kubelet's reason, as docs/operations/check.md#viz-pods-ready promises.
func TestVizCheckNamesWhyAPodWaits(t *testing.T) {
	for _, reason := range []string{"ImagePullBackOff", "CrashLoopBackOff"} {
		c := vizCluster(t, true, vizAnswers(oneUp))
		p, err := c.kube.CoreV1().Pods("sinew-viz").Get(context.Background(), "prometheus-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodPending
		if reason == "CrashLoopBackOff" {
			p.Status.Phase = corev1.PodRunning
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "prometheus", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "Back-off pulling image \"prom/prometheus:v2.53.3\""}}}}
		if _, err := c.kube.CoreV1().Pods("sinew-viz").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := "deployment prometheus: 0 of 1 pods ready; not ready: prometheus-1 (Pending, container prometheus: ImagePullBackOff)"
		if reason == "CrashLoopBackOff" {
			want = "not ready: prometheus-1 (container prometheus: CrashLoopBackOff)"
		}
		ok, got := runVizChecks(t, c, nil)
		if ok || !strings.Contains(got["viz-pods-ready"], want) {
			t.Errorf("%s: success %v, viz-pods-ready %q\nwant it to contain %q", reason, ok, got["viz-pods-ready"], want)
		}
	}
}
