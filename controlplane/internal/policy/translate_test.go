package policy

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

// render is a stable, indented JSON form of m (protojson alone varies its whitespace on purpose).
func render(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func testSnapshot() *model.Snapshot {
	s := model.NewStore()
	s.Update(model.Resources{
		Services: []*model.Service{{Namespace: "emojivoto", Name: "web-svc", Selector: map[string]string{"app": "web"},
			Ports: []model.ServicePort{{Port: 80, TargetPort: model.TargetPort{Name: "http"}}}}},
		Workloads: []*model.Workload{{Namespace: "emojivoto", Name: "web", Labels: map[string]string{"app": "web"},
			ServiceAccount: "web", Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143,
			Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}}},
	})
	return s.Snapshot()
}

// testInbound is the install's default inbound configuration.
var testInbound = authz.Config{
	TrustDomain:     "cluster.local",
	DefaultPolicy:   "all-unauthenticated",
	ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	ProbeNetworks:   []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
}

// TestInbound: without Servers every port of every workload, known or not, gets the default policy (the
// translation itself is tested in authz).
func TestInbound(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	got := Inbound(snap, testInbound, "emojivoto/web", 8080)
	golden.Check(t, "testdata/inbound-default.json", render(t, got))

	for _, tc := range []struct {
		snap     *model.Snapshot
		workload string
		port     uint32
	}{
		{snap, "emojivoto/web", 9999},
		{snap, "other/unknown", 80},
		{model.NewStore().Snapshot(), "emojivoto/web", 8080},
		{snap, "no-slash", 8080},
	} {
		if other := Inbound(tc.snap, testInbound, tc.workload, tc.port); !proto.Equal(got, other) {
			t.Errorf("Inbound(%s, %d) differs from the default:\n%s", tc.workload, tc.port, render(t, other))
		}
	}
}

const clusterDomain = "cluster.local"

func TestOutbound(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	golden.Check(t, "testdata/outbound-default.json", render(t, Outbound(snap, "web-svc.emojivoto.svc.cluster.local:80", clusterDomain, "")))

	// Every target routes to itself: names, ip:port, and targets the model does not know.
	for _, target := range []string{"web-svc.emojivoto.svc.cluster.local:80", "10.0.0.1:8080", "www.example.com:443"} {
		p := Outbound(snap, target, clusterDomain, "")
		routes := p.GetRoutes()
		if len(routes) != 1 || len(routes[0].GetRules()) != 1 || len(routes[0].GetRules()[0].GetBackends()) != 1 {
			t.Fatalf("%s: want one route with one rule and one backend:\n%s", target, render(t, p))
		}
		if b := routes[0].GetRules()[0].GetBackends()[0]; b.GetAuthority() != target || b.GetWeight() != 1 {
			t.Errorf("%s: backend %s weight %d, want the target itself, weight 1", target, b.GetAuthority(), b.GetWeight())
		}
		if p.GetProtocol() != policyv1.Protocol_PROTOCOL_DETECT {
			t.Errorf("%s: protocol %s, want DETECT", target, p.GetProtocol())
		}
	}
}

// defaultsSnapshot has a Service with every outbound default, one with only a retry limit, and one without any.
func defaultsSnapshot() *model.Snapshot {
	ports := []model.ServicePort{{Name: "http", Port: 80, TargetPort: model.TargetPort{Number: 8080}}}
	s := model.NewStore()
	s.Update(model.Resources{Services: []*model.Service{
		{Namespace: "emojivoto", Name: "web-svc", Ports: ports, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
			Outbound: model.OutboundDefaults{
				Retry: &model.Retry{
					Limit:         3,
					HTTPStatuses:  []model.StatusRange{{First: 500, Last: 599}, {First: 429, Last: 429}},
					GRPCCodes:     []uint32{14, 4},
					PerTryTimeout: model.Duration(250 * time.Millisecond),
				},
				RequestTimeout:  model.Duration(10 * time.Second),
				ResponseTimeout: model.Duration(2 * time.Second),
				IdleTimeout:     model.Duration(time.Minute),
				FailureAccrual: &model.FailureAccrual{ConsecutiveFailures: 4, MinPenalty: model.Duration(30 * time.Second),
					MaxPenalty: model.Duration(2 * time.Minute), JitterRatio: 0.25},
			}},
		{Namespace: "emojivoto", Name: "voting-svc", Ports: ports, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.11")},
			Outbound: model.OutboundDefaults{Retry: &model.Retry{Limit: 2, HTTPStatuses: []model.StatusRange{{First: 500, Last: 599}}}}},
		{Namespace: "emojivoto", Name: "plain-svc", Ports: ports, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.12")}},
	}})
	return s.Snapshot()
}

// TestOutboundServiceDefaults: a target that resolves to a Service, by any of its names or a ClusterIP, gets the
// Service's retry and timeouts on its rule and its failure accrual on the policy; anything else gets none.
func TestOutboundServiceDefaults(t *testing.T) {
	t.Parallel()
	snap := defaultsSnapshot()
	full := Outbound(snap, "web-svc.emojivoto.svc.cluster.local:80", clusterDomain, "")
	golden.Check(t, "testdata/outbound-service-defaults.json", render(t, full))
	golden.Check(t, "testdata/outbound-service-retry-only.json", render(t, Outbound(snap, "voting-svc.emojivoto:80", clusterDomain, "")))

	// Every name of the Service, and its ClusterIP, carry the same defaults; only the backend differs.
	for _, target := range []string{"web-svc.emojivoto:80", "web-svc.emojivoto.svc:80", "WEB-SVC.emojivoto.svc.cluster.local.:80", "10.96.0.10:80"} {
		p := Outbound(snap, target, clusterDomain, "")
		p.Routes[0].Rules[0].Backends[0].Authority = "web-svc.emojivoto.svc.cluster.local:80"
		if !proto.Equal(p, full) {
			t.Errorf("%s: differs from the Service's policy by name:\n%s", target, render(t, p))
		}
	}
	// No defaults: a Service without annotations, a port the Service does not declare, another cluster domain,
	// an address that is no ClusterIP, an unknown name, a malformed target.
	plain := Outbound(snap, "plain-svc.emojivoto:80", clusterDomain, "")
	for _, target := range []string{"plain-svc.emojivoto:80", "web-svc.emojivoto:8080", "web-svc.emojivoto.svc.other.domain:80",
		"10.96.0.99:80", "10.96.0.10:81", "nope.emojivoto:80", "web-svc.emojivoto"} {
		p := Outbound(snap, target, clusterDomain, "")
		rule := p.GetRoutes()[0].GetRules()[0]
		if p.GetFailureAccrual() != nil || rule.GetRetry() != nil || rule.GetRequestTimeout() != nil ||
			rule.GetBackendRequestTimeout() != nil || rule.GetIdleTimeout() != nil {
			t.Errorf("%s: got defaults:\n%s", target, render(t, p))
		}
		p.Routes[0].Rules[0].Backends[0].Authority = "plain-svc.emojivoto:80"
		p.Labels = plain.Labels // the parent Service, when there is one
		if !proto.Equal(p, plain) {
			t.Errorf("%s: differs from a plain policy:\n%s", target, render(t, p))
		}
	}
}

// TestTranslationsAreFresh: the server keeps the last answer to compare with the next one, so a translation must
// not hand out shared messages that a later call (or a caller) could change under it.
func TestTranslationsAreFresh(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	a, b := Inbound(snap, testInbound, "emojivoto/web", 8080), Inbound(snap, testInbound, "emojivoto/web", 8080)
	a.Authorizations[0].Labels["name"] = "changed"
	a.Labels["name"] = "changed"
	if !proto.Equal(b, Inbound(snap, testInbound, "emojivoto/web", 8080)) {
		t.Error("Inbound answers share state")
	}
	c, d := Outbound(snap, "x:80", clusterDomain, ""), Outbound(snap, "x:80", clusterDomain, "")
	c.Routes[0].Rules[0].Backends[0].Weight = 7
	c.Labels["name"] = "changed"
	if !proto.Equal(d, Outbound(snap, "x:80", clusterDomain, "")) {
		t.Error("Outbound answers share state")
	}
	// Nor may the Service's defaults be shared with the model.
	snap = defaultsSnapshot()
	const web = "web-svc.emojivoto:80"
	e, f := Outbound(snap, web, clusterDomain, ""), Outbound(snap, web, clusterDomain, "")
	e.Routes[0].Rules[0].Retry.StatusRanges[0].First = 100
	e.Routes[0].Rules[0].Retry.GrpcCodes[0] = 2
	e.FailureAccrual.ConsecutiveFailures = 99
	if !proto.Equal(f, Outbound(snap, web, clusterDomain, "")) {
		t.Error("Outbound answers share the Service's defaults")
	}
	if svc, _ := snap.Service("emojivoto", "web-svc"); svc.Outbound.Retry.GRPCCodes[0] != 14 {
		t.Error("changing an answer changed the model")
	}
}

// TestOutboundRoutes: an HTTPRoute attached to a Service replaces its default route, for every name of the
// Service and its ClusterIP, with the Service's defaults where the route says nothing and its failure accrual on
// the policy; other Services keep their default route.
func TestOutboundRoutes(t *testing.T) {
	t.Parallel()
	prev := defaultsSnapshot()
	var rt routesapi.HTTPRoute
	if err := yaml.UnmarshalStrict([]byte(`metadata: {name: web-split, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc}]
  rules:
  - backendRefs: [{name: web-svc, port: 80, weight: 90}, {name: voting-svc, port: 80, weight: 10}]
    timeouts: {request: 3s}`), &rt); err != nil {
		t.Fatal(err)
	}
	s := model.NewStore()
	var svcs []*model.Service
	for _, name := range []string{"web-svc", "voting-svc", "plain-svc"} {
		svc, _ := prev.Service("emojivoto", name)
		svcs = append(svcs, svc)
	}
	s.Update(model.Resources{Services: svcs, HTTPRoutes: []*routesapi.HTTPRoute{&rt}})
	snap := s.Snapshot()

	got := Outbound(snap, "web-svc.emojivoto.svc.cluster.local:80", clusterDomain, "")
	golden.Check(t, "testdata/outbound-route.json", render(t, got))
	if byIP := Outbound(snap, "10.96.0.10:80", clusterDomain, ""); !proto.Equal(byIP, got) {
		t.Errorf("by ClusterIP, the policy differs:\n%s", render(t, byIP))
	}
	if plain := Outbound(snap, "plain-svc.emojivoto:80", clusterDomain, ""); plain.GetRoutes()[0].GetLabels()["kind"] != "default" {
		t.Errorf("another Service got the route:\n%s", render(t, plain))
	}
}

// TestProblems: the problems /debug/model and sinew check show include the HTTPRoutes'.
func TestProblems(t *testing.T) {
	t.Parallel()
	var rt routesapi.HTTPRoute
	if err := yaml.UnmarshalStrict([]byte(`metadata: {name: split, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc}]
  rules: [{backendRefs: [{name: web-svc, port: 80, weight: 9}, {name: web-v2, port: 80}]}]`), &rt); err != nil {
		t.Fatal(err)
	}
	s := model.NewStore()
	s.Update(model.Resources{Services: []*model.Service{{Namespace: "emojivoto", Name: "web-svc", Ports: []model.ServicePort{{Port: 80}}}},
		HTTPRoutes: []*routesapi.HTTPRoute{&rt}})
	got := Problems(s.Snapshot(), testInbound, clusterDomain)
	want := "HTTPRoute emojivoto/split: spec.rules[0].backendRefs[1]: Service web-v2 does not exist; its share of the rule's requests (1 of 10) gets 500"
	if len(got) != 1 || got[0] != want {
		t.Errorf("problems %q, want %q", got, want)
	}
}
