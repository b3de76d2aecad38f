package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPathStatsLabels(t *testing.T) {
	m, reg := newTest(t)
	in := m.Series(Labels{Direction: "inbound", TargetAddr: "127.0.0.1:8080", TLS: "true", ClientID: "spiffe://td/ns/e/sa/web"})
	in.Request()
	ps := in.Path("voting-svc.e:8080", "/emojivoto.v1.VotingService/VoteDoughnut")
	ps.Request()
	r := ps.Response(200, 2, true)
	r.ObserveLatency(3)
	r.End()
	r = in.Response(200, 2, true)
	r.ObserveLatency(3)
	r.End()

	got := series(t, reg, "route_response_total")
	if len(got) != 1 {
		t.Fatalf("route_response_total: %v", got)
	}
	want := map[string]string{"direction": "inbound", "authority": "voting-svc.e:8080", "target_addr": "127.0.0.1:8080", "tls": "true",
		"client_id": "spiffe://td/ns/e/sa/web", "rt_route": "/emojivoto.v1.VotingService/VoteDoughnut", "status_code": "200",
		"classification": "failure", "grpc_status_code": "2", "#value": "1"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("route_response_total %s=%q, want %q (%v)", k, got[0][k], v, got[0])
		}
	}
	// The route families carry the same labels as their Linkerd-named siblings, plus rt_route.
	for fam, sibling := range map[string]string{"route_request_total": "request_total", "route_response_total": "response_total",
		"route_response_latency_ms": "response_latency_ms"} {
		a, b := series(t, reg, fam), series(t, reg, sibling)
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("%s %v, %s %v: want one series each", fam, a, sibling, b)
		}
		delete(a[0], "rt_route")
		delete(a[0], "#value")
		delete(b[0], "#value")
		delete(a[0], "authority") // inbound: only the route metrics carry it
		delete(b[0], "authority")
		if fmt.Sprint(a[0]) != fmt.Sprint(b[0]) {
			t.Errorf("%s labels %v differ from %s's %v", fam, a[0], sibling, b[0])
		}
	}
	if in.Path("voting-svc.e:8080", "/emojivoto.v1.VotingService/VoteDoughnut") != ps {
		t.Error("a second lookup of the same path resolved new metrics")
	}
}

func TestPathStatsCardinalityIsBounded(t *testing.T) {
	m, reg := newTest(t)
	out := m.Series(Labels{Direction: "outbound", Authority: "web-svc:80", TLS: "true"})
	out2 := m.Series(Labels{Direction: "outbound", Authority: "web-svc:80", TLS: "true", TargetAddr: "10.0.0.2:80"})
	for i := range MaxRoutes + 50 {
		out.Path("web-svc:80", fmt.Sprintf("/p/%d", i)).Request()
	}
	// The table is per direction: another label set of the same direction gets the admitted paths, and [other]
	// for the rest; the inbound direction has its own table.
	out2.Path("web-svc:80", "/p/0").Request()
	out2.Path("web-svc:80", "/p/new").Request()
	m.Series(Labels{Direction: "inbound"}).Path("web-svc:80", "/p/new").Request()

	routes := map[string]float64{}
	for _, s := range series(t, reg, "route_request_total") {
		if s["direction"] != "outbound" {
			if s["rt_route"] != "/p/new" {
				t.Errorf("inbound series %v: want its own table", s)
			}
			continue
		}
		var v float64
		fmt.Sscan(s["#value"], &v)
		routes[s["rt_route"]+" "+s["authority"]] += v
	}
	if got := routes[OtherRoute+" "+OtherRoute]; got != 51 {
		t.Errorf("[other] counted %v requests, want 51 (50 beyond the bound on one label set, 1 on the other)", got)
	}
	if got := routes["/p/0 web-svc:80"]; got != 2 {
		t.Errorf("/p/0 counted %v, want 2", got)
	}
	if len(routes) != MaxRoutes+1 {
		t.Errorf("%d distinct outbound routes, want %d and [other]", len(routes), MaxRoutes)
	}
	// Paths beyond the bound are not cached per label set, so they cannot grow memory either.
	var cached int
	out.paths.Range(func(any, any) bool { cached++; return true })
	if cached != MaxRoutes {
		t.Errorf("%d paths cached on one label set, want %d", cached, MaxRoutes)
	}
}

func TestPathStatsCacheHitDoesNotAllocate(t *testing.T) {
	m, _ := newTest(t)
	r := m.Series(Labels{Direction: "inbound", TLS: "true"})
	// Strings built at run time, like a request's Host and path.
	host, path := strings.Repeat("h", 3), "/"+strings.Repeat("p", 5)
	r.Path(host, path).Response(200, -1, false)
	if n := testing.AllocsPerRun(100, func() {
		s := r.Path(host, path)
		s.Request()
		resp := s.Response(200, -1, false)
		resp.ObserveLatency(1)
		resp.End()
	}); n != 0 {
		t.Errorf("a cached path costs %v allocations per request, want 0", n)
	}
}

func BenchmarkResponseWithPathStats(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, _ := New(reg)
	r := m.Series(Labels{Direction: "inbound", TLS: "true"})
	host, path := strings.Repeat("h", 20), "/emojivoto.v1.VotingService/"+strings.Repeat("V", 12)
	b.ReportAllocs()
	for b.Loop() {
		r.Request()
		ps := r.Path(host, path)
		ps.Request()
		for _, resp := range [2]*Response{r.Response(200, 0, false), ps.Response(200, 0, false)} {
			resp.ObserveLatency(1.5)
			resp.End()
		}
	}
}

// BenchmarkPathStatsBeyondBound is the per-request lookup of paths beyond MaxRoutes (a REST API with IDs in its
// paths, or a scanner), which are never cached, from parallel requests of one direction.
func BenchmarkPathStatsBeyondBound(b *testing.B) {
	m, _ := New(prometheus.NewRegistry())
	r := m.Series(Labels{Direction: "inbound", TLS: "true"})
	for i := range MaxRoutes {
		r.Path("web-svc:80", fmt.Sprintf("/admitted/%d", i))
	}
	paths := make([]string, 64)
	for i := range paths {
		paths[i] = fmt.Sprintf("/users/%d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Path("web-svc:80", paths[i%len(paths)]).Request()
			i++
		}
	})
}
