package controller

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

func injectConfig(t *testing.T) inject.Config {
	t.Helper()
	pem, err := os.ReadFile("../../../inject/testdata/trust-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	c := inject.DefaultConfig()
	c.TrustAnchorsPEM, c.Tag, c.CreatedBy = string(pem), "1.2.3", "sinew/test"
	return c
}

func class(name, controller string) *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: gatewayv1.GatewayController(controller)}}
}

func newGateway(name, class string, annotations map[string]string, ports ...int32) *gatewayv1.Gateway {
	gw := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: name, UID: types.UID("uid-" + name), Generation: 2,
		Annotations: annotations}, Spec: gatewayv1.GatewaySpec{GatewayClassName: gatewayv1.ObjectName(class)}}
	for _, p := range ports {
		gw.Spec.Listeners = append(gw.Spec.Listeners, gatewayv1.Listener{Name: gatewayv1.SectionName("l" + strconv.Itoa(int(p))), Port: gatewayv1.PortNumber(p), Protocol: gatewayv1.HTTPProtocolType})
	}
	return gw
}

// toUnstructured renders a typed Gateway API object for the dynamic fake.
func toUnstructured(t *testing.T, obj any, kind string) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(gatewayv1.GroupVersion.String())
	u.SetKind(kind)
	return u
}

type env struct {
	client  *fake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	store   *model.Store
	res     model.Resources
	updates atomic.Int64 // status updates
	ctrl    *Controller
}

// reconciled waits until the controller has reconciled the model as it is now.
func (e *env) reconciled(t *testing.T) {
	t.Helper()
	v := e.store.Snapshot().Version()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("the model's version %d reconciled", v), func() bool { return e.ctrl.synced.Load() >= v })
}

// start runs a controller over a model holding classes and gateways (also in the dynamic fake, for their
// status), with existing typed objects.
func start(t *testing.T, classes []*gatewayv1.GatewayClass, gws []*gatewayv1.Gateway, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{client: fake.NewClientset(objs...), store: model.NewStore()}
	e.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gatewaysGVR: "GatewayList", gatewayClassesGVR: "GatewayClassList"})
	ctx := context.Background()
	for _, c := range classes {
		if _, err := e.dyn.Resource(gatewayClassesGVR).Create(ctx, toUnstructured(t, c, "GatewayClass"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range gws {
		if _, err := e.dyn.Resource(gatewaysGVR).Namespace(g.Namespace).Create(ctx, toUnstructured(t, g, "Gateway"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.dyn.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			e.updates.Add(1)
		}
		return false, nil, nil
	})
	e.res = model.Resources{GatewayResources: model.GatewayResources{Gateways: gws, GatewayClasses: classes}}
	e.store.Update(e.res)
	c, err := New(Config{Client: e.client, Dynamic: e.dyn, Store: e.store, Synced: func() bool { return true }, Inject: injectConfig(t),
		Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.ctrl = c
	testutil.RunInBackground(t, c.Run)
	return e
}

func (e *env) setGateways(gws ...*gatewayv1.Gateway) {
	e.res.Gateways = gws
	e.store.Update(e.res)
}

func (e *env) deployment(name string) (*appsv1.Deployment, bool) {
	d, err := e.client.AppsV1().Deployments("edge").Get(context.Background(), name, metav1.GetOptions{})
	return d, err == nil
}

func (e *env) service(name string) (*corev1.Service, bool) {
	s, err := e.client.CoreV1().Services("edge").Get(context.Background(), name, metav1.GetOptions{})
	return s, err == nil
}

func (e *env) gatewayStatus(t *testing.T, name string) gatewayv1.GatewayStatus {
	t.Helper()
	u, err := e.dyn.Resource(gatewaysGVR).Namespace("edge").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st gatewayv1.GatewayStatus
	m, _ := u.Object["status"].(map[string]any)
	if err := fromJSON(m, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// conditionIs checks a Gateway's condition; written says it must have a transition time.
func conditionIs(st gatewayv1.GatewayStatus, typ string, status metav1.ConditionStatus, reason string, written bool) bool {
	c := findCondition(st.Conditions, typ)
	return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == 2 && (!written || !c.LastTransitionTime.IsZero())
}

// A Gateway of sinew's class gets its ServiceAccount, Deployment and Service, owned by it; it is Programmed once
// a proxy is available, with the Service's address; changes reach the objects; and a Gateway that leaves the
// class loses them.
func TestControllerRunsGateways(t *testing.T) {
	t.Parallel()
	gw := newGateway("public", names.GatewayClass, map[string]string{AnnServiceType: "ClusterIP"}, 80, 443)
	e := start(t, []*gatewayv1.GatewayClass{class(names.GatewayClass, names.GatewayController), class("other", "example.com/other")},
		[]*gatewayv1.Gateway{gw, newGateway("theirs", "other", nil, 80)})
	name := names.GatewayResourceName("public")
	ctx := context.Background()

	testutil.Eventually(t, 10*time.Second, "the gateway's objects", func() bool {
		_, d := e.deployment(name)
		_, s := e.service(name)
		_, err := e.client.CoreV1().ServiceAccounts("edge").Get(ctx, name, metav1.GetOptions{})
		return d && s && err == nil
	})
	d, _ := e.deployment(name)
	if ref := metav1.GetControllerOf(d); ref == nil || ref.Kind != "Gateway" || ref.Name != "public" || ref.UID != "uid-public" {
		t.Errorf("owner %+v", ref)
	}
	if *d.Spec.Replicas != 1 || d.Spec.Template.Spec.ServiceAccountName != name || d.Spec.Template.Spec.Containers[0].Name != names.ProxyContainer {
		t.Errorf("deployment %+v", d.Spec)
	}
	svc, _ := e.service(name)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[1].TargetPort.IntVal != 443 {
		t.Errorf("service %+v", svc.Spec)
	}
	if _, ok := e.deployment(names.GatewayResourceName("theirs")); ok {
		t.Error("another class's Gateway got objects")
	}
	testutil.Eventually(t, 10*time.Second, "Accepted, not yet Programmed", func() bool {
		st := e.gatewayStatus(t, "public")
		return conditionIs(st, "Accepted", metav1.ConditionTrue, "Accepted", true) && conditionIs(st, "Programmed", metav1.ConditionFalse, "Pending", true)
	})
	u, _ := e.dyn.Resource(gatewayClassesGVR).Get(ctx, names.GatewayClass, metav1.GetOptions{})
	if conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions"); len(conds) != 2 || conds[0].(map[string]any)["status"] != "True" {
		t.Errorf("class status %v", u.Object["status"])
	}
	if u, _ := e.dyn.Resource(gatewayClassesGVR).Get(ctx, "other", metav1.GetOptions{}); u.Object["status"] != nil {
		t.Errorf("another controller's class got a status: %v", u.Object["status"])
	}

	// The proxies become available and the Service has its address.
	d.Status.AvailableReplicas = 1
	if _, err := e.client.AppsV1().Deployments("edge").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	if _, err := e.client.CoreV1().Services("edge").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "Programmed with the address", func() bool {
		st := e.gatewayStatus(t, "public")
		return conditionIs(st, "Programmed", metav1.ConditionTrue, "Programmed", true) && len(st.Addresses) == 1 && st.Addresses[0].Value == "10.96.0.10"
	})
	if st := e.gatewayStatus(t, "public"); len(st.Listeners) != 2 || findCondition(st.Listeners[1].Conditions, "Programmed").Status != metav1.ConditionTrue {
		t.Errorf("listeners %+v", st.Listeners)
	}

	// Nothing changes: nothing is written.
	e.reconciled(t)
	before := e.updates.Load()
	e.setGateways(gw, newGateway("theirs", "other", nil, 80))
	e.reconciled(t)
	if n := e.updates.Load() - before; n != 0 {
		t.Errorf("%d status writes without a change", n)
	}

	// More replicas and a NodePort Service; the cluster IP stays.
	gw2 := gw.DeepCopy()
	gw2.Annotations = map[string]string{AnnReplicas: "3"}
	gw2.Spec.Infrastructure = &gatewayv1.GatewayInfrastructure{Annotations: map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{AnnServiceType: "NodePort"},
		Labels: map[gatewayv1.LabelKey]gatewayv1.LabelValue{"team": "edge"}}
	e.setGateways(gw2)
	testutil.Eventually(t, 10*time.Second, "the new replicas and Service type", func() bool {
		d, _ := e.deployment(name)
		s, _ := e.service(name)
		return *d.Spec.Replicas == 3 && d.Labels["team"] == "edge" && d.Spec.Template.Labels["team"] == "edge" &&
			s.Spec.Type == corev1.ServiceTypeNodePort && s.Spec.ClusterIP == "10.96.0.10"
	})

	// The Gateway leaves sinew's class: its objects go.
	gw3 := gw2.DeepCopy()
	gw3.Spec.GatewayClassName = "other"
	e.setGateways(gw3)
	testutil.Eventually(t, 10*time.Second, "the objects gone", func() bool {
		_, d := e.deployment(name)
		_, s := e.service(name)
		_, err := e.client.CoreV1().ServiceAccounts("edge").Get(ctx, name, metav1.GetOptions{})
		return !d && !s && apierrors.IsNotFound(err)
	})
}

// A Gateway with a bad parameter is not accepted and keeps what it runs on; one whose objects' name is taken
// is not programmed, and the other object is left alone.
func TestControllerRefuses(t *testing.T) {
	t.Parallel()
	taken := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: names.GatewayResourceName("taken"),
		Labels: map[string]string{names.GatewayLabel: "taken"}}}
	e := start(t, []*gatewayv1.GatewayClass{class(names.GatewayClass, names.GatewayController)},
		[]*gatewayv1.Gateway{newGateway("bad", names.GatewayClass, map[string]string{AnnReplicas: "many"}, 80), newGateway("taken", names.GatewayClass, nil, 80),
			newGateway("ok", names.GatewayClass, nil, 80)}, taken)

	testutil.Eventually(t, 10*time.Second, "statuses", func() bool {
		bad, tk := e.gatewayStatus(t, "bad"), e.gatewayStatus(t, "taken")
		return conditionIs(bad, "Accepted", metav1.ConditionFalse, "InvalidParameters", true) && conditionIs(bad, "Programmed", metav1.ConditionFalse, "Invalid", true) &&
			conditionIs(tk, "Accepted", metav1.ConditionTrue, "Accepted", true) && conditionIs(tk, "Programmed", metav1.ConditionFalse, "Invalid", true)
	})
	if _, ok := e.deployment(names.GatewayResourceName("bad")); ok {
		t.Error("a Gateway that is not accepted got a Deployment")
	}
	if d, _ := e.deployment(names.GatewayResourceName("taken")); len(d.Annotations) != 0 || d.OwnerReferences != nil {
		t.Errorf("someone else's Deployment was changed: %+v", d.ObjectMeta)
	}
	// The ok Gateway is programmed once its Deployment is available: a LoadBalancer Service without an address
	// says so.
	testutil.Eventually(t, 10*time.Second, "the ok Gateway's Deployment", func() bool { _, ok := e.deployment(names.GatewayResourceName("ok")); return ok })
	d, _ := e.deployment(names.GatewayResourceName("ok"))
	d.Status.AvailableReplicas = 1
	if _, err := e.client.AppsV1().Deployments("edge").UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "no address yet", func() bool {
		return conditionIs(e.gatewayStatus(t, "ok"), "Programmed", metav1.ConditionFalse, "AddressNotAssigned", true)
	})

	// The bad Gateway, once running, keeps its objects through a bad edit.
	good := newGateway("bad", names.GatewayClass, map[string]string{AnnReplicas: "2"}, 80)
	e.setGateways(good)
	testutil.Eventually(t, 10*time.Second, "the fixed Gateway's Deployment", func() bool { _, ok := e.deployment(names.GatewayResourceName("bad")); return ok })
	e.setGateways(newGateway("bad", names.GatewayClass, map[string]string{AnnServiceType: "Magic"}, 80))
	testutil.Eventually(t, 10*time.Second, "not accepted again", func() bool {
		return conditionIs(e.gatewayStatus(t, "bad"), "Accepted", metav1.ConditionFalse, "InvalidParameters", true)
	})
	if d, ok := e.deployment(names.GatewayResourceName("bad")); !ok || *d.Spec.Replicas != 2 {
		t.Error("the Deployment of a Gateway that is no longer accepted was changed")
	}
}

// Run stops its informers: no goroutines are left behind. Not parallel, so the count is this test's.
func TestControllerStopsCleanly(t *testing.T) {
	before := goruntime.NumGoroutine()
	store := model.NewStore()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gatewaysGVR: "GatewayList", gatewayClassesGVR: "GatewayClassList"})
	c, err := New(Config{Client: fake.NewClientset(), Dynamic: dyn, Store: store, Inject: injectConfig(t), Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	gc := class(names.GatewayClass, names.GatewayController)
	if _, err := dyn.Resource(gatewayClassesGVR).Create(ctx, toUnstructured(t, gc, "GatewayClass"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store.Update(model.Resources{GatewayResources: model.GatewayResources{GatewayClasses: []*gatewayv1.GatewayClass{gc}}})
	testutil.Eventually(t, 10*time.Second, "a sync", func() bool {
		u, err := dyn.Resource(gatewayClassesGVR).Get(ctx, gc.Name, metav1.GetOptions{})
		return err == nil && u.Object["status"] != nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "goroutines to end", func() bool { return goruntime.NumGoroutine() <= before })
}
