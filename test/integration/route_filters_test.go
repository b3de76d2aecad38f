package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
)

// filterFixture: Service web (app web, which echoes what it received) and Service shadow (a mirror that records
// what it received and answers only after hold), in namespace shop, and a client whose proxy has an outbound
// port for web.
type filterFixture struct {
	m      *mesh
	cli    *sidecar
	client *http.Client
	url    string

	shadowHits   atomic.Int64
	shadowBodies chan string
	hold         time.Duration
}

func startFilterFixture(t *testing.T, hold time.Duration) *filterFixture {
	t.Helper()
	return startFilterFixtureWith(t, hold, httpApp(t, "web", false))
}

// startFilterFixtureWith is startFilterFixture with web's app at webApp.
func startFilterFixtureWith(t *testing.T, hold time.Duration, webApp string) *filterFixture {
	t.Helper()
	f := &filterFixture{m: startMesh(t, meshOpts{}), shadowBodies: make(chan string, 10000), hold: hold}
	shadowLn := listen(t)
	stop := make(chan struct{})
	shadow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.shadowHits.Add(1)
		f.shadowBodies <- r.Method + " " + r.URL.Path + " " + string(b)
		select {
		case <-time.After(f.hold):
		case <-stop:
		}
		_, _ = io.WriteString(w, "shadow")
	})}
	go shadow.Serve(shadowLn) //nolint:errcheck
	t.Cleanup(func() { close(stop); shadow.Close() })

	var files []string
	for name, app := range map[string]string{"web": webApp, "shadow": shadowLn.Addr().String()} {
		s := f.m.sidecar(sidecarOpts{ns: "shop", name: name, sa: name, inbound: []proxy.InboundPort{{Port: 8080, App: app}}})
		files = append(files, workloadYAML("shop", name, name, name, s.inboundPort(), 8080), serviceYAML("shop", name, name, 80, 8080))
		defer s.waitReady(t)
	}
	f.m.write("shop.yaml", strings.Join(files, "---\n"))
	client := f.m.sidecar(sidecarOpts{ns: "shop", name: "cli", sa: "cli", outbound: []string{webAuthority}})
	f.m.write("cli.yaml", workloadYAML("shop", "cli", "cli", "cli", 0, 9))
	client.waitReady(t)
	f.cli = client
	f.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.url = "http://" + client.p.OutboundAddrs()[0]
	return f
}

// filterAnswer is what a request through the client's proxy got.
type filterAnswer struct {
	status              int
	body, location, err string
	host                string // the Host the app saw
	took                time.Duration
}

func (f *filterFixture) do(method, path, body string) (filterAnswer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		return filterAnswer{}, err
	}
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		return filterAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return filterAnswer{status: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), err: resp.Header.Get("Sinew-Proxy-Error"),
		host: resp.Header.Get("X-Seen-Host"), took: time.Since(start)}, err
}

// filterRoutes is the route of these tests, on web; the HTTPFault comes with it.
const filterRoutes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-filters, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: example.org, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches: [{path: {type: PathPrefix, value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 80}, percent: 50}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /mirror-all}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 80}}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /fault}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: flaky}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /missing-fault}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: absent}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPFault
metadata: {name: flaky, namespace: shop}
spec:
  abort: {httpStatus: 503, percentage: 30}
  delay: {fixedDelay: 300ms, percentage: 20}
`

// TestHTTPRouteFilters: through real proxies, a local-mode HTTPRoute's redirects are answered by the client's
// proxy with the Location the Gateway API defines; a URL rewrite reaches the app with the new authority and path;
// an ExtensionRef to an HTTPFault that does not exist fails its requests with 500.
func TestHTTPRouteFilters(t *testing.T) {
	t.Parallel()
	f := startFilterFixture(t, 0)
	f.m.write("route.yaml", filterRoutes)
	eventually(t, 15*time.Second, "the route", func() error {
		a, err := f.do("GET", "/old/x?q=1", "")
		if err != nil || a.status != 301 {
			return fmt.Errorf("%+v %v", a, err)
		}
		return nil
	})
	for _, tc := range []struct {
		path     string
		status   int
		location string
	}{
		{"/old/x?q=1", 301, "http://example.org/new/x?q=1"},
		{"/old", 301, "http://example.org/new"},
		{"/secure/a", 302, "https://127.0.0.1/secure/a"}, // the host the client asked for (its outbound listener)
	} {
		a, err := f.do("GET", tc.path, "")
		if err != nil || a.status != tc.status || a.location != tc.location || a.host != "" {
			t.Errorf("GET %s: %d Location %q (app saw host %q) %v; want %d %q, answered by the proxy", tc.path, a.status, a.location, a.host, err, tc.status, tc.location)
		}
	}
	a, err := f.do("POST", "/api/items/7", "payload")
	if err != nil || a.status != 200 || a.body != "web /v2/items/7 payload" || a.host != "api.internal" {
		t.Errorf("rewrite: %+v %v; want the app to see POST /v2/items/7 for api.internal", a, err)
	}
	a, err = f.do("GET", "/missing-fault", "")
	if err != nil || a.status != 500 || a.err != "failure_injected" {
		t.Errorf("a missing HTTPFault: %+v %v; want 500 failure_injected", a, err)
	}
	if p := strings.Join(policyProblems(t, f.m), "\n"); !strings.Contains(p, "HTTPFault shop/absent does not exist") {
		t.Errorf("policy problems do not name the missing HTTPFault:\n%s", p)
	}
}

// TestHTTPRouteMirror: the mirror gets its share of the requests (50 %), with their bodies, while it takes 2 s to
// filterAnswer each; the client's requests are answered by web without waiting for it.
func TestHTTPRouteMirror(t *testing.T) {
	t.Parallel()
	f := startFilterFixture(t, 2*time.Second)
	f.m.write("route.yaml", filterRoutes)
	eventually(t, 15*time.Second, "the mirror", func() error {
		if _, err := f.do("POST", "/mirror-all", "probe"); err != nil {
			return err
		}
		if f.shadowHits.Load() == 0 {
			return fmt.Errorf("no copy reached the mirror yet")
		}
		return nil
	})
	const n = 400
	var slowest time.Duration
	for i := range n {
		a, err := f.do("POST", "/mirror", fmt.Sprint("body-", i))
		if err != nil || a.status != 200 || a.body != fmt.Sprintf("web /mirror body-%d", i) {
			t.Fatalf("request %d: %+v %v", i, a, err)
		}
		slowest = max(slowest, a.took)
	}
	// The mirror holds each copy 2 s: a primary that waited for its copy would take that long.
	if slowest >= time.Second {
		t.Errorf("the slowest primary took %v: it waited for the mirror", slowest)
	}
	// Every copy the client's proxy sent reaches the mirror (the probes' too, told apart by path).
	eventually(t, 20*time.Second, "the copies to arrive", func() error {
		sent := metricValue(f.cli.metrics(t), "outbound_http_mirror_requests_total")
		if got := f.shadowHits.Load(); float64(got) != sent {
			return fmt.Errorf("the mirror got %d of the %v copies sent", got, sent)
		}
		return nil
	})
	copies := map[string]bool{}
	for len(f.shadowBodies) > 0 {
		b := <-f.shadowBodies
		if rest, ok := strings.CutPrefix(b, "POST /mirror "); ok {
			if !strings.HasPrefix(rest, "body-") || copies[rest] {
				t.Errorf("the mirror got %q", b)
			}
			copies[rest] = true
		}
	}
	within(t, "mirrored share", len(copies), n, 0.5, 0.1)
}

// TestHTTPRouteFault: an HTTPFault aborts 30 % of the route's requests with 503 and delays 20 % by 300 ms, each
// share drawn on its own.
func TestHTTPRouteFault(t *testing.T) {
	t.Parallel()
	f := startFilterFixture(t, 0)
	f.m.write("route.yaml", filterRoutes)
	eventually(t, 15*time.Second, "the fault", func() error {
		a, err := f.do("GET", "/fault", "")
		if err != nil || a.status != 503 {
			return fmt.Errorf("%+v %v", a, err)
		}
		return nil
	})
	const n, workers = 2000, 16
	var (
		mu                       sync.Mutex
		aborted, delayed, served int
		wg                       sync.WaitGroup
		next                     atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= n {
				a, err := f.do("GET", "/fault", "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				switch {
				case a.status == 503 && a.err == "failure_injected":
					aborted++
				case a.status == 200:
					served++
				default:
					t.Errorf("unexpected filterAnswer %+v", a)
				}
				// 300 ms against well under a millisecond on loopback: the delayed ones are plain to see.
				if a.took >= 300*time.Millisecond {
					delayed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests: %d aborted, %d served, %d delayed", n, aborted, served, delayed)
	within(t, "aborted", aborted, n, 0.30, 0.04)
	within(t, "delayed", delayed, n, 0.20, 0.04)
}

// TestHTTPRouteTimeoutsAndRetries: a rule's timeouts.request answers 504 when the app is slower; its retry sends a
// request that got 503 again, so a backend that fails every other request is never seen failing; a rule without
// them passes both through.
func TestHTTPRouteTimeoutsAndRetries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ln := listen(t)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow", "/slow-ok":
			time.Sleep(time.Second)
		case "/flaky", "/flaky-raw":
			if calls.Add(1)%2 == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go app.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { app.Close() })
	f := startFilterFixtureWith(t, 0, ln.Addr().String())
	f.m.write("route.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-resilience, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: Exact, value: /slow}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /flaky}}]
    retry: {attempts: 1, codes: [503]}
    backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: web, port: 80}]
`)
	eventually(t, 15*time.Second, "the route's timeout", func() error {
		if a, err := f.do("GET", "/slow", ""); err != nil || a.status != 504 {
			return fmt.Errorf("%+v %v", a, err)
		}
		return nil
	})
	if a, err := f.do("GET", "/slow-ok", ""); err != nil || a.status != 200 {
		t.Errorf("a slow request without a timeout: %+v %v", a, err)
	}
	for i := range 20 {
		if a, err := f.do("GET", "/flaky", ""); err != nil || a.status != 200 {
			t.Fatalf("retried request %d: %+v %v", i, a, err)
		}
	}
	// Without the rule's retry, every other request fails.
	failed := 0
	for range 20 {
		a, err := f.do("GET", "/flaky-raw", "")
		if err != nil {
			t.Fatal(err)
		}
		if a.status == 503 {
			failed++
		}
	}
	if failed != 10 {
		t.Errorf("without the retry %d of 20 failed, want 10: the app's pattern is not what the test assumes", failed)
	}
}
