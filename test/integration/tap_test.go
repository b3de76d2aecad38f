package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// tapClient dials a proxy's tap server as the holder of cert, verifying the proxy's identity.
func tapClient(t *testing.T, m *mesh, s *sidecar, cert tls.Certificate) tapv1.TapClient {
	t.Helper()
	anchors, err := meshtls.ParseAnchors(m.cp.TrustAnchorsPEM())
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewTLS(meshtls.ClientConfig(anchors, spiffeID(s.ns, s.sa), func() *tls.Certificate { return &cert }))
	conn, err := grpc.NewClient(s.p.TapAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tapv1.NewTapClient(conn)
}

// tapped is what one tap stream delivered, grouped by request id.
type tapped struct {
	order []uint64
	req   map[uint64]*tapv1.TapEvent
	rsp   map[uint64]*tapv1.TapEvent
	end   map[uint64]*tapv1.TapEvent
}

// collect reads a tap stream to its end; the stream must end by itself (its limit) with io.EOF.
func collect(t *testing.T, stream grpc.ServerStreamingClient[tapv1.TapEvent]) *tapped {
	t.Helper()
	got := &tapped{req: map[uint64]*tapv1.TapEvent{}, rsp: map[uint64]*tapv1.TapEvent{}, end: map[uint64]*tapv1.TapEvent{}}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("tap stream: %v", err)
		}
		switch e := ev.GetEvent().(type) {
		case *tapv1.TapEvent_RequestInit_:
			got.order = append(got.order, e.RequestInit.GetId())
			got.req[e.RequestInit.GetId()] = ev
		case *tapv1.TapEvent_ResponseInit_:
			got.rsp[e.ResponseInit.GetId()] = ev
		case *tapv1.TapEvent_ResponseEnd_:
			got.end[e.ResponseEnd.GetId()] = ev
		}
	}
}

// drive calls send(0), send(1), … in the background until stop is closed or send fails (which fails the test), so a
// tap has requests to see; wait returns once the loop has ended.
func drive(t *testing.T, stop <-chan struct{}, send func(i int) error) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := send(i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return func() { <-done }
}

// getAlternately sends GETs through outbound, alternately to /tapped/<i> and /other, and wants 200s.
func getAlternately(outbound string) func(i int) error {
	return func(i int) error {
		path := "/other"
		if i%2 == 0 {
			path = fmt.Sprint("/tapped/", i)
		}
		resp, err := http.Get("http://" + outbound + path)
		if err != nil {
			return fmt.Errorf("request %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("request %s: status %d", path, resp.StatusCode)
		}
		return nil
	}
}

func prefixMatch(p string) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_Http_{Http: &tapv1.Match_Http{Match: &tapv1.Match_Http_PathPrefix{PathPrefix: p}}}}
}

func TestTapObservesLiveRequests(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	tapCert := m.certFor(t, "sinew-viz", "tap", "tap")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The inbound side of the server and the outbound side of the client, tapped at once.
	inStream, err := tapClient(t, m, pair.server, tapCert).Observe(ctx, &tapv1.ObserveRequest{Limit: 3, Match: prefixMatch("/tapped/")})
	if err != nil {
		t.Fatal(err)
	}
	outStream, err := tapClient(t, m, pair.client, tapCert).Observe(ctx, &tapv1.ObserveRequest{Limit: 2, Match: prefixMatch("/tapped/")})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := drive(t, stop, getAlternately(pair.outbound))
	in, out := collect(t, inStream), collect(t, outStream)
	close(stop)
	wait()

	check := func(name string, got *tapped, n int, dir tapv1.TapEvent_Direction) {
		t.Helper()
		if len(got.order) != n || len(got.rsp) != n || len(got.end) != n {
			t.Fatalf("%s: %d requests, %d responses, %d ends; want %d of each (limit)", name, len(got.order), len(got.rsp), len(got.end), n)
		}
		for _, id := range got.order {
			req, rsp, end := got.req[id], got.rsp[id], got.end[id]
			if rsp == nil || end == nil {
				t.Fatalf("%s: request %d lacks its response or end", name, id)
			}
			ri := req.GetRequestInit()
			if ri.GetMethod() != "GET" || !strings.HasPrefix(ri.GetPath(), "/tapped/") || ri.GetAuthority() != pair.outbound {
				t.Errorf("%s: request %v", name, ri)
			}
			for _, ev := range []*tapv1.TapEvent{req, rsp, end} {
				if ev.GetDirection() != dir || ev.GetTls() != "true" || ev.GetClientId() != spiffeID("test", "cli-sa") || ev.GetServerId() != spiffeID("test", "srv-sa") {
					t.Errorf("%s: event %v: want direction %v, tls=true, client %s, server %s", name, ev, dir, spiffeID("test", "cli-sa"), spiffeID("test", "srv-sa"))
				}
			}
			if s := rsp.GetResponseInit().GetHttpStatus(); s != 200 {
				t.Errorf("%s: status %d", name, s)
			}
			e := end.GetResponseEnd()
			// The app answers "srv <path> ".
			if want := uint64(len("srv " + ri.GetPath() + " ")); e.GetResponseBytes() != want || e.GrpcStatus != nil || e.GetResetError() != "" {
				t.Errorf("%s: end %v, want %d bytes, no grpc status, no reset", name, e, want)
			}
			if e.GetSinceRequestInit().AsDuration() < rsp.GetResponseInit().GetSinceRequestInit().AsDuration() {
				t.Errorf("%s: end before response: %v", name, e)
			}
		}
	}
	check("inbound", in, 3, tapv1.TapEvent_DIRECTION_INBOUND)
	check("outbound", out, 2, tapv1.TapEvent_DIRECTION_OUTBOUND)
	ev := out.req[out.order[0]]
	if ev.GetSourceLabels()["workload"] != "cli" || ev.GetDestinationLabels()["namespace"] != "test" || ev.GetDestination() != pair.server.p.InboundAddr() {
		t.Errorf("outbound peers: %v", ev)
	}
	ev = in.req[in.order[0]]
	if ev.GetSourceLabels()["serviceaccount"] != "cli-sa" || ev.GetDestinationLabels()["workload"] != "srv" {
		t.Errorf("inbound peers: %v", ev)
	}
}

func TestTapRefusesOtherIdentities(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	intruder := m.certFor(t, "test", "intruder", "intruder-sa")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	stream, err := tapClient(t, m, pair.server, intruder).Observe(ctx, &tapv1.ObserveRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("tap as %s: %v, want PermissionDenied", spiffeID("test", "intruder-sa"), err)
	}
	// A client without a mesh certificate cannot even connect.
	conn, err := grpc.NewClient(pair.server.p.TapAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if s, err := tapv1.NewTapClient(conn).Observe(ctx, &tapv1.ObserveRequest{}); err == nil {
		if _, err = s.Recv(); err == nil {
			t.Fatal("plaintext tap client got an event")
		}
	}
	// Traffic is unaffected.
	resp, err := http.Get("http://" + pair.outbound + "/after")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "srv /after " {
		t.Fatalf("after refused tap: %d %q", resp.StatusCode, b)
	}
	// An invalid match is refused with a clear error.
	tapCert := m.certFor(t, "sinew-viz", "tap", "tap")
	stream, err = tapClient(t, m, pair.server, tapCert).Observe(ctx, &tapv1.ObserveRequest{Match: &tapv1.Match{}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty match: %v, want InvalidArgument", err)
	}
}

func TestTapGRPCStatus(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	ln := listen(t)
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, grpcApp{})
	go gs.Serve(ln) //nolint:errcheck
	t.Cleanup(gs.Stop)
	pair := startPair(t, m, ln.Addr().String())
	tapCert := m.certFor(t, "sinew-viz", "tap", "tap")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := tapClient(t, m, pair.client, tapCert).Observe(ctx, &tapv1.ObserveRequest{Limit: 1, Match: prefixMatch("/grpc.testing.TestService/UnaryCall")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(pair.outbound, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	stop := make(chan struct{})
	wait := drive(t, stop, func(int) error {
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such emoji"}})
		if status.Code(err) != codes.NotFound {
			return fmt.Errorf("unary: %v", err)
		}
		return nil
	})
	got := collect(t, stream)
	close(stop)
	wait()
	if len(got.order) != 1 {
		t.Fatalf("%d requests tapped, want 1", len(got.order))
	}
	id := got.order[0]
	if r := got.req[id].GetRequestInit(); r.GetMethod() != "POST" || r.GetPath() != "/grpc.testing.TestService/UnaryCall" {
		t.Errorf("request %v", r)
	}
	if e := got.end[id].GetResponseEnd(); e.GrpcStatus == nil || e.GetGrpcStatus() != uint32(codes.NotFound) {
		t.Errorf("end %v, want grpc_status=%d", e, codes.NotFound)
	}
}
