package layer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// routed is a request for url matched against a policy of one rule with filters and matches, as the route layer
// leaves it.
func routed(t *testing.T, method, url string, filters []*policyv1.Filter, matches ...*policyv1.HttpMatch) *pipeline.Request {
	t.Helper()
	o := translated(t, "web:80", &policyv1.OutboundPolicy{Routes: []*policyv1.HttpRoute{{Rules: []*policyv1.RouteRule{{
		Matches: matches, Filters: filters, Backends: []*policyv1.WeightedBackend{{Authority: "web:80", Weight: 1}}}}}}})
	req := newReq(method, url, nil)
	req.Policy = o
	req.Rule, req.Match = o.Find(req.HTTP)
	if req.Rule == nil {
		t.Fatalf("%s matches no rule", url)
	}
	return req
}

func prefixMatch(p string) *policyv1.HttpMatch {
	return &policyv1.HttpMatch{Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: p}}}
}

// sentTo records what reached the next layer.
func sentTo(got **http.Request) pipeline.Handler {
	return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		*got = req.HTTP.Clone(req.HTTP.Context())
		return respond(200), nil
	})
}

func TestReplacePrefix(t *testing.T) {
	t.Parallel()
	// The Gateway API's table for ReplacePrefixMatch.
	for _, tc := range []struct{ prefix, path, replacement, want string }{
		{"/foo", "/foo/bar", "/xyz", "/xyz/bar"},
		{"/foo/", "/foo/bar", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo/bar", "/xyz/", "/xyz/bar"},
		{"/foo/", "/foo/bar", "/xyz", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz"},
		{"/foo", "/foo/", "/xyz", "/xyz/"},
		{"/", "/foo", "/xyz", "/xyz/foo"},
		{"/foo", "/foo/bar", "", "/bar"},
		{"/foo/", "/foo/bar", "", "/bar"},
		{"/foo", "/foo/bar", "/", "/bar"},
		{"/foo", "/foo", "/", "/"},
	} {
		if got := replacePrefix(tc.path, tc.prefix, tc.replacement); got != tc.want {
			t.Errorf("prefix %q path %q replacement %q: %q, want %q", tc.prefix, tc.path, tc.replacement, got, tc.want)
		}
	}
}

func TestURLRewrite(t *testing.T) {
	t.Parallel()
	var got *http.Request
	h := Filters(nil)(sentTo(&got))
	rw := func(host string, pm *policyv1.Filter_PathModifier) []*policyv1.Filter {
		return []*policyv1.Filter{{Kind: &policyv1.Filter_UrlRewrite_{UrlRewrite: &policyv1.Filter_UrlRewrite{Host: host, Path: pm}}}}
	}
	full := &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Full{Full: "/one"}}
	prefix := &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Prefix{Prefix: "/v2"}}

	if _, err := h.Handle(routed(t, "GET", "http://web:80/api/list?x=1", rw("backend.example", full))); err != nil {
		t.Fatal(err)
	}
	if got.Host != "backend.example" || got.URL.Path != "/one" || got.URL.RawQuery != "x=1" {
		t.Errorf("full rewrite sent host %q path %q query %q", got.Host, got.URL.Path, got.URL.RawQuery)
	}
	if _, err := h.Handle(routed(t, "GET", "http://web:80/v1/items/a%2Fb", rw("", prefix), prefixMatch("/v1"))); err != nil {
		t.Fatal(err)
	}
	if got.Host != "web:80" || got.URL.EscapedPath() != "/v2/items/a%2Fb" {
		t.Errorf("prefix rewrite sent host %q path %q", got.Host, got.URL.EscapedPath())
	}
	// A prefix to replace needs a prefix match.
	exact := &policyv1.HttpMatch{Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Exact{Exact: "/v1"}}}
	if _, err := h.Handle(routed(t, "GET", "http://web:80/v1", rw("", prefix), exact)); !errors.Is(err, pipeline.ErrUnsupportedFilter) {
		t.Errorf("prefix rewrite after an exact match: %v", err)
	}
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	called := false
	h := Filters(nil)(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		called = true
		return respond(200), nil
	}))
	rd := func(r *policyv1.Filter_Redirect) []*policyv1.Filter {
		return []*policyv1.Filter{
			{Kind: &policyv1.Filter_ResponseHeaderModifier{ResponseHeaderModifier: &policyv1.Filter_HeaderModifier{Set: map[string]string{"X-Why": "moved"}}}},
			{Kind: &policyv1.Filter_Redirect_{Redirect: r}},
		}
	}
	for _, tc := range []struct {
		name     string
		url      string
		redirect *policyv1.Filter_Redirect
		status   int
		location string
	}{
		{"host and status", "http://web/a?q=1", &policyv1.Filter_Redirect{Host: "example.org", Status: 301}, 301, "http://example.org/a?q=1"},
		{"scheme sets its port", "http://web:8080/a", &policyv1.Filter_Redirect{Scheme: "https"}, 302, "https://web/a"},
		{"port", "http://web/a", &policyv1.Filter_Redirect{Port: 8443}, 302, "http://web:8443/a"},
		{"the target's port stays", "http://web:8080/a", &policyv1.Filter_Redirect{Host: "x"}, 302, "http://x:8080/a"},
		{"full path", "http://web/a/b", &policyv1.Filter_Redirect{PathModifier: &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Full{Full: "/new"}}}, 302, "http://web/new"},
		{"scheme and port", "http://web/a", &policyv1.Filter_Redirect{Scheme: "https", Port: 443}, 302, "https://web/a"},
	} {
		called = false
		resp, err := h.Handle(routed(t, "GET", tc.url, rd(tc.redirect)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if called || resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || resp.Header.Get("X-Why") != "moved" {
			t.Errorf("%s: forwarded %v, %d Location %q X-Why %q; want %d %q", tc.name, called, resp.StatusCode, resp.Header.Get("Location"),
				resp.Header.Get("X-Why"), tc.status, tc.location)
		}
	}
	// A prefix redirect
	resp, err := h.Handle(routed(t, "GET", "http://web/old/x", rd(&policyv1.Filter_Redirect{
		PathModifier: &policyv1.Filter_PathModifier{Kind: &policyv1.Filter_PathModifier_Prefix{Prefix: "/new"}}}), prefixMatch("/old")))
	if err != nil || resp.Header.Get("Location") != "http://web/new/x" {
		t.Errorf("prefix redirect: %v %v", resp, err)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	h := Filters(nil)(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { return respond(200), nil }))
	faultFilter := func(f *policyv1.Filter_Fault) []*policyv1.Filter {
		return []*policyv1.Filter{{Kind: &policyv1.Filter_Fault_{Fault: f}}}
	}
	// Aborts at their share: 30 % of 4000 requests, within a wide margin.
	abort := faultFilter(&policyv1.Filter_Fault{Abort: &policyv1.Filter_Fault_Abort{HttpStatus: 503, Ratio: 0.3}})
	req := routed(t, "GET", "http://web/", abort)
	aborted := 0
	for range 4000 {
		_, err := h.Handle(req)
		var ie *pipeline.InjectedError
		if errors.As(err, &ie) {
			if ie.Status != 503 {
				t.Fatalf("aborted with %d", ie.Status)
			}
			aborted++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if aborted < 1000 || aborted > 1400 {
		t.Errorf("aborted %d of 4000 at 30 %%", aborted)
	}
	// gRPC code.
	grpcAbort := faultFilter(&policyv1.Filter_Fault{Abort: &policyv1.Filter_Fault_Abort{GrpcCode: 14, Ratio: 1}})
	_, err := h.Handle(routed(t, "POST", "http://web/pkg.Svc/M", grpcAbort))
	if f := pipeline.Classify(t.Context(), err); f.GRPC != 14 || f.Kind != "failure_injected" {
		t.Errorf("gRPC abort: %+v (%v)", f, err)
	}
	// A delay holds the request that long, then lets it through.
	delay := faultFilter(&policyv1.Filter_Fault{Delay: &policyv1.Filter_Fault_Delay{Fixed: durationpb.New(50 * time.Millisecond), Ratio: 1}})
	start := time.Now()
	if resp, err := h.Handle(routed(t, "GET", "http://web/", delay)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("delayed: %v %v", resp, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delayed only %v", d)
	}
	// A client that goes away ends its delay.
	req = routed(t, "GET", "http://web/", faultFilter(&policyv1.Filter_Fault{Delay: &policyv1.Filter_Fault_Delay{Fixed: durationpb.New(time.Hour), Ratio: 1}}))
	ctx, cancel := context.WithCancel(t.Context())
	req.HTTP = req.HTTP.WithContext(ctx)
	cancel()
	if _, err := h.Handle(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled delay: %v", err)
	}
}

// TestFaultsMaxActive: while max_active requests are being delayed, the next ones pass untouched.
func TestFaultsMaxActive(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	h := Filters(nil)(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		reached.Add(1)
		return respond(200), nil
	}))
	filters := []*policyv1.Filter{{Kind: &policyv1.Filter_Fault_{Fault: &policyv1.Filter_Fault{MaxActive: 2,
		Delay: &policyv1.Filter_Fault_Delay{Fixed: durationpb.New(time.Hour), Ratio: 1}}}}}
	base := routed(t, "GET", "http://web/", filters)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		req := *base
		req.HTTP = base.HTTP.WithContext(ctx)
		wg.Go(func() { h.Handle(&req) }) //nolint:errcheck // ends cancelled
	}
	testutil.Eventually(t, 5*time.Second, "two requests delayed", func() bool { return base.Rule.FaultActive[0].Load() == 2 })
	for range 5 {
		if resp, err := h.Handle(base); err != nil || resp.StatusCode != 200 {
			t.Fatalf("past max_active: %v %v", resp, err)
		}
	}
	if reached.Load() != 5 {
		t.Errorf("%d requests passed, want the 5 past the cap", reached.Load())
	}
	cancel()
	wg.Wait()
	if n := base.Rule.FaultActive[0].Load(); n != 0 {
		t.Errorf("%d faults still counted active", n)
	}
}

// TestMirror: a copy goes to the mirror's backend with the request's body, the primary does not wait for it, and
// a body over the limit is not copied.
func TestMirror(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	copies := make(chan *pipeline.Request, 10)
	bodies := make(chan string, 10)
	block := make(chan struct{})
	mirror := NewMirror(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		b := ""
		if req.HTTP.Body != nil {
			data, _ := io.ReadAll(req.HTTP.Body)
			b = string(data)
		}
		copies <- req
		bodies <- b
		<-block // a slow mirror
		return respond(200), nil
	}), m)
	defer close(block)
	primary := 0
	h := Filters(mirror)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		primary++
		if req.HTTP.Body != nil {
			io.Copy(io.Discard, req.HTTP.Body) //nolint:errcheck
		}
		return respond(200), nil
	}))
	filters := []*policyv1.Filter{
		{Kind: &policyv1.Filter_RequestHeaderModifier{RequestHeaderModifier: &policyv1.Filter_HeaderModifier{Set: map[string]string{"X-Canary": "1"}}}},
		{Kind: &policyv1.Filter_Mirror_{Mirror: &policyv1.Filter_Mirror{Authority: "shadow:80", Ratio: 1}}},
	}
	req := routed(t, "POST", "http://web/submit", filters)
	req.HTTP.Body = io.NopCloser(strings.NewReader("payload"))
	req.HTTP.ContentLength = -1
	if resp, err := h.Handle(req); err != nil || resp.StatusCode != 200 || primary != 1 {
		t.Fatalf("primary: %v %v (%d)", resp, err, primary)
	}
	select {
	case cp := <-copies:
		if cp.Backend != "shadow:80" || cp.HTTP.Header.Get("X-Canary") != "1" || cp.HTTP.URL.Path != "/submit" {
			t.Errorf("copy went to %q with header %v path %q", cp.Backend, cp.HTTP.Header, cp.HTTP.URL.Path)
		}
		if b := <-bodies; b != "payload" {
			t.Errorf("copy's body %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no copy sent")
	}
	// Too big a body: no copy, the primary still gets all of it.
	req = routed(t, "POST", "http://web/submit", filters)
	big := strings.Repeat("x", MirrorBodyLimit+1)
	req.HTTP.Body = io.NopCloser(strings.NewReader(big))
	req.HTTP.ContentLength = -1
	if resp, err := h.Handle(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("primary with a big body: %v %v", resp, err)
	}
	// The copy was given up while the primary read the body, before Handle returned.
	if v := gathered(t, reg, "outbound_http_mirror_skipped_total", "body_too_large"); v != 1 {
		t.Errorf("outbound_http_mirror_skipped_total{reason=body_too_large} %v, want 1", v)
	}
	if v := gathered(t, reg, "outbound_http_mirror_requests_total", ""); v != 1 {
		t.Errorf("outbound_http_mirror_requests_total %v, want 1: a body over the limit was copied", v)
	}
}

// gathered is the value of family name (with label reason when not "") in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
