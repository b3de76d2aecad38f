package cli

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
	c := installed(t)
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, c), "viz", "install")) {
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

func vizCheckJSON(t *testing.T, env *Env, args ...string) (int, map[string]string) {
	t.Helper()
	r := run(t, env, append([]string{"viz", "check", "-o", "json", "--wait", "0s"}, args...)...)
	var rep struct {
		Success    bool `json:"success"`
		Categories []struct {
			Checks []struct {
				ID, Result, Error string
			} `json:"checks"`
		} `json:"categories"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("viz check -o json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	got := map[string]string{}
	for _, c := range rep.Categories {
		for _, ch := range c.Checks {
			got[ch.ID] = ch.Result + " " + ch.Error
		}
	}
	return r.code, got
}

func TestVizCheckHealthy(t *testing.T) {
	c := vizCluster(t, true, vizAnswers(oneUp))
	code, got := vizCheckJSON(t, testEnv(t, c))
	for _, id := range []string{"viz-ns-exists", "viz-pods-ready", "viz-api-ready", "viz-prometheus-reachable", "viz-prometheus-scrapes"} {
		if !strings.HasPrefix(got[id], "success") {
			t.Errorf("%s: %s", id, got[id])
		}
	}
	if code != 0 {
		t.Errorf("exit %d: %v", code, got)
	}
	out := mustRun(t, testEnv(t, c), "viz", "check", "--wait", "0s")
	if !strings.Contains(out, "sinew-viz\n---------\n✔ sinew-viz namespace exists") || !strings.Contains(out, "Status check results are ✔") {
		t.Errorf("table:\n%s", out)
	}
}

func TestVizCheckFailures(t *testing.T) {
	// not installed: the namespace check fails and stops the run
	code, got := vizCheckJSON(t, testEnv(t, installed(t)))
	if code == 0 || !strings.Contains(got["viz-ns-exists"], "sinew viz install | kubectl apply -f -") || !strings.HasPrefix(got["viz-pods-ready"], "skipped") {
		t.Errorf("without the extension: exit %d %v", code, got)
	}
	// pods not ready
	code, got = vizCheckJSON(t, testEnv(t, vizCluster(t, false, vizAnswers(oneUp))))
	if code == 0 || !strings.Contains(got["viz-pods-ready"], "deployment sinew-viz: 0 of 1 pods ready") || !strings.Contains(got["viz-api-ready"], "no ready pod") {
		t.Errorf("pods not ready: exit %d %v", code, got)
	}
	// Prometheus scrapes nothing although a pod is meshed
	code, got = vizCheckJSON(t, testEnv(t, vizCluster(t, true, vizAnswers(""))))
	if code == 0 || !strings.HasPrefix(got["viz-prometheus-reachable"], "success") || !strings.Contains(got["viz-prometheus-scrapes"], "emojivoto/web-1") {
		t.Errorf("no scrapes: exit %d %v", code, got)
	}
	// every target down
	down := strings.Replace(oneUp, `"1"]`, `"0"]`, 1)
	code, got = vizCheckJSON(t, testEnv(t, vizCluster(t, true, vizAnswers(down))))
	if code == 0 || !strings.Contains(got["viz-prometheus-scrapes"], "cannot scrape any") {
		t.Errorf("targets down: exit %d %v", code, got)
	}
	// Prometheus answers HTML
	code, got = vizCheckJSON(t, testEnv(t, vizCluster(t, true, func(a k8stesting.ProxyGetAction) rawAnswer {
		if a.GetResource().Resource == "pods" {
			return rawAnswer{body: []byte("ok")}
		}
		return rawAnswer{body: []byte("<html>login</html>")}
	})))
	if code == 0 || !strings.Contains(got["viz-prometheus-reachable"], "not its query API") {
		t.Errorf("HTML answer: exit %d %v", code, got)
	}
}

func TestVizCheckOwnPrometheus(t *testing.T) {
	c := installed(t)
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, c), "viz", "install", "--set", "prometheusUrl=https://metrics.example:9443/prom")) {
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
