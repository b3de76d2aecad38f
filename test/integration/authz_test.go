package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/proxy"
)

// authzPolicy is the walkthrough's security step in local mode: a Server on srv's port 8080 and a
// ServerAuthorization that admits only the service account cli-sa.
const authzPolicy = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
  proxyProtocol: HTTP/1
---
apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata: {name: srv-cli-only, namespace: test}
spec:
  server: {name: srv-http}
  client:
    meshTLS:
      serviceAccounts: [{name: cli-sa}]
`

// authzPolicyAP admits cli-sa through an AuthorizationPolicy and a MeshTLSAuthentication instead.
const authzPolicyAP = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: cli, namespace: test}
spec:
  identityRefs: [{kind: ServiceAccount, name: cli-sa}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: srv-cli-only, namespace: test}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: srv-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: cli}
`

type authzFixture struct {
	m                 *mesh
	pair              *pairT
	other             *sidecar
	otherOut, srvPlan string // the other client's outbound listener; srv's inbound listener (plaintext clients)
}

func startAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	other := m.sidecar(sidecarOpts{ns: "test", name: "other", sa: "other-sa", outbound: []string{svcAuthority}})
	m.write("other.yaml", workloadYAML("test", "other", "other-sa", "other", 0, 9))
	other.waitReady(t)
	return &authzFixture{m: m, pair: pair, other: other, otherOut: other.p.OutboundAddrs()[0], srvPlan: pair.server.p.InboundAddr()}
}

// statuses is what cli, other and a plaintext client get for GET /hello.
func (f *authzFixture) statuses() (cli, other, plain int, err error) {
	get := func(addr string) (int, error) {
		resp, err := http.Get("http://" + addr + "/hello")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// cli last: the policies under test change what the others get, and once they get it the new policy is in
	// force, so cli's answer (and the decision counted for it) is the new policy's too, not the old one's.
	if other, err = get(f.otherOut); err != nil {
		return
	}
	if plain, err = get(f.srvPlan); err != nil {
		return
	}
	cli, err = get(f.pair.outbound)
	return
}

func (f *authzFixture) expect(t *testing.T, what string, cli, other, plain int) {
	t.Helper()
	eventually(t, 10*time.Second, what, func() error {
		c, o, p, err := f.statuses()
		if err != nil {
			return err
		}
		if c != cli || o != other || p != plain {
			return fmt.Errorf("cli %d, other %d, plaintext %d; want %d, %d, %d", c, o, p, cli, other, plain)
		}
		return nil
	})
}

// TestAuthorizationPolicies: with no Server everything is admitted (the default all-unauthenticated); a Server
// with a ServerAuthorization for cli-sa admits cli and refuses another service account and a plaintext client
// with 403; the same with AuthorizationPolicy + MeshTLSAuthentication; removing the policy admits all again.
// Decisions are counted with Linkerd's metric names on srv's proxy.
func TestAuthorizationPolicies(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	f.expect(t, "the default policy admitting everyone", 200, 200, 200)

	f.m.write("policy.yaml", authzPolicy)
	f.expect(t, "the ServerAuthorization admitting only cli-sa", 200, 403, 403)
	text := f.pair.server.metrics(t)
	if v := metricValue(text, "inbound_http_authz_deny_total", `srv_kind="server"`, `srv_name="srv-http"`, `client_id="`+spiffeID("test", "other-sa")+`"`); v < 1 {
		t.Errorf("inbound_http_authz_deny_total for other-sa = %v", v)
	}
	if v := metricValue(text, "inbound_http_authz_allow_total", `srv_name="srv-http"`, `authz_kind="serverauthorization"`, `authz_name="srv-cli-only"`, `client_id="`+spiffeID("test", "cli-sa")+`"`); v < 1 {
		t.Errorf("inbound_http_authz_allow_total for cli-sa = %v", v)
	}

	f.m.write("policy.yaml", authzPolicyAP)
	f.expect(t, "the AuthorizationPolicy admitting only cli-sa", 200, 403, 403)
	eventually(t, 10*time.Second, "admissions counted under the AuthorizationPolicy", func() error {
		if _, _, _, err := f.statuses(); err != nil {
			return err
		}
		if v := metricValue(f.pair.server.metrics(t), "inbound_http_authz_allow_total", `authz_kind="authorizationpolicy"`, `authz_name="srv-cli-only"`); v < 1 {
			return fmt.Errorf("inbound_http_authz_allow_total{authz_kind=authorizationpolicy} = %v:\n%s", v, grepLines(f.pair.server.metrics(t), "inbound_"))
		}
		return nil
	})

	f.m.remove("policy.yaml")
	f.expect(t, "everyone admitted once the Server is gone", 200, 200, 200)
}

// TestAuthorizationDefaultPolicies: the default inbound policy of a workload without a Server, from its
// annotation: deny refuses everyone, all-authenticated refuses only plaintext clients, audit admits everyone and
// counts them as audited.
func TestAuthorizationDefaultPolicies(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	srvYAML := func(policy string) string {
		return fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: srv, namespace: test, labels: {app: srv}, annotations: {config.sinew.dev/default-inbound-policy: %s}}
spec:
  serviceAccount: srv-sa
  address: 127.0.0.1
  meshPort: %d
  ports: [{name: p, port: 8080}]
---
`, policy, f.pair.server.inboundPort()) + serviceYAML("test", "srv", "srv", 80, 8080)
	}
	f.m.write("srv.yaml", srvYAML("deny"))
	f.expect(t, "deny", 403, 403, 403)
	f.m.write("srv.yaml", srvYAML("all-authenticated"))
	f.expect(t, "all-authenticated", 200, 200, 403)
	f.m.write("srv.yaml", srvYAML("audit"))
	f.expect(t, "audit", 200, 200, 200)
	if v := metricValue(f.pair.server.metrics(t), "inbound_http_authz_allow_total", `srv_kind="default"`, `authz_name="audit"`); v < 1 {
		t.Errorf("audited admissions counted %v times", v)
	}
}

// TestAuthorizationChangeUnderLoad: while cli sends requests without pause, its authorization is swapped from a
// ServerAuthorization to an AuthorizationPolicy and back, and other-sa is admitted and refused in turn; cli never
// sees an error.
func TestAuthorizationChangeUnderLoad(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	f.m.write("policy.yaml", authzPolicy)
	f.expect(t, "the ServerAuthorization", 200, 403, 403)

	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + f.pair.outbound + "/hello")
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					lastErr.Store("status " + strconv.Itoa(resp.StatusCode))
				}
			}
		}()
	}
	for i := range 3 {
		f.m.write("policy.yaml", authzPolicyAP)
		f.expect(t, fmt.Sprintf("round %d: the AuthorizationPolicy", i), 200, 403, 403)
		f.m.write("policy.yaml", authzPolicy+"---\n"+`apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata: {name: srv-other, namespace: test}
spec:
  server: {name: srv-http}
  client:
    meshTLS:
      serviceAccounts: [{name: other-sa}]
`)
		f.expect(t, fmt.Sprintf("round %d: other-sa admitted too", i), 200, 200, 403)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 20 {
		t.Fatalf("cli: %d of %d requests failed (last: %v) while its policy changed", failed.Load(), sent.Load(), lastErr.Load())
	}
	t.Logf("cli: %d requests, 0 failed, across 6 policy changes", sent.Load())
}

// TestAuthorizationOpaqueTCP: an opaque port with a Server admitting only cli-sa: cli's connection is carried,
// a plaintext client's is refused.
func TestAuthorizationOpaqueTCP(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	echo := listen(t)
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() //nolint:errcheck
		}
	}()
	server := m.sidecar(sidecarOpts{ns: "test", name: "db", sa: "db-sa", opaquePorts: []uint16{5432},
		inbound: []proxy.InboundPort{{Port: 5432, App: echo.Addr().String()}}})
	m.write("db.yaml", workloadYAML("test", "db", "db-sa", "db", server.inboundPort(), 5432)+"---\n"+serviceYAML("test", "db", "db", 5432, 5432)+`---
apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: db, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: db}}
  port: 5432
  proxyProtocol: opaque
---
apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata: {name: db-cli, namespace: test}
spec:
  server: {name: db}
  client:
    meshTLS:
      serviceAccounts: [{name: cli-sa}]
`)
	client := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", outbound: []string{"db.test.svc.cluster.local:5432"}, opaquePorts: []uint16{5432}})
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	server.waitReady(t)
	client.waitReady(t)

	ping := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		if _, err := io.WriteString(c, "ping"); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("echoed %q", buf)
		}
		return nil
	}
	eventually(t, 10*time.Second, "cli's opaque connection carried", func() error {
		if err := ping(client.p.OutboundAddrs()[0]); err != nil {
			return fmt.Errorf("%w\n%s", err, grepLines(server.metrics(t), "inbound_tcp_authz"))
		}
		return nil
	})
	if err := ping(server.p.InboundAddr()); err == nil {
		t.Error("a plaintext client's opaque connection was carried; want it refused")
	}
	eventually(t, 10*time.Second, "the refusal counted", func() error {
		if v := metricValue(server.metrics(t), "inbound_tcp_authz_deny_total", `srv_name="db"`, `tls="no_identity"`); v < 1 {
			return fmt.Errorf("inbound_tcp_authz_deny_total = %v:\n%s", v, grepLines(server.metrics(t), "inbound_"))
		}
		return nil
	})
}

// grepLines is the lines of text that start with prefix, for failure messages.
func grepLines(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestRateLimit: an HTTPLocalRateLimitPolicy on srv's Server, 10 requests per second per identity and 15 in
// total: a burst from cli gets its share and then 429 with Retry-After; other-sa still gets its own share after
// cli's burst (fairness), up to what the total leaves; the refusals are counted.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	f.m.write("policy.yaml", `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
  accessPolicy: all-unauthenticated
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: srv-limit, namespace: test}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: srv-http}
  total: {requestsPerSecond: 15}
  identity: {requestsPerSecond: 10}
`)
	// burst sends n requests as fast as one client can and counts the answers by status.
	burst := func(addr string, n int) (map[int]int, string) {
		got := map[int]int{}
		retryAfter := ""
		for range n {
			resp, err := http.Get("http://" + addr + "/hello")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			got[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				retryAfter = resp.Header.Get("Retry-After")
			}
		}
		return got, retryAfter
	}
	// One plaintext request starts the port's policy watch (it takes one token of the total); then the limit is
	// in force once the proxy shows it.
	burst(f.srvPlan, 1)
	eventually(t, 10*time.Second, "the rate limit in srv's proxy", func() error {
		resp, err := http.Get("http://" + f.pair.server.p.AdminAddr() + "/debug/config")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"rateLimit"`) {
			return fmt.Errorf("no rateLimit in /debug/config: %.400s", b)
		}
		return nil
	})
	start := time.Now()
	cli, retry := burst(f.pair.outbound, 30)
	other, _ := burst(f.otherOut, 30)
	elapsed := time.Since(start)
	t.Logf("in %v: cli %v (Retry-After %q), other-sa %v", elapsed, cli, retry, other)
	if elapsed > 500*time.Millisecond {
		t.Skipf("the bursts took %v; the counts below assume well under a second", elapsed)
	}
	// cli: its share of 10 (plus what refilled meanwhile), the rest refused.
	if cli[200] < 10 || cli[200] > 12 || cli[429] != 30-cli[200] || retry != "1" {
		t.Errorf("cli: %v, Retry-After %q; want 10-12 admitted, the rest 429 with Retry-After: 1", cli, retry)
	}
	// other-sa: what the total (15) leaves after the plaintext request and cli's 10, not cli's leftovers of its
	// own share.
	if other[200] < 4 || other[200] > 7 || other[429] != 30-other[200] {
		t.Errorf("other-sa: %v; want about the 4 the total leaves, the rest 429", other)
	}
	text := f.pair.server.metrics(t)
	if v := metricValue(text, "inbound_http_ratelimit_rejected_total", `ratelimit_name="srv-limit"`, `limit="identity"`, `client_id="`+spiffeID("test", "cli-sa")+`"`); v < 18 {
		t.Errorf("cli's refusals by the identity limit counted %v times", v)
	}
	if v := metricValue(text, "inbound_http_ratelimit_rejected_total", `ratelimit_name="srv-limit"`, `limit="total"`, `client_id="`+spiffeID("test", "other-sa")+`"`); v < 23 {
		t.Errorf("other-sa's refusals by the total counted %v times", v)
	}
}

// authzRoutes: srv's Server with two inbound routes: /public/... for anyone (an AuthorizationPolicy with a
// NetworkAuthentication for every address), /admin for cli-sa only. Other paths match no route.
const authzRoutes = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
  proxyProtocol: HTTP/1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: test}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: srv-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /public}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin, namespace: test}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: srv-http}]
  rules:
  - matches: [{path: {type: Exact, value: /admin}}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: NetworkAuthentication
metadata: {name: anywhere, namespace: test}
spec:
  networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: public-anyone, namespace: test}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: public}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: anywhere}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: cli, namespace: test}
spec:
  identityRefs: [{kind: ServiceAccount, name: cli-sa}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: admin-cli, namespace: test}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: cli}
`

// TestAuthorizationRoutes: HTTPRoutes on a Server authorize per route. /public/... admits everyone, /admin only
// cli-sa (another service account and a plaintext client get 403), and a path no route matches gets 404 for
// everyone, counted as inbound_http_route_not_found_total; decisions carry the route's name.
func TestAuthorizationRoutes(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	f.m.write("policy.yaml", authzRoutes)
	get := func(addr, path string) (int, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	expect := func(path string, cli, other, plain int) {
		t.Helper()
		eventually(t, 10*time.Second, path, func() error {
			var got [3]int
			for i, addr := range []string{f.pair.outbound, f.otherOut, f.srvPlan} {
				var err error
				if got[i], err = get(addr, path); err != nil {
					return err
				}
			}
			if got != [3]int{cli, other, plain} {
				return fmt.Errorf("cli %d, other %d, plaintext %d; want %d, %d, %d", got[0], got[1], got[2], cli, other, plain)
			}
			return nil
		})
	}
	// A path on no route is refused only once the routes are in force: until then the default policy admits it.
	expect("/hello", 404, 404, 404)
	expect("/public/list", 200, 200, 200)
	expect("/admin", 200, 403, 403)
	expect("/admin/x", 404, 404, 404)

	text := f.pair.server.metrics(t)
	if v := metricValue(text, "inbound_http_route_not_found_total", `srv_name="srv-http"`); v < 6 {
		t.Errorf("inbound_http_route_not_found_total = %v, want at least 6", v)
	}
	if v := metricValue(text, "inbound_http_authz_allow_total", `route_name="public"`, `authz_name="public-anyone"`); v < 3 {
		t.Errorf("inbound_http_authz_allow_total{route_name=public} = %v, want at least 3", v)
	}
	if v := metricValue(text, "inbound_http_authz_deny_total", `route_name="admin"`, `client_id="`+spiffeID("test", "other-sa")+`"`); v < 1 {
		t.Errorf("inbound_http_authz_deny_total{route_name=admin, other-sa} = %v", v)
	}
	// Refusals are the proxy's answers, not the workload failing: counted as responses, classified as the
	// application's 4xx are, so they do not pull the workload's success rate down.
	for _, code := range []string{"403", "404"} {
		if v := metricValue(text, "response_total", `direction="inbound"`, `status_code="`+code+`"`, `classification="success"`); v < 1 {
			t.Errorf("response_total{status_code=%s, classification=success} = %v:\n%s", code, v, grepLines(text, "response_total"))
		}
		if v := metricValue(text, "response_total", `direction="inbound"`, `status_code="`+code+`"`, `classification="failure"`); v != 0 {
			t.Errorf("response_total{status_code=%s, classification=failure} = %v", code, v)
		}
	}

	// The routes go and the Server alone, with no authorization, refuses everyone (403, not 404).
	f.m.write("policy.yaml", strings.SplitN(authzRoutes, "---\n", 2)[0])
	expect("/hello", 403, 403, 403)
}

// TestTapShowsRefusals: a request the policy refuses never reaches the application, and tap still shows it, with
// the proxy's answer (403) and why, on the refusing proxy's inbound side.
func TestTapShowsRefusals(t *testing.T) {
	t.Parallel()
	f := startAuthzFixture(t)
	f.m.write("policy.yaml", authzPolicy)
	f.expect(t, "the ServerAuthorization admitting only cli-sa", 200, 403, 403)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := tapClient(t, f.m, f.pair.server, f.m.certFor(t, "sinew-viz", "tap", "tap")).Observe(ctx,
		&tapv1.ObserveRequest{Limit: 2, Match: prefixMatch("/refused/")})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := drive(t, stop, func(i int) error {
		resp, err := http.Get(fmt.Sprintf("http://%s/refused/%d", f.otherOut, i))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("other-sa got %d, want 403", resp.StatusCode)
		}
		return nil
	})
	got := collect(t, stream)
	close(stop)
	wait()
	if len(got.order) != 2 {
		t.Fatalf("%d requests tapped, want 2", len(got.order))
	}
	for _, id := range got.order {
		req, rsp, end := got.req[id], got.rsp[id], got.end[id]
		if req.GetClientId() != spiffeID("test", "other-sa") || req.GetDirection() != tapv1.TapEvent_DIRECTION_INBOUND {
			t.Errorf("request %v: want inbound from other-sa", req)
		}
		if s := rsp.GetResponseInit().GetHttpStatus(); s != http.StatusForbidden {
			t.Errorf("tapped status %d, want 403", s)
		}
		if e := end.GetResponseEnd().GetResetError(); !strings.Contains(e, "denied by authorization policy") || !strings.Contains(e, "srv-http") {
			t.Errorf("tapped end %q: want the denial and the server", e)
		}
	}
}

// TestAuthorizationBeforeTheControlPlaneAnswers: proxies whose policy service does not answer (it is behind a
// relay that drops every connection) refuse the port a Server covers (503), give a port without one the
// workload's default inbound policy (all-unauthenticated: 200; deny: 403), and refuse every port when they were
// not told which ports have a Server. Once the relay lets the policy service through, its answer replaces the
// interim policy: the Server's authorization, which admits only cli-sa, now refuses the plaintext client.
func TestAuthorizationBeforeTheControlPlaneAnswers(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	app := httpApp(t, "srv", false)
	relay := newGate(t)
	start := func(name string, serverPorts []uint16, policy string) *sidecar {
		s := m.sidecar(sidecarOpts{ns: "test", name: name, sa: "srv-sa", inbound: []proxy.InboundPort{{Port: 8080, App: app}},
			policyAddr: relay.addr, serverPorts: serverPorts, defaultPolicy: policy})
		m.write(name+".yaml", workloadYAML("test", name, "srv-sa", "srv", s.inboundPort(), 8080))
		s.waitReady(t)
		return s
	}
	covered := start("covered", []uint16{8080}, "")
	open := start("open", []uint16{}, "")
	closed := start("closed", []uint16{}, "deny")
	unknown := start("unknown", nil, "")
	m.write("policy.yaml", authzPolicy)

	get := func(s *sidecar) int {
		resp, err := http.Get("http://" + s.p.InboundAddr() + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name string
		s    *sidecar
		want int
	}{{"covered", covered, 503}, {"open", open, 200}, {"closed", closed, 403}, {"unknown", unknown, 503}} {
		if got := get(tc.s); got != tc.want {
			t.Errorf("%s, the control plane never answered: %d, want %d", tc.name, got, tc.want)
		}
	}
	if drops := relay.dropped.Load(); drops == 0 {
		t.Fatal("no proxy tried the policy service: the test proves nothing")
	}
	relay.open(m.cp.PolicyAddr())
	eventually(t, 15*time.Second, "the control plane's policy to replace the default one", func() error {
		if got := get(open); got != 403 {
			return fmt.Errorf("plaintext client on open's port: %d, want 403 from the Server's authorization", got)
		}
		return nil
	})
}

// gate is a TCP relay that drops every connection until open, then carries them to a target.
type gate struct {
	addr    string
	target  atomic.Pointer[string]
	dropped atomic.Int64
}

func newGate(t *testing.T) *gate {
	l := listen(t)
	g := &gate{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			target := g.target.Load()
			if target == nil {
				g.dropped.Add(1)
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", *target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }() //nolint:errcheck
				io.Copy(c, up)                                                 //nolint:errcheck
			}()
		}
	}()
	return g
}

func (g *gate) open(target string) { g.target.Store(&target) }
