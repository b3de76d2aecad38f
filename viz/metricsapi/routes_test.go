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
