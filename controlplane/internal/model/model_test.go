package model_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

func snapshot(r model.Resources) *model.Snapshot {
	s := model.NewStore()
	s.Update(r)
	return s.Snapshot()
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// keys renders endpoints as "key opaque zone" so a table reads like the debug view.
func keys(eps []model.Endpoint) []string {
	out := []string{}
	for _, ep := range eps {
		s := ep.Key()
		if ep.Workload == nil {
			s += " addr-only"
		}
		if ep.Opaque {
			s += " opaque"
		}
		if ep.Zone != "" {
			s += " zone=" + ep.Zone
		}
		out = append(out, s)
	}
	return out
}

func TestPortRanges(t *testing.T) {
	t.Parallel()
	ranges := []model.PortRange{{First: 25, Last: 25}, {First: 3300, Last: 3310}}
	for p, want := range map[uint16]bool{24: false, 25: true, 26: false, 3299: false, 3300: true, 3305: true, 3310: true, 3311: false} {
		if got := model.InRanges(ranges, p); got != want {
			t.Errorf("InRanges(%d) = %v, want %v", p, got, want)
		}
	}
	if model.InRanges(nil, 25) {
		t.Error("no ranges contain a port")
	}
}

func TestWorkloadPorts(t *testing.T) {
	t.Parallel()
	w := &model.Workload{Namespace: "ns", Name: "db", MeshPort: 4143,
		Ports: []model.WorkloadPort{
			{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP},
			{Name: "sql", Port: 5432, Protocol: model.ProtocolOpaque},
			{Port: 9000, Protocol: model.ProtocolHTTP},
		},
		OpaquePorts: []model.PortRange{{First: 6000, Last: 6010}},
	}
	if w.Key() != "ns/db" || !w.Meshed() {
		t.Errorf("Key %q, Meshed %v", w.Key(), w.Meshed())
	}
	if (&model.Workload{}).Meshed() {
		t.Error("a workload without a mesh port is meshed")
	}
	if p, ok := w.PortByNumber(5432); !ok || p.Name != "sql" {
		t.Errorf("PortByNumber(5432) = %+v, %v", p, ok)
	}
	if _, ok := w.PortByNumber(1); ok {
		t.Error("PortByNumber found an undeclared port")
	}
	if p, ok := w.PortByName("http"); !ok || p.Port != 8080 {
		t.Errorf("PortByName(http) = %+v, %v", p, ok)
	}
	if _, ok := w.PortByName(""); ok {
		t.Error("the empty name matched the unnamed port")
	}
	for p, want := range map[uint16]bool{8080: false, 5432: true, 9000: false, 6005: true, 6011: false} {
		if got := w.Opaque(p); got != want {
			t.Errorf("Opaque(%d) = %v, want %v", p, got, want)
		}
	}
}

func TestServiceSelects(t *testing.T) {
	t.Parallel()
	svc := &model.Service{Namespace: "ns", Name: "web", Selector: map[string]string{"app": "web", "tier": "front"},
		Ports: []model.ServicePort{{Name: "http", Port: 80, TargetPort: model.TargetPort{Name: "http"}}}}
	for _, tc := range []struct {
		w    model.Workload
		want bool
	}{
		{model.Workload{Namespace: "ns", Labels: map[string]string{"app": "web", "tier": "front", "extra": "x"}}, true},
		{model.Workload{Namespace: "ns", Labels: map[string]string{"app": "web"}}, false},
		{model.Workload{Namespace: "ns", Labels: map[string]string{"app": "web", "tier": "back"}}, false},
		{model.Workload{Namespace: "other", Labels: map[string]string{"app": "web", "tier": "front"}}, false},
	} {
		if got := svc.Selects(&tc.w); got != tc.want {
			t.Errorf("Selects(%s %v) = %v, want %v", tc.w.Namespace, tc.w.Labels, got, tc.want)
		}
	}
	empty := &model.Service{Namespace: "ns"}
	if empty.Selects(&model.Workload{Namespace: "ns"}) {
		t.Error("an empty selector selected a workload")
	}
	if sp, ok := svc.Port(80); !ok || sp.Name != "http" {
		t.Errorf("Port(80) = %+v, %v", sp, ok)
	}
	if _, ok := svc.Port(81); ok {
		t.Error("Port(81) found")
	}
	if got := (model.TargetPort{Name: "http"}).String() + "," + (model.TargetPort{Number: 8080}).String(); got != "http,8080" {
		t.Errorf("TargetPort strings %q", got)
	}
	if got := model.SPIFFEID("td", "ns", "sa"); got != "spiffe://td/ns/ns/sa/sa" {
		t.Errorf("SPIFFEID = %q", got)
	}
}

func TestSnapshotLookups(t *testing.T) {
	t.Parallel()
	web := &model.Service{Namespace: "ns", Name: "web", ClusterIPs: []netip.Addr{addr("10.96.0.10"), addr("fd00::10")}}
	// Two services claim one ClusterIP: the first by namespace/name keeps it, whatever the input order.
	a := &model.Service{Namespace: "ns", Name: "a", ClusterIPs: []netip.Addr{addr("10.96.0.99")}}
	b := &model.Service{Namespace: "ns", Name: "b", ClusterIPs: []netip.Addr{addr("10.96.0.99")}}
	w := &model.Workload{Namespace: "ns", Name: "web-1", ServiceAccount: "web", Address: addr("10.0.0.1")}
	s := snapshot(model.Resources{
		Services:        []*model.Service{web, b, a},
		Workloads:       []*model.Workload{w},
		ServiceAccounts: []model.ServiceAccount{{Namespace: "ns", Name: "web"}},
		Errors:          []model.SourceError{{Source: "f.yaml", Message: "bad"}},
	})

	if got, ok := s.Service("ns", "web"); !ok || got != web {
		t.Errorf("Service(ns, web) = %v, %v", got, ok)
	}
	if _, ok := s.Service("other", "web"); ok {
		t.Error("a service found in the wrong namespace")
	}
	if got, ok := s.Workload("ns", "web-1"); !ok || got != w {
		t.Errorf("Workload(ns, web-1) = %v, %v", got, ok)
	}
	if _, ok := s.Workload("ns", "web-2"); ok {
		t.Error("an unknown workload found")
	}
	for ip, want := range map[string]*model.Service{
		"10.96.0.10": web, "::ffff:10.96.0.10": web, "fd00::10": web, "10.96.0.99": a, "10.96.0.11": nil,
	} {
		got, ok := s.ServiceByClusterIP(addr(ip))
		if got != want || ok != (want != nil) {
			t.Errorf("ServiceByClusterIP(%s) = %v, %v; want %v", ip, got, ok, want)
		}
	}
	if !s.ServiceAccount("ns", "web") || s.ServiceAccount("ns", "default") || s.ServiceAccount("other", "web") {
		t.Error("ServiceAccount answers differ from the listed accounts")
	}
	if errs := s.Errors(); len(errs) != 1 || errs[0].Source != "f.yaml" {
		t.Errorf("Errors = %v", errs)
	}
}

func TestSelectorEndpoints(t *testing.T) {
	t.Parallel()
	ws := []*model.Workload{
		// Out of order on purpose: endpoints come sorted by workload key.
		{Namespace: "ns", Name: "web-b", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.2"),
			Ports: []model.WorkloadPort{{Name: "http", Port: 9090, Protocol: model.ProtocolHTTP}}},
		{Namespace: "ns", Name: "web-a", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.1"),
			Ports:       []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}, {Name: "raw", Port: 7000, Protocol: model.ProtocolOpaque}},
			OpaquePorts: []model.PortRange{{First: 5000, Last: 5000}}},
		{Namespace: "ns", Name: "web-c", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.3")}, // declares nothing
		{Namespace: "ns", Name: "api", Labels: map[string]string{"app": "api"}, Address: addr("10.0.0.4"),
			Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
		{Namespace: "other", Name: "web-x", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.5"),
			Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
	}
	svc := &model.Service{Namespace: "ns", Name: "web", Selector: map[string]string{"app": "web"}}
	s := snapshot(model.Resources{Services: []*model.Service{svc}, Workloads: ws})
	for _, tc := range []struct {
		name string
		sp   model.ServicePort
		want []string
	}{
		{"named targetPort selects only workloads that declare it, at their own number",
			model.ServicePort{Port: 80, TargetPort: model.TargetPort{Name: "http"}},
			[]string{"ns/web-a:8080", "ns/web-b:9090"}},
		{"numeric targetPort selects every matching workload",
			model.ServicePort{Port: 80, TargetPort: model.TargetPort{Number: 8080}},
			[]string{"ns/web-a:8080", "ns/web-b:8080", "ns/web-c:8080"}},
		{"the workload's opaque port",
			model.ServicePort{Port: 70, TargetPort: model.TargetPort{Name: "raw"}},
			[]string{"ns/web-a:7000 opaque"}},
		{"the workload's opaque ranges",
			model.ServicePort{Port: 50, TargetPort: model.TargetPort{Number: 5000}},
			[]string{"ns/web-a:5000 opaque", "ns/web-b:5000", "ns/web-c:5000"}},
		{"an opaque service port makes every endpoint opaque",
			model.ServicePort{Port: 80, TargetPort: model.TargetPort{Name: "http"}, AppProtocol: model.ProtocolOpaque},
			[]string{"ns/web-a:8080 opaque", "ns/web-b:9090 opaque"}},
		{"a name nobody declares",
			model.ServicePort{Port: 80, TargetPort: model.TargetPort{Name: "grpc"}},
			[]string{}},
	} {
		if got := keys(s.Endpoints(svc, tc.sp)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExplicitEndpoints(t *testing.T) {
	t.Parallel()
	pod := &model.Workload{Namespace: "ns", Name: "web-1", Address: addr("10.0.0.1"),
		OpaquePorts: []model.PortRange{{First: 9000, Last: 9000}}}
	svc := &model.Service{Namespace: "ns", Name: "web", ExplicitEndpoints: true,
		// A selector is ignored for explicit endpoints.
		Selector: map[string]string{"app": "web"},
		Ports: []model.ServicePort{
			{Name: "http", Port: 80, TargetPort: model.TargetPort{Name: "http"}},
			{Name: "raw", Port: 90, TargetPort: model.TargetPort{Number: 9000}},
			{Name: "db", Port: 5432, TargetPort: model.TargetPort{Number: 5432}, AppProtocol: model.ProtocolOpaque},
		},
		Endpoints: []model.ServiceEndpoint{
			{PortName: "http", Address: addr("10.0.0.1"), Port: 8080, Workload: "web-1", Zone: "z1"},
			{PortName: "http", Address: addr("10.0.0.9"), Port: 8080, Workload: "web-9"},  // pod not known yet
			{PortName: "http", Address: addr("192.168.0.1"), Port: 8080},                  // address only
			{PortName: "http", Address: addr("10.0.0.7"), Port: 0, Workload: "web-1"},     // no port
			{PortName: "http", Port: 8080},                                                // no address
			{PortName: "raw", Address: addr("10.0.0.1"), Port: 9000, Workload: "web-1"},   // workload-opaque
			{PortName: "db", Address: addr("192.168.0.2"), Port: 5432},                    // service-opaque
			{PortName: "other", Address: addr("10.0.0.1"), Port: 1234, Workload: "web-1"}, // not a port of the service
		},
	}
	noise := &model.Workload{Namespace: "ns", Name: "selected", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.8")}
	s := snapshot(model.Resources{Services: []*model.Service{svc}, Workloads: []*model.Workload{pod, noise}})
	for _, tc := range []struct {
		port uint16
		want []string
	}{
		{80, []string{"192.168.0.1:8080 addr-only", "ns/web-1:8080 zone=z1"}},
		{90, []string{"ns/web-1:9000 opaque"}},
		{5432, []string{"192.168.0.2:5432 addr-only opaque"}},
	} {
		sp, _ := svc.Port(tc.port)
		if got := keys(s.Endpoints(svc, sp)); !slices.Equal(got, tc.want) {
			t.Errorf("port %d: %v, want %v", tc.port, got, tc.want)
		}
	}

	// The endpoint waiting for its pod appears with it.
	s = snapshot(model.Resources{Services: []*model.Service{svc}, Workloads: []*model.Workload{pod,
		{Namespace: "ns", Name: "web-9", Address: addr("10.0.0.9")}}})
	sp, _ := svc.Port(80)
	if got, want := keys(s.Endpoints(svc, sp)), []string{"192.168.0.1:8080 addr-only", "ns/web-1:8080 zone=z1", "ns/web-9:8080"}; !slices.Equal(got, want) {
		t.Errorf("after the pod appeared: %v, want %v", got, want)
	}
}

func TestWorkloadAt(t *testing.T) {
	t.Parallel()
	ws := []*model.Workload{
		// A pod that may listen anywhere, and sorts before the one that declares 8080 at the same address.
		{Namespace: "ns", Name: "a-pod", Address: addr("10.0.0.1"), UndeclaredPorts: true, MeshPort: 4143, ProxyPorts: []uint16{4143, 4191}},
		{Namespace: "ns", Name: "b-declared", Address: addr("10.0.0.1"),
			Ports: []model.WorkloadPort{{Port: 8080, Protocol: model.ProtocolHTTP}, {Port: 3306, Protocol: model.ProtocolOpaque}}},
		{Namespace: "ns", Name: "c-pod", Address: addr("10.0.0.1"), UndeclaredPorts: true},
		{Namespace: "ns", Name: "declared-only", Address: addr("10.0.0.2"), Ports: []model.WorkloadPort{{Port: 80}}},
		{Namespace: "ns", Name: "v6", Address: addr("fd00::1"), UndeclaredPorts: true, OpaquePorts: []model.PortRange{{First: 25, Last: 25}}},
	}
	s := snapshot(model.Resources{Workloads: ws})
	for _, tc := range []struct {
		at   string
		want string // "" when nothing listens there
	}{
		{"10.0.0.1:8080", "ns/b-declared:8080"},          // a declared port beats an earlier undeclared fallback
		{"10.0.0.1:3306", "ns/b-declared:3306 opaque"},   // the declared port's protocol
		{"10.0.0.1:9999", "ns/a-pod:9999"},               // first fallback by key
		{"10.0.0.1:4143", "ns/c-pod:4143"},               // a-pod's mesh port is not its application's
		{"10.0.0.1:4191", "ns/c-pod:4191"},               // nor its proxy ports
		{"[::ffff:10.0.0.1]:8080", "ns/b-declared:8080"}, // a v4-mapped address is the v4 one
		{"10.0.0.2:80", "ns/declared-only:80"},           // a declared port
		{"10.0.0.2:81", ""},                              // declared ports only
		{"10.0.0.3:80", ""},                              // nobody at that address
		{"[fd00::1]:25", "ns/v6:25 opaque"},              // IPv6; an opaque range of the workload
	} {
		ap := netip.MustParseAddrPort(tc.at)
		ep, ok := s.WorkloadAt(ap.Addr(), ap.Port())
		got := ""
		if ok {
			got = keys([]model.Endpoint{ep})[0]
		}
		if got != tc.want {
			t.Errorf("WorkloadAt(%s) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

func TestDebugView(t *testing.T) {
	t.Parallel()
	empty, err := json.Marshal(snapshot(model.Resources{}).Debug())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(empty), `{"version":1,"services":[],"workloads":[],"errors":[]}`; got != want {
		t.Errorf("empty model:\n got %s\nwant %s", got, want)
	}

	s := snapshot(model.Resources{
		Services: []*model.Service{
			{Namespace: "ns", Name: "web", Selector: map[string]string{"app": "web"},
				Ports: []model.ServicePort{{Port: 80, TargetPort: model.TargetPort{Name: "http"}}}},
			{Namespace: "ns", Name: "api", Ports: []model.ServicePort{{Port: 8080, TargetPort: model.TargetPort{Number: 8080}}}},
		},
		Workloads: []*model.Workload{
			{Namespace: "ns", Name: "web-2", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.2"),
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080}}},
			{Namespace: "ns", Name: "web-1", Labels: map[string]string{"app": "web"}, Address: addr("10.0.0.1"),
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080}}},
		},
		ServiceAccounts: []model.ServiceAccount{{Namespace: "ns", Name: "web"}, {Namespace: "ns", Name: "api"}, {Namespace: "a", Name: "z"}},
	})
	v := s.Debug()
	var svcs, wls, sas []string
	for _, ds := range v.Services {
		svcs = append(svcs, ds.Key())
	}
	for _, w := range v.Workloads {
		wls = append(wls, w.Key())
	}
	for _, sa := range v.ServiceAccounts {
		sas = append(sas, sa.Namespace+"/"+sa.Name)
	}
	if !slices.Equal(svcs, []string{"ns/api", "ns/web"}) || !slices.Equal(wls, []string{"ns/web-1", "ns/web-2"}) ||
		!slices.Equal(sas, []string{"a/z", "ns/api", "ns/web"}) {
		t.Errorf("not sorted: services %v, workloads %v, service accounts %v", svcs, wls, sas)
	}
	if got := v.Services[1].Endpoints["80"]; !slices.Equal(got, []string{"ns/web-1:8080", "ns/web-2:8080"}) {
		t.Errorf("web endpoints %v", got)
	}
	if got, ok := v.Services[0].Endpoints["8080"]; !ok || got == nil || len(got) != 0 {
		t.Errorf("api (no selector) endpoints %#v: want an empty list", got)
	}
}

// /debug/model shows a service's outbound defaults readably, and leaves them out when there are none.
func TestOutboundDefaultsJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(&model.Service{Name: "s", Outbound: model.OutboundDefaults{
		RequestTimeout: model.Duration(1500 * time.Millisecond),
		Retry:          &model.Retry{Limit: 2, HTTPStatuses: []model.StatusRange{{First: 500, Last: 599}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `"outbound":{"retry":{"limit":2,"httpStatuses":[{"first":500,"last":599}]},"requestTimeout":"1.5s"}`
	if !strings.Contains(string(b), want) {
		t.Errorf("got %s, want it to contain %s", b, want)
	}
	if b, _ := json.Marshal(&model.Service{Name: "s"}); strings.Contains(string(b), "outbound") {
		t.Errorf("no defaults: %s", b)
	}
}

// TestRouteOrder: HTTPRoutes and GRPCRoutes are each sorted oldest first, then by namespace/name, and Routes
// holds both kinds in that order (by kind name on a tie of name and age), as the translations break ties.
func TestRouteOrder(t *testing.T) {
	t.Parallel()
	at := func(h int) metav1.ObjectMeta {
		return metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 1, h, 0, 0, 0, time.UTC))}
	}
	meta := func(h int, ns, name string) metav1.ObjectMeta {
		m := at(h)
		m.Namespace, m.Name = ns, name
		return m
	}
	s := model.NewStore()
	s.Update(model.Resources{
		HTTPRoutes: []*routesapi.HTTPRoute{{ObjectMeta: meta(2, "a", "h2")}, {ObjectMeta: meta(1, "b", "same")}},
		GRPCRoutes: []*routesapi.GRPCRoute{{ObjectMeta: meta(3, "a", "g3")}, {ObjectMeta: meta(1, "b", "same")}, {ObjectMeta: meta(1, "a", "g1")}},
	})
	snap := s.Snapshot()
	var got []string
	for _, rt := range snap.Routes() {
		got = append(got, rt.Kind+" "+rt.Key())
	}
	want := []string{"GRPCRoute a/g1", "GRPCRoute b/same", "HTTPRoute b/same", "HTTPRoute a/h2", "GRPCRoute a/g3"}
	if !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
	if g := snap.GRPCRoutes(); g[0].Name != "g1" || g[1].Name != "same" || g[2].Name != "g3" {
		t.Errorf("GRPCRoutes not sorted: %s %s %s", g[0].Name, g[1].Name, g[2].Name)
	}
}
