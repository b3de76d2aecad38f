package policy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/identity"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

// gatewayResources are sinew's GatewayClass and a Gateway shop/edge with the given listener ports (HTTP).
func gatewayResources(ports ...int32) model.Resources {
	gw := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: names.GatewayClass}}
	for _, p := range ports {
		gw.Spec.Listeners = append(gw.Spec.Listeners, gatewayv1.Listener{
			Name: gatewayv1.SectionName("http-" + itoa(p)), Port: p, Protocol: gatewayv1.HTTPProtocolType})
	}
	return model.Resources{GatewayResources: model.GatewayResources{
		GatewayClasses: []*gatewayv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: names.GatewayClass},
			Spec: gatewayv1.GatewayClassSpec{ControllerName: names.GatewayController}}},
		Gateways: []*gatewayv1.Gateway{gw},
	}}
}

func itoa(p int32) string { return model.TargetPort{Number: uint16(p)}.String() }

// mtlsGateways serves s's Gateways service over mutual TLS, as the control plane does, and returns a client
// factory: each client presents a certificate for namespace/serviceAccount (or none, when serviceAccount is "").
func mtlsGateways(t *testing.T, s *Server) func(namespace, serviceAccount string) policyv1.GatewaysClient {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(testInbound.TrustDomain)
	ca, anchorPEM, _, _, err := identity.GenerateCA(td.Name(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	anchors := x509.NewCertPool()
	anchors.AppendCertsFromPEM(anchorPEM)
	serving, err := identity.NewServingCert(ca, td, "sinew", "sinew-policy", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.MutualTLS(serving, anchors, td))))
	policyv1.RegisterGatewaysServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return func(namespace, serviceAccount string) policyv1.GatewaysClient {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // the test checks the server's view of the client
		if serviceAccount != "" {
			cert, err := identity.NewServingCert(ca, td, namespace, serviceAccount, time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.GetCertificate(nil) }
		}
		conn, err := grpc.NewClient("passthrough:///policy",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return policyv1.NewGatewaysClient(conn)
	}
}

// TestWatchGateway: the gateway's own identity gets its configuration, then every change of it; the streams
// of other identities are refused before anything is sent.
func TestWatchGateway(t *testing.T) {
	t.Parallel()
	store := model.NewStore()
	store.Update(gatewayResources(8080))
	client := mtlsGateways(t, New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound}))
	ctx := testContext(t)

	stream, err := client("shop", names.GatewayIdentityAccount("edge")).WatchGateway(ctx, &policyv1.GatewayRequest{Gateway: "shop/edge"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetExists() || len(first.GetListeners()) != 1 || first.GetListeners()[0].GetPort() != 8080 || first.GetLabels()["name"] != "edge" {
		t.Fatalf("first config: %v", first)
	}
	store.Update(gatewayResources(8080)) // nothing changes for it: nothing is sent
	store.Update(gatewayResources(8080, 9090))
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(next.GetListeners()) != 2 || next.GetListeners()[1].GetPort() != 9090 {
		t.Errorf("after the change: %v", next)
	}
	store.Update(model.Resources{}) // the Gateway is gone
	if gone, err := stream.Recv(); err != nil || gone.GetExists() || len(gone.GetListeners()) > 0 {
		t.Errorf("after the Gateway went: %v, %v", gone, err)
	}

	for _, tc := range []struct {
		name, namespace, serviceAccount, gateway string
		want                                     codes.Code
	}{
		{"another workload", "shop", "default", "shop/edge", codes.PermissionDenied},
		{"another Gateway's identity", "shop", names.GatewayIdentityAccount("other"), "shop/edge", codes.PermissionDenied},
		{"the same name in another namespace", "apps", names.GatewayIdentityAccount("edge"), "shop/edge", codes.PermissionDenied},
		{"no client certificate", "", "", "shop/edge", codes.Unavailable}, // the handshake fails
		{"a malformed request", "shop", names.GatewayIdentityAccount("edge"), "edge", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := client(tc.namespace, tc.serviceAccount).WatchGateway(ctx, &policyv1.GatewayRequest{Gateway: tc.gateway})
			var cfg *policyv1.GatewayConfig
			if err == nil {
				cfg, err = stream.Recv()
			}
			if status.Code(err) != tc.want || cfg != nil {
				t.Errorf("got %v, %v; want %s", cfg, err, tc.want)
			}
		})
	}
}

// TestWatchGatewayWithoutTLS: a caller that has no certificate at all (no TLS) is refused.
func TestWatchGatewayWithoutTLS(t *testing.T) {
	t.Parallel()
	store := model.NewStore()
	store.Update(gatewayResources(8080))
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer()
	policyv1.RegisterGatewaysServer(srv, New(Config{Store: store, ClusterDomain: "cluster.local", Inbound: testInbound}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///policy",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := policyv1.NewGatewaysClient(conn).WatchGateway(testContext(t), &policyv1.GatewayRequest{Gateway: "shop/edge"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("got %v, want PermissionDenied", err)
	}
}
