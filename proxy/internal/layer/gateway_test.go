package layer

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/gateway"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// gatewayRoutes: port 80 has a listener for any host with route "shop" (shop.example.com: /api to api, the rest
// to web) and one for *.internal.test with route "internal".
func gatewayRoutes(t *testing.T) *gateway.Config {
	t.Helper()
	backend := func(a string) []*policyv1.WeightedBackend {
		return []*policyv1.WeightedBackend{{Authority: a, Weight: 1}}
	}
	cfg, problems := gateway.Translate(&policyv1.GatewayConfig{Exists: true, Labels: map[string]string{"kind": "Gateway", "name": "edge"},
		Listeners: []*policyv1.GatewayListener{
			{Name: "http", Port: 80, Protocol: policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTP, Routes: []*policyv1.HttpRoute{{
				Labels: map[string]string{"name": "shop"}, Hostnames: []string{"shop.example.com"},
				Rules: []*policyv1.RouteRule{
					{Matches: []*policyv1.HttpMatch{{Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: "/api"}}}}, Backends: backend("api:80")},
					{Backends: backend("web:80")},
				}}}},
			{Name: "internal", Port: 80, Protocol: policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTP, Hostname: "*.internal.test",
				Routes: []*policyv1.HttpRoute{{Labels: map[string]string{"name": "internal"}, Rules: []*policyv1.RouteRule{{Backends: backend("ops:80")}}}}},
		}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

func TestGatewayRouteByListenerHostAndRule(t *testing.T) {
	t.Parallel()
	cfg := gatewayRoutes(t)
	var got *pipeline.Request
	h := GatewayRoute(func() *gateway.Config { return cfg })(Split(nil)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		got = req
		return respond(200), nil
	})))
	for _, tc := range []struct {
		port       uint16
		url        string
		route, bak string // "": 404
	}{
		{80, "http://shop.example.com/api/list", "shop", "api:80"},
		{80, "http://SHOP.example.com:80/", "shop", "web:80"},
		{80, "http://a.internal.test/x", "internal", "ops:80"},
		{80, "http://other.example.com/", "", ""}, // the any-host listener has no route for it
		{8080, "http://shop.example.com/", "", ""},
	} {
		req := newReq("GET", tc.url, nil)
		req.In = &pipeline.InboundConn{Dst: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), tc.port)}
		req.Out = &pipeline.OutboundConn{}
		got = nil
		_, err := h.Handle(req)
		if tc.route == "" {
			if !errors.Is(err, pipeline.ErrNoRoute) || got != nil {
				t.Errorf("%s on %d: %v, want no route", tc.url, tc.port, err)
			}
			continue
		}
		if err != nil || got == nil || got.Rule.Route.Labels["name"] != tc.route || got.Backend != tc.bak || got.Policy.Labels["kind"] != "Gateway" {
			t.Errorf("%s on %d: %v, %+v; want route %s to %s", tc.url, tc.port, err, got, tc.route, tc.bak)
		}
	}
}

// A gateway rule without backends has nowhere to send the request.
func TestGatewayRuleWithoutBackends(t *testing.T) {
	t.Parallel()
	req := newReq("GET", "http://x/", nil)
	req.Out = &pipeline.OutboundConn{}
	req.Rule = ruleWith(t, &policyv1.RouteRule{Backends: []*policyv1.WeightedBackend{}})
	req.Rule.Backends = nil
	_, err := Split(nil)(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		t.Fatal("sent on")
		return nil, nil
	})).Handle(req)
	if !errors.Is(err, pipeline.ErrNoEndpoints) {
		t.Errorf("got %v", err)
	}
}

// Meter counts what the layers below it answered, refusals included, on the listener port's inbound series.
func TestMeterCountsEveryAnswer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	series := m.Series(metrics.Labels{Direction: "inbound", TLS: "no_identity", TargetAddr: "0.0.0.0:80"})
	cfg := gatewayRoutes(t)
	h := pipeline.Chain(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { return respond(200), nil }),
		Meter(), GatewayRoute(func() *gateway.Config { return cfg }))
	for _, url := range []string{"http://shop.example.com/", "http://shop.example.com/a", "http://nobody.test/"} {
		req := newReq("GET", url, nil)
		req.In = &pipeline.InboundConn{Dst: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 80), Series: series}
		req.Out = &pipeline.OutboundConn{}
		resp, err := h.Handle(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if !req.Observed {
			t.Errorf("%s: not marked observed", url)
		}
	}
	byStatus := map[string]float64{}
	for _, mf := range gather(t, reg, "response_total") {
		l := labelMap(mf)
		if l["direction"] != "inbound" || l["target_addr"] != "0.0.0.0:80" {
			t.Errorf("series %v", l)
		}
		byStatus[l["status_code"]] += mf.GetCounter().GetValue()
	}
	if byStatus["200"] != 2 || byStatus["404"] != 1 {
		t.Errorf("responses by status %v, want 2 200s and a 404", byStatus)
	}
}
