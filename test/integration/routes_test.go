package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
)

// routeApp is a backend version: it says who it is and which X-Route header it received.
func routeApp(t *testing.T, name string) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("X-Seen-Route", r.Header.Get("X-Route"))
		_, _ = io.WriteString(w, name)
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// routeFixture: Service web (whose own endpoints are web-v1's) with two versions behind their own Services,
// web-v1 and web-v2, and a client whose proxy has an outbound port for web.
type routeFixture struct {
	m      *mesh
	client *http.Client
	url    string // the client's outbound port, which leads to web
}

const webAuthority = "web.shop.svc.cluster.local:80"

func startRouteFixture(t *testing.T) *routeFixture {
	t.Helper()
	m := startMesh(t, meshOpts{})
	var files []string
	for _, v := range []string{"web-v1", "web-v2"} {
		s := m.sidecar(sidecarOpts{ns: "shop", name: v, sa: v, inbound: []proxy.InboundPort{{Port: 8080, App: routeApp(t, v)}}})
		files = append(files, workloadYAML("shop", v, v, v, s.inboundPort(), 8080), serviceYAML("shop", v, v, 80, 8080))
		defer s.waitReady(t)
	}
	files = append(files, serviceYAML("shop", "web", "web-v1", 80, 8080))
	m.write("shop.yaml", strings.Join(files, "---\n"))
	client := m.sidecar(sidecarOpts{ns: "shop", name: "cli", sa: "cli", outbound: []string{webAuthority}})
	m.write("cli.yaml", workloadYAML("shop", "cli", "cli", "cli", 0, 9))
	client.waitReady(t)
	return &routeFixture{m: m, client: &http.Client{Timeout: 10 * time.Second}, url: "http://" + client.p.OutboundAddrs()[0]}
}

// routeAnswer is what a request got: the status, the version that served it, the X-Route it saw, the proxy's error
// kind and the response's X-Route-Answer (a response header filter).
type routeAnswer struct {
	status                        int
	servedBy, seenRoute, proxyErr string
	answerHeader                  string
}

func (f *routeFixture) get(header ...string) (routeAnswer, error) {
	return f.getPath("/shop", header...)
}

func (f *routeFixture) getPath(path string, header ...string) (routeAnswer, error) {
	req, err := http.NewRequest(http.MethodGet, f.url+path, nil)
	if err != nil {
		return routeAnswer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return routeAnswer{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return routeAnswer{status: resp.StatusCode, servedBy: resp.Header.Get("X-Served-By"), seenRoute: resp.Header.Get("X-Seen-Route"),
		proxyErr: resp.Header.Get("Sinew-Proxy-Error"), answerHeader: resp.Header.Get("X-Route-Answer")}, nil
}

// waitFor sends requests until one gets what ok accepts: the sign that the control plane's new policy reached
// the client's proxy.
func (f *routeFixture) waitFor(t *testing.T, what string, ok func(routeAnswer) bool, header ...string) {
	t.Helper()
	eventually(t, 15*time.Second, what, func() error {
		a, err := f.get(header...)
		if err != nil {
			return err
		}
		if !ok(a) {
			return fmt.Errorf("got %+v", a)
		}
		return nil
	})
}

// shares sends n requests and counts who served them ("500" for a 500 the proxy made).
func (f *routeFixture) shares(t *testing.T, n int, header ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		a, err := f.get(header...)
		switch {
		case err != nil:
			t.Fatalf("request failed: %v", err)
		case a.status == http.StatusOK:
			counts[a.servedBy]++
		case a.status == http.StatusInternalServerError && a.proxyErr == "failure_injected":
			counts["500"]++
		default:
			t.Fatalf("unexpected answer %+v", a)
		}
	}
	return counts
}

// within fails unless got of n is within tolerance (a fraction) of the share want.
func within(t *testing.T, what string, got, n int, want, tolerance float64) {
	t.Helper()
	if share := float64(got) / float64(n); share < want-tolerance || share > want+tolerance {
		t.Errorf("%s: %d of %d (%.1f %%), want %.0f %% ± %.0f", what, got, n, 100*share, 100*want, 100*tolerance)
	}
}

// splitRoute sends requests with x-canary: yes to web-v2, with the header X-Route: canary for the app and
// X-Route-Answer on the response; everything else is split between the versions by weight.
func splitRoute(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-split, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: canary}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route-answer, value: canary}]}
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: %d}
    - {name: web-v2, port: 80, weight: %d}
`, v1, v2)
}

// TestHTTPRouteSplitsAndMatches: an HTTPRoute with the Service web as parent, given in a local-mode file, routes
// web's clients: a 90/10 split between two versions holds within 3 % over 10,000 requests; requests with x-canary: yes
// go only to v2 with the route's request header, and come back with its response header; the others never see
// them. Without the route, web's own endpoints (v1) serve everything.
func TestHTTPRouteSplitsAndMatches(t *testing.T) {
	t.Parallel()
	f := startRouteFixture(t)
	f.waitFor(t, "web served by its own endpoints", func(a routeAnswer) bool { return a.status == 200 && a.servedBy == "web-v1" })
	if c := f.shares(t, 50, "x-canary", "yes"); c["web-v1"] != 50 {
		t.Fatalf("without a route, web-v1 should serve everything: %v", c)
	}

	f.m.write("route.yaml", splitRoute(90, 10))
	f.waitFor(t, "the canary rule", func(a routeAnswer) bool { return a.servedBy == "web-v2" && a.seenRoute == "canary" }, "x-canary", "yes")

	const n = 10000
	c := f.shares(t, n)
	t.Logf("90/10 split over %d requests: %v", n, c)
	if c["web-v1"]+c["web-v2"] != n {
		t.Fatalf("shares %v", c)
	}
	within(t, "web-v2's share", c["web-v2"], n, 0.10, 0.03)

	for i := range 100 {
		a, err := f.get("x-canary", "yes")
		if err != nil || a.status != 200 || a.servedBy != "web-v2" || a.seenRoute != "canary" || a.answerHeader != "canary" {
			t.Fatalf("canary request %d: %+v %v", i, a, err)
		}
		if a, err = f.get("x-canary", "no"); err != nil || a.status != 200 || a.seenRoute != "" || a.answerHeader != "" {
			t.Fatalf("request %d without the canary header: %+v %v", i, a, err)
		}
	}

	// Removing the route gives web back its default route.
	f.m.remove("route.yaml")
	f.waitFor(t, "the route gone", func(a routeAnswer) bool { return a.servedBy == "web-v1" && a.seenRoute == "" }, "x-canary", "yes")
}

// TestHTTPRouteShiftUnderLoad: rewriting the route's weights while clients keep sending moves the traffic to the
// new weights without failing a single request, as a canary rollout (Flagger) does step by step.
func TestHTTPRouteShiftUnderLoad(t *testing.T) {
	t.Parallel()
	f := startRouteFixture(t)
	f.m.write("route.yaml", splitRoute(90, 10))
	f.waitFor(t, "the route", func(a routeAnswer) bool { return a.servedBy == "web-v2" }, "x-canary", "yes")

	var (
		mu       sync.Mutex
		failures []string
		recent   []string // who served the last requests, in the order they completed
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				a, err := f.get()
				mu.Lock()
				if err != nil || a.status != http.StatusOK {
					failures = append(failures, fmt.Sprintf("%+v %v", a, err))
				}
				recent = append(recent, a.servedBy)
				if len(recent) > 400 {
					recent = recent[len(recent)-400:]
				}
				mu.Unlock()
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	// servedSince is who served the last n requests; false until there are n.
	servedSince := func(n int) ([]string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(recent) < n {
			return nil, false
		}
		return slices.Clone(recent[len(recent)-n:]), true
	}
	onlyBy := func(version string) func() error {
		return func() error {
			served, ok := servedSince(400)
			if !ok {
				return fmt.Errorf("fewer than 400 requests so far")
			}
			for _, s := range served {
				if s != version {
					return fmt.Errorf("%d of the last 400 requests not served by %s", len(served)-count(served, version), version)
				}
			}
			return nil
		}
	}
	eventually(t, 15*time.Second, "load under the 90/10 split", func() error {
		served, ok := servedSince(400)
		if !ok || count(served, "web-v2") == 0 || count(served, "web-v1") == 0 {
			return fmt.Errorf("both versions should serve: %d requests", len(served))
		}
		return nil
	})

	mu.Lock()
	recent = nil
	mu.Unlock()
	f.m.write("route.yaml", splitRoute(0, 100))
	eventually(t, 15*time.Second, "everything moved to web-v2", onlyBy("web-v2"))

	mu.Lock()
	recent = nil
	mu.Unlock()
	f.m.write("route.yaml", splitRoute(100, 0))
	eventually(t, 15*time.Second, "everything moved back to web-v1", onlyBy("web-v1"))

	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed while the route changed; first: %s", len(failures), failures[0])
	}
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestHTTPRouteMissingBackend: a backendRef to a Service that does not exist fails its share of the requests
// with 500, as the Gateway API says, and the control plane reports it in /debug/model's policyProblems; once the
// Service exists, its share is served.
func TestHTTPRouteMissingBackend(t *testing.T) {
	t.Parallel()
	f := startRouteFixture(t)
	f.m.write("route.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-missing, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: 3}
    - {name: web-v3, port: 80, weight: 1}
`)
	f.waitFor(t, "a 500 for web-v3's share", func(a routeAnswer) bool {
		return a.status == http.StatusInternalServerError && a.proxyErr == "failure_injected"
	})
	const n = 800
	c := f.shares(t, n)
	t.Logf("3/1 split with a missing backend over %d requests: %v", n, c)
	if c["web-v1"]+c["500"] != n {
		t.Fatalf("shares %v", c)
	}
	within(t, "the missing backend's 500s", c["500"], n, 0.25, 0.05)

	const problem = "HTTPRoute shop/web-missing: spec.rules[0].backendRefs[1]: Service web-v3 does not exist; its share of the rule's requests (1 of 4) gets 500"
	if got := policyProblems(t, f.m); !slices.Contains(got, problem) {
		t.Errorf("policyProblems %q\nwant %q among them", got, problem)
	}

	// web-v3 appears (as another name for web-v2's workload): its share is served.
	f.m.write("v3.yaml", serviceYAML("shop", "web-v3", "web-v2", 80, 8080))
	f.waitFor(t, "web-v3 served", func(a routeAnswer) bool { return a.servedBy == "web-v2" })
	if c := f.shares(t, 200); c["500"] != 0 {
		t.Errorf("500s after web-v3 appeared: %v", c)
	}
	if got := policyProblems(t, f.m); slices.Contains(got, problem) {
		t.Errorf("the problem stays after web-v3 appeared: %q", got)
	}
}

// policyProblems is the control plane's /debug/model policyProblems.
func policyProblems(t *testing.T, m *mesh) []string {
	t.Helper()
	resp, err := http.Get("http://" + m.cp.AdminAddr() + "/debug/model")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		PolicyProblems []string `json:"policyProblems"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.PolicyProblems
}

// precedenceRoutes are two routes on web whose rules overlap: a-first, created on January 2nd, and b-second,
// created when secondCreated says. With equal matches the older route wins; otherwise the more specific match
// wins, whichever route it is in.
func precedenceRoutes(secondCreated string) string {
	created := ""
	if secondCreated != "" {
		created = ", creationTimestamp: " + secondCreated
	}
	return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-first, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    backendRefs: [{name: web-v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-second, namespace: shop` + created + `}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    backendRefs: [{name: web-v2, port: 80}]
  - matches: [{path: {type: Exact, value: /shop/exact}}, {path: {value: /shop/deeper}}, {method: POST, path: {value: /shop}}]
    backendRefs: [{name: web-v2, port: 80}]
`
}

// TestHTTPRoutePrecedence: across two routes on one Service, the proxy picks the rule the Gateway API's
// precedence picks: an exact path over a prefix, a longer prefix over a shorter one, a method over none, and for
// equal matches the older route; a request no rule matches gets 404.
func TestHTTPRoutePrecedence(t *testing.T) {
	t.Parallel()
	f := startRouteFixture(t)
	f.m.write("route.yaml", precedenceRoutes(`"2026-01-03T00:00:00Z"`))
	servedBy := func(path string) string {
		t.Helper()
		a, err := f.getPath(path)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK {
			return fmt.Sprint(a.status)
		}
		return a.servedBy
	}
	eventually(t, 15*time.Second, "the routes", func() error {
		if got := servedBy("/other"); got != "404" {
			return fmt.Errorf("/other served by %s, want 404 (no rule matches)", got)
		}
		return nil
	})
	for path, want := range map[string]string{"/shop": "web-v1", "/shop/x": "web-v1", "/shop/exact": "web-v2", "/shop/deeper/x": "web-v2", "/shopping": "404"} {
		if got := servedBy(path); got != want {
			t.Errorf("%s: served by %s, want %s", path, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.url+"/shop", nil)
	if resp, err := f.client.Do(req); err != nil || resp.Header.Get("X-Served-By") != "web-v2" {
		t.Errorf("POST /shop: %v %v, want web-v2 (a method ranks above none)", resp, err)
	} else {
		resp.Body.Close()
	}

	// b-second made older than a-first: its /shop rule now wins the tie.
	f.m.write("route.yaml", precedenceRoutes(`"2026-01-01T00:00:00Z"`))
	eventually(t, 15*time.Second, "the older route's rule winning the tie", func() error {
		if got := servedBy("/shop"); got != "web-v2" {
			return fmt.Errorf("/shop served by %s", got)
		}
		return nil
	})
}

// TestHTTPRouteConsumerRoute: a route in the client's namespace whose parent is web (in shop) applies to that
// namespace's clients only, instead of web's own routes; web's other clients keep the producer route.
func TestHTTPRouteConsumerRoute(t *testing.T) {
	t.Parallel()
	f := startRouteFixture(t)
	team := f.m.sidecar(sidecarOpts{ns: "team", name: "team-cli", sa: "team-cli", outbound: []string{webAuthority}})
	f.m.write("team.yaml", workloadYAML("team", "team-cli", "team-cli", "team-cli", 0, 9))
	team.waitReady(t)
	teamClient := &routeFixture{m: f.m, client: f.client, url: "http://" + team.p.OutboundAddrs()[0]}

	f.m.write("route.yaml", splitRoute(100, 0)+`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: team-view, namespace: team}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: shop, port: 80}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: team}]}
    backendRefs: [{name: web-v2, namespace: shop, port: 80}]
`)
	teamClient.waitFor(t, "the consumer route", func(a routeAnswer) bool { return a.servedBy == "web-v2" && a.seenRoute == "team" })
	f.waitFor(t, "the producer route", func(a routeAnswer) bool { return a.seenRoute == "canary" }, "x-canary", "yes")
	for i := range 100 {
		// The producer route's canary rule does not apply to team's clients: the consumer route does.
		if a, err := teamClient.get("x-canary", "yes"); err != nil || a.servedBy != "web-v2" || a.seenRoute != "team" {
			t.Fatalf("team's request %d: %+v %v, want web-v2 with x-route: team", i, a, err)
		}
	}
	if c := f.shares(t, 100); c["web-v1"] != 100 {
		t.Errorf("shop's client: %v, want web-v1 only (the producer route's 100/0 split)", c)
	}
	if got := policyProblems(t, f.m); len(got) != 0 {
		t.Errorf("policyProblems %q", got)
	}
}
