package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

var (
	gatewaysGVR        = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: ResourceGateways}
	gatewayClassesGVR  = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: ResourceGatewayClasses}
	referenceGrantsGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: ResourceReferenceGrants}
)

func gatewayClassObject(name, controller string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": KindGatewayClass,
		"metadata": map[string]any{"name": name, "generation": int64(1)},
		"spec":     map[string]any{"controllerName": controller},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Accepted", "status": "Unknown"}}},
	}}
}

func gatewayObject(namespace, name, class string, secrets ...string) *unstructured.Unstructured {
	listeners := []any{map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"}}
	for _, s := range secrets {
		listeners = append(listeners, map[string]any{"name": "https-" + s, "port": int64(443), "protocol": "HTTPS", "hostname": s + ".example.com",
			"tls": map[string]any{"mode": "Terminate", "certificateRefs": []any{map[string]any{"name": s}}}})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": KindGateway,
		"metadata": map[string]any{"namespace": namespace, "name": name, "generation": int64(3)},
		"spec":     map[string]any{"gatewayClassName": class, "listeners": listeners},
		"status":   map[string]any{"addresses": []any{map[string]any{"value": "10.0.0.1"}}},
	}}
}

// badGateway has a listener name the CRD would refuse.
func badGateway() *unstructured.Unstructured {
	u := gatewayObject("edge", "bad", names.GatewayClass)
	u.Object["spec"].(map[string]any)["listeners"].([]any)[0].(map[string]any)["name"] = "Not_A_Name"
	return u
}

func referenceGrantObject(namespace, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": KindReferenceGrant,
		"metadata": map[string]any{"namespace": namespace, "name": name},
		"spec": map[string]any{
			"from": []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge"}},
			"to":   []any{map[string]any{"group": "", "kind": "Secret"}},
		},
	}}
}

func tlsSecret(namespace, name string, typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
		Type: typ, Data: map[string][]byte{corev1.TLSCertKey: []byte("chain of " + name), corev1.TLSPrivateKeyKey: []byte("key of " + name), "other": []byte("x")}}
}

// startGatewaySource runs a source whose API server serves the Gateway API's gateway kinds (and no policy kinds).
func startGatewaySource(t *testing.T, secrets []*corev1.Secret, objs ...*unstructured.Unstructured) (*fake.Clientset, *dynamicfake.FakeDynamicClient, *Source, *countingStore) {
	t.Helper()
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edge", Labels: map[string]string{"team": "edge"}}})
	for _, s := range secrets {
		if _, err := client.CoreV1().Secrets(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client.Resources = []*metav1.APIResourceList{
		{GroupVersion: "gateway.networking.k8s.io/v1", APIResources: []metav1.APIResource{
			{Name: ResourceGateways, Kind: KindGateway, Namespaced: true}, {Name: ResourceGatewayClasses, Kind: KindGatewayClass}}},
		{GroupVersion: "gateway.networking.k8s.io/v1beta1", APIResources: []metav1.APIResource{
			{Name: ResourceReferenceGrants, Kind: KindReferenceGrant, Namespaced: true}}},
	}
	listKinds := map[schema.GroupVersionResource]string{gatewaysGVR: "GatewayList", gatewayClassesGVR: "GatewayClassList",
		referenceGrantsGVR: "ReferenceGrantList", httpRoutesGVR: "HTTPRouteList", grpcRoutesGVR: "GRPCRouteList"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	// Created by resource: the fake's tracker would guess "gatewaies" from the kind.
	for _, o := range objs {
		r := map[string]schema.GroupVersionResource{KindGateway: gatewaysGVR, KindGatewayClass: gatewayClassesGVR, KindReferenceGrant: referenceGrantsGVR}[o.GetKind()]
		if _, err := dyn.Resource(r).Namespace(o.GetNamespace()).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src, err := New(Config{Client: client, Dynamic: dyn, Debounce: 10 * time.Millisecond, CRDRecheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: model.NewStore()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, store) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.Eventually(t, 10*time.Second, "informers to sync", src.Synced)
	return client, dyn, src, store
}

// Gateways, GatewayClasses and ReferenceGrants are read without their status; the TLS Secrets that listeners of
// sinew's Gateways reference are read (only tls.crt and tls.key), others are not kept; namespaces come with their
// labels; and changes are followed.
func TestSourceReadsGateways(t *testing.T) {
	t.Parallel()
	client, dyn, _, store := startGatewaySource(t,
		[]*corev1.Secret{tlsSecret("edge", "shop", corev1.SecretTypeTLS), tlsSecret("edge", "unreferenced", corev1.SecretTypeTLS),
			tlsSecret("other", "theirs", corev1.SecretTypeTLS)},
		gatewayClassObject(names.GatewayClass, names.GatewayController), gatewayClassObject("other", "example.com/other"),
		gatewayObject("edge", "public", names.GatewayClass, "shop", "missing"),
		gatewayObject("other", "theirs", "other", "theirs"),
		referenceGrantObject("edge", "certs"), badGateway())

	snap := store.Snapshot()
	if errs := snap.Errors(); len(errs) != 1 || errs[0].Source != "gateway edge/bad" || !strings.Contains(errs[0].Message, "spec.listeners[0].name") {
		t.Errorf("problems %+v", errs)
	}
	if gws := snap.Gateways(); len(gws) != 2 || gws[0].Name != "public" || gws[0].Generation != 3 || len(gws[0].Status.Addresses) != 0 ||
		len(gws[0].Spec.Listeners) != 3 {
		t.Fatalf("gateways %+v", gws)
	}
	if c, ok := snap.GatewayClass(names.GatewayClass); !ok || string(c.Spec.ControllerName) != names.GatewayController || len(c.Status.Conditions) != 0 {
		t.Fatalf("class %+v", c)
	}
	if g := snap.ReferenceGrants(); len(g) != 1 || g[0].Name != "certs" || string(g[0].Spec.To[0].Kind) != "Secret" {
		t.Fatalf("grants %+v", g)
	}
	secs := snap.TLSSecrets()
	if len(secs) != 1 || secs[0].Key() != "edge/shop" || string(secs[0].Chain) != "chain of shop" || string(secs[0].PrivateKey) != "key of shop" {
		t.Fatalf("secrets %v", secs)
	}
	if l := snap.NamespaceLabels("edge"); l["team"] != "edge" {
		t.Fatalf("namespace labels %v", l)
	}

	// The missing Secret appears; a Secret of another type with the same name would not count.
	ctx := context.Background()
	if _, err := client.CoreV1().Secrets("edge").Create(ctx, tlsSecret("edge", "missing", corev1.SecretTypeTLS), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the new Secret", func() bool { return len(store.Snapshot().TLSSecrets()) == 2 })
	// A status update alone changes nothing in the model.
	before := store.n.Load()
	gw := gatewayObject("edge", "public", names.GatewayClass, "shop", "missing")
	gw.Object["status"] = map[string]any{"addresses": []any{map[string]any{"value": "10.0.0.2"}}}
	if _, err := dyn.Resource(gatewaysGVR).Namespace("edge").UpdateStatus(ctx, gw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Gateway leaves the class: its Secrets are no longer kept.
	gw = gatewayObject("edge", "public", "other", "shop", "missing")
	if _, err := dyn.Resource(gatewaysGVR).Namespace("edge").Update(ctx, gw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "no Secrets", func() bool { return len(store.Snapshot().TLSSecrets()) == 0 })
	if n := store.n.Load() - before; n != 1 {
		t.Errorf("%d model updates, want 1 (the status update changes nothing)", n)
	}
	// Namespace labels follow.
	nsObj, _ := client.CoreV1().Namespaces().Get(ctx, "edge", metav1.GetOptions{})
	nsObj.Labels["team"] = "platform"
	if _, err := client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the new label", func() bool { return store.Snapshot().NamespaceLabels("edge")["team"] == "platform" })
}

// The informer keeps nothing of a Secret but its name, type and the two keys.
func TestSecretTransform(t *testing.T) {
	t.Parallel()
	_, _, src, _ := startGatewaySource(t, []*corev1.Secret{tlsSecret("edge", "shop", corev1.SecretTypeTLS)})
	sec, err := src.secrets.Secrets("edge").Get("shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Annotations) != 0 || len(sec.Data) != 2 || sec.Type != corev1.SecretTypeTLS {
		t.Errorf("kept %+v", sec)
	}
}
