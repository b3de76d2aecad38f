package injector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/record"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

type env struct {
	srv      *Server
	client   *fake.Clientset
	events   *record.FakeRecorder
	reg      *prometheus.Registry
	certFile string
	anchors  string
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeServingCert writes a self-signed certificate for 127.0.0.1 and returns the file paths.
func writeServingCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "sinew-proxy-injector.sinew.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"sinew-proxy-injector.sinew.svc"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
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
	return certFile, keyFile
}

func namespace(name string, ann map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
}

func trustRoots(pem string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: names.TrustRootsConfigMap, Namespace: "sinew"},
		Data: map[string]string{names.TrustRootsKey: pem}}
}

// start runs an injector over a fake cluster holding objs (and metadata objects meta) until the test ends.
func start(t *testing.T, objs []runtime.Object, meta ...runtime.Object) *env {
	t.Helper()
	return startWith(t, objs, meta, nil)
}

// startWith is start with a change to the injector's Config (nil: none).
func startWith(t *testing.T, objs, meta []runtime.Object, change func(*Config)) *env {
	t.Helper()
	e := &env{client: fake.NewClientset(objs...), events: record.NewFakeRecorder(100), reg: prometheus.NewRegistry(),
		anchors: readFile(t, "testdata/trust-anchors.pem")}
	var keyFile string
	e.certFile, keyFile = writeServingCert(t, t.TempDir())
	ic := inject.DefaultConfig()
	ic.Tag = "1.2.3"
	ic.CreatedBy = "sinew/proxy-injector test"
	cfg := Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", CertFile: e.certFile, KeyFile: keyFile, Inject: ic,
		Client: e.client, Recorder: e.events, Registerer: e.reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if meta != nil {
		sch := metadatafake.NewTestScheme()
		_ = metav1.AddMetaToScheme(sch)
		cfg.Metadata = metadatafake.NewSimpleMetadataClient(sch, meta...)
	}
	if change != nil {
		change(&cfg)
	}
	var err error
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	testutil.RunInBackground(t, e.srv.Run)
	testutil.Eventually(t, 10*time.Second, "the namespace and trust-roots caches sync", func() bool { return e.srv.cache.synced() })
	return e
}

// review posts an AdmissionReview to the handler and returns the decoded answer.
func (e *env) review(t *testing.T, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("not an AdmissionReview v1 response: %s", rec.Body)
	}
	if !out.Response.Allowed {
		t.Fatal("the injector denied a pod")
	}
	return out.Response
}

// podReview builds a review of creating pod in ns.
func podReview(t *testing.T, ns string, pod *corev1.Pod, dryRun bool) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-" + ns), Namespace: ns, Operation: admissionv1.Create, DryRun: &dryRun,
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: podResource,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyPatch applies resp's patch to the review's pod.
func applyPatch(t *testing.T, review []byte, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(review, &in); err != nil {
		t.Fatal(err)
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch || len(resp.Patch) == 0 {
		t.Fatalf("no JSON patch in the response (warnings %v)", resp.Warnings)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(in.Request.Object.Raw)
	if err != nil {
		t.Fatalf("the patch does not apply to the pod: %v", err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

func env1(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func (e *env) count(result, reason string) float64 {
	var m dto.Metric
	_ = e.srv.metrics.responses.WithLabelValues(result, reason).Write(&m)
	return m.GetCounter().GetValue()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func (e *env) nextEvent(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-e.events.Events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event recorded")
		return ""
	}
}

func (e *env) noEvent(t *testing.T) {
	t.Helper()
	select {
	case ev := <-e.events.Events:
		t.Fatalf("unexpected event %q", ev)
	default:
	}
}

func TestDeploymentPodFromTestdata(t *testing.T) {
	e := start(t, []runtime.Object{namespace("emojivoto", map[string]string{names.InjectAnnotation: "enabled"}), trustRoots(readFile(t, "testdata/trust-anchors.pem"))})
	body := []byte(readFile(t, "testdata/review-deployment-pod.json"))
	resp := e.review(t, body)
	if resp.UID != "0f3a6c1e-7a52-4d8e-9f6b-2b1c9d0e5a77" {
		t.Errorf("response UID %q does not echo the request's", resp.UID)
	}
	pod := applyPatch(t, body, resp)
	if n := len(pod.Spec.InitContainers); n != 2 || pod.Spec.InitContainers[0].Name != "sinew-init" || pod.Spec.InitContainers[1].Name != "sinew-proxy" {
		t.Fatalf("init containers: %+v", pod.Spec.InitContainers)
	}
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[0].Name != "kube-api-access-x7k2p" {
		t.Fatalf("the pod's own containers or volumes changed: %d containers, volumes %+v", len(pod.Spec.Containers), pod.Spec.Volumes)
	}
	want := map[string]string{"app": "web-svc", "sinew.dev/proxy-deployment": "web", "sinew.dev/workload-ns": "emojivoto", "sinew.dev/control-plane-ns": "sinew"}
	for k, v := range want {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if pod.Annotations[names.TrustRootHashAnnotation] != inject.TrustRootHash(e.anchors) || pod.Annotations[names.CreatedByAnnotation] != "sinew/proxy-injector test" {
		t.Errorf("annotations %v", pod.Annotations)
	}
	if got := env1(pod.Spec.InitContainers[1], "SINEW_PROXY_IDENTITY_TRUST_ANCHORS"); got != e.anchors {
		t.Errorf("trust anchors in the proxy env: %q", got)
	}
	if ev := e.nextEvent(t); !strings.HasPrefix(ev, "Normal Injected") || !strings.Contains(ev, "web-7d9f8b6c54-*") {
		t.Errorf("event %q", ev)
	}
	if e.count("injected", "") != 1 || counterValue(t, e.srv.metrics.requests) != 1 {
		t.Error("metrics did not count the injection")
	}
}

func TestBarePodClassicSidecar(t *testing.T) {
	e := start(t, []runtime.Object{namespace("default", nil), trustRoots(readFile(t, "testdata/trust-anchors.pem"))})
	body := []byte(readFile(t, "testdata/review-bare-pod-annotated.json"))
	pod := applyPatch(t, body, e.review(t, body))
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Name != "sinew-proxy" || pod.Spec.Containers[0].RestartPolicy != nil {
		t.Fatalf("want the proxy as the first container: %+v", pod.Spec.Containers)
	}
	for k := range pod.Labels {
		if strings.HasPrefix(k, names.OwnerLabelPrefix) {
			t.Errorf("a bare pod got an owner label %s", k)
		}
	}
	if ev := e.nextEvent(t); !strings.Contains(ev, "Injected") {
		t.Errorf("event %q", ev)
	}
}

func TestSkipsAndFailuresAllowThePod(t *testing.T) {
	anchors := readFile(t, "testdata/trust-anchors.pem")
	e := start(t, []runtime.Object{
		namespace("plain", nil),
		namespace("meshed", map[string]string{names.InjectAnnotation: "enabled"}),
		namespace("broken", map[string]string{names.InjectAnnotation: "enabled", names.AnnProxyMemoryLimit: "plenty"}),
		trustRoots(anchors),
	})
	app := corev1.Container{Name: "app", Image: "example/app:1"}
	ctrl := true
	owned := metav1.ObjectMeta{GenerateName: "api-", OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "api", UID: "u1", Controller: &ctrl}}}

	t.Run("not enabled", func(t *testing.T) {
		resp := e.review(t, podReview(t, "plain", &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}, false))
		if resp.Patch != nil || len(resp.Warnings) != 0 {
			t.Fatalf("patched or warned: %+v", resp)
		}
		if e.count("skipped", "not-enabled") != 1 {
			t.Error("skip not counted")
		}
		e.noEvent(t)
	})
	t.Run("host network", func(t *testing.T) {
		resp := e.review(t, podReview(t, "meshed", &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{app}}}, false))
		if resp.Patch != nil || e.count("skipped", "host-network") != 1 {
			t.Fatalf("host-network pod: %+v", resp)
		}
	})
	t.Run("another mesh's sidecar", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: owned, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-init", Image: "istio/proxyv2"}},
			Containers:     []corev1.Container{app, {Name: "istio-proxy", Image: "istio/proxyv2"}},
		}}
		resp := e.review(t, podReview(t, "meshed", pod, false))
		if resp.Patch != nil {
			t.Fatal("injected a pod that is in another mesh")
		}
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "istio-proxy (Istio's sidecar): a pod can be in one mesh only") {
			t.Errorf("warnings %q", resp.Warnings)
		}
		ev := e.nextEvent(t)
		if !strings.HasPrefix(ev, "Warning InjectionSkipped") || !strings.Contains(ev, "istio-proxy") {
			t.Errorf("event %q", ev)
		}
		if e.count("skipped", "other-mesh") != 1 {
			t.Error("skip not counted")
		}
	})
	t.Run("bad annotation", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: owned, Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}
		resp := e.review(t, podReview(t, "broken", pod, false))
		if resp.Patch != nil {
			t.Fatal("patched despite a bad annotation")
		}
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `config.sinew.dev/proxy-memory-limit="plenty" on the namespace`) {
			t.Errorf("warnings %q", resp.Warnings)
		}
		ev := e.nextEvent(t)
		if !strings.HasPrefix(ev, "Warning InjectionFailed") || !strings.Contains(ev, "proxy-memory-limit") {
			t.Errorf("event %q", ev)
		}
		if e.count("failed", "invalid-config") != 1 {
			t.Error("failure not counted")
		}
	})
	t.Run("dry run records no event", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: owned, Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}
		resp := e.review(t, podReview(t, "broken", pod, true))
		if len(resp.Warnings) != 1 {
			t.Error("no warning on a dry run")
		}
		resp = e.review(t, podReview(t, "meshed", pod, true))
		if resp.Patch == nil {
			t.Error("a dry run is not injected")
		}
		e.noEvent(t)
	})
	t.Run("unknown namespace", func(t *testing.T) {
		resp := e.review(t, podReview(t, "ghost", &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}, false))
		if resp.Patch != nil || len(resp.Warnings) != 1 || e.count("failed", "namespace-lookup") != 1 {
			t.Fatalf("unknown namespace: %+v", resp)
		}
		if ev := e.nextEvent(t); !strings.Contains(ev, "InjectionFailed") {
			t.Errorf("event %q", ev)
		}
	})
	t.Run("namespace created after the cache synced", func(t *testing.T) {
		// the informer may lag: a GET finds it
		if _, err := e.client.CoreV1().Namespaces().Create(context.Background(), namespace("fresh", map[string]string{names.InjectAnnotation: "enabled"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		resp := e.review(t, podReview(t, "fresh", &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}, false))
		if resp.Patch == nil {
			t.Fatalf("not injected: %v", resp.Warnings)
		}
		e.nextEvent(t)
	})
	t.Run("not a pod creation", func(t *testing.T) {
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "x", Namespace: "meshed", Operation: admissionv1.Update, Resource: podResource,
				Object: runtime.RawExtension{Raw: []byte(`{}`)}},
		})
		if resp := e.review(t, b); resp.Patch != nil || e.count("not-applicable", "") != 1 {
			t.Fatalf("update: %+v", resp)
		}
	})
	t.Run("pod that does not decode", func(t *testing.T) {
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "x", Namespace: "meshed", Operation: admissionv1.Create, Resource: podResource,
				Object: runtime.RawExtension{Raw: []byte(`{"spec": {"containers": "nope"}}`)}},
		})
		if resp := e.review(t, b); resp.Patch != nil || len(resp.Warnings) != 1 || e.count("failed", "decode") != 1 {
			t.Fatalf("bad pod: %+v", resp)
		}
		e.nextEvent(t)
	})
	t.Run("not an AdmissionReview", func(t *testing.T) {
		for _, body := range []string{"", "{", `{"kind":"AdmissionReview"}`} {
			rec := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%q: status %d", body, rec.Code)
			}
		}
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d", rec.Code)
		}
	})
}

func TestTrustAnchorsFollowTheConfigMap(t *testing.T) {
	e := start(t, []runtime.Object{namespace("meshed", map[string]string{names.InjectAnnotation: "enabled"})})
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}

	// no ConfigMap: not ready, and pods go through unmodified
	if why := e.srv.readiness(); !strings.Contains(why, "no trust anchors") {
		t.Errorf("readiness without anchors: %q", why)
	}
	resp := e.review(t, podReview(t, "meshed", pod, false))
	if resp.Patch != nil || e.count("failed", "no-trust-anchors") != 1 || !strings.Contains(resp.Warnings[0], names.TrustRootsConfigMap) {
		t.Fatalf("without anchors: %+v", resp)
	}
	e.nextEvent(t)

	cms := e.client.CoreV1().ConfigMaps("sinew")
	if _, err := cms.Create(context.Background(), trustRoots("garbage"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the invalid ConfigMap is seen", func() bool {
		return counterValue(t, e.srv.metrics.trustRootUpdates.WithLabelValues("invalid")) == 1
	})
	if e.srv.cache.anchors() != "" {
		t.Fatal("invalid anchors accepted")
	}

	first := e.anchors
	if _, err := cms.Update(context.Background(), trustRoots(first), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the anchors are loaded", func() bool { return e.srv.cache.anchors() == first })
	if why := e.srv.readiness(); why != "" {
		t.Errorf("not ready with anchors: %s", why)
	}
	hash := func() string {
		t.Helper()
		body := podReview(t, "meshed", pod, false)
		p := applyPatch(t, body, e.review(t, body))
		e.nextEvent(t)
		return p.Annotations[names.TrustRootHashAnnotation]
	}
	if got := hash(); got != inject.TrustRootHash(first) {
		t.Errorf("hash %s, want that of the first anchors", got)
	}

	// rotation: a bundle of the old and a new anchor
	second := first + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t)}))
	if _, err := cms.Update(context.Background(), trustRoots(second), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the new bundle is loaded", func() bool { return e.srv.cache.anchors() == second })
	if got := hash(); got != inject.TrustRootHash(second) {
		t.Errorf("hash %s, want that of the new bundle", got)
	}
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "root-2"}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestWorkloadAnnotations(t *testing.T) {
	ctrl := true
	rs := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "api-6b8d", Namespace: "meshed", UID: "rs-uid", Annotations: map[string]string{names.AnnProxyLogLevel: "debug", names.AnnProxyCPURequest: "25m"}},
	}
	e := start(t, []runtime.Object{
		namespace("meshed", map[string]string{names.InjectAnnotation: "enabled", names.AnnProxyLogLevel: "warn"}),
		trustRoots(readFile(t, "testdata/trust-anchors.pem")),
	}, rs)
	mk := func(uid types.UID, podLevel string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "api-6b8d-", Labels: map[string]string{"pod-template-hash": "6b8d"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "api-6b8d", UID: uid, Controller: &ctrl}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		}
		if podLevel != "" {
			p.Annotations = map[string]string{names.AnnProxyLogLevel: podLevel}
		}
		return p
	}
	proxyOf := func(p *corev1.Pod) corev1.Container {
		t.Helper()
		body := podReview(t, "meshed", p, false)
		out := applyPatch(t, body, e.review(t, body))
		e.nextEvent(t)
		if out.Labels["sinew.dev/proxy-deployment"] != "api" {
			t.Errorf("labels %v", out.Labels)
		}
		return out.Spec.InitContainers[1]
	}
	c := proxyOf(mk("rs-uid", ""))
	if env1(c, "SINEW_PROXY_LOG_LEVEL") != "debug" || c.Resources.Requests.Cpu().String() != "25m" {
		t.Errorf("the workload's annotations did not apply over the namespace's: level %q, cpu %v", env1(c, "SINEW_PROXY_LOG_LEVEL"), c.Resources.Requests)
	}
	if c := proxyOf(mk("rs-uid", "error")); env1(c, "SINEW_PROXY_LOG_LEVEL") != "error" {
		t.Errorf("the pod's annotation did not win: %q", env1(c, "SINEW_PROXY_LOG_LEVEL"))
	}
	// a ReplicaSet of that name but another UID is not the owner
	if c := proxyOf(mk("other-uid", "")); env1(c, "SINEW_PROXY_LOG_LEVEL") != "warn" {
		t.Errorf("a namesake's annotations applied: %q", env1(c, "SINEW_PROXY_LOG_LEVEL"))
	}
}

// TestHTTPS goes through the real listeners: TLS with the files' certificate, and the admin endpoints.
func TestHTTPS(t *testing.T) {
	e := start(t, []runtime.Object{namespace("default", nil), trustRoots(readFile(t, "testdata/trust-anchors.pem"))})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(t, e.certFile)))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := []byte(readFile(t, "testdata/review-bare-pod-annotated.json"))
	resp, err := c.Post("https://"+e.srv.Addr()+"/inject", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || len(out.Response.Patch) == 0 {
		t.Fatalf("review over HTTPS: %v %+v", err, out.Response)
	}
	e.nextEvent(t)

	get := func(path string) (int, string) {
		r, err := http.Get("http://" + e.srv.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	testutil.Eventually(t, 5*time.Second, "/ready answers 200", func() bool { code, _ := get("/ready"); return code == 200 })
	if code, _ := get("/live"); code != 200 {
		t.Errorf("/live %d", code)
	}
	code, metrics := get("/metrics")
	if code != 200 || !strings.Contains(metrics, `proxy_inject_admission_responses_total{reason="",result="injected"} 1`) {
		t.Errorf("/metrics %d:\n%s", code, metrics)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeServingCert(t, dir)
	good := Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", CertFile: cert, KeyFile: key, Client: fake.NewClientset(), Inject: inject.DefaultConfig()}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no client", func(c *Config) { c.Client = nil }, "no Kubernetes client"},
		{"missing cert", func(c *Config) { c.CertFile = filepath.Join(dir, "nope.crt") }, "nope.crt"},
		{"cert is the key", func(c *Config) { c.CertFile = key }, "serving certificate"},
		{"bad proxy default", func(c *Config) { c.Inject.Proxy.LogLevel = "loud" }, "proxy-log-level"},
		{"bad pull policy", func(c *Config) { c.Inject.ImagePullPolicy = "Maybe" }, "image pull policy"},
		{"port taken", func(c *Config) { c.Addr = "256.0.0.1:1" }, "webhook listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			s, err := New(c)
			if err == nil {
				_ = s.lis.Close()
				_ = s.admLis.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeServingCert(t, dir)
	l := &certLoader{certFile: certFile, keyFile: keyFile}
	a, err := l.get()
	if err != nil {
		t.Fatal(err)
	}
	// a new pair with a later modification time is picked up at the next check
	writeServingCert(t, dir)
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(certFile, later, later)
	_ = os.Chtimes(keyFile, later, later)
	l.mu.Lock()
	l.checkedAt = time.Time{}
	l.mu.Unlock()
	b, err := l.get()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Error("the new certificate was not loaded")
	}
	// a broken file keeps the previous pair in service
	_ = os.WriteFile(keyFile, []byte("broken"), 0o600)
	_ = os.Chtimes(keyFile, later.Add(time.Minute), later.Add(time.Minute))
	l.mu.Lock()
	l.checkedAt = time.Time{}
	l.mu.Unlock()
	c, err := l.get()
	if err != nil || !bytes.Equal(c.Certificate[0], b.Certificate[0]) {
		t.Errorf("a broken key replaced the working pair: %v", err)
	}
}

// TestServerPortsReachTheProxy: the ports of the Servers that select the pod (in its namespace) reach its proxy,
// named ports resolved; until the Server cache has synced the proxy is not told (every port then waits for the
// control plane).
func TestServerPortsReachTheProxy(t *testing.T) {
	server := func(ns, name string, selector map[string]any, port any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "policy.sinew.dev/v1alpha1", "kind": "Server",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     map[string]any{"podSelector": map[string]any{"matchLabels": selector}, "port": port},
		}}
	}
	sch := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(sch, map[schema.GroupVersionResource]string{serversResource: "ServerList"},
		server("emojivoto", "web-http", map[string]any{"app": "web-svc"}, "http"),
		server("emojivoto", "web-admin", map[string]any{"app": "web-svc"}, int64(9990)),
		server("emojivoto", "voting", map[string]any{"app": "voting-svc"}, int64(8080)),
		server("other", "web-elsewhere", map[string]any{"app": "web-svc"}, int64(7000)),
	)
	objs := []runtime.Object{namespace("emojivoto", map[string]string{names.InjectAnnotation: "enabled"}), trustRoots(readFile(t, "testdata/trust-anchors.pem"))}
	e := startWith(t, objs, nil, func(c *Config) { c.Dynamic = dyn })
	testutil.Eventually(t, 10*time.Second, "the Server cache to sync", func() bool {
		_, known := e.srv.servers.portsFor("emojivoto", nil)
		return known
	})
	body := []byte(readFile(t, "testdata/review-deployment-pod.json"))
	pod := applyPatch(t, body, e.review(t, body))
	if got := env1(pod.Spec.InitContainers[1], "SINEW_PROXY_INBOUND_SERVER_PORTS"); got != "8080,9990" {
		t.Errorf("SINEW_PROXY_INBOUND_SERVER_PORTS=%q, want 8080,9990 (http is 8080)", got)
	}

	// Without a Server cache the proxy is not told.
	e = start(t, objs)
	pod = applyPatch(t, body, e.review(t, body))
	if got := env1(pod.Spec.InitContainers[1], "SINEW_PROXY_INBOUND_SERVER_PORTS"); got != "" {
		t.Errorf("without a Server cache: SINEW_PROXY_INBOUND_SERVER_PORTS=%q, want it unset", got)
	}
}
