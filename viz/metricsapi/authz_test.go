package metricsapi

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/internal/promql"
)

// authzFixture is deploy/web with two pods: its HTTP port (127.0.0.1:8080) under the Server web-http, which
// admits web-public and the kubelet's probes and denies some requests; its metrics port (127.0.0.1:9102) under
// the default policy; and an opaque port under the Server web-cache, which admits and refuses connections. The
// samples of web-http's route admin (route_name) come from proxies that know inbound routes; the rest have no
// route_name, as connections and older proxies.
func authzFixture(t *testing.T, req AuthzRequest) *fakeQuerier {
	t.Helper()
	qs, err := promql.Authz(req)
	if err != nil {
		t.Fatal(err)
	}
	const http, metrics = "127.0.0.1:8080", "127.0.0.1:9102"
	tgt := func(pod, addr string, kv ...string) []string {
		return append([]string{"namespace", "emojivoto", "pod", pod, "target_addr", addr}, kv...)
	}
	srv := func(kind, name string, kv ...string) []string {
		return append([]string{"srv_kind", kind, "srv_name", name}, kv...)
	}
	authz := func(kind, name string) []string { return []string{"authz_kind", kind, "authz_name", name} }
	webHTTP := func(pod string, a ...string) []string { return tgt(pod, http, srv("server", "web-http", a...)...) }
	le := func(pod, addr, le string) []string { return tgt(pod, addr, "le", le) }
	return &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.HTTPAllow: {
			s(1.5, webHTTP("web-1", authz("authorizationpolicy", "web-public")...)...),
			s(0.5, webHTTP("web-2", authz("authorizationpolicy", "web-public")...)...),
			s(0.2, webHTTP("web-1", authz("default", "probe")...)...),
			s(0.2, webHTTP("web-2", authz("default", "probe")...)...),
			s(0.1, tgt("web-1", metrics, srv("default", "all-unauthenticated", authz("default", "all-unauthenticated")...)...)...),
			s(math.NaN(), webHTTP("web-2", authz("authorizationpolicy", "nan")...)...),
			s(0.4, webHTTP("web-1", append(authz("authorizationpolicy", "admin-bot"), "route_name", "admin")...)...),
		},
		qs.HTTPDeny: {s(0.3, webHTTP("web-1")...), s(0, webHTTP("web-2")...), s(0.1, webHTTP("web-2", "route_name", "admin")...)},
		qs.TCPAllow: {s(2.5, srv("server", "web-cache", authz("serverauthorization", "cache-clients")...)...)},
		qs.TCPDeny:  {s(0.2, srv("server", "web-cache")...)},
		qs.Total: {s(1.7, tgt("web-1", http)...), s(0.7, tgt("web-2", http)...), s(0.1, tgt("web-1", metrics)...),
			s(9, tgt("web-1", "127.0.0.1:7777")...)}, // a port no decision names: in no row
		qs.Success: {s(1.6, tgt("web-1", http)...), s(0.7, tgt("web-2", http)...), s(0.1, tgt("web-1", metrics)...)},
		qs.Buckets: {
			s(1.0, le("web-1", http, "1")...), s(1.5, le("web-1", http, "5")...), s(1.7, le("web-1", http, "10")...), s(1.7, le("web-1", http, "+Inf")...),
			s(0.1, le("web-2", http, "1")...), s(0.6, le("web-2", http, "5")...), s(0.7, le("web-2", http, "10")...), s(0.7, le("web-2", http, "+Inf")...),
			s(0.1, le("web-1", metrics, "1")...), s(0.1, le("web-1", metrics, "+Inf")...),
			s(5, le("web-1", http, "bogus")...),
		},
	}}
}

func TestAuthzOutputs(t *testing.T) {
	req := AuthzRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "web"}, Window: time.Minute}
	rows, err := Authz(context.Background(), authzFixture(t, req), req, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, output string }{{"authz.table", OutputTable}, {"authz_wide.table", OutputWide}, {"authz.json", OutputJSON}} {
		var b bytes.Buffer
		if err := WriteAuthz(&b, rows, c.output); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, b.Bytes())
	}
	// web-http's success rate is over both pods' port 8080: (1.6 + 0.7) / (1.7 + 0.7).
	for _, r := range rows {
		if r.ServerName == "web-http" && !r.Denied() {
			if r.SuccessRate == nil || math.Abs(*r.SuccessRate-2.3/2.4) > 1e-9 {
				t.Errorf("%s %s: success %v, want %v", r.Server(), r.Authorization(), r.SuccessRate, 2.3/2.4)
			}
		}
	}
	var b bytes.Buffer
	if err := WriteAuthz(&b, nil, OutputTable); err != nil || b.String() != "No traffic found.\n" {
		t.Errorf("empty authz table: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := WriteAuthz(&b, nil, OutputJSON); err != nil || b.String() != "[]\n" {
		t.Errorf("empty authz JSON: %q, %v", b.String(), err)
	}
	if err := WriteAuthz(&b, rows, "yaml"); err == nil {
		t.Error("-o yaml: want an error")
	}
	if _, err := Authz(context.Background(), &fakeQuerier{t: t}, AuthzRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}, fixedTime); err == nil {
		t.Error("authz of every deployment: want an error")
	}
}

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		name   string
		q      float64
		counts map[float64]float64
		want   float64
	}{
		{"inside a bucket", 0.5, map[float64]float64{1: 1, 5: 3, 10: 4, inf: 4}, 3},
		{"the last finite bucket", 0.99, map[float64]float64{1: 1, 5: 3, 10: 4, inf: 4}, 9.8},
		{"the first bucket starts at 0", 0.25, map[float64]float64{4: 2, inf: 2}, 1},
		{"in +Inf: the highest finite bound", 0.9, map[float64]float64{1: 1, inf: 2}, 1},
		{"counts that dip are evened out", 0.5, map[float64]float64{1: 2, 5: 1.9, inf: 4}, 1},
		{"no observations", 0.5, map[float64]float64{1: 0, inf: 0}, math.NaN()},
		{"no +Inf bucket", 0.5, map[float64]float64{1: 1, 5: 2}, math.NaN()},
		{"one bucket", 0.5, map[float64]float64{inf: 2}, math.NaN()},
		{"q out of range", 1.5, map[float64]float64{1: 1, inf: 1}, math.NaN()},
	} {
		got := bucketQuantile(c.q, c.counts)
		if got != c.want && !(math.IsNaN(got) && math.IsNaN(c.want)) && math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: bucketQuantile(%v, %v) = %v, want %v", c.name, c.q, c.counts, got, c.want)
		}
	}
}
