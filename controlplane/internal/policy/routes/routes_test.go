package routes

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

const clusterDomain = "cluster.local"

// render is a stable, indented JSON form of the routes.
func render(t *testing.T, rs []*policyv1.HttpRoute) []byte {
	t.Helper()
	var out []any
	for _, r := range rs {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// decode reads HTTPRoutes from YAML documents and validates them, as the sources do.
func decode(t *testing.T, docs string) []*api.HTTPRoute {
	t.Helper()
	var out []*api.HTTPRoute
	for doc := range strings.SplitSeq(docs, "\n---\n") {
		rt := &api.HTTPRoute{}
		if err := yaml.UnmarshalStrict([]byte(doc), rt); err != nil {
			t.Fatal(err)
		}
		if rt.Namespace == "" {
			rt.Namespace = "shop"
		}
		if err := api.Validate(rt); err != nil {
			t.Fatalf("%s: %v", rt.Name, err)
		}
		out = append(out, rt)
	}
	return out
}

func service(name string, ports ...uint16) *model.Service {
	svc := &model.Service{Namespace: "shop", Name: name}
	for _, p := range ports {
		svc.Ports = append(svc.Ports, model.ServicePort{Name: "http", Port: p, TargetPort: model.TargetPort{Number: 8080}})
	}
	if len(ports) > 1 {
		svc.Ports[1].Name = "admin"
	}
	return svc
}

func snapshot(t *testing.T, routes string) *model.Snapshot {
	t.Helper()
	s := model.NewStore()
	otherAPI := service("api", 80)
	otherAPI.Namespace = "other"
	s.Update(model.Resources{
		Services:   []*model.Service{service("web", 80, 9000), service("web-v1", 80), service("web-v2", 80), otherAPI},
		HTTPRoutes: decode(t, routes),
	})
	return s.Snapshot()
}

// outbound translates the routes of web:port for a client of unknown namespace, with the Service defaults of a
// 10s request timeout and 2 retries.
func outbound(t *testing.T, snap *model.Snapshot, port uint16) []*policyv1.HttpRoute {
	t.Helper()
	return outboundFrom(t, snap, port, "")
}

// outboundFrom is outbound for a client in namespace clientNS.
func outboundFrom(t *testing.T, snap *model.Snapshot, port uint16, clientNS string) []*policyv1.HttpRoute {
	t.Helper()
	svc, ok := snap.Service("shop", "web")
	if !ok {
		t.Fatal("no Service web")
	}
	sp, ok := svc.Port(port)
	if !ok {
		t.Fatalf("web has no port %d", port)
	}
	defaults := &policyv1.RouteRule{
		RequestTimeout: durationpb.New(10 * time.Second),
		Retry:          &policyv1.Retry{Limit: 2, StatusCodes: []uint32{503}},
		IdleTimeout:    durationpb.New(time.Minute),
	}
	return Outbound(snap, svc, sp, clusterDomain, clientNS, defaults)
}

const canary = `metadata: {name: web-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches:
    - headers: [{name: x-canary, value: "yes"}]
    - path: {type: Exact, value: /canary}
      method: GET
      queryParams: [{name: v, type: RegularExpression, value: "2|two"}]
    backendRefs: [{name: web-v2, port: 80}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-route, value: canary}]
        add: [{name: x-hops, value: "1"}]
        remove: [x-debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: v2}]}
    timeouts: {request: 0s, backendRequest: 500ms}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]
    retry: {attempts: 3, codes: [500, 502]}
  - {}`

// TestOutbound: matches, weights, header filters and timeouts become the proxy's; the Service's defaults fill in
// what a rule does not set (a "0s" timeout is set: none), and a rule without backendRefs goes to the parent.
func TestOutbound(t *testing.T) {
	t.Parallel()
	snap := snapshot(t, canary)
	got := outbound(t, snap, 80)
	golden.Check(t, "testdata/canary.json", render(t, got))

	// The route names port 80: port 9000 keeps its default route.
	if rs := outbound(t, snap, 9000); rs != nil {
		t.Errorf("port 9000: got routes\n%s", render(t, rs))
	}
}

// TestAttach: a parentRef attaches a route to the Service's ports it names (all without a port; by number or by
// name with one); a Gateway parent attaches nothing here.
func TestAttach(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, parent string
		want         []uint16 // ports of web the route attaches to
	}{
		{"all ports", `{group: "", kind: Service, name: web}`, []uint16{80, 9000}},
		{"by port", `{group: "", kind: Service, name: web, port: 9000}`, []uint16{9000}},
		{"by section name", `{group: "", kind: Service, name: web, sectionName: admin}`, []uint16{9000}},
		{"core group", `{group: core, kind: Service, name: web}`, []uint16{80, 9000}},
		{"same namespace spelt out", `{group: "", kind: Service, name: web, namespace: shop}`, []uint16{80, 9000}},
		{"another Service", `{group: "", kind: Service, name: web-v1}`, nil},
		{"a Gateway", `{name: web}`, nil},
		{"group omitted", `{kind: Service, name: web}`, nil},
	} {
		snap := snapshot(t, "metadata: {name: r}\nspec:\n  parentRefs: ["+tc.parent+"]\n  rules: [{backendRefs: [{name: web-v1, port: 80}]}]")
		var got []uint16
		for _, port := range []uint16{80, 9000} {
			if len(outbound(t, snap, port)) > 0 {
				got = append(got, port)
			}
		}
		if !slicesEqual(got, tc.want) {
			t.Errorf("%s: attached to %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestConsumerRoutes: a consumer route (in the client's namespace, naming a Service of another, GEP-1294) applies
// to that namespace's clients only, instead of the producer routes; clients elsewhere keep the producer routes.
// Its backends may be in any namespace, without a ReferenceGrant.
func TestConsumerRoutes(t *testing.T) {
	t.Parallel()
	rts := decode(t, `metadata: {name: mine, namespace: client}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: shop}]
  rules: [{backendRefs: [{name: web-v2, namespace: shop, port: 80}], timeouts: {request: 1s}}]
---
metadata: {name: producer}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v1, port: 80}]}]
---
metadata: {name: theirs, namespace: elsewhere}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: shop}]`)
	s := model.NewStore()
	s.Update(model.Resources{Services: []*model.Service{service("web", 80), service("web-v1", 80), service("web-v2", 80)}, HTTPRoutes: rts})
	snap := s.Snapshot()
	names := func(rs []*policyv1.HttpRoute) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.GetLabels()[LabelNamespace]+"/"+r.GetLabels()[LabelName]+" -> "+r.GetRules()[0].GetBackends()[0].GetAuthority())
		}
		return strings.Join(out, ", ")
	}
	for clientNS, want := range map[string]string{
		"client": "client/mine -> web-v2.shop.svc.cluster.local:80",
		"shop":   "shop/producer -> web-v1.shop.svc.cluster.local:80",
		"other":  "shop/producer -> web-v1.shop.svc.cluster.local:80",
		"":       "shop/producer -> web-v1.shop.svc.cluster.local:80",
	} {
		if got := names(outboundFrom(t, snap, 80, clientNS)); got != want {
			t.Errorf("client in %q: routes %s, want %s", clientNS, got, want)
		}
	}
	if p := Problems(snap, clusterDomain); p != nil {
		t.Errorf("problems: %q", p)
	}
}

// TestOrder: routes come oldest first, then by namespace/name, whatever order the source gave them in: the
// proxy keeps that order among matches of equal precedence, as Gateway API breaks ties.
func TestOrder(t *testing.T) {
	t.Parallel()
	rts := decode(t, `metadata: {name: b-newer, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {parentRefs: [{group: "", kind: Service, name: web}]}
---
metadata: {name: c-oldest, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {parentRefs: [{group: "", kind: Service, name: web}]}
---
metadata: {name: a-newer, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {parentRefs: [{group: "", kind: Service, name: web}]}`)
	s := model.NewStore()
	s.Update(model.Resources{Services: []*model.Service{service("web", 80)}, HTTPRoutes: rts})
	var names []string
	for _, r := range outbound(t, s.Snapshot(), 80) {
		names = append(names, r.GetLabels()[LabelName])
	}
	if want := []string{"c-oldest", "a-newer", "b-newer"}; !slicesEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}

// TestUnresolvable: a backend the proxies cannot send to keeps its weight and fails its share with 500; a filter
// the proxies cannot apply fails its rule (or its backend) with 500. Each is a problem.
func TestUnresolvable(t *testing.T) {
	t.Parallel()
	snap := snapshot(t, `metadata: {name: broken}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {value: /missing}}]
    backendRefs:
    - {name: web-v1, port: 80, weight: 80}
    - {name: web-v3, port: 80, weight: 10}
    - {name: web-v2, port: 81, weight: 5}
    - {name: web-v2, namespace: other, port: 80, weight: 3}
    - {name: api, namespace: other, port: 80, weight: 1}
    - {group: example.com, kind: Bucket, name: b, weight: 2}
  - matches: [{path: {value: /fault}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: missing}}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {value: /mirror}}]
    backendRefs:
    - name: web-v1
      port: 80
      filters:
      - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
      - {type: ExtensionRef, extensionRef: {group: example.com, kind: Lua, name: script}}
    - name: web-v2
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: v2}]}}]
    retry: {attempts: 1, backoff: 1s}
    sessionPersistence: {sessionName: s}
  - matches: [{path: {value: /drained}}]
    backendRefs: [{name: web-v1, port: 80, weight: 0}]`)
	golden.Check(t, "testdata/unresolvable.json", render(t, outbound(t, snap, 80)))
	golden.Check(t, "testdata/unresolvable-problems.txt", []byte(strings.Join(Problems(snap, clusterDomain), "\n")+"\n"))
}

// TestNoRoutes: without HTTPRoutes, or with only routes whose parents do not resolve, there are no routes and no
// problems but those of the routes.
func TestNoRoutes(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	s.Update(model.Resources{Services: []*model.Service{service("web", 80)}})
	if rs := outbound(t, s.Snapshot(), 80); rs != nil {
		t.Errorf("routes without HTTPRoutes:\n%s", render(t, rs))
	}
	if p := Problems(s.Snapshot(), clusterDomain); p != nil {
		t.Errorf("problems without HTTPRoutes: %q", p)
	}
	snap := snapshot(t, `metadata: {name: lost}
spec:
  parentRefs: [{group: "", kind: Service, name: gone}, {group: "", kind: Service, name: web, port: 81}, {group: example.com, kind: Thing, name: gw}]`)
	want := []string{
		"HTTPRoute shop/lost: no parent it can attach to; the route has no effect",
		"HTTPRoute shop/lost: spec.parentRefs[0]: Service gone does not exist",
		"HTTPRoute shop/lost: spec.parentRefs[1]: Service web has no port 81",
		"HTTPRoute shop/lost: spec.parentRefs[2]: parents other than Services, Servers and Gateways (Thing.example.com) are not supported; ignored",
	}
	if got := Problems(snap, clusterDomain); !slicesEqual(got, want) {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFresh: translations share nothing with the defaults or each other.
func TestFresh(t *testing.T) {
	t.Parallel()
	snap := snapshot(t, canary)
	a, b := outbound(t, snap, 80), outbound(t, snap, 80)
	a[0].Rules[1].Retry.StatusCodes[0] = 1
	a[0].Rules[2].Retry.Limit = 9
	a[0].Labels[LabelName] = "x"
	for i := range b {
		if !proto.Equal(b[i], outbound(t, snap, 80)[i]) {
			t.Error("translations share state")
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFilters: redirects, rewrites, mirrors (percent, fraction, all) and HTTPFaults by ExtensionRef become the
// contract's filters, in the rule's order.
func TestFilters(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	pct := func(v float64) *float64 { return &v }
	status, grpc, maxActive := 503, "UNAVAILABLE", 5
	var pols authzapi.Policies
	pols.Add(&authzapi.HTTPFault{Metadata: authzapi.Meta{Namespace: "shop", Name: "flaky"}, Spec: authzapi.HTTPFaultSpec{
		Abort:           &authzapi.FaultAbort{HTTPStatus: &status, GRPCStatus: &grpc, Percentage: pct(10)},
		Delay:           &authzapi.FaultDelay{FixedDelay: "250ms", Percentage: pct(50)},
		MaxActiveFaults: &maxActive,
	}})
	s.Update(model.Resources{Services: []*model.Service{service("web", 80), service("web-v2", 80)}, Policies: pols, HTTPRoutes: decode(t, `metadata: {name: filters}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}, fraction: {numerator: 1, denominator: 3}}}
    - {type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: flaky}}
  - matches: [{path: {type: Exact, value: /one}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /two}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}}}`)})
	snap := s.Snapshot()
	golden.Check(t, "testdata/filters.json", render(t, outbound(t, snap, 80)))
	if p := Problems(snap, clusterDomain); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}
