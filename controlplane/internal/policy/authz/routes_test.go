package authz

import (
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

// httpRoutes decodes HTTPRoute documents.
func httpRoutes(t *testing.T, docs ...string) []*routesapi.HTTPRoute {
	t.Helper()
	var out []*routesapi.HTTPRoute
	for _, doc := range docs {
		rt := &routesapi.HTTPRoute{}
		if err := yaml.UnmarshalStrict([]byte(doc), rt); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		out = append(out, rt)
	}
	return out
}

const (
	// publicRoute: GET /api/* on web's Server, open to any client through an AuthorizationPolicy on the route.
	publicRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
`
	// adminRoute: /admin exactly, for vote-bot only; its rule names a filter, which inbound routes ignore.
	adminRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: Exact, value: /admin}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-admin, value: "1"}]}}]
`
	// serviceRoute has a Service parent: an outbound route, which no authorization can target.
	serviceRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: outbound, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc}]
`
	routePolicies = `
kind: AuthorizationPolicy
metadata: {name: public-anyone}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: public}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: NetworkAuthentication, name: anywhere}]
---
kind: AuthorizationPolicy
metadata: {name: admin-vote-bot}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: MeshTLSAuthentication, name: vote-bot}]
---
kind: AuthorizationPolicy
metadata: {name: server-web}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: MeshTLSAuthentication, name: web}]
---
kind: AuthorizationPolicy
metadata: {name: on-outbound}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: outbound}
  requiredAuthenticationRefs: []
---
kind: AuthorizationPolicy
metadata: {name: on-missing}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}
  requiredAuthenticationRefs: []
---
kind: NetworkAuthentication
metadata: {name: anywhere}
spec: {networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]}
---
kind: MeshTLSAuthentication
metadata: {name: vote-bot}
spec: {identityRefs: [{kind: ServiceAccount, name: vote-bot}]}
---
kind: MeshTLSAuthentication
metadata: {name: web}
spec: {identityRefs: [{kind: ServiceAccount, name: web}]}
`
)

// TestInboundRoutes: HTTPRoutes whose parent is a Server become the port's routes, each with the
// AuthorizationPolicies that target it (the Server's own stay on the server, admitting on every route); probe
// paths go away once routes are attached. Policies on routes that are not a Server's, or do not exist, and the
// filters of inbound routes are reported.
func TestInboundRoutes(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	s.Update(model.Resources{Workloads: []*model.Workload{web()}, Policies: policies(t, webServer+"\n---\n"+routePolicies),
		HTTPRoutes: httpRoutes(t, publicRoute, adminRoute, serviceRoute)})
	snap := s.Snapshot()
	w, _ := snap.Workload("emojivoto", "web-1")
	got := Inbound(snap, testConfig, w, 8080)
	golden.Check(t, "testdata/inbound-routes.json", render(t, got))
	if len(got.GetRoutes()) != 2 || len(got.GetProbePaths()) != 0 {
		t.Errorf("%d routes and probe paths %q; want 2 routes and no probe paths", len(got.GetRoutes()), got.GetProbePaths())
	}
	want := []string{
		"AuthorizationPolicy emojivoto/on-missing: targets HTTPRoute missing, which does not exist",
		"AuthorizationPolicy emojivoto/on-outbound: targets HTTPRoute outbound, whose parents are not Servers: authorizations apply to inbound routes (a Server parent); the policy has no effect",
		"HTTPRoute emojivoto/admin: spec.rules[0]: filters and backendRefs of a route on a Server are not applied (requests go to the workload unchanged)",
	}
	if p := Problems(snap, testConfig); !slices.Equal(p, want) {
		t.Errorf("problems:\n got %q\nwant %q", p, want)
	}

	// Another port of the workload, which no Server selects, keeps its probes.
	if other := Inbound(snap, testConfig, w, 9990); len(other.GetRoutes()) != 0 || len(other.GetProbePaths()) != 1 {
		t.Errorf("port 9990: routes %v, probe paths %q", other.GetRoutes(), other.GetProbePaths())
	}
}

// TestInboundGRPCRoutes: a GRPCRoute whose parent is a Server is an inbound route like an HTTPRoute: its gRPC
// methods become path matches, labelled with kind GRPCRoute and its name (the route_name of its decisions), and an
// AuthorizationPolicy that targets it admits on it. A policy on a GRPCRoute that does not exist is reported; one
// on an HTTPRoute of the same name does not take the GRPCRoute.
func TestInboundGRPCRoutes(t *testing.T) {
	t.Parallel()
	var rt routesapi.GRPCRoute
	if err := yaml.UnmarshalStrict([]byte(`
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: admin, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: web-http}]
  rules:
  - matches: [{method: {service: emojivoto.v1.VotingService, method: Results}}]
`), &rt); err != nil {
		t.Fatal(err)
	}
	pols := strings.ReplaceAll(routePolicies, "kind: HTTPRoute, name: admin}", "kind: GRPCRoute, name: admin}")
	pols = strings.ReplaceAll(pols, "kind: HTTPRoute, name: missing}", "kind: GRPCRoute, name: missing}")
	s := model.NewStore()
	s.Update(model.Resources{Workloads: []*model.Workload{web()}, Policies: policies(t, webServer+"\n---\n"+pols),
		HTTPRoutes: httpRoutes(t, publicRoute, serviceRoute), GRPCRoutes: []*routesapi.GRPCRoute{&rt}})
	snap := s.Snapshot()
	w, _ := snap.Workload("emojivoto", "web-1")
	got := Inbound(snap, testConfig, w, 8080)
	var grpc *policyv1.HttpRoute
	for _, r := range got.GetRoutes() {
		if r.GetLabels()["kind"] == routesapi.KindGRPCRoute {
			grpc = r
		}
	}
	if len(got.GetRoutes()) != 2 || grpc == nil || grpc.GetLabels()["name"] != "admin" ||
		grpc.GetRules()[0].GetMatches()[0].GetPath().GetExact() != "/emojivoto.v1.VotingService/Results" ||
		len(grpc.GetAuthorizations()) != 1 || grpc.GetAuthorizations()[0].GetLabels()["name"] != "admin-vote-bot" {
		t.Fatalf("routes: %s", render(t, got))
	}
	want := []string{
		"AuthorizationPolicy emojivoto/on-missing: targets GRPCRoute missing, which does not exist",
		"AuthorizationPolicy emojivoto/on-outbound: targets HTTPRoute outbound, whose parents are not Servers: authorizations apply to inbound routes (a Server parent); the policy has no effect",
	}
	if p := Problems(snap, testConfig); !slices.Equal(p, want) {
		t.Errorf("problems:\n got %q\nwant %q", p, want)
	}
}
