package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// fakeQuerier answers every query with no data, and remembers the queries.
type fakeQuerier struct{ queries []string }

func (f *fakeQuerier) Query(_ context.Context, q string, _ time.Time) ([]metricsapi.Sample, error) {
	f.queries = append(f.queries, q)
	return nil, nil
}

func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Assets == nil {
		cfg.Assets = fstest.MapFS{"index.html": {Data: []byte("<html>dashboard</html>")}, "app.js": {Data: []byte("//js")}}
	}
	ts := httptest.NewServer(New(cfg))
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestRefusesForeignHostsCrossSiteAndWrites(t *testing.T) {
	ts := newTestServer(t, Config{Mode: ModeLocal, Querier: &fakeQuerier{},
		AllowedHosts: []string{"sinew-viz.sinew-viz.svc"}, EnforcedHost: regexp.MustCompile(`^dash\.example\.com$`)})
	cases := []struct {
		name   string
		method string
		header map[string]string
		want   int
	}{
		{"loopback IP", "GET", nil, 200},
		{"localhost with a port", "GET", map[string]string{"Host": "localhost:50750"}, 200},
		{"IPv6 loopback", "GET", map[string]string{"Host": "[::1]:50750"}, 200},
		{"the Service's name", "GET", map[string]string{"Host": "sinew-viz.sinew-viz.svc:8084"}, 200},
		{"--enforced-host", "GET", map[string]string{"Host": "dash.example.com"}, 200},
		{"DNS rebinding: a foreign name resolving to us", "GET", map[string]string{"Host": "evil.example"}, 403},
		{"a name that only contains an allowed one", "GET", map[string]string{"Host": "localhost.evil.example"}, 403},
		{"a write", "POST", nil, 403},
		{"a delete", "DELETE", nil, 403},
		{"a cross-site fetch", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"a foreign Origin", "GET", map[string]string{"Origin": "http://evil.example"}, 403},
		{"our own Origin", "GET", map[string]string{"Origin": "http://localhost:50750", "Sec-Fetch-Site": "same-origin"}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/", "/api/version"} {
				got, body, _ := do(t, c.method, ts.URL+path, c.header)
				if got != c.want {
					t.Errorf("%s %s: %d %q, want %d", c.method, path, got, body, c.want)
				}
			}
		})
	}
}

func TestDashboardFilesAndDeepLinks(t *testing.T) {
	ts := newTestServer(t, Config{Mode: ModeLocal})
	for path, want := range map[string]string{"/": "dashboard", "/app.js": "//js", "/namespaces/emojivoto": "dashboard"} {
		code, body, h := do(t, "GET", ts.URL+path, nil)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want %q", path, code, body, want)
		}
		if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: headers %v lack the framing and content policies", path, h)
		}
	}
}

func TestAPIErrorsSayWhatIsWrong(t *testing.T) {
	q := &fakeQuerier{}
	ts := newTestServer(t, Config{Mode: ModeLocal, Querier: q})
	noProm := newTestServer(t, Config{Mode: ModeLocal})
	cases := []struct {
		url  string
		code int
		msg  string
	}{
		{ts.URL + "/api/stat", 400, "resource: required"},
		{ts.URL + "/api/stat?resource=bogus", 400, "bogus"},
		{ts.URL + "/api/stat?resource=deploy&window=forever", 400, "window"},
		{ts.URL + "/api/stat?resource=deploy&from=deploy/a&to=deploy/b", 400, ""},
		{ts.URL + "/api/edges?kind=deploy/web", 400, "TYPE"},
		{ts.URL + "/api/routes?resource=deploy", 400, "one resource"},
		{ts.URL + "/api/authz", 400, "resource: required"},
		{ts.URL + "/api/authz?resource=deploy", 400, "one resource"},
		{ts.URL + "/api/authz?resource=deploy/web&allNamespaces=true", 400, "not -A"},
		{ts.URL + "/api/tap", 400, "resource: required"},
		{ts.URL + "/api/tap?resource=deploy/web&maxRps=1000", 400, "maximum"},
		{ts.URL + "/api/tap?resource=deploy/web&limit=-1", 400, "limit"},
		{ts.URL + "/api/tap?resource=deploy/web", 503, "tap is not available"},
		{ts.URL + "/api/nothing", 404, "no API endpoint"},
		{noProm.URL + "/api/stat?resource=deploy", 503, "no Prometheus"},
	}
	for _, c := range cases {
		code, body, h := do(t, "GET", c.url, nil)
		var e struct{ Error string }
		if code != c.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.msg) || e.Error == "" {
			t.Errorf("GET %s: %d %q, want %d with an error mentioning %q", c.url, code, body, c.code, c.msg)
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: content type %q", c.url, h.Get("Content-Type"))
		}
	}
}

func TestStatAnswersWithTheCLICommand(t *testing.T) {
	q := &fakeQuerier{}
	ts := newTestServer(t, Config{Mode: ModeLocal, Querier: q})
	code, body, h := do(t, "GET", ts.URL+"/api/stat?resource=deploy&namespace=emojivoto&to=deploy/voting&window=5m", nil)
	if code != 200 || strings.TrimSpace(body) != `{"rows":[]}` {
		t.Fatalf("stat: %d %s", code, body)
	}
	if got, want := h.Get(CommandHeader), "sinew viz stat deploy -n emojivoto --to deploy/voting -t 5m"; got != want {
		t.Errorf("command %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(q.queries, "\n"), `[5m]`) {
		t.Errorf("queries %q: want the 5m window", q.queries)
	}
	for path, want := range map[string]string{
		"/api/edges?kind=deploy&allNamespaces=true":                            "sinew viz edges deploy -A",
		"/api/routes?resource=deploy/web&namespace=emojivoto&to=deploy/voting": "sinew viz routes deploy/web -n emojivoto --to deploy/voting",
		"/api/authz?resource=po/web-1&namespace=emojivoto&window=30s":          "sinew viz authz po/web-1 -n emojivoto -t 30s",
	} {
		if code, body, h := do(t, "GET", ts.URL+path, nil); code != 200 || h.Get(CommandHeader) != want {
			t.Errorf("GET %s: %d %s, command %q, want %q", path, code, body, h.Get(CommandHeader), want)
		}
	}
}

func TestTapOfNothingIsNotFound(t *testing.T) {
	svc := tapsvc.New(tapsvc.Static{}, nil, func() *tls.Certificate { return &tls.Certificate{} }, nil)
	ts := newTestServer(t, Config{Mode: ModeLocal, Tap: svc})
	code, body, _ := do(t, "GET", ts.URL+"/api/tap?resource=deploy/web&namespace=emojivoto", nil)
	if code != 404 || !strings.Contains(body, "no meshed pods to tap: deployment/web in namespace emojivoto") {
		t.Errorf("tap of nothing: %d %s", code, body)
	}
}

// authzQuerier answers the allow query of `authz` with one admitted pair, and everything else with nothing.
type authzQuerier struct{}

func (authzQuerier) Query(_ context.Context, q string, _ time.Time) ([]metricsapi.Sample, error) {
	if !strings.Contains(q, "inbound_http_authz_allow_total") {
		return nil, nil
	}
	return []metricsapi.Sample{{Value: 2, Labels: map[string]string{"namespace": "emojivoto", "pod": "web-1", "target_addr": "127.0.0.1:8080",
		"srv_kind": "default", "srv_name": "all-unauthenticated", "authz_kind": "default", "authz_name": "all-unauthenticated"}}}, nil
}

func TestAuthzThroughTheClient(t *testing.T) {
	ts := newTestServer(t, Config{Mode: ModeLocal, Querier: authzQuerier{}})
	c, err := NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := c.Authz(context.Background(), url.Values{"resource": {"deploy/web"}, "namespace": {"emojivoto"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Server() != "default:all-unauthenticated" || rows[0].Authorization() != "default/all-unauthenticated" ||
		rows[0].RPS == nil || *rows[0].RPS != 2 || rows[0].SuccessRate != nil {
		t.Errorf("authz rows %+v: want one admitted pair at 2rps, without a success rate (no responses)", rows)
	}
	if _, err := c.Authz(context.Background(), url.Values{"resource": {"deploy"}}); err == nil || !strings.Contains(err.Error(), "one resource") {
		t.Errorf("authz of deploy: %v, want the API's error", err)
	}
}
