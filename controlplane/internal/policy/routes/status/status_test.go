package status

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

var gvr = schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: api.ResourceHTTPRoutes}

const routeYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: shop, generation: 2}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v1, port: 80, weight: 9}, {name: web-v2, port: 80}]}]
status:
  parents:
  - parentRef: {name: gw}
    controllerName: example.com/gateway
    conditions: [{type: Accepted, status: "True", reason: Accepted, message: "", lastTransitionTime: "2025-01-01T00:00:00Z"}]
`

func services(names ...string) []*model.Service {
	var out []*model.Service
	for _, n := range names {
		out = append(out, &model.Service{Namespace: "shop", Name: n, Ports: []model.ServicePort{{Port: 80}}})
	}
	return out
}

// statusOf reads the route's status from the fake API server.
func statusOf(t *testing.T, dyn *dynamicfake.FakeDynamicClient) gatewayv1.HTTPRouteStatus {
	t.Helper()
	u, err := dyn.Resource(gvr).Namespace("shop").Get(context.Background(), "split", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st gatewayv1.HTTPRouteStatus
	b, _ := json.Marshal(u.Object["status"])
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func condition(st gatewayv1.HTTPRouteStatus, controller gatewayv1.GatewayController, typ string) *metav1.Condition {
	for _, p := range st.Parents {
		if p.ControllerName != controller {
			continue
		}
		for i := range p.Conditions {
			if p.Conditions[i].Type == typ {
				return &p.Conditions[i]
			}
		}
	}
	return nil
}

// The writer waits for the model to sync, then writes Accepted and ResolvedRefs for the Service parent next to
// another controller's entry; when a backend goes missing ResolvedRefs turns False (BackendNotFound) with a new
// transition time, while Accepted keeps its own.
func TestWriterWritesRouteStatus(t *testing.T) {
	t.Parallel()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(routeYAML), &obj.Object); err != nil {
		t.Fatal(err)
	}
	var rt api.HTTPRoute
	if err := yaml.Unmarshal([]byte(routeYAML), &rt); err != nil {
		t.Fatal(err)
	}
	rt.Status = gatewayv1.HTTPRouteStatus{}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "HTTPRouteList"}, obj)

	store := model.NewStore()
	store.Update(model.Resources{Services: services("web", "web-v1", "web-v2"), HTTPRoutes: []*api.HTTPRoute{&rt}})
	var (
		synced atomic.Bool
		asked  atomic.Int32 // how often the writer asked whether the model synced
		clock  atomic.Int64
	)
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	w := New(Config{Client: dyn, Store: store, Synced: func() bool { asked.Add(1); return synced.Load() }, Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond,
		Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	testutil.RunInBackground(t, w.Run)

	// Not synced: the writer keeps asking, and writes nothing.
	testutil.Eventually(t, 10*time.Second, "the writer waiting for the sync", func() bool { return asked.Load() >= 3 })
	if c := condition(statusOf(t, dyn), routes.ControllerName, "Accepted"); c != nil {
		t.Fatalf("status written before the model synced: %+v", c)
	}
	synced.Store(true)
	testutil.Eventually(t, 10*time.Second, "status written", func() bool {
		c := condition(statusOf(t, dyn), routes.ControllerName, "ResolvedRefs")
		return c != nil && c.Status == metav1.ConditionTrue
	})
	st := statusOf(t, dyn)
	accepted := condition(st, routes.ControllerName, "Accepted")
	if accepted.Status != metav1.ConditionTrue || accepted.Reason != "Accepted" || accepted.ObservedGeneration != 2 ||
		!accepted.LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(clock.Load(), 0)}) {
		t.Errorf("Accepted %+v", accepted)
	}
	if other := condition(st, "example.com/gateway", "Accepted"); other == nil || other.LastTransitionTime.Year() != 2025 {
		t.Errorf("the other controller's entry: %+v", st.Parents)
	}

	clock.Add(60)
	store.Update(model.Resources{Services: services("web", "web-v1"), HTTPRoutes: []*api.HTTPRoute{&rt}})
	testutil.Eventually(t, 10*time.Second, "ResolvedRefs False", func() bool {
		c := condition(statusOf(t, dyn), routes.ControllerName, "ResolvedRefs")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "BackendNotFound"
	})
	st = statusOf(t, dyn)
	if c := condition(st, routes.ControllerName, "ResolvedRefs"); !c.LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(clock.Load(), 0)}) {
		t.Errorf("ResolvedRefs transition time %v, want the change's", c.LastTransitionTime)
	}
	if c := condition(st, routes.ControllerName, "Accepted"); !c.LastTransitionTime.Equal(&accepted.LastTransitionTime) {
		t.Errorf("Accepted transition time moved: %v, was %v", c.LastTransitionTime, accepted.LastTransitionTime)
	}
	if len(st.Parents) != 2 {
		t.Errorf("parents %+v", st.Parents)
	}
}

var grpcGVR = schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: api.ResourceGRPCRoutes}

// A GRPCRoute's status is written to grpcroutes/status like an HTTPRoute's; one that shares its Service port
// with an older HTTPRoute of the same name is not Accepted (RouteReasonConflicted), and the HTTPRoute is.
func TestWriterWritesGRPCRouteStatus(t *testing.T) {
	t.Parallel()
	const grpcYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: split, namespace: shop, generation: 1, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v3, port: 80}]}]
`
	objs := []runtime.Object{}
	for _, doc := range []string{routeYAML, grpcYAML} {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	var hr api.HTTPRoute
	var gr api.GRPCRoute
	if err := yaml.Unmarshal([]byte(routeYAML), &hr); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(grpcYAML), &gr); err != nil {
		t.Fatal(err)
	}
	hr.Status = gatewayv1.HTTPRouteStatus{}
	hr.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "HTTPRouteList", grpcGVR: "GRPCRouteList"}, objs...)
	store := model.NewStore()
	store.Update(model.Resources{Services: services("web", "web-v1", "web-v2"), HTTPRoutes: []*api.HTTPRoute{&hr}, GRPCRoutes: []*api.GRPCRoute{&gr}})
	w := New(Config{Client: dyn, Store: store, Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond})
	testutil.RunInBackground(t, w.Run)

	grpcStatus := func() gatewayv1.HTTPRouteStatus {
		u, err := dyn.Resource(grpcGVR).Namespace("shop").Get(context.Background(), "split", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var st gatewayv1.HTTPRouteStatus // the same shape as GRPCRouteStatus
		b, _ := json.Marshal(u.Object["status"])
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	testutil.Eventually(t, 10*time.Second, "the GRPCRoute's status", func() bool {
		a, r := condition(grpcStatus(), routes.ControllerName, "Accepted"), condition(grpcStatus(), routes.ControllerName, "ResolvedRefs")
		return a != nil && a.Status == metav1.ConditionFalse && a.Reason == string(routes.ReasonConflicted) &&
			r != nil && r.Reason == "BackendNotFound" && r.Message == "spec.rules[0].backendRefs[0]: Service web-v3 does not exist; requests for these backends get gRPC UNAVAILABLE"
	})
	testutil.Eventually(t, 10*time.Second, "the HTTPRoute's status", func() bool {
		a := condition(statusOf(t, dyn), routes.ControllerName, "Accepted")
		return a != nil && a.Status == metav1.ConditionTrue
	})
}

// With GatewayParents, the writer also writes the entries of sinew's Gateway parents under the gateway
// controller's name, replacing its stale ones and keeping another implementation's.
func TestWriterWritesGatewayParents(t *testing.T) {
	t.Parallel()
	const gwRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: shop, generation: 4}
spec:
  parentRefs: [{name: public}, {name: theirs}]
  rules: [{backendRefs: [{name: web-v1, port: 80}]}]
status:
  parents:
  - parentRef: {name: theirs}
    controllerName: example.com/gateway
    conditions: [{type: Accepted, status: "True", reason: Accepted, message: "", lastTransitionTime: "2025-01-01T00:00:00Z"}]
  - parentRef: {name: gone}
    controllerName: sinew.dev/gateway-controller
    conditions: [{type: Accepted, status: "True", reason: Accepted, message: "", lastTransitionTime: "2025-01-01T00:00:00Z"}]
`
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(gwRouteYAML), &obj.Object); err != nil {
		t.Fatal(err)
	}
	var rt api.HTTPRoute
	if err := yaml.Unmarshal([]byte(gwRouteYAML), &rt); err != nil {
		t.Fatal(err)
	}
	rt.Status = gatewayv1.HTTPRouteStatus{}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "HTTPRouteList"}, obj)
	store := model.NewStore()
	store.Update(model.Resources{Services: services("web-v1"), HTTPRoutes: []*api.HTTPRoute{&rt}})
	gatewayParents := func(_ *model.Snapshot, r *api.Route) []gatewayv1.RouteParentStatus {
		return []gatewayv1.RouteParentStatus{{ParentRef: r.ParentRefs[0], ControllerName: names.GatewayController,
			Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: r.Generation}}}}
	}
	w := New(Config{Client: dyn, Store: store, GatewayParents: gatewayParents, Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond})
	testutil.RunInBackground(t, w.Run)
	testutil.Eventually(t, 10*time.Second, "the Gateway parent's status", func() bool {
		c := condition(statusOf(t, dyn), names.GatewayController, "Accepted")
		return c != nil && c.ObservedGeneration == 4
	})
	st := statusOf(t, dyn)
	var got []string
	for _, p := range st.Parents {
		got = append(got, string(p.ControllerName)+" "+string(p.ParentRef.Name))
	}
	if want := []string{"example.com/gateway theirs", names.GatewayController + " public"}; !slices.Equal(got, want) {
		t.Errorf("parents %v, want %v", got, want)
	}
}

// When the writer's last entry goes (the parent is no longer one of ours), it writes an empty list: the CRDs
// require status.parents, and refuse null.
func TestWriterRemovesItsLastEntry(t *testing.T) {
	t.Parallel()
	const doc = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: shop, generation: 1}
spec:
  parentRefs: [{name: public}]
  rules: [{backendRefs: [{name: web-v1, port: 80}]}]
status:
  parents:
  - parentRef: {name: public}
    controllerName: sinew.dev/gateway-controller
    conditions: [{type: Accepted, status: "True", reason: Accepted, message: "", lastTransitionTime: "2025-01-01T00:00:00Z"}]
`
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatal(err)
	}
	var rt api.HTTPRoute
	if err := yaml.Unmarshal([]byte(doc), &rt); err != nil {
		t.Fatal(err)
	}
	rt.Status = gatewayv1.HTTPRouteStatus{}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "HTTPRouteList"}, obj)
	store := model.NewStore()
	store.Update(model.Resources{Services: services("web-v1"), HTTPRoutes: []*api.HTTPRoute{&rt}})
	none := func(*model.Snapshot, *api.Route) []gatewayv1.RouteParentStatus { return nil }
	w := New(Config{Client: dyn, Store: store, GatewayParents: none, Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond})
	testutil.RunInBackground(t, w.Run)
	testutil.Eventually(t, 10*time.Second, "an empty list of parents", func() bool {
		u, err := dyn.Resource(gvr).Namespace("shop").Get(context.Background(), "split", metav1.GetOptions{})
		if err != nil {
			return false
		}
		parents, found, _ := unstructured.NestedSlice(u.Object, "status", "parents")
		return found && parents != nil && len(parents) == 0
	})
}

// A route deleted and created again under the same name, at the same generation and with the same parents (the
// Gateway API conformance tests do that from one test to the next, faster than the model notices the gap), has
// no status yet: the writer writes it, although what it computes is what it wrote for the old one.
func TestWriterWritesARecreatedRoute(t *testing.T) {
	t.Parallel()
	const doc = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: shop, generation: 1, uid: first}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v1, port: 80}]}]
`
	decode := func(uid string) (*unstructured.Unstructured, *api.HTTPRoute) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		obj.SetUID(types.UID(uid))
		var rt api.HTTPRoute
		if err := yaml.Unmarshal([]byte(doc), &rt); err != nil {
			t.Fatal(err)
		}
		rt.UID = types.UID(uid)
		return obj, &rt
	}
	obj, rt := decode("first")
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "HTTPRouteList"}, obj)
	store := model.NewStore()
	store.Update(model.Resources{Services: services("web", "web-v1"), HTTPRoutes: []*api.HTTPRoute{rt}})
	w := New(Config{Client: dyn, Store: store, Debounce: 5 * time.Millisecond, Retry: 20 * time.Millisecond})
	testutil.RunInBackground(t, w.Run)
	accepted := func() bool {
		c := condition(statusOf(t, dyn), routes.ControllerName, "Accepted")
		return c != nil && c.Status == metav1.ConditionTrue
	}
	testutil.Eventually(t, 10*time.Second, "the first route's status", accepted)

	ctx := context.Background()
	if err := dyn.Resource(gvr).Namespace("shop").Delete(ctx, "split", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, rt = decode("second")
	if _, err := dyn.Resource(gvr).Namespace("shop").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store.Update(model.Resources{Services: services("web", "web-v1"), HTTPRoutes: []*api.HTTPRoute{rt}})
	testutil.Eventually(t, 10*time.Second, "the second route's status", accepted)
}
