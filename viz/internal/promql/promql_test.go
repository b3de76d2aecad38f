package promql

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}

func render(q StatQueries) string {
	var b strings.Builder
	fmt.Fprintf(&b, "row: %s, %s\n", q.NamespaceLabel, q.NameLabel)
	for _, kv := range [][2]string{{"meshed", q.Meshed}, {"pods", q.Pods}, {"success", q.Success}, {"total", q.Total},
		{"p50", q.P50}, {"p95", q.P95}, {"p99", q.P99}, {"tcp_conns", q.TCPConns}, {"read_bytes", q.ReadBytes}, {"write_bytes", q.WriteBytes}} {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

func TestStatGolden(t *testing.T) {
	web := Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "web"}
	cases := []struct {
		name string
		req  StatRequest
	}{
		{"stat_deploy_all_namespaces", StatRequest{Resource: Resource{Kind: KindDeployment}, Window: time.Minute}},
		{"stat_deploy_web", StatRequest{Resource: web, Window: time.Minute}},
		{"stat_pod_in_ns_30s", StatRequest{Resource: Resource{Kind: KindPod, Namespace: "emojivoto"}, Window: 30 * time.Second}},
		{"stat_namespace", StatRequest{Resource: Resource{Kind: KindNamespace}, Window: time.Hour}},
		{"stat_deploy_to_voting", StatRequest{Resource: web, To: &Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "voting"}, Window: time.Minute}},
		{"stat_deploy_from_web", StatRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto"}, From: &web, Window: 90 * time.Second}},
		{"stat_escaped_name", StatRequest{Resource: Resource{Kind: KindPod, Namespace: "n", Name: `we"b\`}, Window: time.Minute}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := Stat(c.req)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".txt", render(q))
		})
	}
}

func TestEdgesGolden(t *testing.T) {
	var b strings.Builder
	for _, c := range []struct {
		kind Kind
		ns   string
	}{{KindDeployment, "emojivoto"}, {KindPod, ""}} {
		q, err := Edges(c.kind, c.ns, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s ns=%q\noutbound: %s\ninbound: %s\n", c.kind, c.ns, q.Outbound, q.Inbound)
	}
	golden(t, "edges.txt", b.String())
}

func TestBadInput(t *testing.T) {
	web := Resource{Kind: KindDeployment, Name: "web"}
	for _, c := range []struct {
		req  StatRequest
		want string
	}{
		{StatRequest{Resource: web, From: &web, To: &web, Window: time.Minute}, "--from and --to cannot be used together"},
		{StatRequest{Resource: web, Window: 0}, "too short"},
		{StatRequest{Resource: web, Window: 1500 * time.Millisecond}, "whole seconds"},
	} {
		if _, err := Stat(c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Stat(%+v) = %v, want an error with %q", c.req, err, c.want)
		}
	}
	if _, err := Edges(KindNamespace, "", time.Minute); err == nil {
		t.Error("edges between namespaces: want an error")
	}
	if _, err := ParseResource("statefulset/web", "ns"); err == nil || !strings.Contains(err.Error(), `unknown resource type "statefulset"`) {
		t.Errorf("ParseResource(statefulset/web) = %v", err)
	}
	// A Service is the parent of routes: only `routes` takes it.
	svc := Resource{Kind: KindService, Namespace: "shop", Name: "web"}
	if r, err := ParseResource("svc/web", "shop"); err != nil || r != svc {
		t.Errorf("ParseResource(svc/web) = %+v, %v", r, err)
	}
	for _, req := range []StatRequest{{Resource: svc, Window: time.Minute}, {Resource: web, To: &svc, Window: time.Minute}} {
		if _, err := Stat(req); err == nil || !strings.Contains(err.Error(), "by `routes` only") {
			t.Errorf("Stat(%+v) = %v, want services refused", req, err)
		}
	}
	if _, err := Edges(KindService, "", time.Minute); err == nil {
		t.Error("edges between services: want an error")
	}
	if _, err := Authz(AuthzRequest{Resource: svc, Window: time.Minute}); err == nil {
		t.Error("authz of a service: want an error")
	}
	if _, err := ParseResource("deploy/a/b", "ns"); err == nil {
		t.Error("ParseResource(deploy/a/b): want an error")
	}
	if _, err := ParseWindow("soon"); err == nil {
		t.Error("ParseWindow(soon): want an error")
	}
}

func TestParse(t *testing.T) {
	r, err := ParseResource("po/web-1", "emojivoto")
	if err != nil || r != (Resource{Kind: KindPod, Namespace: "emojivoto", Name: "web-1"}) {
		t.Errorf("ParseResource(po/web-1) = %+v, %v", r, err)
	}
	r, err = ParseResource("ns/emojivoto", "")
	if err != nil || r != (Resource{Kind: KindNamespace, Namespace: "emojivoto", Name: "emojivoto"}) {
		t.Errorf("ParseResource(ns/emojivoto) = %+v, %v", r, err)
	}
	for in, want := range map[string]time.Duration{"1m": time.Minute, "30s": 30 * time.Second, "2d": 48 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for d, want := range map[time.Duration]string{time.Minute: "1m", 90 * time.Second: "90s", 2 * time.Hour: "2h", 15 * time.Second: "15s"} {
		if got := formatWindow(d); got != want {
			t.Errorf("formatWindow(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRoutesGolden(t *testing.T) {
	voting := Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "voting"}
	web := Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "web"}
	for _, c := range []struct {
		name string
		req  RoutesRequest
	}{
		{"routes_deploy_voting", RoutesRequest{Resource: voting, Window: time.Minute}},
		{"routes_deploy_web_to_voting", RoutesRequest{Resource: web, To: &voting, Window: 30 * time.Second}},
		{"routes_pod_to_namespace", RoutesRequest{Resource: Resource{Kind: KindPod, Namespace: "emojivoto", Name: "web"},
			To: &Resource{Kind: KindNamespace, Namespace: "other", Name: "other"}, Window: time.Hour}},
		{"routes_namespace", RoutesRequest{Resource: Resource{Kind: KindNamespace, Namespace: "emojivoto", Name: "emojivoto"}, Window: time.Minute}},
		{"routes_svc_web", RoutesRequest{Resource: Resource{Kind: KindService, Namespace: "shop", Name: "web"}, Window: time.Minute}},
		{"routes_deploy_cli_to_svc_web", RoutesRequest{Resource: Resource{Kind: KindDeployment, Namespace: "shop", Name: "cli"},
			To: &Resource{Kind: KindService, Namespace: "shop", Name: "web"}, Window: 30 * time.Second}},
		{"routes_deploy_cli_to_svc", RoutesRequest{Resource: Resource{Kind: KindDeployment, Namespace: "shop", Name: "cli"},
			To: &Resource{Kind: KindService}, Window: time.Minute}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := Routes(c.req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if q.Backends {
				fmt.Fprintf(&b, "row: %s; %s\n", strings.Join(q.RouteLabels, ", "), strings.Join(q.BackendLabels, ", "))
			} else {
				fmt.Fprintf(&b, "row: %s, %s\n", q.RouteLabel, q.AuthorityLabel)
			}
			for _, kv := range [][2]string{{"success", q.Success}, {"total", q.Total}, {"p50", q.P50}, {"p95", q.P95}, {"p99", q.P99}} {
				fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
			}
			golden(t, c.name+".txt", b.String())
		})
	}
	for _, c := range []struct {
		req  RoutesRequest
		want string
	}{
		{RoutesRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}, "one resource"},
		{RoutesRequest{Resource: web, To: &Resource{Kind: KindDeployment}, Window: time.Minute}, "--to wants one resource"},
		{RoutesRequest{Resource: web, Window: 0}, "too short"},
		{RoutesRequest{Resource: Resource{Kind: KindService, Namespace: "shop", Name: "web"}, To: &web, Window: time.Minute}, "ask for the client with --to svc/web"},
	} {
		if _, err := Routes(c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Routes(%+v) = %v, want an error with %q", c.req, err, c.want)
		}
	}
}

func TestAuthzGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		req  AuthzRequest
	}{
		{"authz_deploy_web", AuthzRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto", Name: "web"}, Window: time.Minute}},
		{"authz_pod_30s", AuthzRequest{Resource: Resource{Kind: KindPod, Namespace: "emojivoto", Name: "web-5f8b9c-x2x7q"}, Window: 30 * time.Second}},
		{"authz_namespace", AuthzRequest{Resource: Resource{Kind: KindNamespace, Namespace: "emojivoto", Name: "emojivoto"}, Window: time.Hour}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := Authz(c.req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "target: %s\n", strings.Join(AuthzTargetLabels, ", "))
			for _, kv := range [][2]string{{"http_allow", q.HTTPAllow}, {"http_deny", q.HTTPDeny}, {"tcp_allow", q.TCPAllow},
				{"tcp_deny", q.TCPDeny}, {"success", q.Success}, {"total", q.Total}, {"buckets", q.Buckets}} {
				fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
			}
			golden(t, c.name+".txt", b.String())
		})
	}
	for _, c := range []struct {
		req  AuthzRequest
		want string
	}{
		{AuthzRequest{Resource: Resource{Kind: KindDeployment, Namespace: "emojivoto"}, Window: time.Minute}, "one resource"},
		{AuthzRequest{Resource: Resource{Kind: KindDeployment, Name: "web"}, Window: time.Minute}, "not -A"},
		{AuthzRequest{Resource: Resource{Kind: KindPod, Namespace: "emojivoto", Name: "web"}, Window: 500 * time.Millisecond}, "too short"},
	} {
		if _, err := Authz(c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Authz(%+v) = %v, want an error with %q", c.req, err, c.want)
		}
	}
}
