package authz

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe/watchtest"
)

// routedServer: web's Server admits web's identity everywhere; route "public" (GET /api...) admits anyone, route
// "admin" (/admin exactly) vote-bot. Its probe paths are ignored, as a port with routes has no probe route.
func routedServer(t testing.TB) *Server {
	t.Helper()
	srv, problems := Compile(&policyv1.InboundServer{
		Labels:     map[string]string{"kind": "server", "name": "web-http"},
		ProbePaths: []string{"/ready"},
		Authorizations: []*policyv1.Authorization{{Name: "server-web", Identities: []string{web},
			Labels: map[string]string{"kind": "authorizationpolicy", "name": "server-web"}}},
		Routes: []*policyv1.HttpRoute{
			{Labels: map[string]string{"kind": "HTTPRoute", "name": "admin", "namespace": "emojivoto"},
				Rules: []*policyv1.RouteRule{{Matches: []*policyv1.HttpMatch{{Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Exact{Exact: "/admin"}}}}}},
				Authorizations: []*policyv1.Authorization{{Name: "admin-vote-bot", Identities: []string{voteBot},
					Labels: map[string]string{"kind": "authorizationpolicy", "name": "admin-vote-bot"}}}},
			{Labels: map[string]string{"kind": "HTTPRoute", "name": "public", "namespace": "emojivoto"},
				Rules: []*policyv1.RouteRule{{Matches: []*policyv1.HttpMatch{{Method: "GET", Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: "/api"}}}}}},
				Authorizations: []*policyv1.Authorization{{Name: "anyone", Unauthenticated: true,
					Labels: map[string]string{"kind": "authorizationpolicy", "name": "anyone"}}}},
		},
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return srv
}

// TestRoutes: a request is decided by the route it matches (its authorizations, then the server's); one that
// matches no route is not found; without a route the probe paths are not special.
func TestRoutes(t *testing.T) {
	srv := routedServer(t)
	unmeshed := Client{Addr: addr("10.0.0.9")}
	for _, tc := range []struct {
		name         string
		client       Client
		method, path string
		route, authz string // "" route: not found; "" authz: refused
	}{
		{"anyone on public", unmeshed, "GET", "/api/list", "public", "anyone"},
		{"public is GET only", unmeshed, "POST", "/api/vote", "", ""},
		{"vote-bot on admin", Client{addr("10.0.0.2"), voteBot}, "GET", "/admin", "admin", "admin-vote-bot"},
		{"the server's authorization admits on every route", Client{addr("10.0.0.3"), web}, "GET", "/admin", "admin", "server-web"},
		{"unmeshed on admin", unmeshed, "GET", "/admin", "admin", ""},
		{"another identity on admin", Client{addr("10.0.0.4"), other}, "GET", "/admin", "admin", ""},
		{"admin is exact", Client{addr("10.0.0.2"), voteBot}, "GET", "/admin/x", "", ""},
		{"no probe route", unmeshed, "GET", "/ready", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := srv.Decide(tc.client, httptest.NewRequest(tc.method, tc.path, nil), time.Now())
			if tc.route == "" {
				if !d.NoRoute || d.Authz != nil {
					t.Fatalf("decision %+v, want no route", d)
				}
				return
			}
			if d.NoRoute || d.Route == nil || d.Route.Name != tc.route {
				t.Fatalf("decision %+v, want route %s", d, tc.route)
			}
			switch {
			case tc.authz == "" && d.Authz != nil:
				t.Errorf("admitted by %s, want refused", d.Authz.Name)
			case tc.authz != "" && (d.Authz == nil || d.Authz.Name != tc.authz):
				t.Errorf("admitted by %+v, want %s", d.Authz, tc.authz)
			}
		})
	}
	// Connections are the server's to decide, routes aside.
	if a := srv.Admit(Client{addr("10.0.0.3"), web}); a == nil || a.Name != "server-web" {
		t.Errorf("a connection from web: %+v", a)
	}
	if a := srv.Admit(Client{addr("10.0.0.2"), voteBot}); a != nil {
		t.Errorf("a connection from vote-bot admitted by %s: route authorizations apply to their requests only", a.Name)
	}
}

// TestRouteMetrics: decisions on routes carry route_name; requests no route matches are counted apart.
func TestRouteMetrics(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := routedServer(t)
	conn := Conn{TargetAddr: "10.0.0.1:8080", TLS: "no_identity"}
	for _, path := range []string{"/api/list", "/admin", "/nowhere", "/nowhere"} {
		d := srv.Decide(Client{Addr: addr("10.0.0.9")}, httptest.NewRequest(http.MethodGet, path, nil), time.Now())
		if d.NoRoute {
			m.RouteNotFound(srv, conn)
		} else {
			m.HTTP(srv, d, conn)
		}
	}
	if got := watchtest.Value(t, m.httpAllow.WithLabelValues("10.0.0.1:8080", "server", "web-http", "public", "authorizationpolicy", "anyone", "no_identity", "")); got != 1 {
		t.Errorf("allowed on public: %v", got)
	}
	if got := watchtest.Value(t, m.httpDeny.WithLabelValues("10.0.0.1:8080", "server", "web-http", "admin", "no_identity", "")); got != 1 {
		t.Errorf("denied on admin: %v", got)
	}
	if got := watchtest.Value(t, m.routeNotFound.WithLabelValues("10.0.0.1:8080", "server", "web-http", "no_identity", "")); got != 2 {
		t.Errorf("inbound_http_route_not_found_total %v, want 2", got)
	}
}
