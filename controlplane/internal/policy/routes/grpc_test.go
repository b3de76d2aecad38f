package routes

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

// decodeGRPC reads GRPCRoutes from YAML documents and validates them, as the sources do.
func decodeGRPC(t *testing.T, docs string) []*api.GRPCRoute {
	t.Helper()
	var out []*api.GRPCRoute
	for doc := range strings.SplitSeq(docs, "\n---\n") {
		rt := &api.GRPCRoute{}
		if err := yaml.UnmarshalStrict([]byte(doc), rt); err != nil {
			t.Fatal(err)
		}
		if rt.Namespace == "" {
			rt.Namespace = "shop"
		}
		if err := api.ValidateGRPC(rt); err != nil {
			t.Fatalf("%s: %v", rt.Name, err)
		}
		out = append(out, rt)
	}
	return out
}

func grpcSnapshot(t *testing.T, httpRoutes, grpcRoutes string) *model.Snapshot {
	t.Helper()
	s := model.NewStore()
	r := model.Resources{Services: []*model.Service{service("web", 80, 9000), service("web-v1", 80), service("web-v2", 80)}}
	if httpRoutes != "" {
		r.HTTPRoutes = decode(t, httpRoutes)
	}
	if grpcRoutes != "" {
		r.GRPCRoutes = decodeGRPC(t, grpcRoutes)
	}
	s.Update(r)
	return s.Snapshot()
}

const grpcSplit = `metadata: {name: votes}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches:
    - method: {service: emojivoto.v1.VotingService, method: VoteDoughnut}
    - method: {service: emojivoto.v1.VotingService, method: VoteDoughnut}
      headers: [{name: x-canary, value: "yes"}, {name: x-team, type: RegularExpression, value: "a|b"}]
    backendRefs: [{name: web-v2, port: 80}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: doughnut}]}
  - matches: [{method: {service: emojivoto.v1.VotingService}}]
    backendRefs:
    - {name: web-v1, port: 80, weight: 90}
    - {name: web-v2, port: 80, weight: 10, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-v, value: "2"}]}}]}
    - {name: web-v3, port: 80, weight: 5}
  - matches: [{method: {method: Results}}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{method: {type: RegularExpression, service: 'emojivoto\.v[0-9]+\..*', method: 'Vote.*'}}, {method: {type: RegularExpression, method: 'List.*'}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}}}]
  - backendRefs: [{name: web-v1, port: 80, weight: 0}]`

// TestGRPCOutbound: a GRPCRoute on a Service becomes the Service's outbound routes with route labels of kind
// GRPCRoute. A service and method is an exact path, a service alone a prefix of its methods, a method alone or a
// regular expression a regular expression on the path; headers are header matches, and the method POST is not
// required. Backends are weighted as for HTTPRoute, with their filters; a missing backend's share and a rule whose
// weights are all 0 get 503 (the proxies answer gRPC UNAVAILABLE), an unsupported filter 500 (INTERNAL); each is
// a problem. Rules get the Service's default retries and timeouts.
func TestGRPCOutbound(t *testing.T) {
	t.Parallel()
	snap := grpcSnapshot(t, "", grpcSplit)
	golden.Check(t, "testdata/grpc.json", render(t, outbound(t, snap, 80)))
	golden.Check(t, "testdata/grpc-problems.txt", []byte(strings.Join(Problems(snap, clusterDomain), "\n")+"\n"))
}

// TestKindConflict: where an HTTPRoute and a GRPCRoute attach to the same Service port, the older applies there
// (the Gateway API's rule for a listener); the other is a problem and, in status, not Accepted
// (RouteReasonConflicted). On a port where it is alone, the younger still applies. Routes of other namespaces do
// not conflict with them.
func TestKindConflict(t *testing.T) {
	t.Parallel()
	old := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	young := metav1.NewTime(old.Add(time.Hour))
	for _, tc := range []struct {
		name             string
		httpAge, grpcAge metav1.Time
		want             string // the kind that applies on port 80
	}{
		{"older HTTPRoute", old, young, api.KindHTTPRoute},
		{"older GRPCRoute", young, old, api.KindGRPCRoute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := model.NewStore()
			hr := decode(t, `metadata: {name: page}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web-v1, port: 80}]}]`)
			gr := decodeGRPC(t, `metadata: {name: rpc}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v2, port: 80}]}]`)
			hr[0].CreationTimestamp, gr[0].CreationTimestamp = tc.httpAge, tc.grpcAge
			s.Update(model.Resources{Services: []*model.Service{service("web", 80, 9000), service("web-v1", 80), service("web-v2", 80)},
				HTTPRoutes: hr, GRPCRoutes: gr})
			snap := s.Snapshot()
			got := outbound(t, snap, 80)
			if len(got) != 1 || got[0].Labels[LabelKind] != tc.want {
				t.Fatalf("port 80: %s", render(t, got))
			}
			if got := outbound(t, snap, 9000); len(got) != 1 || got[0].Labels[LabelKind] != api.KindGRPCRoute {
				t.Fatalf("port 9000, where the GRPCRoute is alone: %s", render(t, got))
			}
			loser, winner := "GRPCRoute shop/rpc", "HTTPRoute page"
			if tc.want == api.KindGRPCRoute {
				loser, winner = "HTTPRoute shop/page", "GRPCRoute rpc"
			}
			want := loser + ": spec.parentRefs[0]: an HTTPRoute and a GRPCRoute may not both attach to a Service port; the older applies, so this route has no effect on port 80: " + winner
			if p := Problems(snap, clusterDomain); len(p) != 1 || p[0] != want {
				t.Errorf("problems %q\nwant %q", p, want)
			}
			for _, rt := range snap.Routes() {
				st := ParentStatuses(snap, rt)
				accepted := st[0].Conditions[0]
				lost := rt.Kind != tc.want
				if lost != (accepted.Status == metav1.ConditionFalse && accepted.Reason == string(ReasonConflicted)) {
					b, _ := json.Marshal(st)
					t.Errorf("%s %s: %s", rt.Kind, rt.Name, b)
				}
			}
		})
	}
}

// TestGRPCStatus: a GRPCRoute's status is computed like an HTTPRoute's, its missing backends' requests named as
// getting UNAVAILABLE.
func TestGRPCStatus(t *testing.T) {
	t.Parallel()
	snap := grpcSnapshot(t, "", grpcSplit)
	out := map[string]any{}
	for _, rt := range snap.Routes() {
		out[rt.Kind+" "+rt.Name] = ParentStatuses(snap, rt)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/grpc-status.json", append(b, '\n'))
}
