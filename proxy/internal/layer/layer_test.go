package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/budget"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
	"google.golang.org/protobuf/types/known/durationpb"
)

// newReq is the state of an outbound request for target, as the forwarder builds it.
func newReq(method, url string, body io.Reader) *pipeline.Request {
	r := httptest.NewRequest(method, url, body)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	return &pipeline.Request{Client: r, HTTP: out, Start: time.Now(), Out: &pipeline.OutboundConn{Target: r.Host}}
}

func respond(status int, h ...string) *http.Response {
	resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("body"))}
	for i := 0; i+1 < len(h); i += 2 {
		resp.Header.Set(h[i], h[i+1])
	}
	return resp
}

// translated is target's policy from the control plane's answer p.
func translated(t testing.TB, target string, p *policyv1.OutboundPolicy) *policy.Outbound {
	t.Helper()
	o, problems := policy.Translate(target, p)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return o
}

func ruleWith(t *testing.T, r *policyv1.RouteRule) *policy.Rule {
	t.Helper()
	if r.Backends == nil {
		r.Backends = []*policyv1.WeightedBackend{{Authority: "web:80", Weight: 1}}
	}
	o := translated(t, "web:80", &policyv1.OutboundPolicy{Routes: []*policyv1.HttpRoute{{Rules: []*policyv1.RouteRule{r}}}})
	return o.Routes[0].Rules[0]
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var order []string
	mark := func(name string) pipeline.Layer {
		return func(next pipeline.Handler) pipeline.Handler {
			return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
				order = append(order, name)
				return next.Handle(req)
			})
		}
	}
	end := pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		order = append(order, "end")
		return respond(200), nil
	})
	if _, err := pipeline.Chain(end, mark("a"), mark("b"), mark("c")).Handle(newReq("GET", "http://web:80/", nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "a b c end" {
		t.Fatalf("order %q", got)
	}
}

func TestRouteMatchesOrAnswers404(t *testing.T) {
	t.Parallel()
	var nilClient *policy.Client
	var seen *policy.Rule
	h := Route(nilClient, time.Second)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		seen = req.Rule
		return respond(200), nil
	}))
	req := newReq("GET", "http://web:80/x", nil)
	if _, err := h.Handle(req); err != nil || seen == nil || req.Policy == nil {
		t.Fatalf("default policy: rule %v, err %v", seen, err)
	}
	if got := seen.Backends; len(got) != 1 || got[0].Authority != "web:80" {
		t.Fatalf("default backend %v", got)
	}

	// A policy whose only rule matches /api: anything else is 404.
	o := translated(t, "web:80", &policyv1.OutboundPolicy{Routes: []*policyv1.HttpRoute{{Rules: []*policyv1.RouteRule{{
		Matches:  []*policyv1.HttpMatch{{Path: &policyv1.HttpMatch_PathMatch{Kind: &policyv1.HttpMatch_PathMatch_Prefix{Prefix: "/api"}}}},
		Backends: []*policyv1.WeightedBackend{{Authority: "web:80", Weight: 1}},
	}}}}})
	if r := o.Match(newReq("GET", "http://web:80/other", nil).HTTP); r != nil {
		t.Fatal("/other matched /api")
	}
	_, err := pipeline.Chain(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { return respond(200), nil }),
		func(next pipeline.Handler) pipeline.Handler {
			return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
				req.Rule = o.Match(req.HTTP)
				if req.Rule == nil {
					return nil, pipeline.ErrNoRoute
				}
				return next.Handle(req)
			})
		}).Handle(newReq("GET", "http://web:80/other", nil))
	if f := pipeline.Classify(context.Background(), err); f.Status != 404 {
		t.Fatalf("no route: %v (%d)", err, f.Status)
	}
}

func TestSplitByWeight(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{Backends: []*policyv1.WeightedBackend{
		{Authority: "a:80", Weight: 3}, {Authority: "b:80", Weight: 1}, {Authority: "never:80", Weight: 0},
	}})
	counts := map[string]int{}
	h := Split(nil)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		counts[req.Backend]++
		return respond(200), nil
	}))
	for range 4000 {
		req := newReq("GET", "http://web:80/", nil)
		req.Rule = rule
		if _, err := h.Handle(req); err != nil {
			t.Fatal(err)
		}
	}
	if counts["never:80"] != 0 || counts["a:80"] < 2700 || counts["a:80"] > 3300 || counts["a:80"]+counts["b:80"] != 4000 {
		t.Fatalf("split %v, want about 3000/1000/0", counts)
	}
}

func TestTimeoutAnswers504AndCancelsTheAttempt(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{RequestTimeout: durationpb.New(20 * time.Millisecond)})
	cancelled := make(chan struct{})
	h := Timeout()(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		<-req.HTTP.Context().Done()
		close(cancelled)
		return nil, req.HTTP.Context().Err()
	}))
	req := newReq("GET", "http://web:80/slow", nil)
	req.Rule = rule
	_, err := h.Handle(req)
	<-cancelled
	if f := pipeline.Classify(req.Client.Context(), err); f.Status != 504 || f.GRPC != 4 {
		t.Fatalf("timeout: %v → %+v", err, f)
	}

	// Headers in time: the body may take longer, and the context lives until the body is closed.
	h = Timeout()(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		resp := respond(200)
		ctx := req.HTTP.Context()
		resp.Body = io.NopCloser(readerFunc(func(p []byte) (int, error) {
			time.Sleep(40 * time.Millisecond) // longer than the timeout, on purpose: the body is not bounded
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, io.EOF
		}))
		return resp, nil
	}))
	req = newReq("GET", "http://web:80/stream", nil)
	req.Rule = rule
	resp, err := h.Handle(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("body cut by the timeout: %v", err)
	}
	resp.Body.Close()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// flaky answers with statuses in turn and records the bodies it received.
type flaky struct {
	statuses []int
	calls    atomic.Int32
	bodies   []string
	errs     []error
}

func (f *flaky) Handle(req *pipeline.Request) (*http.Response, error) {
	i := int(f.calls.Add(1)) - 1
	if req.HTTP.Body != nil {
		b, _ := io.ReadAll(req.HTTP.Body)
		f.bodies = append(f.bodies, string(b))
	}
	if i < len(f.errs) && f.errs[i] != nil {
		return nil, f.errs[i]
	}
	return respond(f.statuses[min(i, len(f.statuses)-1)]), nil
}

func retryRule(t *testing.T, limit uint32) *policy.Rule {
	return ruleWith(t, &policyv1.RouteRule{Retry: &policyv1.Retry{Limit: limit,
		StatusRanges: []*policyv1.StatusRange{{First: 500, Last: 599}}, GrpcCodes: []uint32{14}}})
}

func TestRetryOnStatusReplaysTheBody(t *testing.T) {
	t.Parallel()
	f := &flaky{statuses: []int{503, 500, 200}}
	h := Retry(budget.New(0.2, 10, 10*time.Second))(f)
	req := newReq("POST", "http://web:80/vote", strings.NewReader("choice=🍩"))
	req.Rule = retryRule(t, 3)
	resp, err := h.Handle(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v %v, want 200 after two retries", resp, err)
	}
	if f.calls.Load() != 3 || req.Attempt != 3 {
		t.Fatalf("%d calls, attempt %d", f.calls.Load(), req.Attempt)
	}
	for _, b := range f.bodies {
		if b != "choice=🍩" {
			t.Fatalf("bodies %q: a retry did not replay the body", f.bodies)
		}
	}
}

func TestRetryStopsAtTheLimitAndWithoutPolicy(t *testing.T) {
	t.Parallel()
	f := &flaky{statuses: []int{500}}
	req := newReq("GET", "http://web:80/", nil)
	req.Rule = retryRule(t, 2)
	resp, _ := Retry(budget.New(0.2, 10, 10*time.Second))(f).Handle(req)
	if resp.StatusCode != 500 || f.calls.Load() != 3 {
		t.Fatalf("status %d after %d calls, want 500 after 3", resp.StatusCode, f.calls.Load())
	}

	f = &flaky{statuses: []int{500}}
	req = newReq("GET", "http://web:80/", nil)
	resp, _ = Retry(budget.New(0.2, 10, 10*time.Second))(f).Handle(req)
	if resp.StatusCode != 500 || f.calls.Load() != 1 {
		t.Fatalf("no retry policy: status %d after %d calls", resp.StatusCode, f.calls.Load())
	}
}

func TestRetryOnGRPCStatusInHeaders(t *testing.T) {
	t.Parallel()
	calls := 0
	h := Retry(budget.New(0.2, 10, 10*time.Second))(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			return respond(200, "Grpc-Status", "14"), nil // UNAVAILABLE, trailers-only
		}
		if calls == 2 {
			return respond(200, "Grpc-Status", "3"), nil // INVALID_ARGUMENT: not retried
		}
		return respond(200, "Grpc-Status", "0"), nil
	}))
	req := newReq("POST", "http://emoji:8080/Emoji/List", strings.NewReader("x"))
	req.Rule = retryRule(t, 3)
	resp, err := h.Handle(req)
	if err != nil || resp.Header.Get("Grpc-Status") != "3" || calls != 2 {
		t.Fatalf("grpc-status %q after %d calls", resp.Header.Get("Grpc-Status"), calls)
	}
}

func TestRetryBudgetIsShared(t *testing.T) {
	t.Parallel()
	b := budget.New(0.2, 0, 10*time.Second)
	f := &flaky{statuses: []int{500}}
	h := Retry(b)(f)
	const n = 100
	for range n {
		req := newReq("GET", "http://web:80/", nil)
		req.Rule = retryRule(t, 3)
		h.Handle(req) //nolint:errcheck // the status is what counts
	}
	// Each request may retry 3 times; the budget allows 20 % of the requests.
	if retries := int(f.calls.Load()) - n; retries > n/5+1 || retries < n/5-3 {
		t.Fatalf("%d retries for %d requests, want about %d", retries, n, n/5)
	}
}

func TestRetryWhatNeverReachedAnApp(t *testing.T) {
	t.Parallel()
	refused := &endpoint.DialError{Addr: "10.0.0.1:4143", Err: syscall.ECONNREFUSED}
	f := &flaky{statuses: []int{200}, errs: []error{refused, refused}}
	req := newReq("POST", "http://web:80/vote", strings.NewReader("v"))
	resp, err := Retry(budget.New(0.2, 0, 10*time.Second))(f).Handle(req)
	if err != nil || resp.StatusCode != 200 || f.calls.Load() != 3 {
		t.Fatalf("got %v %v after %d calls; refused connections are retried without a policy", resp, err, f.calls.Load())
	}
	if f.bodies[2] != "v" {
		t.Fatalf("bodies %q", f.bodies)
	}
	// But not forever.
	f = &flaky{statuses: []int{200}, errs: []error{refused, refused, refused, refused}}
	_, err = Retry(budget.New(0.2, 0, 10*time.Second))(f).Handle(newReq("GET", "http://web:80/", nil))
	if !errors.Is(err, syscall.ECONNREFUSED) || f.calls.Load() != 1+unprocessedRetries {
		t.Fatalf("err %v after %d calls", err, f.calls.Load())
	}
}

func TestRetryGivesUpOnBodiesTooLargeToReplay(t *testing.T) {
	t.Parallel()
	f := &flaky{statuses: []int{500, 200}}
	big := bytes.Repeat([]byte("x"), MaxReplayBody+1)
	req := newReq("POST", "http://web:80/upload", bytes.NewReader(big))
	req.Rule = retryRule(t, 3)
	resp, _ := Retry(budget.New(0.2, 10, 10*time.Second))(f).Handle(req)
	if resp.StatusCode != 500 || f.calls.Load() != 1 {
		t.Fatalf("status %d after %d calls: a body over %d bytes was replayed", resp.StatusCode, f.calls.Load(), MaxReplayBody)
	}
}

func TestPerTryTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{Retry: &policyv1.Retry{Limit: 2, PerTryTimeout: durationpb.New(10 * time.Millisecond)}})
	calls := 0
	h := Retry(budget.New(0.2, 10, 10*time.Second))(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			<-req.HTTP.Context().Done() // the first attempt hangs until its own timeout
			return nil, req.HTTP.Context().Err()
		}
		return respond(200), nil
	}))
	req := newReq("GET", "http://web:80/", nil)
	req.Rule = rule
	resp, err := h.Handle(req)
	if err != nil || resp.StatusCode != 200 || calls != 2 {
		t.Fatalf("got %v %v after %d calls", resp, err, calls)
	}
}

func TestFiltersModifyHeadersAndRefuseWhatTheyCannotApply(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{Filters: []*policyv1.Filter{
		{Kind: &policyv1.Filter_RequestHeaderModifier{RequestHeaderModifier: &policyv1.Filter_HeaderModifier{
			Set: map[string]string{"X-Env": "canary"}, Remove: []string{"X-Debug"}}}},
		{Kind: &policyv1.Filter_ResponseHeaderModifier{ResponseHeaderModifier: &policyv1.Filter_HeaderModifier{
			Add: map[string]string{"X-Served-By": "sinew"}}}},
	}})
	var sent http.Header
	h := Filters(nil)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		sent = req.HTTP.Header.Clone()
		return respond(200), nil
	}))
	req := newReq("GET", "http://web:80/", nil)
	req.HTTP.Header.Set("X-Debug", "1")
	req.Rule = rule
	resp, err := h.Handle(req)
	if err != nil || sent.Get("X-Env") != "canary" || sent.Get("X-Debug") != "" || resp.Header.Get("X-Served-By") != "sinew" {
		t.Fatalf("sent %v, response %v, err %v", sent, resp.Header, err)
	}

	req = newReq("GET", "http://web:80/", nil)
	// A filter of a kind this proxy does not know (a newer control plane's) fails the request.
	req.Rule = ruleWith(t, &policyv1.RouteRule{Filters: []*policyv1.Filter{{}}})
	if _, err := h.Handle(req); !errors.Is(err, pipeline.ErrUnsupportedFilter) {
		t.Fatalf("unknown filter: %v", err)
	}
}

type denyPath string

func (d denyPath) Authorize(req *pipeline.Request) error {
	if req.HTTP.URL.Path == string(d) {
		return fmt.Errorf("%s: %w", d, pipeline.ErrDenied)
	}
	return nil
}

type injectOn string

func (i injectOn) Inject(req *pipeline.Request) (*http.Response, error) {
	if req.HTTP.URL.Path == string(i) {
		return respond(503), nil
	}
	return nil, nil
}

// The inbound seams: a decider plugged in changes what the application sees; the defaults change nothing.
func TestInboundSeams(t *testing.T) {
	t.Parallel()
	reached := 0
	app := pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { reached++; return respond(200), nil })
	h := pipeline.Chain(app, Authorize(denyPath("/admin"), nil), InboundRoute(NoRoutes{}), Timeout(), Faults(injectOn("/flaky")))
	if _, err := h.Handle(newReq("GET", "http://web:80/admin", nil)); pipeline.Classify(context.Background(), err).Status != 403 {
		t.Fatalf("denied request: %v", err)
	}
	if resp, err := h.Handle(newReq("GET", "http://web:80/flaky", nil)); err != nil || resp.StatusCode != 503 {
		t.Fatalf("injected fault: %v %v", resp, err)
	}
	if resp, err := h.Handle(newReq("GET", "http://web:80/ok", nil)); err != nil || resp.StatusCode != 200 || reached != 1 {
		t.Fatalf("allowed request: %v %v, app reached %d times", resp, err, reached)
	}
	h = pipeline.Chain(app, Authorize(AllowAll{}, nil), Faults(NoFaults{}))
	if resp, err := h.Handle(newReq("GET", "http://web:80/admin", nil)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("defaults: %v %v", resp, err)
	}
}

// A response stream that goes quiet for the route's idle timeout is cut; one that keeps sending is not, however
// long it lasts.
func TestIdleTimeoutCutsAQuietStream(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{IdleTimeout: durationpb.New(200 * time.Millisecond)})
	stream := func(gaps ...time.Duration) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			ctx, i := req.HTTP.Context(), 0
			body := readerFunc(func(p []byte) (int, error) {
				if i == len(gaps) {
					return 0, io.EOF
				}
				select {
				case <-time.After(gaps[i]): // the backend's pace, on purpose
				case <-ctx.Done():
					return 0, ctx.Err()
				}
				i++
				return copy(p, "x"), nil
			})
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(body)}, nil
		})
	}
	read := func(h pipeline.Handler) (string, error) {
		req := newReq("GET", "http://web:80/events", nil)
		req.Rule = rule
		resp, err := Timeout()(h).Handle(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// Ten bytes 10 ms apart: 100 ms in all, never 200 ms quiet.
	gaps := make([]time.Duration, 10)
	for i := range gaps {
		gaps[i] = 10 * time.Millisecond
	}
	if got, err := read(stream(gaps...)); err != nil || got != "xxxxxxxxxx" {
		t.Fatalf("a busy stream was cut: %q %v", got, err)
	}
	if got, err := read(stream(5*time.Millisecond, time.Minute)); !errors.Is(err, context.Canceled) || got != "x" {
		t.Fatalf("a quiet stream: %q %v, want it cut after the first byte", got, err)
	}
}

func failureInjector(status uint32, ratio float64, msg string) *policyv1.Filter {
	return &policyv1.Filter{Kind: &policyv1.Filter_FailureInjector_{FailureInjector: &policyv1.Filter_FailureInjector{
		Status: status, Ratio: ratio, Message: msg}}}
}

// A backend that fails by injection (the control plane's answer for a backendRef that does not resolve) answers
// its share of the requests with its status and is never sent any; a backend's header filters change only the
// attempts sent to it.
func TestSplitAppliesBackendFilters(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{Backends: []*policyv1.WeightedBackend{
		{Authority: "v1:80", Weight: 8, Filters: []*policyv1.Filter{{Kind: &policyv1.Filter_RequestHeaderModifier{
			RequestHeaderModifier: &policyv1.Filter_HeaderModifier{Add: map[string]string{"X-Backend": "v1"}}}},
			{Kind: &policyv1.Filter_ResponseHeaderModifier{
				ResponseHeaderModifier: &policyv1.Filter_HeaderModifier{Set: map[string]string{"X-Served-By": "v1"}}}}}},
		{Authority: "v2:80", Weight: 1},
		{Authority: "gone:80", Weight: 1, Filters: []*policyv1.Filter{failureInjector(500, 1, "Service gone does not exist")}},
	}})
	counts := map[string]int{}
	h := Split(nil)(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		counts[req.Backend]++
		if got, want := req.HTTP.Header.Values("X-Backend"), req.Backend == "v1:80"; (len(got) == 1 && got[0] == "v1") != want {
			t.Errorf("backend %s got X-Backend %q", req.Backend, got)
		}
		return respond(200), nil
	}))
	failed := 0
	for range 4000 {
		req := newReq("GET", "http://web:80/", nil)
		req.Rule = rule
		resp, err := h.Handle(req)
		if err != nil {
			if f := pipeline.Classify(context.Background(), err); f.Status != 500 || !strings.Contains(err.Error(), "Service gone does not exist") {
				t.Fatalf("injected failure: %v (%+v)", err, f)
			}
			failed++
			continue
		}
		if by := resp.Header.Get("X-Served-By"); (by == "v1") != (req.Backend == "v1:80") {
			t.Errorf("backend %s: X-Served-By %q", req.Backend, by)
		}
		if req.HTTP.Header.Get("X-Backend") != "" {
			t.Fatal("the backend's request filter leaked into the request the layers above see")
		}
	}
	if counts["gone:80"] != 0 || failed < 300 || failed > 500 || counts["v1:80"] < 3000 || counts["v1:80"] > 3400 {
		t.Fatalf("split %v with %d failed, want about 3200/400 and 400 failed", counts, failed)
	}
}

// A rule's failure injector fails its ratio of the requests with its status; one with a delay (not applied yet)
// fails them all as unsupported; neither is retried.
func TestFiltersInjectFailures(t *testing.T) {
	t.Parallel()
	sent := 0
	h := Filters(nil)(Retry(budget.New(1, 100, time.Second))(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		sent++
		return respond(200), nil
	})))
	run := func(f *policyv1.Filter, n int) (failed int, last error) {
		rule := ruleWith(t, &policyv1.RouteRule{Filters: []*policyv1.Filter{f}, Retry: &policyv1.Retry{Limit: 3, StatusCodes: []uint32{500}}})
		for range n {
			req := newReq("GET", "http://web:80/", nil)
			req.Rule = rule
			if _, err := h.Handle(req); err != nil {
				failed, last = failed+1, err
			}
		}
		return failed, last
	}
	if failed, err := run(failureInjector(503, 1, "down for maintenance"), 10); failed != 10 || sent != 0 ||
		pipeline.Classify(context.Background(), err).Status != 503 {
		t.Fatalf("ratio 1: %d failed, %d sent, last %v", failed, sent, err)
	}
	if failed, _ := run(failureInjector(500, 0, ""), 10); failed != 0 || sent != 10 {
		t.Fatalf("ratio 0: %d failed, %d sent", failed, sent)
	}
	sent = 0
	if failed, _ := run(failureInjector(500, 0.25, ""), 2000); failed < 400 || failed > 600 || sent != 2000-failed {
		t.Fatalf("ratio 0.25: %d of 2000 failed, %d sent", failed, sent)
	}
	delay := failureInjector(500, 1, "")
	delay.GetFailureInjector().Delay = durationpb.New(time.Second)
	if _, err := run(delay, 1); !errors.Is(err, pipeline.ErrUnsupportedFilter) {
		t.Fatalf("delay: %v", err)
	}
}

// An attempt a backend's injector failed is not retried, whatever the retry policy: its share must fail.
func TestInjectedBackendFailureIsNotRetried(t *testing.T) {
	t.Parallel()
	rule := ruleWith(t, &policyv1.RouteRule{
		Backends: []*policyv1.WeightedBackend{{Authority: "gone:80", Weight: 1, Filters: []*policyv1.Filter{failureInjector(500, 1, "gone")}}},
		Retry:    &policyv1.Retry{Limit: 3, StatusCodes: []uint32{500}},
	})
	h := Retry(budget.New(1, 100, time.Second))(Split(nil)(pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) {
		t.Error("the failing backend was sent a request")
		return respond(200), nil
	})))
	req := newReq("GET", "http://web:80/", nil)
	req.Rule = rule
	if _, err := h.Handle(req); pipeline.Classify(context.Background(), err).Status != 500 || req.Attempt != 1 {
		t.Fatalf("%v after %d attempts", err, req.Attempt)
	}
}
