package discovery

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe/watchtest"
)

const deadline = watchtest.Deadline

// fakeDestination is the control plane's destination service, driven by the test: every Get is
// handed to the test as a stream it feeds and ends.
type fakeDestination struct {
	destinationv1.UnimplementedDestinationServer
	*watchtest.Calls[*destinationv1.GetRequest, destinationv1.Update]
}

func (f *fakeDestination) Get(req *destinationv1.GetRequest, s grpc.ServerStreamingServer[destinationv1.Update]) error {
	return f.Serve(req, s)
}

// stream is one Get call as the server sees it.
type stream = watchtest.Stream[*destinationv1.GetRequest, destinationv1.Update]

type harness struct {
	cp    *watchtest.ControlPlane
	fake  *fakeDestination
	r     *Resolver
	waits watchtest.Waits
}

// newResolver runs a resolver against a fresh control plane for the length of the test; configure may change it
// before it runs. When the test ends, every watch must have ended with the resolver's Run.
func newResolver(t *testing.T, configure func(*Resolver)) *harness {
	t.Helper()
	fake := &fakeDestination{Calls: watchtest.NewCalls[*destinationv1.GetRequest, destinationv1.Update]()}
	cp := watchtest.StartControlPlane(t, func(srv *grpc.Server) { destinationv1.RegisterDestinationServer(srv, fake) })
	conn := cp.Conn(t)
	// The resolver's log, shown when the test fails.
	logs := &testutil.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("resolver log:\n%s", logs)
		}
	})
	r, err := NewResolver(destinationv1.NewDestinationClient(conn), "emojivoto/web", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{cp: cp, r: r, fake: fake, waits: make(watchtest.Waits)}
	r.sleep = h.waits.Sleep
	if configure != nil {
		configure(r)
	}
	t.Cleanup(func() {
		testutil.Eventually(t, deadline, "every watch to end after Run returned", func() bool { return fake.Open.Load() == 0 })
	})
	testutil.RunInBackground(t, r.Run)
	return h
}

func add(labels map[string]string, addrs ...string) *destinationv1.Update {
	set := &destinationv1.AddSet{MetricLabels: labels}
	for _, a := range addrs {
		set.Addrs = append(set.Addrs, &destinationv1.WeightedAddr{Addr: a, Weight: 10000,
			TlsIdentity: &destinationv1.TlsIdentity{SpiffeId: "spiffe://td/ns/emojivoto/sa/voting"}, TargetPort: 8080})
	}
	return &destinationv1.Update{Update: &destinationv1.Update_Add{Add: set}}
}

func remove(addrs ...string) *destinationv1.Update {
	return &destinationv1.Update{Update: &destinationv1.Update_Remove{Remove: &destinationv1.RemoveSet{Addrs: addrs}}}
}

func addrs(s *Snapshot) []string {
	var out []string
	for _, e := range s.Endpoints {
		out = append(out, e.Addr)
	}
	return out
}

// send hands u to the proxy and waits until the target's view moved past version.
func send(t *testing.T, s *stream, target *Target, u *destinationv1.Update) *Snapshot {
	t.Helper()
	version := target.Snapshot().Version
	select {
	case s.Send <- u:
	case <-time.After(deadline):
		t.Fatal("the stream is not being read")
	}
	testutil.Eventually(t, deadline, "the update to be applied", func() bool { return target.Snapshot().Version > version })
	return target.Snapshot()
}

func TestFirstAnswerAndDeltas(t *testing.T) {
	t.Parallel()
	h := newResolver(t, nil)
	target := h.r.Get("voting-svc.emojivoto.svc.cluster.local:8080")
	if snap := target.Snapshot(); snap.Known {
		t.Fatalf("known before the control plane answered: %+v", snap)
	}
	s := h.fake.Next(t)
	if s.Req.GetPath() != target.Name || s.Req.GetContextToken() != "emojivoto/web" {
		t.Errorf("subscribed with %v, want the target's name and the context token", s.Req)
	}
	s.Send <- add(map[string]string{"namespace": "emojivoto", "service": "voting-svc"}, "10.0.0.2:8080", "10.0.0.1:8080")
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	snap, err := target.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Known || !snap.Exists || !slices.Equal(addrs(snap), []string{"10.0.0.1:8080", "10.0.0.2:8080"}) ||
		snap.Labels["service"] != "voting-svc" {
		t.Fatalf("first answer: %+v, want both endpoints, sorted, with the set's labels", snap)
	}
	if e := snap.Endpoints[0]; !e.Meshed() || e.TargetPort != 8080 || e.Weight != 10000 {
		t.Errorf("endpoint %+v", e)
	}
	snap = send(t, s, target, remove("10.0.0.1:8080"))
	if !slices.Equal(addrs(snap), []string{"10.0.0.2:8080"}) || snap.Labels["service"] != "voting-svc" {
		t.Errorf("after a removal: %+v", snap)
	}
	snap = send(t, s, target, &destinationv1.Update{Update: &destinationv1.Update_NoEndpoints{NoEndpoints: &destinationv1.NoEndpoints{Exists: false}}})
	if !snap.Known || snap.Exists || len(snap.Endpoints) != 0 {
		t.Errorf("after no-endpoints (not a mesh name): %+v, want known, not existing, empty", snap)
	}
}

// TestResubscribesWhenTheStreamEnds: whether the control plane ends a stream cleanly (a restart, a resync after
// overflow) or it fails, the resolver subscribes again, and the new stream's first message replaces what the old
// one had said.
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
			h := newResolver(t, nil)
			target := h.r.Get("web-svc.emojivoto.svc.cluster.local:80")
			s := h.fake.Next(t)
			send(t, s, target, add(nil, "10.0.0.1:80", "10.0.0.2:80"))
			s.End <- c.end

			h.waits.Next(t)
			s = h.fake.Next(t)
			if s.Req.GetPath() != target.Name {
				t.Errorf("resubscribed to %q, want %q", s.Req.GetPath(), target.Name)
			}
			if got := watchtest.Value(t, h.r.failures); got != 1 {
				t.Errorf("control_destination_stream_failures_total %v, want 1", got)
			}
			snap := send(t, s, target, add(nil, "10.0.0.3:80"))
			if !slices.Equal(addrs(snap), []string{"10.0.0.3:80"}) {
				t.Errorf("after resubscribing: endpoints %v, want only the new stream's", addrs(snap))
			}
			if target.Evicted() {
				t.Error("a resubscribed target reports itself evicted")
			}
		})
	}
}

// TestBackoffGrowsBoundedAndResets: attempts that fail wait longer each time, up to a bound; a stream that
// delivered updates starts the backoff over.
func TestBackoffGrowsBoundedAndResets(t *testing.T) {
	t.Parallel()
	h := newResolver(t, nil)
	target := h.r.Get("web-svc.emojivoto.svc.cluster.local:80")
	unavailable := status.Error(codes.Unavailable, "destination service down")
	within := func(t *testing.T, attempt int, d, base time.Duration) {
		t.Helper()
		if d < base/2 || d >= base {
			t.Errorf("wait after failed attempt %d: %v, want within [%v, %v)", attempt, d, base/2, base)
		}
	}
	base := resubscribe.Initial
	var bases []time.Duration
	for i := range 10 {
		h.fake.Next(t).End <- unavailable
		within(t, i+1, h.waits.Next(t), base)
		bases = append(bases, base)
		base = min(2*base, resubscribe.Max)
	}
	// The bound is reached and held: 100ms, 200ms, ... 3.2s, then 5s.
	if bases[6] != resubscribe.Max || bases[9] != resubscribe.Max || bases[5] >= resubscribe.Max {
		t.Fatalf("test's own schedule %v", bases)
	}

	s := h.fake.Next(t)
	send(t, s, target, add(nil, "10.0.0.1:80"))
	s.End <- unavailable
	within(t, 11, h.waits.Next(t), resubscribe.Initial)
	h.fake.Next(t).End <- unavailable
	within(t, 12, h.waits.Next(t), 2*resubscribe.Initial)
}

// TestKeepsLastKnownEndpointsWhileTheControlPlaneIsDown: an outage keeps what the proxy knew (the data path goes
// on balancing over it) while the resolver retries; once the control plane is back, its answer replaces it.
func TestKeepsLastKnownEndpointsWhileTheControlPlaneIsDown(t *testing.T) {
	t.Parallel()
	h := newResolver(t, nil)
	target := h.r.Get("web-svc.emojivoto.svc.cluster.local:80")
	s := h.fake.Next(t)
	before := send(t, s, target, add(map[string]string{"service": "web-svc"}, "10.0.0.1:80", "10.0.0.2:80"))

	h.cp.Stop()
	for range 5 { // the stream's failure, then attempts that cannot reach the control plane
		h.waits.Next(t)
		snap := target.Snapshot()
		if snap != before {
			t.Fatalf("during the outage the view changed from %+v to %+v", before, snap)
		}
	}
	if got := watchtest.Value(t, h.r.failures); got < 5 {
		t.Errorf("control_destination_stream_failures_total %v, want at least 5", got)
	}

	// Back: the resolver retries (without waiting, from here) until it reaches the new server.
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
	snap := send(t, s, target, add(map[string]string{"service": "web-svc"}, "10.0.0.3:80"))
	if !slices.Equal(addrs(snap), []string{"10.0.0.3:80"}) || snap.Version <= before.Version {
		t.Errorf("after the outage: %+v, want the new answer only", snap)
	}
}

// TestEvictsUnusedTargets: a target nobody asked about for the idle timeout is dropped and its watch cancelled;
// one in use stays; asking again starts a new watch.
func TestEvictsUnusedTargets(t *testing.T) {
	t.Parallel()
	h := newResolver(t, func(r *Resolver) {
		r.idle = time.Hour
		r.evictEvery = 10 * time.Millisecond
	})
	// Each target's stream, by name.
	streams := map[string]*stream{}
	subscribe := func(name string) *Target {
		target := h.r.Get(name)
		s := h.fake.Next(t)
		streams[s.Req.GetPath()] = s
		return target
	}
	unused, used := subscribe("unused-svc.ns.svc.cluster.local:80"), subscribe("used-svc.ns.svc.cluster.local:80")
	if got := watchtest.Value(t, h.r.active); got != 2 {
		t.Fatalf("control_destination_watches %v, want 2", got)
	}
	unused.lastUsed.Store(time.Now().Add(-2 * time.Hour).UnixNano())

	testutil.Eventually(t, deadline, "the unused target to be evicted", unused.Evicted)
	select {
	case <-streams[unused.Name].Done:
	case <-time.After(deadline):
		t.Fatal("the evicted target's watch goes on")
	}
	if used.Evicted() {
		t.Error("the target in use was evicted")
	}
	select {
	case <-streams[used.Name].Done:
		t.Error("the watch of the target in use was cancelled")
	default:
	}
	if got := h.r.Targets(); len(got) != 1 || got[0] != used {
		t.Errorf("watched targets %v, want only the one in use", got)
	}
	if got := watchtest.Value(t, h.r.active); got != 1 {
		t.Errorf("control_destination_watches %v, want 1", got)
	}

	again := h.r.Get(unused.Name)
	if again == unused || again.Evicted() {
		t.Fatal("asking for an evicted target again did not start over")
	}
	if s := h.fake.Next(t); s.Req.GetPath() != unused.Name {
		t.Errorf("subscribed to %q, want %q", s.Req.GetPath(), unused.Name)
	}
}

// TestWatchesStartWithRun: targets asked for before Run are watched once it runs.
func TestWatchesStartWithRun(t *testing.T) {
	t.Parallel()
	var early *Target
	h := newResolver(t, func(r *Resolver) { early = r.Get("early-svc.ns.svc.cluster.local:80") })
	if s := h.fake.Next(t); s.Req.GetPath() != early.Name {
		t.Errorf("subscribed to %q, want %q", s.Req.GetPath(), early.Name)
	}
}

// TestNoTLSReason: a meshed endpoint whose port has mTLS disabled arrives without an identity and with the reason,
// which only counts for endpoints without an identity.
func TestNoTLSReason(t *testing.T) {
	disabled := convert(&destinationv1.WeightedAddr{Addr: "10.0.0.1:8080", NoTlsReason: "disabled"})
	if disabled.Meshed() || disabled.NoTLSReason != "disabled" {
		t.Errorf("mTLS-disabled endpoint: %+v", disabled)
	}
	meshed := convert(&destinationv1.WeightedAddr{Addr: "10.0.0.1:4143", NoTlsReason: "disabled",
		TlsIdentity: &destinationv1.TlsIdentity{SpiffeId: "spiffe://td/ns/a/sa/b"}})
	if !meshed.Meshed() || meshed.NoTLSReason != "" {
		t.Errorf("meshed endpoint: %+v", meshed)
	}
}
