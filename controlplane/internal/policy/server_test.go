package policy

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

// serve runs s on an in-memory gRPC server for the length of the test.
func serve(t *testing.T, s *Server) (policyv1.InboundPoliciesClient, policyv1.OutboundPoliciesClient) {
	t.Helper()
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer()
	policyv1.RegisterInboundPoliciesServer(srv, s)
	policyv1.RegisterOutboundPoliciesServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///policy",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return policyv1.NewInboundPoliciesClient(conn), policyv1.NewOutboundPoliciesClient(conn)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWatchRejectsInvalidRequests(t *testing.T) {
	t.Parallel()
	in, out := serve(t, New(Config{Store: model.NewStore(), ClusterDomain: "cluster.local", Inbound: testInbound}))
	ctx := testContext(t)
	for _, req := range []*policyv1.InboundRequest{
		{Port: 80}, {Workload: "ns/web"}, {Workload: "ns/web", Port: 65536},
	} {
		stream, err := in.WatchInbound(ctx, req)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("WatchInbound(%v): %v, want InvalidArgument", req, err)
		}
	}
	stream, err := out.WatchOutbound(ctx, &policyv1.OutboundRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("WatchOutbound without a target: %v, want InvalidArgument", err)
	}
}

// refetchKeys is a Keys that records what it is asked to fetch again.
type refetchKeys struct {
	noKeys
	asked []string
}

func (k *refetchKeys) Refetch(handle, kid string) bool {
	k.asked = append(k.asked, handle+" "+kid)
	return kid == "new"
}

// TestRefreshKeys: a proxy's request to fetch keys again reaches the fetcher with the source and key id, and its
// answer comes back; a request without them is invalid.
func TestRefreshKeys(t *testing.T) {
	t.Parallel()
	keys := &refetchKeys{}
	in, _ := serve(t, New(Config{Store: model.NewStore(), ClusterDomain: "cluster.local", Inbound: testInbound, Keys: keys}))
	ctx := testContext(t)
	for _, req := range []*policyv1.RefreshKeysRequest{{KeySource: "src"}, {KeyId: "new"}} {
		if _, err := in.RefreshKeys(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("RefreshKeys(%v): %v, want InvalidArgument", req, err)
		}
	}
	for kid, want := range map[string]bool{"new": true, "old": false} {
		resp, err := in.RefreshKeys(ctx, &policyv1.RefreshKeysRequest{KeySource: "src", KeyId: kid})
		if err != nil || resp.GetFetching() != want {
			t.Errorf("RefreshKeys(src, %s) = %v, %v; want fetching=%v", kid, resp, err, want)
		}
	}
	if len(keys.asked) != 2 {
		t.Errorf("the fetcher was asked %q, want src twice", keys.asked)
	}
}

// TestServedAnswersAndStop: the first message of each stream is the translation of the current model, and Stop
// ends open streams with UNAVAILABLE so that proxies resubscribe elsewhere.
func TestServedAnswersAndStop(t *testing.T) {
	t.Parallel()
	store := model.NewStore()
	store.Update(model.Resources{})
	s := New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound})
	in, out := serve(t, s)
	ctx := testContext(t)

	inStream, err := in.WatchInbound(ctx, &policyv1.InboundRequest{Workload: "emojivoto/web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	gotIn, err := inStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if want := Inbound(store.Snapshot(), testInbound, "emojivoto/web", 8080); !proto.Equal(gotIn, want) {
		t.Errorf("inbound:\n got %v\nwant %v", gotIn, want)
	}
	outStream, err := out.WatchOutbound(ctx, &policyv1.OutboundRequest{Target: "web-svc.emojivoto.svc.cluster.local:80"})
	if err != nil {
		t.Fatal(err)
	}
	gotOut, err := outStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if want := Outbound(store.Snapshot(), "web-svc.emojivoto.svc.cluster.local:80", "cluster.local", ""); !proto.Equal(gotOut, want) {
		t.Errorf("outbound:\n got %v\nwant %v", gotOut, want)
	}

	s.Stop()
	s.Stop() // twice is fine
	if _, err := inStream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("inbound stream after Stop: %v, want Unavailable", err)
	}
	if _, err := outStream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("outbound stream after Stop: %v, want Unavailable", err)
	}
}

// TestOutboundFollowsServiceDefaults: annotating a Service (a model change) resends the outbound policy of
// streams that target it, with its defaults.
func TestOutboundFollowsServiceDefaults(t *testing.T) {
	t.Parallel()
	svc := func(d model.OutboundDefaults) model.Resources {
		return model.Resources{Services: []*model.Service{{Namespace: "emojivoto", Name: "web-svc", Outbound: d,
			Ports: []model.ServicePort{{Port: 80, TargetPort: model.TargetPort{Number: 8080}}}}}}
	}
	store := model.NewStore()
	store.Update(svc(model.OutboundDefaults{}))
	_, out := serve(t, New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound}))
	stream, err := out.WatchOutbound(testContext(t), &policyv1.OutboundRequest{Target: "web-svc.emojivoto.svc.cluster.local:80"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetRoutes()[0].GetRules()[0].GetRetry() != nil {
		t.Fatalf("retry before any annotation: %v", first)
	}
	store.Update(svc(model.OutboundDefaults{Retry: &model.Retry{Limit: 2, HTTPStatuses: []model.StatusRange{{First: 503, Last: 503}}}}))
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r := next.GetRoutes()[0].GetRules()[0].GetRetry(); r.GetLimit() != 2 || len(r.GetStatusRanges()) != 1 || r.GetStatusRanges()[0].GetFirst() != 503 {
		t.Errorf("after annotating: retry %v", r)
	}
}

// TestInboundFollowsServers: a Server that selects the port (a model change) resends the inbound policy, and the
// problems the Server's policies have are logged by Run and shown with the model.
func TestInboundFollowsServers(t *testing.T) {
	t.Parallel()
	wl := []*model.Workload{{Kind: model.KindWorkload, Namespace: "emojivoto", Name: "web", Labels: map[string]string{"app": "web"},
		Ports: []model.WorkloadPort{{Name: "http", Port: 8080}}}}
	store := model.NewStore()
	store.Update(model.Resources{Workloads: wl})
	s := New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound})
	in, _ := serve(t, s)
	stream, err := in.WatchInbound(testContext(t), &policyv1.InboundRequest{Workload: "emojivoto/web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetLabels()["kind"] != "default" || len(first.GetAuthorizations()) != 1 {
		t.Fatalf("before the Server: %v %v", first, err)
	}
	var pol authzapi.Policies
	pol.Add(&authzapi.Server{Metadata: authzapi.Meta{Namespace: "emojivoto", Name: "web-http"},
		Spec: authzapi.ServerSpec{WorkloadSelector: &authzapi.LabelSelector{}, Port: authzapi.Port{Name: "http"}}})
	pol.Add(&authzapi.AuthorizationPolicy{Metadata: authzapi.Meta{Namespace: "emojivoto", Name: "jwt"},
		Spec: authzapi.AuthorizationPolicySpec{TargetRef: authzapi.TargetRef{Group: authzapi.Group, Kind: "Server", Name: "web-http"},
			RequiredAuthenticationRefs: []authzapi.Ref{{Group: authzapi.Group, Kind: "JWTAuthentication", Name: "tokens"}}}})
	store.Update(model.Resources{Workloads: wl, Policies: pol})
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if next.GetLabels()["kind"] != "server" || next.GetLabels()["name"] != "web-http" || len(next.GetAuthorizations()) != 0 {
		t.Errorf("after the Server: %v", next)
	}
	view, ok := s.DebugModel().(model.DebugView)
	if !ok || len(view.PolicyProblems) != 1 || !strings.Contains(view.PolicyProblems[0], "JWTAuthentication emojivoto/tokens does not exist") {
		t.Errorf("debug view problems %q", view.PolicyProblems)
	}
}

// recv waits for the next value, failing the test when none comes in time.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestWatchResendsOnlyChanges drives watch with a translation that only says whether workload ns/a exists: model
// changes that leave the answer alone send nothing, changes that alter it send the new answer.
func TestWatchResendsOnlyChanges(t *testing.T) {
	t.Parallel()
	store := model.NewStore()
	s := New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound})
	sent := make(chan bool, 10)
	translated := make(chan struct{}, 10)
	translate := func(snap *model.Snapshot) *wrapperspb.BoolValue {
		_, ok := snap.Workload("ns", "a")
		translated <- struct{}{}
		return wrapperspb.Bool(ok)
	}
	send := func(v *wrapperspb.BoolValue) error { sent <- v.GetValue(); return nil }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- watch(ctx, s, send, translate) }()

	a := &model.Workload{Namespace: "ns", Name: "a"}
	b := &model.Workload{Namespace: "ns", Name: "b"}
	recv(t, translated, "the first translation")
	if recv(t, sent, "the first answer") {
		t.Fatal("first answer true for an empty model")
	}
	// Each update waits for its translation, so that updates do not coalesce and each one is judged on its own;
	// an answer sent for an unchanged result would arrive ahead of the next one.
	for _, step := range []struct {
		workloads []*model.Workload
		send      bool
	}{
		{[]*model.Workload{b}, false},
		{[]*model.Workload{a, b}, true},
		{[]*model.Workload{a}, false},
		{nil, true},
	} {
		store.Update(model.Resources{Workloads: step.workloads})
		recv(t, translated, "a translation after the update")
		if step.send {
			if got, want := recv(t, sent, "the changed answer"), len(step.workloads) > 0; got != want {
				t.Errorf("sent %v after an update to %d workloads, want %v", got, len(step.workloads), want)
			}
		}
	}
	cancel()
	if err := recv(t, done, "watch to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("watch returned %v, want context.Canceled", err)
	}
	if len(sent) != 0 {
		t.Errorf("%d answers sent for model changes that did not change them", len(sent))
	}
}

func TestWatchReturnsSendErrors(t *testing.T) {
	t.Parallel()
	gone := errors.New("stream gone")
	err := watch(t.Context(), New(Config{Store: model.NewStore(), ClusterDomain: "cluster.local", Inbound: testInbound}),
		func(*wrapperspb.BoolValue) error { return gone },
		func(*model.Snapshot) *wrapperspb.BoolValue { return wrapperspb.Bool(true) })
	if !errors.Is(err, gone) {
		t.Errorf("watch returned %v, want the send error", err)
	}
}
