package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestHTTP2PriorKnowledgeThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", true))
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: h2c}}
	resp, err := c.Get("http://" + pair.outbound + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "srv /h2 " || resp.Header.Get("x-seen-proto") != "HTTP/2.0" {
		t.Fatalf("got %d %q proto %s", resp.StatusCode, b, resp.Header.Get("x-seen-proto"))
	}
}

// grpcApp implements the gRPC interop test service: unary echo, and a bidi stream that echoes each message.
type grpcApp struct {
	testpb.UnimplementedTestServiceServer
}

func (grpcApp) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if req.GetResponseStatus().GetCode() != 0 {
		return nil, status.Error(codes.Code(req.GetResponseStatus().GetCode()), req.GetResponseStatus().GetMessage())
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return &testpb.SimpleResponse{Username: strings.Join(md.Get("sinew-client-id"), ","), Payload: req.GetPayload()}, nil
}

func (grpcApp) FullDuplexCall(s testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func TestGRPCThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	ln := listen(t)
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, grpcApp{})
	go gs.Serve(ln) //nolint:errcheck
	t.Cleanup(gs.Stop)
	pair := startPair(t, m, ln.Addr().String())

	conn, err := grpc.NewClient(pair.outbound, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Unary, with the caller's identity visible to the server.
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "ping" || resp.GetUsername() != spiffeID("test", "cli-sa") {
		t.Fatalf("unary: %q from %q", resp.GetPayload().GetBody(), resp.GetUsername())
	}
	// gRPC errors travel in trailers and come out intact.
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such emoji"}})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no such emoji" {
		t.Fatalf("error status: %v", err)
	}
	// Deadlines propagate: an already-expired deadline fails fast with DeadlineExceeded.
	short, cancelShort := context.WithTimeout(ctx, time.Nanosecond)
	defer cancelShort()
	if _, err := client.UnaryCall(short, &testpb.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}

	// Bidirectional streaming: each message is answered before the next is sent.
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		msg := fmt.Sprint("msg", i)
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil || string(got.GetPayload().GetBody()) != msg {
			t.Fatalf("stream message %d: %q %v", i, got.GetPayload().GetBody(), err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}

	eventually(t, 5*time.Second, "grpc metrics", func() error {
		text := pair.client.metrics(t)
		if v := metricValue(text, "response_total", `direction="outbound"`, `grpc_status_code="5"`, `classification="failure"`); v != 1 {
			return fmt.Errorf("NotFound responses = %v", v)
		}
		if v := metricValue(text, "response_total", `direction="outbound"`, `grpc_status_code="0"`, `classification="success"`, `tls="true"`); v < 2 {
			return fmt.Errorf("OK responses = %v", v)
		}
		return nil
	})
}

// tcpEcho echoes lines; with greeting it speaks first (like SMTP or MySQL).
func tcpEcho(t *testing.T, greeting string) string {
	t.Helper()
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if greeting != "" {
					io.WriteString(c, greeting+"\n") //nolint:errcheck
				}
				io.Copy(c, c) //nolint:errcheck
			}()
		}
	}()
	return ln.Addr().String()
}

func TestOpaqueTCPThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	// Port 8080 is detected (client speaks first); port 6379 is opaque by default (server speaks first).
	detected, opaque := tcpEcho(t, ""), tcpEcho(t, "+HELLO")
	server := m.sidecar(sidecarOpts{ns: "test", name: "tcp", sa: "tcp-sa", inbound: []proxy.InboundPort{{Port: 8080, App: detected}, {Port: 6379, App: opaque}}})
	m.write("tcp.yaml", fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: tcp, namespace: test, labels: {app: tcp}}
spec: {serviceAccount: tcp-sa, address: 127.0.0.1, meshPort: %d, ports: [{name: a, port: 8080}, {name: b, port: 6379, protocol: opaque}]}
---
apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: tcp, namespace: test}
spec: {selector: {app: tcp}, ports: [{name: a, port: 7000, targetPort: 8080}, {name: b, port: 6379, targetPort: 6379}]}
`, server.inboundPort()))
	client := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", outbound: []string{"tcp.test.svc.cluster.local:7000", "tcp.test.svc.cluster.local:6379"}})
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	server.waitReady(t)
	client.waitReady(t)

	// Client speaks first: bytes that are not HTTP go through as opaque TCP.
	c, err := net.Dial("tcp", client.p.OutboundAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "\x00binary line %d\n", i)
		line, err := r.ReadString('\n')
		if err != nil || line != fmt.Sprintf("\x00binary line %d\n", i) {
			t.Fatalf("echo %d: %q %v", i, line, err)
		}
	}
	// Half-close passes through: the echo server sees EOF and closes, we see EOF.
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q %v", rest, err)
	}

	// Server speaks first on an opaque port: no detection delay.
	c2, err := net.Dial("tcp", client.p.OutboundAddrs()[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c2).ReadString('\n')
	if err != nil || line != "+HELLO\n" {
		t.Fatalf("greeting: %q %v", line, err)
	}

	eventually(t, 5*time.Second, "tcp metrics", func() error {
		text := client.metrics(t)
		if v := metricValue(text, "tcp_open_total", `direction="outbound"`, `peer="dst"`, `tls="true"`, `server_id="`+spiffeID("test", "tcp-sa")+`"`); v != 2 {
			return fmt.Errorf("outbound tcp_open_total{tls=true} = %v, want 2", v)
		}
		if v := metricValue(text, "tcp_write_bytes_total", `direction="outbound"`, `peer="dst"`); v < 45 {
			return fmt.Errorf("bytes written = %v", v)
		}
		return nil
	})
}

// An HTTP/1.1 Upgrade (WebSocket-style) crosses the mesh and then carries raw bytes both ways.
func TestUpgradeThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", 400)
			return
		}
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.Flush()
		io.Copy(conn, brw) //nolint:errcheck
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	pair := startPair(t, m, ln.Addr().String())

	c, err := net.Dial("tcp", pair.outbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: srv\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade response: %v %v", resp, err)
	}
	for i := range 3 {
		fmt.Fprintf(c, "frame %d\n", i)
		line, err := r.ReadString('\n')
		if err != nil || line != fmt.Sprintf("frame %d\n", i) {
			t.Fatalf("frame %d: %q %v", i, line, err)
		}
	}
}
