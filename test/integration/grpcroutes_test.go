package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sinewmesh/sinew/proxy"
)

// echoVersion is a gRPC backend version: the interop TestService, whose answers say which version served them
// in the x-served-by header.
type echoVersion struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (e echoVersion) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-served-by", e.name)); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{ServerId: e.name}, nil
}

func (e echoVersion) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-served-by", e.name)); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// serveEcho serves an echoVersion on a new listener and returns its address.
func serveEcho(t *testing.T, name string) string {
	t.Helper()
	ln := listen(t)
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echoVersion{name: name})
	go gs.Serve(ln) //nolint:errcheck
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

// grpcClient is a real gRPC client of a proxy's outbound listener.
type grpcClient struct {
	conn   *grpc.ClientConn
	client testpb.TestServiceClient
}

func dialGRPC(t *testing.T, addr string) *grpcClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcClient{conn: conn, client: testpb.NewTestServiceClient(conn)}
}

// call calls grpc.testing.TestService's method (UnaryCall or EmptyCall), or UnimplementedService's
// UnimplementedCall, and returns who served it.
func (c *grpcClient) call(method string) (servedBy string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hdr metadata.MD
	switch method {
	case "EmptyCall":
		_, err = c.client.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&hdr))
	case "UnaryCall":
		_, err = c.client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	case "UnimplementedCall":
		_, err = testpb.NewUnimplementedServiceClient(c.conn).UnimplementedCall(ctx, &testpb.Empty{})
	default:
		return "", fmt.Errorf("no method %s", method)
	}
	if v := hdr.Get("x-served-by"); len(v) > 0 {
		servedBy = v[0]
	}
	return servedBy, err
}

// shares makes n calls of method from 8 goroutines and counts who served them, or the gRPC code of those that
// failed ("Unavailable").
func (c *grpcClient) shares(t *testing.T, n int, method string) map[string]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		next   = make(chan struct{}, n)
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			for range next {
				by, err := c.call(method)
				key := by
				if err != nil {
					key = status.Code(err).String()
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts
}

// waitCall calls method until ok accepts what it got: the sign that a new policy reached the client's proxy.
func (c *grpcClient) waitCall(t *testing.T, what, method string, ok func(servedBy string, err error) bool) {
	t.Helper()
	eventually(t, 15*time.Second, what, func() error {
		by, err := c.call(method)
		if !ok(by, err) {
			return fmt.Errorf("served by %q, error %v", by, err)
		}
		return nil
	})
}

const echoAuthority = "echo.shop.svc.cluster.local:80"

// startEchoFixture: Service echo (whose own endpoints are echo-v1's) with two versions behind their own
// Services, echo-v1 and echo-v2, and a gRPC client whose proxy has an outbound port for echo.
func startEchoFixture(t *testing.T) (*mesh, *grpcClient) {
	t.Helper()
	m := startMesh(t, meshOpts{})
	var files []string
	for _, v := range []string{"echo-v1", "echo-v2"} {
		s := m.sidecar(sidecarOpts{ns: "shop", name: v, sa: v, inbound: []proxy.InboundPort{{Port: 8080, App: serveEcho(t, v)}}})
		files = append(files, workloadYAML("shop", v, v, v, s.inboundPort(), 8080), serviceYAML("shop", v, v, 80, 8080))
		defer s.waitReady(t)
	}
	files = append(files, serviceYAML("shop", "echo", "echo-v1", 80, 8080))
	m.write("shop.yaml", strings.Join(files, "---\n"))
	client := m.sidecar(sidecarOpts{ns: "shop", name: "cli", sa: "cli", outbound: []string{echoAuthority}})
	m.write("cli.yaml", workloadYAML("shop", "cli", "cli", "cli", 0, 9))
	client.waitReady(t)
	return m, dialGRPC(t, client.p.OutboundAddrs()[0])
}

// echoRoute: EmptyCall goes to echo-v2; the service's other methods are split between the versions by weight
// (a third backend, echo-v3, does not exist: its share fails); a rule on UnaryCall alone, which ranks below the
// service's rule (a method without a service has fewer characters of service), would send everything to echo-v2.
func echoRoute(v1, v2, v3 int) string {
	backends := fmt.Sprintf("    - {name: echo-v1, port: 80, weight: %d}\n    - {name: echo-v2, port: 80, weight: %d}\n", v1, v2)
	if v3 > 0 {
		backends += fmt.Sprintf("    - {name: echo-v3, port: 80, weight: %d}\n", v3)
	}
	return `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-split, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: EmptyCall}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{method: {method: UnaryCall}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{method: {service: grpc.testing.TestService}}]
    backendRefs:
` + backends
}

// TestGRPCRouteSplitsAndMatches: a GRPCRoute with the Service echo as parent, in a local-mode file, routes echo's
// gRPC clients: one method goes to v2 only, the service's other calls are split 80/20 between the versions
// (within 3 % over 2,000 calls), a method of another service matches no rule and gets UNIMPLEMENTED from the
// proxy, and a backend that does not exist gets its share of calls failed with UNAVAILABLE while the others are
// served. Without the route, echo's own endpoints (v1) serve everything.
func TestGRPCRouteSplitsAndMatches(t *testing.T) {
	t.Parallel()
	m, c := startEchoFixture(t)
	c.waitCall(t, "echo served by its own endpoints", "UnaryCall", func(by string, err error) bool { return err == nil && by == "echo-v1" })
	if got := c.shares(t, 50, "EmptyCall"); got["echo-v1"] != 50 {
		t.Fatalf("without a route, echo-v1 should serve everything: %v", got)
	}

	m.write("route.yaml", echoRoute(80, 20, 0))
	c.waitCall(t, "the EmptyCall rule", "EmptyCall", func(by string, err error) bool { return err == nil && by == "echo-v2" })
	if got := c.shares(t, 100, "EmptyCall"); got["echo-v2"] != 100 {
		t.Fatalf("EmptyCall should go to echo-v2 only: %v", got)
	}
	const n = 2000
	got := c.shares(t, n, "UnaryCall")
	t.Logf("80/20 split of UnaryCall over %d calls: %v", n, got)
	if got["echo-v1"]+got["echo-v2"] != n {
		t.Fatalf("shares %v", got)
	}
	within(t, "echo-v2's share", got["echo-v2"], n, 0.20, 0.03)

	// No rule matches another service's method: the proxy answers it, as gRPC's UNIMPLEMENTED.
	if _, err := c.call("UnimplementedCall"); status.Code(err) != codes.Unimplemented || !strings.Contains(status.Convert(err).Message(), "no_route") {
		t.Errorf("a method of another service: %v; want UNIMPLEMENTED from the proxy (no_route)", err)
	}

	// A backend that does not exist keeps its weight; its share of calls fails with UNAVAILABLE.
	m.write("route.yaml", echoRoute(80, 0, 20))
	var missing error
	c.waitCall(t, "the missing backend's share failing", "UnaryCall", func(_ string, err error) bool {
		missing = err
		return status.Code(err) == codes.Unavailable
	})
	// The client's status says why, as the proxy's HTTP answer would: the route and its missing backend.
	if msg := status.Convert(missing).Message(); !strings.Contains(msg, "failure_injected") || !strings.Contains(msg, "GRPCRoute") {
		t.Errorf("the missing backend's gRPC message %q: want the injected failure and the route", msg)
	}
	got = c.shares(t, n/2, "UnaryCall")
	t.Logf("80/20 split with a missing backend over %d calls: %v", n/2, got)
	if got["echo-v1"]+got[codes.Unavailable.String()] != n/2 {
		t.Fatalf("shares %v; want echo-v1 and Unavailable only", got)
	}
	within(t, "the missing backend's share", got[codes.Unavailable.String()], n/2, 0.20, 0.04)
	_, err := c.call("EmptyCall")
	if err != nil {
		t.Errorf("EmptyCall, whose rule has no missing backend: %v", err)
	}

	m.remove("route.yaml")
	c.waitCall(t, "the route gone", "EmptyCall", func(by string, err error) bool { return err == nil && by == "echo-v1" })
}

// grpcRouteAuthz: a Server on srv's gRPC port, a GRPCRoute on it for UnaryCall, and an AuthorizationPolicy on
// that route admitting cli-sa only.
const grpcRouteAuthz = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-grpc, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
  proxyProtocol: gRPC
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: unary, namespace: test}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: srv-grpc}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: UnaryCall}}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: cli, namespace: test}
spec:
  identityRefs: [{kind: ServiceAccount, name: cli-sa}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: unary-cli, namespace: test}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: unary}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: cli}
`

// TestGRPCRouteAuthorization: a GRPCRoute on a Server is an inbound route. With an AuthorizationPolicy on it
// admitting cli-sa, cli's UnaryCall is served, another service account's gets PERMISSION_DENIED, and a method
// on no route (EmptyCall) is refused as not found (UNIMPLEMENTED, no_route), each a trailers-only gRPC status the
// client library reports. The decisions carry the route's name.
func TestGRPCRouteAuthorization(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, serveEcho(t, "srv"))
	other := m.sidecar(sidecarOpts{ns: "test", name: "other", sa: "other-sa", outbound: []string{svcAuthority}})
	m.write("other.yaml", workloadYAML("test", "other", "other-sa", "other", 0, 9))
	other.waitReady(t)
	cli, oth := dialGRPC(t, pair.outbound), dialGRPC(t, other.p.OutboundAddrs()[0])
	for _, c := range []*grpcClient{cli, oth} {
		c.waitCall(t, "the default policy admitting everyone", "EmptyCall", func(by string, err error) bool { return err == nil && by == "srv" })
	}

	m.write("policy.yaml", grpcRouteAuthz)
	codeOf := func(c *grpcClient, method string) codes.Code {
		_, err := c.call(method)
		return status.Code(err)
	}
	eventually(t, 15*time.Second, "the route's policy", func() error {
		// EmptyCall first: refused as on no route, it shows the new policy is in force for the two calls after it
		// (with the calls the other way round, a UnaryCall admitted by the old default policy could pass).
		got := [3]codes.Code{codeOf(cli, "EmptyCall"), codeOf(cli, "UnaryCall"), codeOf(oth, "UnaryCall")}
		if want := [3]codes.Code{codes.Unimplemented, codes.OK, codes.PermissionDenied}; got != want {
			return fmt.Errorf("cli EmptyCall, cli UnaryCall, other UnaryCall: %v; want %v", got, want)
		}
		return nil
	})
	if _, err := cli.call("EmptyCall"); !strings.Contains(status.Convert(err).Message(), "no_route") {
		t.Errorf("EmptyCall: %v; want the proxy's no_route", err)
	}
	if _, err := oth.call("UnaryCall"); !strings.Contains(status.Convert(err).Message(), "forbidden") {
		t.Errorf("other's UnaryCall: %v; want the proxy's refusal", err)
	}

	text := pair.server.metrics(t)
	if v := metricValue(text, "inbound_http_authz_allow_total", `srv_name="srv-grpc"`, `route_name="unary"`, `authz_name="unary-cli"`,
		`client_id="`+spiffeID("test", "cli-sa")+`"`); v < 1 {
		t.Errorf("inbound_http_authz_allow_total{route_name=unary, cli-sa} = %v:\n%s", v, grepLines(text, "inbound_http_authz"))
	}
	if v := metricValue(text, "inbound_http_authz_deny_total", `srv_name="srv-grpc"`, `route_name="unary"`,
		`client_id="`+spiffeID("test", "other-sa")+`"`); v < 1 {
		t.Errorf("inbound_http_authz_deny_total{route_name=unary, other-sa} = %v:\n%s", v, grepLines(text, "inbound_http_authz"))
	}
	if v := metricValue(text, "inbound_http_route_not_found_total", `srv_name="srv-grpc"`); v < 1 {
		t.Errorf("inbound_http_route_not_found_total{srv_name=srv-grpc} = %v", v)
	}
}
