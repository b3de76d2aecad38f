package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe/watchtest"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
	"google.golang.org/grpc"
)

type inboundPolicyServer struct {
	policyv1.UnimplementedInboundPoliciesServer
	answer *policyv1.InboundServer
}

func (s *inboundPolicyServer) WatchInbound(_ *policyv1.InboundRequest, stream grpc.ServerStreamingServer[policyv1.InboundServer]) error {
	if err := stream.Send(s.answer); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// TestInboundAuthorization drives Inbound.Handle with a Server that admits one mesh identity: that peer's HTTP
// requests reach the application; a plaintext client gets 403 (a gRPC one PERMISSION_DENIED) and the application
// never sees it; an opaque connection from it is refused; each decision is counted.
func TestInboundAuthorization(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	serverID, allowedID := meshtls.ID("td", "emojivoto", "web"), meshtls.ID("td", "emojivoto", "vote-bot")
	otherID := meshtls.ID("td", "other", "default")
	serverCert, clientCert, otherCert := ca.leaf(t, serverID), ca.leaf(t, allowedID), ca.leaf(t, otherID)

	reached := make(chan string, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
		io.WriteString(w, "ok") //nolint:errcheck
	}))
	t.Cleanup(app.Close)
	appAddr := app.Listener.Addr().String()
	// An opaque application: accepts and echoes.
	opaqueLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opaqueLn.Close() })
	go func() {
		for {
			c, err := opaqueLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() //nolint:errcheck
		}
	}()
	opaqueAddr := opaqueLn.Addr().String()
	_, op, _ := net.SplitHostPort(opaqueAddr)
	opaquePort, _ := strconv.ParseUint(op, 10, 16)

	pol := &inboundPolicyServer{answer: &policyv1.InboundServer{
		Labels: map[string]string{"kind": "server", "name": "web-http"},
		Authorizations: []*policyv1.Authorization{{Name: "sa", Identities: []string{allowedID},
			Labels: map[string]string{"kind": "serverauthorization", "name": "vote-bot-only"}}},
	}}
	cp := watchtest.StartControlPlane(t, func(s *grpc.Server) { policyv1.RegisterInboundPoliciesServer(s, pol) })
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := authz.NewWatcher(policyv1.NewInboundPoliciesClient(cp.Conn(t)), "emojivoto/web-1", nil, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	am, err := authz.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx) //nolint:errcheck

	const httpPort = 8080
	deps := Deps{Log: slog.New(slog.DiscardHandler), Metrics: m, Certs: fixedCert{serverCert}, Anchors: ca.anchors, Authz: w, AuthzMetrics: am}
	in := NewInbound(deps, Timeouts{Detect: 10 * time.Second, Connect: 10 * time.Second, Handshake: 10 * time.Second, Discovery: 10 * time.Second},
		map[uint16]bool{uint16(opaquePort): true},
		InboundPorts{Apps: map[uint16]string{httpPort: appAddr, uint16(opaquePort): opaqueAddr}, Default: appAddr, DefaultPort: httpPort})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go in.Handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Shutdown(ctx)
	})

	do := func(t *testing.T, conn net.Conn, req *http.Request) *http.Response {
		t.Helper()
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp
	}
	meshAs := func(t *testing.T, cert *tls.Certificate, port uint16, proto transport.Proto) net.Conn {
		tc, err := tls.Dial("tcp", ln.Addr().String(), meshtls.ClientConfig(ca.anchors, serverID, func() *tls.Certificate { return cert }, meshtls.ALPN))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Write(transport.Header{Proto: proto, Port: port}.Append(nil)); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	mesh := func(t *testing.T, port uint16, proto transport.Proto) net.Conn {
		return meshAs(t, clientCert, port, proto)
	}
	plain := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	req, _ := http.NewRequest("GET", "http://web-svc/allowed", nil)
	if resp := do(t, mesh(t, httpPort, transport.ProtoHTTP1), req); resp.StatusCode != 200 {
		t.Errorf("the admitted identity got %d", resp.StatusCode)
	}
	if got := <-reached; got != "/allowed" {
		t.Errorf("the application got %q", got)
	}
	req, _ = http.NewRequest("GET", "http://web-svc/denied", nil)
	resp := do(t, plain(t), req)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Sinew-Proxy-Error") != "forbidden" {
		t.Errorf("a plaintext client got %d (%q), want 403 forbidden", resp.StatusCode, resp.Header.Get("Sinew-Proxy-Error"))
	}
	req, _ = http.NewRequest("POST", "http://web-svc/emojivoto.v1.VotingService/VoteDoughnut", nil)
	req.Header.Set("Content-Type", "application/grpc")
	resp = do(t, plain(t), req)
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "7" {
		t.Errorf("a plaintext gRPC client got %d grpc-status %q, want 200 with PERMISSION_DENIED (7)", resp.StatusCode, resp.Header.Get("Grpc-Status"))
	}
	select {
	case p := <-reached:
		t.Errorf("a denied request reached the application: %s", p)
	default:
	}

	// Opaque: the admitted identity's bytes are echoed; a plaintext connection is closed unanswered.
	tc := mesh(t, uint16(opaquePort), transport.ProtoOpaque)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
	if _, err := io.WriteString(tc, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("opaque, admitted: %q %v", buf, err)
	}
	denied := meshAs(t, otherCert, uint16(opaquePort), transport.ProtoOpaque)
	defer denied.Close()
	denied.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
	io.WriteString(denied, "ping")                       //nolint:errcheck // the proxy may have closed already
	if n, err := denied.Read(buf); err == nil {
		t.Errorf("opaque, another identity: read %q; want the connection refused", buf[:n])
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"inbound_http_authz_allow_total", map[string]string{"srv_name": "web-http", "authz_kind": "serverauthorization", "authz_name": "vote-bot-only", "tls": "true", "client_id": allowedID, "target_addr": appAddr}, 1},
		{"inbound_http_authz_deny_total", map[string]string{"srv_kind": "server", "srv_name": "web-http", "tls": "no_identity", "client_id": "", "target_addr": appAddr}, 2},
		{"inbound_tcp_authz_allow_total", map[string]string{"srv_name": "web-http", "authz_name": "vote-bot-only", "client_id": allowedID, "target_addr": opaqueAddr}, 1},
		{"inbound_tcp_authz_deny_total", map[string]string{"srv_name": "web-http", "tls": "true", "client_id": otherID, "target_addr": opaqueAddr}, 1},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// counterValue sums the counters of family name whose labels include labels.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
