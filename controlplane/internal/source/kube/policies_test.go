package kube

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/testutil"
)

func gvr(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: authzapi.Group, Version: authzapi.Version, Resource: resource}
}

func policyObject(kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": authzapi.APIVersion, "kind": kind,
		"metadata": map[string]any{"namespace": namespace, "name": name, "creationTimestamp": "2025-01-02T03:04:05Z",
			"managedFields": []any{map[string]any{"manager": "kubectl"}}},
		"spec": spec,
	}}
}

// startPolicies runs a source with a dynamic client holding objs; installed says whether discovery finds the
// policy CRDs (it can change while the source runs). The Gateway API's are not installed.
func startPolicies(t *testing.T, installed *atomic.Bool, objs ...runtime.Object) (*dynamicfake.FakeDynamicClient, *countingStore) {
	t.Helper()
	return startSource(t, installed, false, objs...)
}

var (
	httpRoutesGVR = schema.GroupVersionResource{Group: routesapi.Group, Version: routesapi.Version, Resource: routesapi.ResourceHTTPRoutes}
	grpcRoutesGVR = schema.GroupVersionResource{Group: routesapi.Group, Version: routesapi.Version, Resource: routesapi.ResourceGRPCRoutes}
)

// startSource is startPolicies; withRoutes says whether discovery finds the Gateway API's HTTPRoute too.
func startSource(t *testing.T, installed *atomic.Bool, withRoutes bool, objs ...runtime.Object) (*dynamicfake.FakeDynamicClient, *countingStore) {
	t.Helper()
	client := fake.NewClientset(ns("emojivoto", nil))
	list := &metav1.APIResourceList{GroupVersion: authzapi.APIVersion}
	listKinds := map[schema.GroupVersionResource]string{httpRoutesGVR: "HTTPRouteList", grpcRoutesGVR: "GRPCRouteList"}
	for _, k := range authzapi.Kinds {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: k.Resource, Kind: k.Kind, Namespaced: true})
		listKinds[gvr(k.Resource)] = k.Kind + "List"
	}
	client.Resources = []*metav1.APIResourceList{list}
	if withRoutes {
		client.Resources = append(client.Resources, &metav1.APIResourceList{GroupVersion: routesapi.APIVersion,
			APIResources: []metav1.APIResource{{Name: routesapi.ResourceHTTPRoutes, Kind: routesapi.KindHTTPRoute, Namespaced: true},
				{Name: routesapi.ResourceGRPCRoutes, Kind: routesapi.KindGRPCRoute, Namespaced: true}}})
	}
	// Discovery reads Resources without a lock; a reactor (which runs under it) says whether they are there.
	client.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) {
		if installed.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: authzapi.Group}, authzapi.Version)
	})
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	src, err := New(Config{Client: client, Dynamic: dyn, Debounce: 10 * time.Millisecond, CRDRecheck: 20 * time.Millisecond})
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
	return dyn, store
}

// The policy kinds are read through dynamic informers into the model, follow changes, and objects that do not
// validate are left out and reported until fixed or deleted.
func TestSourceReadsPolicies(t *testing.T) {
	t.Parallel()
	var installed atomic.Bool
	installed.Store(true)
	dyn, store := startPolicies(t, &installed,
		policyObject("Server", "emojivoto", "web-http", map[string]any{
			"podSelector": map[string]any{"matchLabels": map[string]any{"app": "web"}}, "port": "http", "proxyProtocol": "HTTP/1"}),
		policyObject("ServerAuthorization", "emojivoto", "web-clients", map[string]any{
			"server": map[string]any{"name": "web-http"},
			"client": map[string]any{"meshTLS": map[string]any{"serviceAccounts": []any{map[string]any{"name": "vote-bot"}}}}}),
	)
	pol := store.Snapshot().Policies()
	if len(pol.Servers) != 1 || len(pol.ServerAuthorizations) != 1 {
		t.Fatalf("policies %+v", pol)
	}
	srv := pol.Servers[0]
	if srv.Spec.Port.Name != "http" || srv.Spec.PodSelector.MatchLabels["app"] != "web" || srv.Metadata.CreationTimestamp.Year() != 2025 {
		t.Errorf("server %+v", srv)
	}

	ctx := context.Background()
	ap := policyObject("AuthorizationPolicy", "emojivoto", "web-policy", map[string]any{
		"targetRef":                  map[string]any{"group": authzapi.Group, "kind": "Server", "name": "web-http"},
		"requiredAuthenticationRefs": []any{map[string]any{"kind": "ServiceAccount", "name": "web"}}})
	if _, err := dyn.Resource(gvr("authorizationpolicies")).Namespace("emojivoto").Create(ctx, ap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the AuthorizationPolicy in the model", func() bool {
		return len(store.Snapshot().Policies().AuthorizationPolicies) == 1
	})

	// An invalid Server (what the CRD's schema would refuse): left out and reported.
	bad := policyObject("Server", "emojivoto", "web-http", map[string]any{"podSelector": map[string]any{}, "port": int64(0)})
	if _, err := dyn.Resource(gvr("servers")).Namespace("emojivoto").Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the bad Server reported", func() bool {
		errs := store.Snapshot().Errors()
		return len(store.Snapshot().Policies().Servers) == 0 && len(errs) == 1 && errs[0].Source == "server emojivoto/web-http" &&
			strings.Contains(errs[0].Message, "spec.port: must be 1-65535")
	})
	if err := dyn.Resource(gvr("servers")).Namespace("emojivoto").Delete(ctx, "web-http", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the problem cleared", func() bool { return len(store.Snapshot().Errors()) == 0 })
}

// Without the CRDs the source syncs and serves without policies; once they are installed, it finds them.
func TestSourceToleratesMissingCRDs(t *testing.T) {
	t.Parallel()
	var installed atomic.Bool
	dyn, store := startPolicies(t, &installed)
	if n := store.Snapshot().Policies().Len(); n != 0 {
		t.Fatalf("%d policies without CRDs", n)
	}
	installed.Store(true)
	srv := policyObject("Server", "emojivoto", "web-http", map[string]any{"podSelector": map[string]any{}, "port": int64(8080)})
	if _, err := dyn.Resource(gvr("servers")).Namespace("emojivoto").Create(context.Background(), srv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the Server once the CRDs are there", func() bool {
		return len(store.Snapshot().Policies().Servers) == 1
	})
}

func httpRouteObject(name string, backendPort int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": routesapi.APIVersion, "kind": routesapi.KindHTTPRoute,
		"metadata": map[string]any{"namespace": "emojivoto", "name": name, "creationTimestamp": "2025-01-02T03:04:05Z", "generation": int64(2)},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web-svc"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "web-v1", "port": backendPort, "weight": int64(90)},
				map[string]any{"name": "web-v2", "port": int64(80), "weight": int64(10)},
			}}},
		},
		"status": map[string]any{"parents": []any{}},
	}}
}

func grpcRouteObject(name, method string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": routesapi.APIVersion, "kind": routesapi.KindGRPCRoute,
		"metadata": map[string]any{"namespace": "emojivoto", "name": name, "generation": int64(1)},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "voting-svc"}},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"method": map[string]any{"type": "Exact", "service": "emojivoto.v1.VotingService", "method": method}}},
				"backendRefs": []any{map[string]any{"name": "voting-v2", "port": int64(8080)}},
			}},
		},
		"status": map[string]any{"parents": []any{map[string]any{"controllerName": "x"}}},
	}}
}

// HTTPRoutes and GRPCRoutes are read into the model when the Gateway API's CRDs are there, follow changes, and a
// route that does not validate is left out and reported until fixed. Without those CRDs (startPolicies) the
// source syncs as before.
func TestSourceReadsHTTPRoutes(t *testing.T) {
	t.Parallel()
	var installed atomic.Bool
	installed.Store(true)
	dyn, store := startSource(t, &installed, true, httpRouteObject("web-split", 80), grpcRouteObject("voting", "VoteDoughnut"))
	if g := store.Snapshot().GRPCRoutes(); len(g) != 1 || g[0].Name != "voting" || g[0].Status.Parents != nil {
		t.Fatalf("gRPC routes %+v", g)
	}
	if _, err := dyn.Resource(grpcRoutesGVR).Namespace("emojivoto").Update(context.Background(), grpcRouteObject("voting", "Vote/Doughnut"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the bad gRPC route reported", func() bool {
		errs := store.Snapshot().Errors()
		return len(store.Snapshot().GRPCRoutes()) == 0 && len(errs) == 1 && errs[0].Source == "grpcroute emojivoto/voting" &&
			strings.Contains(errs[0].Message, "spec.rules[0].matches[0].method.method")
	})
	if err := dyn.Resource(grpcRoutesGVR).Namespace("emojivoto").Delete(context.Background(), "voting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the gRPC route gone", func() bool { return len(store.Snapshot().Errors()) == 0 })
	rts := store.Snapshot().HTTPRoutes()
	if len(rts) != 1 {
		t.Fatalf("routes %+v", rts)
	}
	if rt := rts[0]; rt.Name != "web-split" || rt.Generation != 2 || *rt.Spec.Rules[0].BackendRefs[0].Weight != 90 ||
		rt.CreationTimestamp.Year() != 2025 || rt.Status.Parents != nil {
		t.Errorf("route %+v", rt)
	}

	ctx := context.Background()
	bad := httpRouteObject("web-split", 0)
	if _, err := dyn.Resource(httpRoutesGVR).Namespace("emojivoto").Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the bad route reported", func() bool {
		errs := store.Snapshot().Errors()
		return len(store.Snapshot().HTTPRoutes()) == 0 && len(errs) == 1 && errs[0].Source == "httproute emojivoto/web-split" &&
			strings.Contains(errs[0].Message, "spec.rules[0].backendRefs[0].port: must be 1-65535")
	})
	if _, err := dyn.Resource(httpRoutesGVR).Namespace("emojivoto").Update(ctx, httpRouteObject("web-split", 8080), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the fixed route", func() bool {
		rts := store.Snapshot().HTTPRoutes()
		return len(store.Snapshot().Errors()) == 0 && len(rts) == 1 && *rts[0].Spec.Rules[0].BackendRefs[0].Port == 8080
	})
}

// Without the Gateway API's CRDs, the policies are read and no route is.
func TestSourceWithoutGatewayAPI(t *testing.T) {
	t.Parallel()
	var installed atomic.Bool
	installed.Store(true)
	_, store := startPolicies(t, &installed, policyObject("Server", "emojivoto", "web-http",
		map[string]any{"podSelector": map[string]any{}, "port": int64(8080)}))
	if snap := store.Snapshot(); len(snap.Policies().Servers) != 1 || len(snap.HTTPRoutes()) != 0 {
		t.Fatalf("servers %d, routes %d", len(snap.Policies().Servers), len(snap.HTTPRoutes()))
	}
}
