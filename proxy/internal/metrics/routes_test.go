package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRouteStatsLabels(t *testing.T) {
	m, reg := newTest(t)
	k := RouteKey{Target: "web.shop.svc.cluster.local:80", RouteKind: "HTTPRoute", RouteName: "web-split", RouteNamespace: "shop",
		Backend: "web-v2.shop.svc.cluster.local:80"}
	rs := m.Route(k)
	rs.Request()
	rs.ObserveLatency(3)
	rs.End(200, -1, false)
	rs.Request()
	rs.End(503, -1, true)
	def := m.Route(RouteKey{Target: "10.0.0.7:8080", RouteKind: "default", RouteName: "default", Backend: "10.0.0.7:8080"})
	def.Request()
	// Transparent mode: the application called an address, which the control plane said is Service api's.
	byIP := m.Route(RouteKey{Target: "10.96.0.10:80", ParentKind: "Service", ParentName: "api", ParentNamespace: "shop", ParentPort: "80",
		RouteKind: "default", RouteName: "default", Backend: "10.96.0.10:80"})
	byIP.Request()

	want := map[string]string{"parent_kind": "Service", "parent_name": "web", "parent_namespace": "shop", "parent_port": "80",
		"route_kind": "HTTPRoute", "route_name": "web-split", "route_namespace": "shop",
		"backend_kind": "Service", "backend_name": "web-v2", "backend_namespace": "shop", "backend_port": "80"}
	reqs := series(t, reg, "outbound_http_route_backend_requests_total")
	if len(reqs) != 3 {
		t.Fatalf("requests: %v", reqs)
	}
	for _, s := range reqs {
		if s["parent_name"] == "api" {
			if s["parent_kind"] != "Service" || s["parent_namespace"] != "shop" || s["parent_port"] != "80" || s["backend_kind"] != "Service" ||
				s["backend_name"] != "api" || s["backend_namespace"] != "shop" || s["backend_port"] != "80" {
				t.Errorf("the default route of a Service called by its address: %v", s)
			}
			continue
		}
		if s["route_kind"] == "default" {
			if s["parent_kind"] != "" || s["parent_name"] != "10.0.0.7" || s["backend_name"] != "10.0.0.7" || s["backend_port"] != "8080" {
				t.Errorf("default route to an address: %v", s)
			}
			continue
		}
		for l, v := range want {
			if s[l] != v {
				t.Errorf("requests %s=%q, want %q (%v)", l, s[l], v, s)
			}
		}
		if s["#value"] != "2" {
			t.Errorf("requests = %s, want 2", s["#value"])
		}
	}
	statuses := series(t, reg, "outbound_http_route_backend_response_statuses_total")
	got := map[string]string{}
	for _, s := range statuses {
		got[s["http_status"]+" "+s["grpc_status"]+" "+s["classification"]] = s["#value"]
		if s["route_name"] != "web-split" || s["backend_name"] != "web-v2" {
			t.Errorf("statuses: %v", s)
		}
	}
	if fmt.Sprint(got) != "map[200  success:1 503  failure:1]" {
		t.Errorf("statuses %v", got)
	}
	if d := series(t, reg, "outbound_http_route_backend_response_duration_seconds"); len(d) != 3 {
		t.Errorf("durations: %v", d)
	}
	if m.Route(k) != rs {
		t.Error("a second lookup of the same key resolved new metrics")
	}
}

func TestAuthorityLabels(t *testing.T) {
	for in, want := range map[string]string{
		"web.shop.svc.cluster.local:80": "Service web shop 80",
		"web.shop:8080":                 "Service web shop 8080",
		"web:80":                        " web  80",
		"10.0.0.7:8080":                 " 10.0.0.7  8080",
		"[fd00::1]:80":                  " fd00::1  80",
		"":                              "   ",
	} {
		k, n, ns, p := authorityLabels(in)
		if got := k + " " + n + " " + ns + " " + p; got != want {
			t.Errorf("authorityLabels(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRouteStatsCardinalityIsBounded(t *testing.T) {
	m, reg := newTest(t)
	for i := range MaxRouteBackends + 20 {
		m.Route(RouteKey{Target: "web.shop:80", RouteKind: "HTTPRoute", RouteName: fmt.Sprintf("r%d", i), Backend: "web.shop:80"}).Request()
	}
	reqs := series(t, reg, "outbound_http_route_backend_requests_total")
	if len(reqs) != MaxRouteBackends+1 {
		t.Fatalf("%d series, want %d and [other]", len(reqs), MaxRouteBackends)
	}
	for _, s := range reqs {
		if s["route_name"] == OtherRoute && (s["#value"] != "20" || s["backend_name"] != OtherRoute) {
			t.Errorf("[other]: %v, want 20 requests", s)
		}
	}
}

func TestRouteStatsCacheHitDoesNotAllocate(t *testing.T) {
	m, _ := newTest(t)
	k := RouteKey{Target: "web.shop.svc.cluster.local:80", RouteKind: "HTTPRoute", RouteName: "web-split", RouteNamespace: "shop",
		Backend: "web-v2.shop.svc.cluster.local:80"}
	m.Route(k).End(200, -1, false)
	if n := testing.AllocsPerRun(100, func() {
		rs := m.Route(k)
		rs.Request()
		rs.ObserveLatency(1)
		rs.End(200, -1, false)
	}); n != 0 {
		t.Errorf("a known route costs %v allocations per attempt, want 0", n)
	}
}

// BenchmarkRouteStats is what the outbound_http_route_* families add to an outbound attempt: the lookup of its
// (parent, route, backend) and the counting of its request, latency and response.
func BenchmarkRouteStats(b *testing.B) {
	m, _ := New(prometheus.NewRegistry())
	k := RouteKey{Target: "web.shop.svc.cluster.local:80", RouteKind: "HTTPRoute", RouteName: "web-split", RouteNamespace: "shop",
		Backend: "web-v2.shop.svc.cluster.local:80"}
	b.ReportAllocs()
	for b.Loop() {
		rs := m.Route(k)
		rs.Request()
		rs.ObserveLatency(1.5)
		rs.End(200, -1, false)
	}
}
