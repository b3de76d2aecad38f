package kube

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sinewmesh/sinew/controlplane/internal/destination"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

// countingStore is the sink: a real store, plus how many updates it got.
type countingStore struct {
	*model.Store
	n atomic.Int64
}

func (c *countingStore) Update(r model.Resources) { c.n.Add(1); c.Store.Update(r) }

// start runs a source against a fake API server holding objs; the returned stop waits for Run to return.
func start(t *testing.T, debounce time.Duration, objs ...any) (*fake.Clientset, *Source, *countingStore) {
	t.Helper()
	client := fake.NewClientset()
	ctx := context.Background()
	for _, o := range objs {
		create(t, client, o)
	}
	src, err := New(Config{Client: client, Debounce: debounce})
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: model.NewStore()}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, store) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.Eventually(t, 10*time.Second, "informers to sync", src.Synced)
	return client, src, store
}

func create(t *testing.T, client *fake.Clientset, o any) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch o := o.(type) {
	case *corev1.Namespace:
		_, err = client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Pod:
		_, err = client.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ServiceAccount:
		_, err = client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("create %T", o)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func resolve(store *countingStore, path string) destination.Resolution {
	target, _ := destination.ParseTarget(path, "cluster.local")
	return destination.Resolve(store.Snapshot(), target, "cluster.local")
}

func addrs(r destination.Resolution) map[string]bool {
	out := map[string]bool{}
	for a := range r.Endpoints {
		out[a] = true
	}
	return out
}

func sameSet(got map[string]bool, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

// From Kubernetes objects through the model to what a proxy would be told, and how it follows changes.
func TestSourceFollowsTheCluster(t *testing.T) {
	t.Parallel()
	ready, notReady := ptr(true), ptr(false)
	client, _, store := start(t, 10*time.Millisecond,
		ns("emojivoto", nil),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "emojivoto", Name: "web"}},
		pod("emojivoto", "web-1", "10.0.0.1", withSidecar),
		pod("emojivoto", "web-2", "10.0.0.2"),
		pod("emojivoto", "web-3", "10.0.0.3", withNativeSidecar(4143)),
		service(),
		slice("web-svc-a", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080},
			endpoint("10.0.0.1", "web-1", ready), endpoint("10.0.0.2", "web-2", ready), endpoint("10.0.0.3", "web-3", notReady)),
	)
	ctx := context.Background()

	byName := resolve(store, "web-svc.emojivoto.svc.cluster.local:80")
	if !sameSet(addrs(byName), "10.0.0.1:4143", "10.0.0.2:8080") {
		t.Fatalf("by name: %v", addrs(byName))
	}
	if id := byName.Endpoints["10.0.0.1:4143"].GetTlsIdentity().GetSpiffeId(); id != "spiffe://cluster.local/ns/emojivoto/sa/web" {
		t.Errorf("identity %q", id)
	}
	for _, ip := range []string{"10.96.0.20:80", "[fd00:96::20]:80"} {
		if got := resolve(store, ip); len(destination.Diff(byName, got)) != 0 {
			t.Errorf("ClusterIP %s resolves unlike the name: %v", ip, addrs(got))
		}
	}
	if !store.Snapshot().ServiceAccount("emojivoto", "web") {
		t.Error("service account missing from the model")
	}

	// The not-ready pod becomes ready.
	es, _ := client.DiscoveryV1().EndpointSlices("emojivoto").Get(ctx, "web-svc-a", metav1.GetOptions{})
	es.Endpoints[2].Conditions.Ready = ready
	if _, err := client.DiscoveryV1().EndpointSlices("emojivoto").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "web-3 to become an endpoint", func() bool {
		return sameSet(addrs(resolve(store, "web-svc.emojivoto.svc.cluster.local:80")), "10.0.0.1:4143", "10.0.0.2:8080", "10.0.0.3:4143")
	})

	// A second slice with another version whose named port is 9090; a pod the informer has not seen yet is
	// left out until it appears.
	create(t, client, slice("web-svc-b", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 9090}, endpoint("10.0.0.4", "web-4", ready)))
	testutil.Eventually(t, 10*time.Second, "the second slice in the model", func() bool {
		svc, ok := store.Snapshot().Service("emojivoto", "web-svc")
		return ok && len(svc.Endpoints) == 4
	})
	if r := resolve(store, "web-svc.emojivoto.svc.cluster.local:80"); len(r.Endpoints) != 3 {
		t.Errorf("an endpoint of an unknown pod was resolved: %v", addrs(r))
	}
	create(t, client, pod("emojivoto", "web-4", "10.0.0.4", withSidecar, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports[0].ContainerPort = 9090
	}))
	testutil.Eventually(t, 10*time.Second, "web-4 on 9090", func() bool {
		r := resolve(store, "web-svc.emojivoto.svc.cluster.local:80")
		return r.Endpoints["10.0.0.4:4143"].GetTargetPort() == 9090 && len(r.Endpoints) == 4
	})

	// Opaque by namespace annotation: the workload port turns opaque, and so does the hint.
	nsObj, _ := client.CoreV1().Namespaces().Get(ctx, "emojivoto", metav1.GetOptions{})
	nsObj.Annotations = map[string]string{names.AnnOpaquePorts: "8080"}
	if _, err := client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "namespace opaque ports", func() bool {
		r := resolve(store, "web-svc.emojivoto.svc.cluster.local:80")
		return r.Endpoints["10.0.0.1:4143"].GetProtocolHint().GetOpaque() != nil && r.Endpoints["10.0.0.4:4143"].GetProtocolHint().GetH2() != nil
	})

	// Pod deleted (its slice entry lingers briefly in real clusters): gone from the endpoints anyway.
	if err := client.CoreV1().Pods("emojivoto").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "web-1 to go", func() bool {
		_, ok := resolve(store, "web-svc.emojivoto.svc.cluster.local:80").Endpoints["10.0.0.1:4143"]
		_, isWorkload := store.Snapshot().Workload("emojivoto", "web-1")
		return !ok && !isWorkload
	})

	// Service deleted: the name and the ClusterIP are unknown again.
	if err := client.CoreV1().Services("emojivoto").Delete(ctx, "web-svc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the service to go", func() bool {
		return !resolve(store, "web-svc.emojivoto.svc.cluster.local:80").Exists && !resolve(store, "10.96.0.20:80").Exists
	})
	// The pod IP still resolves, to the pod, on any port (pod ports are informational).
	if r := resolve(store, "10.0.0.4:7777"); r.Endpoints["10.0.0.4:4143"].GetTargetPort() != 7777 {
		t.Errorf("pod ip:port: %v", addrs(r))
	}
}

// A burst of changes becomes a few model updates, not one per event.
func TestSourceCoalescesBursts(t *testing.T) {
	t.Parallel()
	client, _, store := start(t, 500*time.Millisecond, ns("burst", nil))
	base := store.n.Load()
	const n = 200
	for i := range n {
		create(t, client, pod("burst", fmt.Sprintf("p-%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)))
	}
	testutil.Eventually(t, 10*time.Second, "all pods in the model", func() bool {
		for i := range n {
			if _, ok := store.Snapshot().Workload("burst", fmt.Sprintf("p-%d", i)); !ok {
				return false
			}
		}
		return true
	})
	if updates := store.n.Load() - base; updates > 10 {
		t.Errorf("%d pods took %d model updates; bursts should coalesce", n, updates)
	}
	// Events that change nothing the model holds publish nothing.
	before := store.n.Load()
	p, _ := client.CoreV1().Pods("burst").Get(context.Background(), "p-0", metav1.GetOptions{})
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	if _, err := client.CoreV1().Pods("burst").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	create(t, client, pod("burst", "marker", "10.9.9.9"))
	testutil.Eventually(t, 10*time.Second, "the marker pod", func() bool { _, ok := store.Snapshot().Workload("burst", "marker"); return ok })
	if got := store.n.Load() - before; got != 1 {
		t.Errorf("a status-only change plus one new pod gave %d updates, want 1", got)
	}
}

// Problems with objects are reported in the model and cleared when fixed.
func TestSourceReportsProblems(t *testing.T) {
	t.Parallel()
	client, _, store := start(t, 10*time.Millisecond, ns("x", nil), pod("x", "db", "10.0.0.1", annotate(names.AnnOpaquePorts, "nope")))
	errs := store.Snapshot().Errors()
	if len(errs) != 1 || errs[0].Source != "pod x/db" {
		t.Fatalf("errors %+v", errs)
	}
	p, _ := client.CoreV1().Pods("x").Get(context.Background(), "db", metav1.GetOptions{})
	p.Annotations[names.AnnOpaquePorts] = "3306"
	if _, err := client.CoreV1().Pods("x").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the problem to clear", func() bool {
		w, ok := store.Snapshot().Workload("x", "db")
		return len(store.Snapshot().Errors()) == 0 && ok && w.Opaque(3306) && !w.Opaque(25)
	})
	if w, _ := store.Snapshot().Workload("x", "db"); w.Address != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("workload %+v", w)
	}
}

// Run stops its informers: no goroutines are left behind. Not parallel, so the count is this test's.
func TestSourceStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	client := fake.NewClientset(ns("a", nil), pod("a", "p", "10.0.0.1"))
	src, err := New(Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, model.NewStore()) }()
	testutil.Eventually(t, 10*time.Second, "sync", src.Synced)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), model.NewStore()); err == nil {
		t.Error("a second Run was accepted")
	}
	testutil.Eventually(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
