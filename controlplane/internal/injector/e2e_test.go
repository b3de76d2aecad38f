//go:build e2e

package injector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

// warnings collects the admission warnings the API server passes back to the client.
type warnings struct {
	mu  sync.Mutex
	all []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, text)
}

func (w *warnings) has(sub string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.all {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestE2EWebhook registers the injector, running in this process, with a real API server and creates pods through
// it: one injected, one that a bad annotation leaves unmodified (with a warning and an Event), a dry run.
//
// SINEW_E2E_KUBECONFIG names the cluster (see docs/operations/local-cluster.md). The API server must reach
// this machine's loopback (a local single-node cluster whose API server runs on the host).
func TestE2EWebhook(t *testing.T) {
	kubeconfig := os.Getenv("SINEW_E2E_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("SINEW_E2E_KUBECONFIG is not set: no cluster to register the webhook with")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	warn := &warnings{}
	rc.WarningHandler = warn
	client := kubernetes.NewForConfigOrDie(rc)
	meta := metadata.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := rand.String(6)
	cpNS, appNS, badNS := "sinew-e2e-cp-"+id, "sinew-e2e-app-"+id, "sinew-e2e-bad-"+id
	hookName := "sinew-e2e-injector-" + id
	label := map[string]string{"sinew-e2e-inject": id}
	t.Cleanup(func() {
		bg := context.Background()
		_ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(bg, hookName, metav1.DeleteOptions{})
		for _, ns := range []string{cpNS, appNS, badNS} {
			_ = client.CoreV1().Namespaces().Delete(bg, ns, metav1.DeleteOptions{})
		}
	})

	anchors, err := os.ReadFile("testdata/trust-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	mkNS := func(name string, ann map[string]string) {
		t.Helper()
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: label, Annotations: ann}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mkNS(cpNS, nil)
	mkNS(appNS, map[string]string{names.InjectAnnotation: "enabled", names.AnnProxyLogLevel: "debug"})
	mkNS(badNS, map[string]string{names.InjectAnnotation: "enabled", names.AnnProxyCPULimit: "lots"})
	if _, err := client.CoreV1().ConfigMaps(cpNS).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: names.TrustRootsConfigMap},
		Data:       map[string]string{names.TrustRootsKey: string(anchors)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// the webhook's serving certificate, from a CA the API server is told about
	caPEM, certFile, keyFile := servingPair(t, t.TempDir())
	ic := inject.DefaultConfig()
	ic.ControlPlaneNamespace = cpNS
	ic.CreatedBy = "sinew/e2e " + id
	srv, err := New(Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, Inject: ic,
		Client: client, Metadata: meta, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, 30*time.Second, "the injector is ready", func() bool { return srv.readiness() == "" })

	_, port, _ := net.SplitHostPort(srv.Addr())
	url := "https://127.0.0.1:" + port + "/"
	ignore := admissionregistrationv1.Ignore
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	timeout := int32(10)
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: hookName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "e2e.sinew-proxy-injector.sinew.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: label},
			FailurePolicy:           &ignore,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{
				// never scheduled: the test looks at what the API server stored, not at a running pod
				NodeSelector: map[string]string{"sinew-e2e": "nowhere"},
				Containers:   []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
			},
		}
	}

	// the webhook configuration takes a moment to reach the API server's admission chain: retry with fresh pods
	var got *corev1.Pod
	waitFor(t, 60*time.Second, "a pod comes back injected", func() bool {
		name := "web-" + rand.String(5)
		p, err := client.CoreV1().Pods(appNS).Create(ctx, pod(name), metav1.CreateOptions{})
		if err != nil {
			t.Logf("create: %v", err)
			return false
		}
		if len(p.Spec.InitContainers) == 0 {
			_ = client.CoreV1().Pods(appNS).Delete(ctx, name, metav1.DeleteOptions{})
			return false
		}
		got = p
		return true
	})
	if n := len(got.Spec.InitContainers); n != 2 || got.Spec.InitContainers[0].Name != names.InitContainer || got.Spec.InitContainers[1].Name != names.ProxyContainer {
		t.Fatalf("init containers: %+v", got.Spec.InitContainers)
	}
	proxy := got.Spec.InitContainers[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways || proxy.StartupProbe == nil {
		t.Error("the proxy is not a native sidecar with a startup probe")
	}
	envOf := map[string]string{}
	for _, e := range proxy.Env {
		envOf[e.Name] = e.Value
	}
	if envOf["SINEW_PROXY_LOG_LEVEL"] != "debug" || envOf["SINEW_PROXY_IDENTITY_TRUST_ANCHORS"] != string(anchors) ||
		envOf["SINEW_PROXY_DESTINATION_SVC_ADDR"] != "sinew-dst."+cpNS+".svc.cluster.local.:8086" {
		t.Errorf("proxy env: %v", envOf)
	}
	if got.Labels[names.WorkloadNSLabel] != appNS || got.Labels[names.ControlPlaneNSLabel] != cpNS ||
		got.Annotations[names.TrustRootHashAnnotation] != inject.TrustRootHash(string(anchors)) {
		t.Errorf("labels %v annotations %v", got.Labels, got.Annotations)
	}
	// the API server defaulted and validated what the patch added, and kept the pod's own container
	if len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Name != "app" {
		t.Errorf("containers %+v", got.Spec.Containers)
	}
	var tokenVol bool
	for _, v := range got.Spec.Volumes {
		tokenVol = tokenVol || v.Name == names.TokenVolume && v.Projected != nil
	}
	if !tokenVol {
		t.Errorf("no projected token volume: %+v", got.Spec.Volumes)
	}

	// a Deployment's pods: the owner label from the ReplicaSet's name, and the Deployment's annotations (copied to
	// its ReplicaSet, read with the metadata client) between the namespace's and the pod's
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Annotations: map[string]string{names.AnnProxyLogLevel: "warn"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}}, Spec: pod("api").Spec},
		},
	}
	if _, err := client.AppsV1().Deployments(appNS).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var depPod corev1.Pod
	waitFor(t, 60*time.Second, "the Deployment's pod exists", func() bool {
		pods, err := client.CoreV1().Pods(appNS).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		if err != nil || len(pods.Items) == 0 {
			return false
		}
		depPod = pods.Items[0]
		return true
	})
	if depPod.Labels["sinew.dev/proxy-deployment"] != "api" {
		t.Errorf("Deployment pod labels %v", depPod.Labels)
	}
	if len(depPod.Spec.InitContainers) != 2 {
		t.Fatalf("the Deployment's pod was not injected: %+v", depPod.Spec.InitContainers)
	}
	for _, e := range depPod.Spec.InitContainers[1].Env {
		if e.Name == "SINEW_PROXY_LOG_LEVEL" && e.Value != "warn" {
			t.Errorf("log level %q: the Deployment's annotation should win over the namespace's", e.Value)
		}
	}
	waitFor(t, 30*time.Second, "an Injected Event on the ReplicaSet", func() bool {
		evs, err := client.CoreV1().Events(appNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == EventInjected && e.InvolvedObject.Kind == "ReplicaSet" {
				return true
			}
		}
		return false
	})

	// the classic sidecar, with resources and every list knob, passes the API server's validation too
	classic := pod("classic")
	classic.Annotations = map[string]string{
		names.AnnProxyNativeSidecar: "false", names.AnnProxyCPURequest: "10m", names.AnnProxyMemoryLimit: "64Mi",
		names.AnnSkipInboundPorts: "9090", names.AnnSkipOutboundPorts: "443,6443", names.AnnSkipSubnets: "169.254.0.0/16",
		names.AnnOpaquePorts: "5432", names.AnnShutdownGracePeriod: "20s",
	}
	classic.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "registry.invalid/setup:1"}}
	c, err := client.CoreV1().Pods(appNS).Create(ctx, classic, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("classic sidecar pod: %v", err)
	}
	if len(c.Spec.Containers) != 2 || c.Spec.Containers[0].Name != names.ProxyContainer ||
		len(c.Spec.InitContainers) != 2 || c.Spec.InitContainers[1].Name != names.InitContainer {
		t.Errorf("classic layout: init %v, containers %v", containerNames(c.Spec.InitContainers), containerNames(c.Spec.Containers))
	}

	// a dry run is injected too, and records nothing
	dry, err := client.CoreV1().Pods(appNS).Create(ctx, pod("dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil || len(dry.Spec.InitContainers) != 2 {
		t.Errorf("dry run: %v, %d init containers", err, len(dry.Spec.InitContainers))
	}

	// a bad annotation: the pod is created anyway, unmodified, with a warning and an Event
	bad, err := client.CoreV1().Pods(badNS).Create(ctx, pod("bad"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the webhook blocked a pod: %v", err)
	}
	if len(bad.Spec.InitContainers) != 0 {
		t.Error("a pod with a bad annotation was injected")
	}
	if !warn.has("config.sinew.dev/proxy-cpu-limit") {
		t.Errorf("no admission warning naming the annotation; got %v", warn.all)
	}
	waitFor(t, 30*time.Second, "an InjectionFailed Event on the namespace", func() bool {
		evs, err := client.CoreV1().Events(badNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == EventInjectionFailed && e.InvolvedObject.Kind == "Namespace" && strings.Contains(e.Message, "proxy-cpu-limit") {
				return true
			}
		}
		return false
	})
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// servingPair writes a serving certificate for 127.0.0.1 signed by a new CA; it returns the CA's PEM.
func servingPair(t *testing.T, dir string) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sinew e2e webhook CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(crand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile
}

var _ rest.WarningHandler = (*warnings)(nil)
