package layer

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// splitPolicy is the policy of Service web (port 80) with one HTTPRoute that splits 80/20 between web-v1 and web-v2.
func splitPolicy(t testing.TB) *policyv1.OutboundPolicy {
	t.Helper()
	return &policyv1.OutboundPolicy{Labels: map[string]string{"kind": "Service", "name": "web", "namespace": "shop", "port": "80"}, Routes: []*policyv1.HttpRoute{{
		Labels: map[string]string{"kind": "HTTPRoute", "name": "web-split", "namespace": "shop"},
		Rules: []*policyv1.RouteRule{{Backends: []*policyv1.WeightedBackend{
			{Authority: "web-v1.shop.svc.cluster.local:80", Weight: 80}, {Authority: "web-v2.shop.svc.cluster.local:80", Weight: 20}}}},
	}}}
}

// observedOutbound is the outbound chain's split and metrics layers, behind a route layer that matches requests
// against o (nil: the route layer with the default policy), in front of an endpoint that answers status, with the
// proxy's metrics on reg.
func observedOutbound(t testing.TB, o *policy.Outbound, status int) (pipeline.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	d := endpoint.NewDialer(nil, nil, time.Second)
	ep := endpoint.NewPassthrough("10.0.0.7:8080", m, d, endpoint.NewPlain(d))
	app := pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { return respond(status), nil })
	balance := func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			req.Endpoint = ep
			return next.Handle(req)
		})
	}
	var nilClient *policy.Client
	route := Route(nilClient, time.Second)
	if o != nil {
		route = func(next pipeline.Handler) pipeline.Handler {
			return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
				req.Policy, req.Rule = o, o.Match(req.HTTP)
				return next.Handle(req)
			})
		}
	}
	return pipeline.Chain(app, route, Split(nil), balance, Observe(nil)), reg
}

func TestObserveCountsRouteAndBackend(t *testing.T) {
	// The application called web's ClusterIP, as in transparent mode: the parent is what the control plane said.
	const target = "10.96.0.10:80"
	h, reg := observedOutbound(t, translated(t, target, splitPolicy(t)), 200)
	const n = 1000
	for range n {
		resp, err := h.Handle(newReq("GET", "http://"+target+"/shop", nil))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	byBackend := map[string]float64{}
	for _, mf := range gather(t, reg, "outbound_http_route_backend_response_statuses_total") {
		l := labelMap(mf)
		if l["parent_kind"] != "Service" || l["parent_name"] != "web" || l["parent_namespace"] != "shop" || l["parent_port"] != "80" || l["route_kind"] != "HTTPRoute" || l["route_name"] != "web-split" ||
			l["route_namespace"] != "shop" || l["http_status"] != "200" || l["classification"] != "success" {
			t.Errorf("unexpected series %v", l)
		}
		byBackend[l["backend_name"]] += mf.GetCounter().GetValue()
	}
	if byBackend["web-v1"]+byBackend["web-v2"] != n || byBackend["web-v2"] < 0.1*n || byBackend["web-v2"] > 0.3*n {
		t.Errorf("responses by backend %v, want %d split about 80/20", byBackend, n)
	}
}

func TestObserveCountsTheDefaultRoute(t *testing.T) {
	h, reg := observedOutbound(t, nil, 503)
	resp, err := h.Handle(newReq("GET", "http://web.shop.svc.cluster.local:80/", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := gather(t, reg, "outbound_http_route_backend_requests_total")
	if len(got) != 1 {
		t.Fatalf("requests %v", got)
	}
	if l := labelMap(got[0]); l["route_kind"] != "default" || l["route_name"] != "default" || l["backend_name"] != "web" || l["parent_name"] != "web" {
		t.Errorf("default route's series %v", l)
	}
	st := gather(t, reg, "outbound_http_route_backend_response_statuses_total")
	if len(st) != 1 || labelMap(st[0])["classification"] != "failure" || labelMap(st[0])["http_status"] != "503" {
		t.Errorf("statuses %v", st)
	}
}

// BenchmarkObserveOutbound is the metrics layer's cost for an outbound request that matched a route rule with two
// weighted backends: the request_total, response_total, route_* and outbound_http_route_* series (tap off).
func BenchmarkObserveOutbound(b *testing.B) {
	const target = "web.shop.svc.cluster.local:80"
	h, _ := observedOutbound(b, translated(b, target, splitPolicy(b)), 200)
	req := newReq("GET", "http://"+target+"/shop", nil)
	b.ReportAllocs()
	for b.Loop() {
		r := pipeline.Request{Client: req.Client, HTTP: req.HTTP, Out: req.Out}
		resp, err := h.Handle(&r)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

func gather(t testing.TB, reg *prometheus.Registry, family string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == family {
			return mf.GetMetric()
		}
	}
	return nil
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}
