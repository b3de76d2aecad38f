package check

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}

// fakeReport is a run with every kind of result.
func fakeReport() Report {
	return Report{Success: false, Results: []Result{
		{Category: "kubernetes-api", ID: "k8s-api-client", Description: "can initialize the client", Status: OK},
		{Category: "kubernetes-api", ID: "k8s-api-reachable", Description: "can query the Kubernetes API", Status: OK},
		{Category: "sinew-crds", ID: "gateway-api-crds", Description: "the Gateway API CRDs that routes need are installed", Status: OK,
			Detail: "found: v1.6.3 (standard): GRPCRoute, HTTPRoute"},
		{Category: "sinew-identity", ID: "identity-trust-anchors-valid", Description: "trust anchors are valid", Status: OK},
		{Category: "sinew-identity", ID: "identity-issuer-not-expiring", Description: "issuer certificate is valid for at least 60 days", Status: Warned,
			Error: `the issuer "identity.sinew.cluster.local" expires on 2026-07-01T00:00:00Z, in 29 days`, Hint: HintBase + "#identity-issuer-not-expiring"},
		{Category: "sinew-data-plane", ID: "dp-pods-injected", Description: "data plane pods have a sinew proxy", Status: Failed,
			Error: "1 of 2 pods in namespace emojivoto have no sinew-proxy container: emojivoto/web-1\ninject them", Hint: InjectDocs},
		{Category: "sinew-data-plane", ID: "dp-proxies-ready", Description: "data plane proxies are ready", Status: Skipped},
	}}
}

func TestTableOutput(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, fakeReport())
	golden(t, "report.golden.txt", b.String())
	var ok bytes.Buffer
	WriteTable(&ok, Report{Success: true, Results: fakeReport().Results[:2]})
	if !strings.HasSuffix(ok.String(), "\nStatus check results are ✔\n") {
		t.Errorf("a passing run ends with:\n%s", ok.String())
	}
}

func TestJSONOutput(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fakeReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.json", b.String())
}

func TestRunSeveritiesAndFatal(t *testing.T) {
	calls := map[string]int{}
	mk := func(id string, sev Severity, err error) Check {
		return Check{ID: id, Description: id, Severity: sev, Run: func(context.Context, *Env) error { calls[id]++; return err }}
	}
	cats := []Category{
		{ID: "a", Checks: []Check{mk("ok", Error, nil), mk("warn", Warning, errors.New("w")), mk("skip", Error, ErrSkip)}},
		{ID: "b", Checks: []Check{mk("fatal", Fatal, errors.New("f")), mk("after", Error, nil)}},
		{ID: "c", Checks: []Check{mk("later", Error, nil)}},
	}
	rep := Run(context.Background(), &Env{}, cats, Options{})
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.ID+"="+string(r.Status))
	}
	want := "ok=success warn=warning fatal=error after=skipped later=skipped"
	if strings.Join(got, " ") != want {
		t.Errorf("results %v, want %s", got, want)
	}
	if rep.Success {
		t.Error("a run with a fatal failure succeeded")
	}
	if calls["after"] != 0 || calls["later"] != 0 {
		t.Error("checks after a fatal failure ran")
	}
	// warnings alone do not fail a run
	rep = Run(context.Background(), &Env{}, cats[:1], Options{})
	if !rep.Success {
		t.Error("a run with only a warning failed")
	}
}

func TestRunRetriesUntilPassOrDeadline(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := &Env{Now: func() time.Time { return clock }}
	tries := 0
	flaky := Check{ID: "flaky", Description: "flaky", Retry: true, Run: func(context.Context, *Env) error {
		tries++
		clock = clock.Add(time.Second)
		if tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}}
	var retried int
	rep := Run(context.Background(), env, []Category{{ID: "x", Checks: []Check{flaky}}},
		Options{Wait: time.Minute, RetryInterval: time.Millisecond, Retrying: func(Check, error) { retried++ }})
	if !rep.Success || tries != 3 || retried != 2 {
		t.Fatalf("success=%v tries=%d retried=%d, want a pass on the third try", rep.Success, tries, retried)
	}
	// never passing: stops at the deadline
	tries = 0
	never := flaky
	never.Run = func(context.Context, *Env) error {
		tries++
		clock = clock.Add(10 * time.Second)
		return errors.New("never")
	}
	rep = Run(context.Background(), env, []Category{{ID: "x", Checks: []Check{never}}}, Options{Wait: time.Minute, RetryInterval: time.Millisecond})
	if rep.Success || tries < 5 || tries > 7 {
		t.Fatalf("success=%v after %d tries, want a failure after about a minute of 10s tries", rep.Success, tries)
	}
	if rep.Results[0].Error != "never" || rep.Results[0].Hint != HintBase+"#flaky" {
		t.Errorf("result %+v", rep.Results[0])
	}
}

// TestTableShowsWaiting: while a retried check waits, the table says for what: a line per new reason when not a
// terminal, one line rewritten in place on a terminal; the check's final line replaces it.
func TestTableShowsWaiting(t *testing.T) {
	reasons := []string{"not ready: sinew-identity-abc (ContainerCreating)", "not ready: sinew-identity-abc (ContainerCreating)", "not ready: sinew-identity-abc (Running, not ready)"}
	run := func(tw *TableWriter) {
		tries := 0
		c := Check{ID: "cp-pods-ready", Description: "control plane pods are ready", Retry: true, Run: func(context.Context, *Env) error {
			tries++
			if tries <= len(reasons) {
				return errors.New(reasons[tries-1])
			}
			return nil
		}}
		rep := Run(context.Background(), &Env{}, []Category{{ID: "sinew-control-plane", Checks: []Check{c}}},
			Options{Wait: time.Minute, RetryInterval: time.Millisecond, Observe: tw.Write})
		tw.Finish(rep.Success)
		for _, r := range rep.Results {
			if r.Status == Waiting {
				t.Errorf("a waiting result in the report: %+v", r)
			}
		}
	}
	var plain bytes.Buffer
	run(&TableWriter{W: &plain})
	want := "sinew-control-plane\n-------------------\n" +
		"… waiting: control plane pods are ready: not ready: sinew-identity-abc (ContainerCreating)\n" +
		"… waiting: control plane pods are ready: not ready: sinew-identity-abc (Running, not ready)\n" +
		"✔ control plane pods are ready\n\nStatus check results are ✔\n"
	if plain.String() != want {
		t.Errorf("not a terminal:\n%s\nwant:\n%s", plain.String(), want)
	}
	var term bytes.Buffer
	run(&TableWriter{W: &term, Terminal: true, Width: 120})
	want = "sinew-control-plane\n-------------------\n" +
		"… waiting: control plane pods are ready: not ready: sinew-identity-abc (ContainerCreating)\r\033[K" +
		"… waiting: control plane pods are ready: not ready: sinew-identity-abc (ContainerCreating)\r\033[K" +
		"… waiting: control plane pods are ready: not ready: sinew-identity-abc (Running, not ready)\r\033[K" +
		"✔ control plane pods are ready\n\nStatus check results are ✔\n"
	if term.String() != want {
		t.Errorf("terminal:\n%q\nwant:\n%q", term.String(), want)
	}
	// a narrow terminal: clipped to one screen line
	var narrow bytes.Buffer
	run(&TableWriter{W: &narrow, Terminal: true, Width: 40})
	if !strings.Contains(narrow.String(), "… waiting: control plane pods are read…\r") {
		t.Errorf("narrow terminal:\n%q", narrow.String())
	}
}

// TestNoRetry: a retried check that returns NoRetry fails at once, not at the deadline.
func TestNoRetry(t *testing.T) {
	tries := 0
	c := Check{ID: "c", Description: "c", Retry: true, Run: func(context.Context, *Env) error {
		tries++
		return NoRetry(errors.New("nothing to wait for"))
	}}
	rep := Run(context.Background(), &Env{}, []Category{{ID: "x", Checks: []Check{c}}}, Options{Wait: time.Hour, RetryInterval: time.Millisecond})
	if rep.Success || tries != 1 || rep.Results[0].Error != "nothing to wait for" {
		t.Fatalf("success=%v tries=%d %+v", rep.Success, tries, rep.Results[0])
	}
}

func TestRunSurvivesPanics(t *testing.T) {
	c := Check{ID: "boom", Description: "boom", Run: func(context.Context, *Env) error { panic("boom") }}
	rep := Run(context.Background(), &Env{}, []Category{{ID: "x", Checks: []Check{c}}}, Options{})
	if rep.Success || !strings.Contains(rep.Results[0].Error, "crashed") {
		t.Fatalf("%+v", rep.Results)
	}
}

// meshedPod is a running, ready pod whose proxy is a native sidecar of version v.
func meshedPod(ns, name, v string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: map[string]string{names.ProxyVersionAnnotation: v}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "sinew-init"}, {Name: names.ProxyContainer, Image: "ghcr.io/sinewmesh/sinew-proxy:" + v}},
			Containers:     []corev1.Container{{Name: "app"}},
		},
		Status: corev1.PodStatus{
			Phase:                 corev1.PodRunning,
			Conditions:            []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			InitContainerStatuses: []corev1.ContainerStatus{{Name: names.ProxyContainer, Ready: true}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: "app", Ready: true}},
		},
	}
}

func plainPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func cpDeployment(name, v string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sinew",
		Labels: map[string]string{names.ControlPlaneNSLabel: "sinew", VersionLabel: v}}}
}

func runCat(t *testing.T, env *Env, cat Category) Report {
	t.Helper()
	return Run(context.Background(), env, []Category{cat}, Options{})
}

func TestDataPlane(t *testing.T) {
	objs := []runtimeObject{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "emojivoto"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sinew"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
		cpDeployment("sinew-destination", "v1"),
		meshedPod("emojivoto", "web-1", "v1", nil),
		meshedPod("emojivoto", "voting-1", "v0", nil),
		plainPod("kube-system", "coredns-1"),
		meshedPod("sinew", "sinew-identity-1", "v1", nil),
	}
	env := &Env{Kube: fake.NewSimpleClientset(toRuntime(objs)...), Namespace: "sinew", DataPlaneNamespace: "emojivoto"}
	rep := runCat(t, env, DataPlane())
	if !rep.Success {
		t.Fatalf("meshed namespace failed: %+v", rep.Results)
	}
	if r := rep.Results[2]; r.ID != "dp-proxy-version" || r.Status != Warned || !strings.Contains(r.Error, "emojivoto/voting-1 (v0)") {
		t.Errorf("old proxy: %+v", r)
	}
	// an unmeshed pod fails, and the hint says how to inject
	if _, err := env.Kube.CoreV1().Pods("emojivoto").Create(context.Background(), plainPod("emojivoto", "emoji-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = runCat(t, env, DataPlane())
	r := rep.Results[0]
	if rep.Success || r.Status != Failed || !strings.Contains(r.Error, "emojivoto/emoji-1") || r.Hint != InjectDocs || !strings.Contains(r.Error, "inject") {
		t.Fatalf("unmeshed pod: %+v", r)
	}
	// every namespace: kube-system and the control plane are not application namespaces
	env.DataPlaneNamespace = ""
	rep = runCat(t, env, DataPlane())
	if strings.Contains(rep.Results[0].Error, "coredns") || strings.Contains(rep.Results[0].Error, "sinew-identity") || !strings.Contains(rep.Results[0].Error, "emoji-1") {
		t.Errorf("all namespaces: %+v", rep.Results[0])
	}
	// an empty namespace has nothing to check, and no proxy is "ready"
	env.DataPlaneNamespace = "empty"
	rep = runCat(t, env, DataPlane())
	if rep.Success || !strings.Contains(rep.Results[0].Error, "no running pods in namespace empty") {
		t.Errorf("empty namespace: %+v", rep.Results[0])
	}
	if r := rep.Results[1]; r.ID != "dp-proxies-ready" || r.Status != Failed || !strings.Contains(r.Error, "found no meshed pods (with a sinew-proxy container) in namespace empty") {
		t.Errorf("empty namespace, proxies: %+v", r)
	}
	// pods, none meshed: the proxies check fails too (at once, though it is retried) and says how to inject
	if _, err := env.Kube.CoreV1().Pods("plain").Create(context.Background(), plainPod("plain", "app-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.DataPlaneNamespace = "plain"
	rep = Run(context.Background(), env, []Category{DataPlane()}, Options{Wait: time.Hour, RetryInterval: time.Hour})
	if r := rep.Results[1]; r.Status != Failed || !strings.Contains(r.Error, "found no meshed pods") || !strings.Contains(r.Error, "sinew inject") {
		t.Errorf("no meshed pods: %+v", r)
	}
}

func TestControlPlanePods(t *testing.T) {
	objs := []runtimeObject{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sinew"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: names.ConfigMap, Namespace: "sinew"}}}
	for _, c := range Components {
		objs = append(objs, meshedPod("sinew", c.Deployment+"-1", "v1", map[string]string{names.ControlPlaneComponentLabel: c.Component}))
	}
	env := &Env{Kube: fake.NewSimpleClientset(toRuntime(objs)...), Namespace: "sinew"}
	if rep := runCat(t, env, ControlPlane()); !rep.Success {
		t.Fatalf("%+v", rep.Results)
	}
	// a pod whose proxy is not ready
	p := meshedPod("sinew", "sinew-destination-2", "v1", map[string]string{names.ControlPlaneComponentLabel: "destination"})
	p.Status.InitContainerStatuses[0].Ready = false
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := env.Kube.CoreV1().Pods("sinew").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := runCat(t, env, ControlPlane())
	var msgs []string
	for _, r := range rep.Results {
		msgs = append(msgs, r.ID+": "+r.Error)
	}
	all := strings.Join(msgs, "\n")
	if rep.Success || !strings.Contains(all, "cp-pods-ready: not ready: sinew-destination-2") || !strings.Contains(all, "cp-proxies-ready: sinew-destination-2's proxy is not ready") {
		t.Fatalf("%s", all)
	}
	// no control plane at all: fatal, the rest skipped
	env = &Env{Kube: fake.NewSimpleClientset(), Namespace: "sinew"}
	rep = runCat(t, env, ControlPlane())
	if rep.Results[0].Status != Failed || rep.Results[1].Status != Skipped || !strings.Contains(rep.Results[0].Error, "sinew install") {
		t.Fatalf("%+v", rep.Results)
	}
}

func TestVersionCheck(t *testing.T) {
	env := &Env{Kube: fake.NewSimpleClientset(cpDeployment("sinew-identity", "v1"), cpDeployment("sinew-destination", "v1")), Namespace: "sinew", ClientVersion: "v1"}
	if rep := runCat(t, env, Version()); !rep.Success || rep.Results[0].Status != OK {
		t.Fatalf("%+v", rep.Results)
	}
	env.ClientVersion = "v2"
	if rep := runCat(t, env, Version()); !rep.Success || rep.Results[0].Status != Warned || !strings.Contains(rep.Results[0].Error, "runs v1, this CLI is v2") {
		t.Fatalf("%+v", rep.Results)
	}
	env.Kube = fake.NewSimpleClientset(cpDeployment("sinew-identity", "v1"), cpDeployment("sinew-destination", "v2"))
	if _, err := ControlPlaneVersion(context.Background(), env); err == nil || !strings.Contains(err.Error(), "v1 (sinew-identity); v2 (sinew-destination)") {
		t.Fatalf("mixed versions: %v", err)
	}
}

func TestKubernetesVersion(t *testing.T) {
	for _, c := range []struct {
		major, minor, git string
		ok                bool
	}{{"1", "32", "v1.32.13", true}, {"1", "29+", "v1.29.1-eks", true}, {"1", "28", "v1.28.0", false}, {"", "", "v1.30.2", true}, {"", "", "v1.27.9", false}} {
		ma, mi, err := parseVersion(c.major, c.minor, c.git)
		ok := err == nil && (ma > 1 || mi >= 29)
		if ok != c.ok {
			t.Errorf("%+v: %d.%d %v", c, ma, mi, err)
		}
	}
}

func TestPreNetAdmin(t *testing.T) {
	ns := func(n, lvl string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"pod-security.kubernetes.io/enforce": lvl}}}
	}
	env := &Env{Kube: fake.NewSimpleClientset(ns("apps", "restricted"), ns("web", "privileged"), ns("kube-system", "restricted")), Namespace: "sinew",
		CanCreate: func(context.Context, string, string, string) (bool, string, error) { return true, "", nil }}
	rep := runCat(t, env, Pre())
	var netAdmin Result
	for _, r := range rep.Results {
		if r.ID == "pre-net-admin" {
			netAdmin = r
		}
	}
	if netAdmin.Status != Warned || !strings.Contains(netAdmin.Error, "apps (enforces restricted)") || strings.Contains(netAdmin.Error, "kube-system") || strings.Contains(netAdmin.Error, "web") {
		t.Errorf("%+v", netAdmin)
	}
	if !rep.Success {
		t.Errorf("pre checks failed: %+v", rep.Results)
	}
	env.CanCreate = func(_ context.Context, _, res, _ string) (bool, string, error) {
		return res != "clusterroles", "no RBAC", nil
	}
	rep = runCat(t, env, Pre())
	for _, r := range rep.Results {
		if r.ID == "pre-rbac-clusterroles" && (r.Status != Failed || r.Hint != HintBase+"#pre-rbac" || !strings.Contains(r.Error, "no RBAC")) {
			t.Errorf("%+v", r)
		}
	}
	if rep.Success {
		t.Error("pre checks passed without the right to create cluster roles")
	}
}

// TestEveryHintHasASection checks that docs/operations/check.md has a heading for every core check's hint anchor.
func TestEveryHintHasASection(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations", "check.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []What{{}, {Pre: true}, {Proxy: true}} {
		for _, cat := range Core(w) {
			for _, c := range cat.Checks {
				url := c.HintURL()
				anchor, ok := strings.CutPrefix(url, HintBase+"#")
				if !ok {
					if url != InjectDocs {
						t.Errorf("%s: hint %s", c.ID, url)
					}
					anchor = c.ID
				}
				if !strings.Contains(string(doc), "\n### "+anchor+"\n") {
					t.Errorf("check.md has no section ### %s (for check %s)", anchor, c.ID)
				}
			}
		}
	}
}
