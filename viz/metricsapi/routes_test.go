package metricsapi

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/internal/promql"
)

func TestRoutesOutputs(t *testing.T) {
	req := RoutesRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "voting"}, Window: time.Minute}
	qs, err := promql.Routes(req)
	if err != nil {
		t.Fatal(err)
	}
	const auth = "voting-svc.emojivoto:8080"
	rt := func(route, authority string) []string { return []string{"rt_route", route, "authority", authority} }
	const doughnut, poop, results = "/emojivoto.v1.VotingService/VoteDoughnut", "/emojivoto.v1.VotingService/VotePoop",
		"/emojivoto.v1.VotingService/Results"
	fq := &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.Total: {s(0.5, rt(poop, auth)...), s(0.25, rt(OtherRoute, OtherRoute)...), s(0.5, rt(doughnut, auth)...),
			s(1, rt(results, auth)...), s(0, rt("/idle", auth)...), s(0.1, rt(results, "10.0.0.7:8080")...)},
		qs.Success: {s(0.5, rt(poop, auth)...), s(0.25, rt(OtherRoute, OtherRoute)...), s(0, rt(doughnut, auth)...),
			s(1, rt(results, auth)...), s(0, rt("/idle", auth)...), s(0.1, rt(results, "10.0.0.7:8080")...)},
		qs.P50: {s(1.2, rt(poop, auth)...), s(0.6, rt(OtherRoute, OtherRoute)...), s(2, rt(doughnut, auth)...),
			s(0.9, rt(results, auth)...), s(math.NaN(), rt("/idle", auth)...), s(4, rt(results, "10.0.0.7:8080")...)},
		qs.P95: {s(4.75, rt(poop, auth)...), s(0.95, rt(OtherRoute, OtherRoute)...), s(9.5, rt(doughnut, auth)...),
			s(1.9, rt(results, auth)...), s(math.NaN(), rt("/idle", auth)...), s(9.5, rt(results, "10.0.0.7:8080")...)},
		qs.P99: {s(4.95, rt(poop, auth)...), s(0.99, rt(OtherRoute, OtherRoute)...), s(19.8, rt(doughnut, auth)...),
			s(1.98, rt(results, auth)...), s(math.NaN(), rt("/idle", auth)...), s(9.9, rt(results, "10.0.0.7:8080")...)},
	}}
	rows, err := Routes(context.Background(), fq, req, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	if last := rows[len(rows)-1].Route; last != OtherRoute {
		t.Errorf("last row %q, want %s", last, OtherRoute)
	}
	for _, c := range []struct{ file, output string }{{"routes.table", OutputTable}, {"routes_wide.table", OutputWide}, {"routes.json", OutputJSON}} {
		var b bytes.Buffer
		if err := WriteRoutes(&b, rows, c.output); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, b.Bytes())
	}
	var b bytes.Buffer
	if err := WriteRoutes(&b, nil, OutputTable); err != nil || b.String() != "No traffic found.\n" {
		t.Errorf("empty routes table: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := WriteRoutes(&b, nil, OutputJSON); err != nil || b.String() != "[]\n" {
		t.Errorf("empty routes JSON: %q, %v", b.String(), err)
	}
	if err := WriteRoutes(&b, rows, "yaml"); err == nil {
		t.Error("-o yaml: want an error")
	}
	if _, err := Routes(context.Background(), fq, RoutesRequest{Resource: Resource{Kind: KindDeployment}, Window: time.Minute}, fixedTime); err == nil {
		t.Error("routes of every deployment: want an error")
	}
}

func TestServiceRoutesOutputs(t *testing.T) {
	req := RoutesRequest{Resource: Resource{Kind: KindService, Namespace: "shop", Name: "web"}, Window: time.Minute}
	qs, err := promql.Routes(req)
	if err != nil {
		t.Fatal(err)
	}
	b := func(kind, ns, route, backendNS, backend string) []string {
		return []string{"parent_namespace", "shop", "parent_name", "web", "route_kind", kind, "route_namespace", ns, "route_name", route,
			"backend_namespace", backendNS, "backend_name", backend, "backend_port", "80"}
	}
	v1, v2 := b("HTTPRoute", "shop", "web-split", "shop", "web-v1"), b("HTTPRoute", "shop", "web-split", "shop", "web-v2")
	api := b("HTTPRoute", "shop", "web-api", "other", "api")
	def := b("default", "", "default", "shop", "web")
	idle := b("HTTPRoute", "shop", "web-old", "shop", "web-v0")
	fq := &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.Total:   {s(8, v1...), s(2, v2...), s(1, api...), s(0.5, def...), s(0, idle...)},
		qs.Success: {s(8, v1...), s(1, v2...), s(1, api...), s(0.5, def...), s(0, idle...)},
		qs.P50:     {s(1.2, v1...), s(2, v2...), s(3, api...), s(1, def...), s(math.NaN(), idle...)},
		qs.P95:     {s(4.75, v1...), s(9.5, v2...), s(4, api...), s(2, def...), s(math.NaN(), idle...)},
		qs.P99:     {s(4.95, v1...), s(19.8, v2...), s(5, api...), s(3, def...), s(math.NaN(), idle...)},
	}}
	rows, err := Routes(context.Background(), fq, req, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[3].Route != DefaultRoute {
		t.Fatalf("rows %+v: want 4, the default route last and the idle one left out", rows)
	}
	if sh := *rows[1].Share + *rows[2].Share; math.Abs(sh-1) > 1e-9 || math.Abs(*rows[1].Share-0.8) > 1e-9 {
		t.Errorf("web-split shares %v, %v: want 0.8 and 0.2", *rows[1].Share, *rows[2].Share)
	}
	for _, c := range []struct{ file, output string }{{"routes_svc.table", OutputTable}, {"routes_svc.json", OutputJSON}} {
		var b bytes.Buffer
		if err := WriteRoutes(&b, rows, c.output); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, b.Bytes())
	}
}

func TestClientRoutesToEveryService(t *testing.T) {
	req := RoutesRequest{Resource: Resource{Kind: KindDeployment, Namespace: "shop", Name: "cli"}, To: &Resource{Kind: KindService, Namespace: "shop"},
		Window: time.Minute}
	qs, err := promql.Routes(req)
	if err != nil {
		t.Fatal(err)
	}
	b := func(parent, route, backend string) []string {
		return []string{"parent_namespace", "shop", "parent_name", parent, "route_kind", "HTTPRoute", "route_namespace", "shop",
			"route_name", route, "backend_namespace", "shop", "backend_name", backend, "backend_port", "80"}
	}
	web, api := b("web", "web-split", "web-v2"), b("api", "api-canary", "api-v2")
	fq := &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.Total: {s(2, web...), s(1, api...)}, qs.Success: {s(2, web...), s(1, api...)},
		qs.P50: {s(1, web...), s(1, api...)}, qs.P95: {s(2, web...), s(2, api...)}, qs.P99: {s(3, web...), s(3, api...)},
	}}
	rows, err := Routes(context.Background(), fq, req, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteRoutes(&out, rows, OutputTable); err != nil {
		t.Fatal(err)
	}
	golden(t, "routes_to_svc.table", out.Bytes())
}
