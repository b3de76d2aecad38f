package policy

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe/watchtest"
)

const deadline = watchtest.Deadline

// fakePolicies is the control plane's outbound policy service, driven by the test: every
// WatchOutbound is handed to the test as a stream it feeds and ends.
type fakePolicies struct {
	policyv1.UnimplementedOutboundPoliciesServer
	*watchtest.Calls[*policyv1.OutboundRequest, policyv1.OutboundPolicy]
}

func (f *fakePolicies) WatchOutbound(req *policyv1.OutboundRequest, s grpc.ServerStreamingServer[policyv1.OutboundPolicy]) error {
	return f.Serve(req, s)
}

// stream is one WatchOutbound call as the server sees it.
type stream = watchtest.Stream[*policyv1.OutboundRequest, policyv1.OutboundPolicy]

type harness struct {
	cp    *watchtest.ControlPlane
	fake  *fakePolicies
	c     *Client
	waits watchtest.Waits
	logs  *testutil.SyncBuffer
}

// newClient runs a client against a fresh control plane for the length of the test; configure may change it
// before it runs. When the test ends, every watch must have ended with the client's Run.
func newClient(t *testing.T, configure func(*Client)) *harness {
	t.Helper()
	fake := &fakePolicies{Calls: watchtest.NewCalls[*policyv1.OutboundRequest, policyv1.OutboundPolicy]()}
	cp := watchtest.StartControlPlane(t, func(srv *grpc.Server) { policyv1.RegisterOutboundPoliciesServer(srv, fake) })
	conn := cp.Conn(t)
	logs := &testutil.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", logs)
		}
	})
	c, err := NewClient(policyv1.NewOutboundPoliciesClient(conn), "emojivoto/web", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{cp: cp, c: c, fake: fake, waits: make(watchtest.Waits), logs: logs}
	c.sleep = h.waits.Sleep
	if configure != nil {
		configure(c)
	}
	t.Cleanup(func() {
		testutil.Eventually(t, deadline, "every watch to end after Run returned", func() bool { return fake.Open.Load() == 0 })
	})
	testutil.RunInBackground(t, c.Run)
	return h
}

// send hands p to the proxy and waits until the watch's policy is a new one.
func send(t *testing.T, s *stream, w *Watch, p *policyv1.OutboundPolicy) *Outbound {
	t.Helper()
	before := w.Policy()
	select {
	case s.Send <- p:
	case <-time.After(deadline):
		t.Fatal("the stream is not being read")
	}
	testutil.Eventually(t, deadline, "the policy to be applied", func() bool { return w.Policy() != before })
	return w.Policy()
}

// split routes /api to api-v2 and everything else to the target.
func split(w *Watch) *policyv1.OutboundPolicy {
	return outbound(route("split", rule("api-v2:80", &policyv1.HttpMatch{Path: pathPrefix("/api")}), rule(w.Target)))
}

func TestFirstAnswerReplacesDefault(t *testing.T) {
	t.Parallel()
	h := newClient(t, nil)
	w := h.c.Get(target)
	if p := w.Policy(); !isDefaultRoutes(p) {
		t.Fatalf("before the control plane answered: %+v, want the default", p)
	}
	s := h.fake.Next(t)
	if s.Req.GetTarget() != target || s.Req.GetSourceWorkload() != "emojivoto/web" {
		t.Errorf("subscribed with %v, want the target and the workload", s.Req)
	}
	if again := h.c.Get(target); again != w {
		t.Error("a second Get started another watch")
	}
	s.Send <- split(w)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	p, err := w.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := backends(p.Match(get(t, "/api/votes"))); !slices.Equal(got, []string{"api-v2:80"}) {
		t.Errorf("/api/votes went to %v, want api-v2:80", got)
	}
	if got := backends(p.Match(get(t, "/"))); !slices.Equal(got, []string{target}) {
		t.Errorf("/ went to %v, want the target", got)
	}
	// Every message is the whole policy: the next replaces the first.
	p = send(t, s, w, outbound(route("only", rule("v3:80"))))
	if got := backends(p.Match(get(t, "/api/votes"))); !slices.Equal(got, []string{"v3:80"}) {
		t.Errorf("after the second policy /api/votes went to %v, want v3:80", got)
	}
	if got := watchtest.Value(t, h.c.updates); got != 2 {
		t.Errorf("control_policy_updates_total %v, want 2", got)
	}
}

// TestWaitEndsWithItsContext: a watch the control plane has not answered yet gives its default once the caller
// stops waiting.
func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	h := newClient(t, nil)
	w := h.c.Get(target)
	h.fake.Next(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := w.Wait(ctx)
	if err != context.Canceled || !isDefaultRoutes(p) {
		t.Errorf("Wait: %+v, %v; want the default and the context's error", p, err)
	}
}

// TestRejectedPartsAreCountedAndLogged: a policy with a rule the proxy cannot compile is used without it.
func TestRejectedPartsAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	h := newClient(t, nil)
	w := h.c.Get(target)
	s := h.fake.Next(t)
	p := send(t, s, w, outbound(route("r",
		rule("bad:80", &policyv1.HttpMatch{Path: pathRegex("(")}),
		rule("good:80"),
	)))
	if got := backends(p.Match(get(t, "/"))); !slices.Equal(got, []string{"good:80"}) {
		t.Errorf("/ went to %v, want good:80", got)
	}
	if got := watchtest.Value(t, h.c.rejected); got != 1 {
		t.Errorf("control_policy_rejected_total %v, want 1", got)
	}
	// The warning is written before the policy is stored.
	if logs := h.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "routes[0].rules[0].matches[0]") {
		t.Errorf("no warning naming the rule in the log:\n%s", logs)
	}
}

// TestResubscribesWhenTheStreamEnds: whether the control plane ends a stream cleanly or it fails, the client
// subscribes again and the new stream's policy replaces the old one's.
func TestResubscribesWhenTheStreamEnds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		end  error
	}{
		{"clean end", nil},
		{"error", status.Error(codes.Internal, "boom")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newClient(t, nil)
			w := h.c.Get(target)
			s := h.fake.Next(t)
			before := send(t, s, w, split(w))
			s.End <- c.end

			h.waits.Next(t)
			s = h.fake.Next(t)
			if s.Req.GetTarget() != target {
				t.Errorf("resubscribed to %q, want %q", s.Req.GetTarget(), target)
			}
			if w.Policy() != before {
				t.Error("the policy changed before the new stream said anything")
			}
			if got := watchtest.Value(t, h.c.failures); got != 1 {
				t.Errorf("control_policy_stream_failures_total %v, want 1", got)
			}
			p := send(t, s, w, outbound(route("new", rule("new:80"))))
			if got := backends(p.Match(get(t, "/api"))); !slices.Equal(got, []string{"new:80"}) {
				t.Errorf("after resubscribing /api went to %v, want new:80", got)
			}
			if w.Evicted() {
				t.Error("a resubscribed watch reports itself evicted")
			}
		})
	}
}

// TestBackoffGrowsBoundedAndResets: attempts that fail wait longer each time, up to a bound; a stream that
// delivered a policy starts the backoff over.
func TestBackoffGrowsBoundedAndResets(t *testing.T) {
	t.Parallel()
	h := newClient(t, nil)
	w := h.c.Get(target)
	unavailable := status.Error(codes.Unavailable, "policy service down")
	within := func(t *testing.T, attempt int, d, base time.Duration) {
		t.Helper()
		if d < base/2 || d >= base {
			t.Errorf("wait after failed attempt %d: %v, want within [%v, %v)", attempt, d, base/2, base)
		}
	}
	base := resubscribe.Initial
	for i := range 8 { // 100ms, 200ms ... 3.2s, then 5s
		h.fake.Next(t).End <- unavailable
		within(t, i+1, h.waits.Next(t), base)
		base = min(2*base, resubscribe.Max)
	}
	if base != resubscribe.Max {
		t.Fatalf("test's own schedule ends at %v", base)
	}
	s := h.fake.Next(t)
	send(t, s, w, split(w))
	s.End <- unavailable
	within(t, 9, h.waits.Next(t), resubscribe.Initial)
}

// TestKeepsLastPolicyWhileTheControlPlaneIsDown: an outage keeps the last policy (requests go on being routed by
// it) while the client retries; once the control plane is back, its answer replaces it.
func TestKeepsLastPolicyWhileTheControlPlaneIsDown(t *testing.T) {
	t.Parallel()
	h := newClient(t, nil)
	w := h.c.Get(target)
	s := h.fake.Next(t)
	before := send(t, s, w, split(w))

	h.cp.Stop()
	for range 5 { // the stream's failure, then attempts that cannot reach the control plane
		h.waits.Next(t)
		if p := w.Policy(); p != before {
			t.Fatalf("during the outage the policy changed from %+v to %+v", before, p)
		}
	}
	if got := watchtest.Value(t, h.c.failures); got < 5 {
		t.Errorf("control_policy_stream_failures_total %v, want at least 5", got)
	}

	// Back: the client retries (without waiting, from here) until it reaches the new server.
	h.cp.Start()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-h.waits:
			case <-done:
				return
			}
		}
	}()
	s = h.fake.Next(t)
	p := send(t, s, w, outbound(route("after", rule("after:80"))))
	if got := backends(p.Match(get(t, "/api"))); !slices.Equal(got, []string{"after:80"}) {
		t.Errorf("after the outage /api went to %v, want after:80", got)
	}
}

// TestEvictsUnusedWatches: a watch nobody read for the idle timeout is dropped and its stream cancelled; one in
// use stays; asking again starts a new watch.
func TestEvictsUnusedWatches(t *testing.T) {
	t.Parallel()
	h := newClient(t, func(c *Client) {
		c.idle = time.Hour
		c.evictEvery = 10 * time.Millisecond
	})
	streams := map[string]*stream{}
	subscribe := func(target string) *Watch {
		w := h.c.Get(target)
		s := h.fake.Next(t)
		streams[s.Req.GetTarget()] = s
		return w
	}
	unused, used := subscribe("unused-svc.ns.svc.cluster.local:80"), subscribe("10.0.0.7:8080")
	if got := watchtest.Value(t, h.c.active); got != 2 {
		t.Fatalf("control_policy_watches %v, want 2", got)
	}
	unused.lastUsed.Store(time.Now().Add(-2 * time.Hour).UnixNano())

	testutil.Eventually(t, deadline, "the unused watch to be evicted", unused.Evicted)
	select {
	case <-streams[unused.Target].Done:
	case <-time.After(deadline):
		t.Fatal("the evicted watch's stream goes on")
	}
	if used.Evicted() {
		t.Error("the watch in use was evicted")
	}
	select {
	case <-streams[used.Target].Done:
		t.Error("the stream of the watch in use was cancelled")
	default:
	}
	if got := h.c.Watches(); len(got) != 1 || got[0] != used {
		t.Errorf("watches %v, want only the one in use", got)
	}
	if got := watchtest.Value(t, h.c.active); got != 1 {
		t.Errorf("control_policy_watches %v, want 1", got)
	}

	again := h.c.Get(unused.Target)
	if again == unused || again.Evicted() {
		t.Fatal("asking for an evicted target again did not start over")
	}
	if s := h.fake.Next(t); s.Req.GetTarget() != unused.Target {
		t.Errorf("subscribed to %q, want %q", s.Req.GetTarget(), unused.Target)
	}
}

// TestWatchesStartWithRun: targets asked for before Run are watched once it runs.
func TestWatchesStartWithRun(t *testing.T) {
	t.Parallel()
	var early *Watch
	h := newClient(t, func(c *Client) { early = c.Get("early-svc.ns.svc.cluster.local:80") })
	if s := h.fake.Next(t); s.Req.GetTarget() != early.Target {
		t.Errorf("subscribed to %q, want %q", s.Req.GetTarget(), early.Target)
	}
}

// TestNilClient: without a policy service every target has its default policy, at once, for good.
func TestNilClient(t *testing.T) {
	t.Parallel()
	var c *Client
	w := c.Get(target)
	if w.Target != target || !isDefaultRoutes(w.Policy()) || w.Evicted() {
		t.Fatalf("watch %+v, policy %+v", w, w.Policy())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the answer is there already
	if p, err := w.Wait(ctx); err != nil || p != w.Policy() {
		t.Errorf("Wait: %v, %v", p, err)
	}
	if c.Watches() != nil {
		t.Error("a nil client lists watches")
	}
	if err := c.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestNewClientRegistersItsMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := NewClient(nil, "ns/w", slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	want := []string{"control_policy_rejected_total", "control_policy_stream_failures_total", "control_policy_updates_total", "control_policy_watches"}
	if !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	if _, err := NewClient(nil, "ns/w", slog.New(slog.DiscardHandler), reg); err == nil {
		t.Error("a second client on the same registry registered the same metrics")
	}
}
