package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sversion "k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/internal/names"
)

// healthy makes the fake cluster's control plane look up and running: a ready pod per component, the injector's
// endpoint, and a Kubernetes version.
func healthy(t *testing.T, c *cluster) {
	t.Helper()
	c.kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &k8sversion.Info{Major: "1", Minor: "32", GitVersion: "v1.32.13"}
	ctx := context.Background()
	for _, comp := range check.Components {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: comp.Deployment + "-abc", Namespace: "sinew", Labels: map[string]string{names.ControlPlaneComponentLabel: comp.Component}},
			Spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: "sinew-init"}, {Name: "sinew-proxy"}}, Containers: []corev1.Container{{Name: comp.Component}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning,
				Conditions:            []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				InitContainerStatuses: []corev1.ContainerStatus{{Name: "sinew-proxy", Ready: true}},
				ContainerStatuses:     []corev1.ContainerStatus{{Name: comp.Component, Ready: true}}},
		}
		if _, err := c.kube.CoreV1().Pods("sinew").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ready := true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "sinew-proxy-injector-x", Namespace: "sinew", Labels: map[string]string{"kubernetes.io/service-name": "sinew-proxy-injector"}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := c.kube.DiscoveryV1().EndpointSlices("sinew").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	es.Name, es.Labels = "sinew-policy-x", map[string]string{"kubernetes.io/service-name": names.PolicyService}
	if _, err := c.kube.DiscoveryV1().EndpointSlices("sinew").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The destination's admin server, through the API server's pod proxy: ready, no policy problems.
	servePodProxy(c, map[string]string{
		"sinew-destination-abc:9996/ready":       "ok\n",
		"sinew-destination-abc:9996/debug/model": `{"version": 1, "policyProblems": []}`,
	})
}

func TestCheckInstalledControlPlane(t *testing.T) {
	c := installed(t, "--image-tag", testVersion)
	healthy(t, c)
	out := mustRun(t, testEnv(t, c), "check", "--wait", "0s")
	if !strings.HasSuffix(out, "Status check results are ✔\n") || strings.Contains(out, "×") || strings.Contains(out, "‼") {
		t.Fatalf("check of a healthy install:\n%s", out)
	}
	for _, cat := range []string{"kubernetes-api", "sinew-crds", "sinew-control-plane", "sinew-identity", "sinew-webhook", "sinew-policy", "sinew-version"} {
		if !strings.Contains(out, "\n"+cat+"\n") && !strings.HasPrefix(out, cat+"\n") {
			t.Errorf("no category %s in\n%s", cat, out)
		}
	}
	// the webhook's caBundle no longer trusts the serving certificate
	ctx := context.Background()
	wh, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, names.InjectorWebhookConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wh.Webhooks[0].ClientConfig.CABundle = fixture(t, "ca.crt")
	if _, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, wh, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, testEnv(t, c), "check", "--wait", "0s", "-o", "json")
	var rep struct {
		Success    bool `json:"success"`
		Categories []struct {
			Name   string `json:"categoryName"`
			Checks []struct {
				ID, Result, Error, Hint string
			} `json:"checks"`
		} `json:"categories"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if r.code == 0 || rep.Success {
		t.Fatalf("check passed with a caBundle that does not match:\n%s", r.stdout)
	}
	found := false
	for _, cat := range rep.Categories {
		for _, ch := range cat.Checks {
			if ch.ID == "webhook-cabundle-matches" {
				found = ch.Result == "error" && strings.HasSuffix(ch.Hint, "check.md#webhook-cabundle-matches")
			}
		}
	}
	if !found {
		t.Errorf("webhook-cabundle-matches did not fail with its hint:\n%s", r.stdout)
	}
}

func TestCheckWithoutControlPlane(t *testing.T) {
	c := newCluster()
	c.kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &k8sversion.Info{Major: "1", Minor: "32", GitVersion: "v1.32.13"}
	r := run(t, testEnv(t, c), "check", "--wait", "0s")
	if r.code == 0 || !strings.Contains(r.stdout, "× the sinew CRDs are installed") || !strings.Contains(r.stdout, "sinew install --crds") ||
		!strings.HasSuffix(r.stdout, "Status check results are ×\n") {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
	// --pre on an empty cluster: the fake clientset allows every SelfSubjectAccessReview? It answers an empty
	// status (not allowed), so the RBAC checks fail; that they run and say so is what this shows.
	r = run(t, testEnv(t, c), "check", "--pre", "--wait", "0s")
	if !strings.Contains(r.stdout, "pre-kubernetes-setup") || !strings.Contains(r.stdout, "can create clusterroles") {
		t.Fatalf("--pre:\n%s", r.stdout)
	}
}

// TestCheckProxyWithoutMeshedPods: --proxy in a namespace with no meshed pod fails, saying so and how to inject, at
// once although the proxies check is retried (there is nothing to wait for).
func TestCheckProxyWithoutMeshedPods(t *testing.T) {
	c := installed(t, "--image-tag", testVersion)
	healthy(t, c)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "emojivoto"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "emojivoto"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if _, err := c.kube.CoreV1().Pods("emojivoto").Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, testEnv(t, c), "check", "--proxy", "-n", "emojivoto", "--wait", "10m")
	if r.code == 0 || strings.Contains(r.stdout, "✔ data plane proxies are ready") ||
		!strings.Contains(r.stdout, "× data plane proxies are ready\n    found no meshed pods (with a sinew-proxy container) in namespace emojivoto") ||
		!strings.Contains(r.stdout, "sinew inject") {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}
