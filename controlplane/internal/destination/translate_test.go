package destination

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]Target{
		"web-svc.emojivoto.svc.cluster.local:80":  {Namespace: "emojivoto", Service: "web-svc", Port: 80},
		"web-svc.emojivoto.svc.cluster.local.:80": {Namespace: "emojivoto", Service: "web-svc", Port: 80},
		"Web-Svc.Emojivoto.svc:80":                {Namespace: "emojivoto", Service: "web-svc", Port: 80},
		"web-svc.emojivoto:8080":                  {Namespace: "emojivoto", Service: "web-svc", Port: 8080},
		"web-svc.emojivoto.svc.other.domain:80":   {Port: 80},
		"www.example.com.:443":                    {Port: 443},
		"web:80":                                  {Port: 80},
		"10.0.0.1:80":                             {Addr: netip.MustParseAddr("10.0.0.1"), Port: 80},
		"[::ffff:10.0.0.1]:80":                    {Addr: netip.MustParseAddr("10.0.0.1"), Port: 80},
	} {
		got, err := ParseTarget(path, "cluster.local")
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", path, got, err, want)
		}
	}
	for _, bad := range []string{"web-svc.emojivoto", "x:0", "x:99999", ""} {
		if _, err := ParseTarget(bad, "cluster.local"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func snapshot(r model.Resources) *model.Snapshot {
	s := model.NewStore()
	s.Update(r)
	return s.Snapshot()
}

var (
	web = &model.Workload{Namespace: "ns", Name: "web-1", Labels: map[string]string{"app": "web", "zone": "z1"}, ServiceAccount: "web",
		Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143,
		Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}, {Name: "raw", Port: 9000, Protocol: model.ProtocolOpaque}}}
	plain = &model.Workload{Namespace: "ns", Name: "web-2", Labels: map[string]string{"app": "web"}, ServiceAccount: "default",
		Address: netip.MustParseAddr("10.0.0.2"), Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}}
	svc = &model.Service{Namespace: "ns", Name: "web", Selector: map[string]string{"app": "web"}, Ports: []model.ServicePort{
		{Port: 80, TargetPort: model.TargetPort{Name: "http"}},
		{Port: 90, TargetPort: model.TargetPort{Number: 9000}},
		{Port: 91, TargetPort: model.TargetPort{Number: 8080}, AppProtocol: model.ProtocolOpaque},
	}}
)

func TestResolve(t *testing.T) {
	t.Parallel()
	snap := snapshot(model.Resources{Services: []*model.Service{svc}, Workloads: []*model.Workload{web, plain}})
	r := Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 80}, "td")
	if !r.Exists || len(r.Endpoints) != 2 || r.SetLabels["service"] != "web" {
		t.Fatalf("%+v", r)
	}
	m := r.Endpoints["10.0.0.1:4143"]
	if m.GetTargetPort() != 8080 || m.GetTlsIdentity().GetSpiffeId() != "spiffe://td/ns/ns/sa/web" || m.GetProtocolHint().GetH2() == nil ||
		m.GetZone() != "z1" || m.GetMetricLabels()["zone"] != "z1" || m.GetMetricLabels()["deployment"] != "web" {
		t.Errorf("meshed endpoint %v", m)
	}
	p := r.Endpoints["10.0.0.2:8080"]
	if p.GetTlsIdentity() != nil || p.GetProtocolHint() != nil || p.GetTargetPort() != 0 || p.GetWeight() != Weight {
		t.Errorf("plain endpoint %v", p)
	}
	for port, why := range map[uint16]string{90: "workload port opaque", 91: "service appProtocol opaque"} {
		r := Resolve(snap, Target{Namespace: "ns", Service: "web", Port: port}, "td")
		if r.Endpoints["10.0.0.1:4143"].GetProtocolHint().GetOpaque() == nil {
			t.Errorf("port %d (%s): hint %v", port, why, r.Endpoints["10.0.0.1:4143"].GetProtocolHint())
		}
	}
	if r := Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 81}, "td"); r.Exists {
		t.Error("undeclared service port resolved")
	}
	if r := Resolve(snap, Target{Addr: netip.MustParseAddr("10.0.0.1"), Port: 9000}, "td"); len(r.Endpoints) != 1 ||
		r.Endpoints["10.0.0.1:4143"].GetTargetPort() != 9000 {
		t.Errorf("ip:port %+v", r)
	}
	if r := Resolve(snap, Target{Addr: netip.MustParseAddr("10.0.0.1"), Port: 4143}, "td"); r.Exists {
		t.Error("the mesh port is not an application port")
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := &destinationv1.WeightedAddr{Addr: "a:1", Weight: Weight}
	b := &destinationv1.WeightedAddr{Addr: "b:1", Weight: Weight}
	b2 := &destinationv1.WeightedAddr{Addr: "b:1", Weight: Weight, TargetPort: 2}
	res := func(exists bool, eps ...*destinationv1.WeightedAddr) Resolution {
		r := Resolution{Exists: exists, Endpoints: map[string]*destinationv1.WeightedAddr{}}
		for _, e := range eps {
			r.Endpoints[e.Addr] = e
		}
		return r
	}
	for name, tc := range map[string]struct {
		prev, next Resolution
		want       []string // update kinds in order, with addresses
	}{
		"no change":          {res(true, a), res(true, a), nil},
		"added":              {res(true, a), res(true, a, b), []string{"add b:1"}},
		"changed":            {res(true, a, b), res(true, a, b2), []string{"add b:1"}},
		"removed":            {res(true, a, b), res(true, a), []string{"remove b:1"}},
		"emptied":            {res(true, a), res(true), []string{"remove a:1", "none true"}},
		"deleted":            {res(true, a), res(false), []string{"remove a:1", "none false"}},
		"appeared empty":     {res(false), res(true), []string{"none true"}},
		"appeared with some": {res(false), res(true, a), []string{"add a:1"}},
		"unknown stays":      {res(false), res(false), nil},
	} {
		var got []string
		for _, u := range Diff(tc.prev, tc.next) {
			switch {
			case u.GetAdd() != nil:
				for _, wa := range u.GetAdd().GetAddrs() {
					got = append(got, "add "+wa.GetAddr())
				}
			case u.GetRemove() != nil:
				for _, addr := range u.GetRemove().GetAddrs() {
					got = append(got, "remove "+addr)
				}
			default:
				if u.GetNoEndpoints().GetExists() {
					got = append(got, "none true")
				} else {
					got = append(got, "none false")
				}
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", name, got, tc.want)
				break
			}
		}
	}
}

// slowStream never sends: it blocks until its context ends, so the subscriber's queue fills up.
type slowStream struct {
	grpc.ServerStream
	ctx     context.Context
	blocked chan struct{}
}

func (s *slowStream) Context() context.Context { return s.ctx }
func (s *slowStream) Send(*destinationv1.Update) error {
	select {
	case s.blocked <- struct{}{}:
	default:
	}
	<-s.ctx.Done()
	return s.ctx.Err()
}

func TestSlowSubscriberIsDisconnected(t *testing.T) {
	t.Parallel()
	store := model.NewStore()
	srv := New(Config{Store: store, TrustDomain: "td", ClusterDomain: "cluster.local", QueueSize: 2, Debounce: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()

	streamCtx, streamCancel := context.WithCancel(context.Background())
	defer streamCancel()
	st := &slowStream{ctx: streamCtx, blocked: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- srv.Get(&destinationv1.GetRequest{Path: "web.ns.svc.cluster.local:80"}, st) }()
	<-st.blocked // the handler is stuck sending the first message

	// Each change toggles the service's existence; every recomputation enqueues an update.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		var r model.Resources
		if i%2 == 0 {
			r.Services = []*model.Service{svc}
		}
		store.Update(r)
		srv.mu.Lock()
		subscribed := len(srv.subs) > 0
		srv.mu.Unlock()
		if !subscribed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscriber was never disconnected")
		}
		time.Sleep(2 * time.Millisecond)
	}
	streamCancel() // unblock Send so the handler can observe the overflow
	if err := <-done; err == nil {
		t.Error("Get returned nil after its subscriber was disconnected")
	}
	if n := srv.overflowCount(); n != 1 {
		t.Errorf("overflow counted %v times, want 1", n)
	}
}

// Kubernetes-shaped model: explicit endpoints (from EndpointSlices), ClusterIPs, pods whose ports are
// informational.
func TestResolveExplicitEndpointsAndClusterIPs(t *testing.T) {
	t.Parallel()
	podA := &model.Workload{Namespace: "ns", Name: "api-a", Labels: map[string]string{names.DeploymentLabel: "api", "app": "x"},
		ServiceAccount: "api", Address: netip.MustParseAddr("10.1.0.1"), MeshPort: 4143, UndeclaredPorts: true, ProxyPorts: []uint16{4143, 4191},
		OpaquePorts: []model.PortRange{{First: 7000, Last: 7010}}}
	podB := &model.Workload{Namespace: "ns", Name: "api-b", ServiceAccount: "api", Address: netip.MustParseAddr("10.1.0.2"), UndeclaredPorts: true}
	api := &model.Service{Namespace: "ns", Name: "api", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00::10")},
		Selector: map[string]string{"ignored": "because explicit"}, ExplicitEndpoints: true,
		Ports: []model.ServicePort{{Name: "http", Port: 80, TargetPort: model.TargetPort{Name: "web"}}, {Name: "raw", Port: 7001}},
		Endpoints: []model.ServiceEndpoint{
			// A named target port resolves to different numbers on different pods.
			{PortName: "http", Address: podA.Address, Port: 8080, Workload: "api-a", Zone: "zone-a"},
			{PortName: "http", Address: podB.Address, Port: 9090, Workload: "api-b"},
			{PortName: "http", Address: netip.MustParseAddr("10.1.0.3"), Port: 8080, Workload: "api-gone"},
			{PortName: "http", Address: netip.MustParseAddr("192.0.2.7"), Port: 8443},
			{PortName: "raw", Address: podA.Address, Port: 7001, Workload: "api-a"},
		}}
	snap := snapshot(model.Resources{Services: []*model.Service{api}, Workloads: []*model.Workload{podA, podB}})

	byName := Resolve(snap, Target{Namespace: "ns", Service: "api", Port: 80}, "td")
	if !byName.Exists || len(byName.Endpoints) != 3 {
		t.Fatalf("by name: %+v", byName)
	}
	a := byName.Endpoints["10.1.0.1:4143"]
	if a.GetTargetPort() != 8080 || a.GetTlsIdentity().GetSpiffeId() != "spiffe://td/ns/ns/sa/api" || a.GetZone() != "zone-a" ||
		a.GetMetricLabels()["deployment"] != "api" || a.GetProtocolHint().GetH2() == nil {
		t.Errorf("meshed endpoint %v", a)
	}
	if b := byName.Endpoints["10.1.0.2:9090"]; b == nil || b.GetTlsIdentity() != nil || b.GetMetricLabels()["pod"] != "api-b" {
		t.Errorf("unmeshed endpoint %v", b)
	}
	if x := byName.Endpoints["192.0.2.7:8443"]; x == nil || x.GetTlsIdentity() != nil || x.GetMetricLabels()["pod"] != "" {
		t.Errorf("address-only endpoint %v", x)
	}
	if _, ok := byName.Endpoints["10.1.0.3:8080"]; ok {
		t.Error("an endpoint naming an unknown workload was resolved")
	}

	for _, ip := range []string{"10.96.0.10", "fd00::10", "::ffff:10.96.0.10"} {
		byIP := Resolve(snap, Target{Addr: netip.MustParseAddr(ip), Port: 80}, "td")
		if !byIP.Exists || len(byIP.Endpoints) != 3 || byIP.SetLabels["service"] != "api" || byIP.Endpoints["10.1.0.1:4143"].GetTargetPort() != 8080 {
			t.Errorf("ClusterIP %s: %+v", ip, byIP)
		}
		if len(Diff(byName, byIP)) != 0 {
			t.Errorf("ClusterIP %s resolves differently from the name: %v", ip, Diff(byName, byIP))
		}
	}
	if r := Resolve(snap, Target{Addr: netip.MustParseAddr("10.96.0.10"), Port: 81}, "td"); r.Exists {
		t.Error("a ClusterIP on a port the service does not declare resolved")
	}
	if r := Resolve(snap, Target{Namespace: "ns", Service: "api", Port: 7001}, "td"); r.Endpoints["10.1.0.1:4143"].GetProtocolHint().GetOpaque() == nil {
		t.Errorf("annotated opaque port: %+v", r)
	}

	// Pod IP on a port the pod does not declare: still the pod (its ports are informational).
	direct := Resolve(snap, Target{Addr: podA.Address, Port: 7005}, "td")
	if d := direct.Endpoints["10.1.0.1:4143"]; d == nil || d.GetTargetPort() != 7005 || d.GetProtocolHint().GetOpaque() == nil {
		t.Errorf("pod ip:port %+v", direct)
	}
	// ...but never on the proxy's own ports.
	for _, port := range []uint16{4143, 4191} {
		if r := Resolve(snap, Target{Addr: podA.Address, Port: port}, "td"); r.Exists {
			t.Errorf("the proxy's port %d resolved as an application port: %+v", port, r)
		}
	}
}

// ServiceOf is the one answer to "which service is this target", shared with the outbound policy.
func TestServiceOf(t *testing.T) {
	t.Parallel()
	api := &model.Service{Namespace: "ns", Name: "api", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		Ports: []model.ServicePort{{Name: "http", Port: 80, TargetPort: model.TargetPort{Number: 8080}}}}
	pod := &model.Workload{Namespace: "ns", Name: "p", Address: netip.MustParseAddr("10.1.0.1"), UndeclaredPorts: true}
	snap := snapshot(model.Resources{Services: []*model.Service{api}, Workloads: []*model.Workload{pod}})
	for _, tc := range []struct {
		target            Target
		isService, wantOK bool
	}{
		{Target{Namespace: "ns", Service: "api", Port: 80}, true, true},
		{Target{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80}, true, true},
		{Target{Addr: netip.MustParseAddr("::ffff:10.96.0.10"), Port: 80}, true, true},
		{Target{Namespace: "ns", Service: "api", Port: 81}, true, false},
		{Target{Addr: netip.MustParseAddr("10.96.0.10"), Port: 81}, true, false},
		{Target{Namespace: "ns", Service: "nope", Port: 80}, true, false},
		{Target{Addr: netip.MustParseAddr("10.1.0.1"), Port: 80}, false, false},
		{Target{Port: 80}, false, false},
	} {
		svc, sp, isService, ok := ServiceOf(snap, tc.target)
		if isService != tc.isService || ok != tc.wantOK || (ok && (svc != api || sp.Port != 80)) {
			t.Errorf("%+v: service %v port %+v isService %v ok %v", tc.target, svc, sp, isService, ok)
		}
	}
}
