package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

const emojivoto = `apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: emojivoto, labels: {app: web}}
spec:
  serviceAccount: web
  address: 127.0.0.1
  meshPort: 14143
  ports:
  - {name: http, port: 8080, protocol: http}
---
apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: web-svc, namespace: emojivoto}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: voting-svc, namespace: emojivoto}
spec:
  selector: {app: voting}
  ports:
  - {name: grpc, port: 8080}
`

const voting = `apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: voting, namespace: emojivoto, labels: {app: voting}}
spec:
  serviceAccount: voting
  address: 127.0.0.2
  ports:
  - {name: grpc, port: 8080}
`

type env struct {
	cp      *controlplane.ControlPlane
	resDir  string
	dataDir string
	anchors *x509.CertPool
}

// start runs a control plane on loopback with the given resource files, stopped (and checked) at test end.
func start(t *testing.T, files map[string]string) *env {
	t.Helper()
	e := &env{resDir: t.TempDir(), dataDir: filepath.Join(t.TempDir(), "data")}
	for name, content := range files {
		writeFile(t, filepath.Join(e.resDir, name), content)
	}
	cp, err := controlplane.New(controlplane.Config{
		DataDir: e.dataDir, ResourceDir: e.resDir,
		IdentityAddr: "127.0.0.1:0", DestinationAddr: "127.0.0.1:0", PolicyAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cp = cp
	e.anchors = x509.NewCertPool()
	if !e.anchors.AppendCertsFromPEM(cp.TrustAnchorsPEM()) {
		t.Fatal("trust anchors do not parse")
	}
	testutil.RunInBackground(t, cp.Run)
	return e
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func serverName(sa string) string { return sa + ".sinew.serviceaccount.identity.sinew.cluster.local" }

func dial(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// certify obtains a workload certificate the way a proxy does.
func (e *env) certify(t *testing.T, ns, wl, identity string) (tls.Certificate, error) {
	t.Helper()
	tok, err := e.cp.IssueJoinToken(ns, wl)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(identity)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, e.cp.IdentityAddr(), &tls.Config{RootCAs: e.anchors, ServerName: serverName(names.IdentityAccount)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := identityv1.NewIdentityClient(conn).Certify(ctx, &identityv1.CertifyRequest{
		Identity: identity, Token: []byte(tok), CertificateSigningRequest: csr,
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	chain := append([][]byte{resp.GetLeafCertificate()}, resp.GetIntermediateCertificates()...)
	leaf, err := x509.ParseCertificate(resp.GetLeafCertificate())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func (e *env) meshClientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := e.certify(t, "emojivoto", "web", "spiffe://cluster.local/ns/emojivoto/sa/web")
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		RootCAs: e.anchors, ServerName: serverName(names.DestinationAccount), Certificates: []tls.Certificate{cert},
		VerifyConnection: func(cs tls.ConnectionState) error {
			want := "spiffe://cluster.local/ns/sinew/sa/sinew-destination"
			if got := cs.PeerCertificates[0].URIs; len(got) != 1 || got[0].String() != want {
				return errors.New("destination server presented the wrong identity")
			}
			return nil
		},
	}
}

func TestCertifyThroughFacade(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"emojivoto.yaml": emojivoto, "voting.yaml": voting})

	cert, err := e.certify(t, "emojivoto", "web", "spiffe://cluster.local/ns/emojivoto/sa/web")
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	issuer, _ := x509.ParseCertificate(cert.Certificate[1])
	inter.AddCert(issuer)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: e.anchors, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against the anchors: %v", err)
	}
	if got := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); got < 24*time.Hour || got > 24*time.Hour+time.Minute {
		t.Errorf("lifetime %s, want 24h (+20s skew allowance)", got)
	}

	_, err = e.certify(t, "emojivoto", "web", "spiffe://cluster.local/ns/emojivoto/sa/voting")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "token for emojivoto/web may not certify spiffe://cluster.local/ns/emojivoto/sa/voting") {
		t.Errorf("web asking for voting's identity: %v, want PermissionDenied naming both", err)
	}
	_, err = e.certify(t, "emojivoto", "ghost", "spiffe://cluster.local/ns/emojivoto/sa/default")
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("token for a workload that does not exist: %v, want PermissionDenied", err)
	}
}

func TestDestinationOverMutualTLS(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"emojivoto.yaml": emojivoto})
	client := destinationv1.NewDestinationClient(dial(t, e.cp.DestinationAddr(), e.meshClientTLS(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	get := func(path string) destinationv1.Destination_GetClient {
		t.Helper()
		s, err := client.Get(ctx, &destinationv1.GetRequest{Path: path, ContextToken: "emojivoto/vote-bot"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	recv := func(s destinationv1.Destination_GetClient) *destinationv1.Update {
		t.Helper()
		u, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		return u
	}

	// A service authority in each accepted spelling resolves to the meshed web workload.
	for _, path := range []string{"web-svc.emojivoto.svc.cluster.local:80", "web-svc.emojivoto.svc:80", "web-svc.emojivoto:80"} {
		add := recv(get(path)).GetAdd()
		if len(add.GetAddrs()) != 1 {
			t.Fatalf("%s: first update %v, want an Add of one endpoint", path, add)
		}
		wa := add.GetAddrs()[0]
		if wa.GetAddr() != "127.0.0.1:14143" || wa.GetTargetPort() != 8080 || wa.GetWeight() != 10000 ||
			wa.GetTlsIdentity().GetSpiffeId() != "spiffe://cluster.local/ns/emojivoto/sa/web" || wa.GetProtocolHint().GetH2() == nil {
			t.Errorf("%s: endpoint %v", path, wa)
		}
		if got := wa.GetMetricLabels(); got["pod"] != "web" || got["deployment"] != "web" || got["serviceaccount"] != "web" {
			t.Errorf("%s: endpoint labels %v", path, got)
		}
		if got := add.GetMetricLabels(); got["namespace"] != "emojivoto" || got["service"] != "web-svc" {
			t.Errorf("%s: set labels %v", path, got)
		}
	}

	// A known service without endpoints, then one appears in a new file, then the file goes away.
	votingStream := get("voting-svc.emojivoto.svc.cluster.local:8080")
	if ne := recv(votingStream).GetNoEndpoints(); ne == nil || !ne.GetExists() {
		t.Fatalf("voting-svc before its workload exists: want NoEndpoints{exists:true}")
	}
	writeFile(t, filepath.Join(e.resDir, "voting.yaml"), voting)
	add := recv(votingStream).GetAdd()
	if len(add.GetAddrs()) != 1 || add.GetAddrs()[0].GetAddr() != "127.0.0.2:8080" || add.GetAddrs()[0].GetTlsIdentity() != nil {
		t.Fatalf("after adding voting.yaml: %v, want an Add of the unmeshed 127.0.0.2:8080", add)
	}
	if err := os.Remove(filepath.Join(e.resDir, "voting.yaml")); err != nil {
		t.Fatal(err)
	}
	if rm := recv(votingStream).GetRemove(); len(rm.GetAddrs()) != 1 || rm.GetAddrs()[0] != "127.0.0.2:8080" {
		t.Fatalf("after removing voting.yaml: %v, want Remove 127.0.0.2:8080", rm)
	}
	if ne := recv(votingStream).GetNoEndpoints(); ne == nil || !ne.GetExists() {
		t.Fatalf("after removing voting.yaml: want NoEndpoints{exists:true}")
	}

	// An unknown name: NoEndpoints{exists:false}, and the stream stays open for the name to appear.
	unknown := get("books.library.svc.cluster.local:80")
	if ne := recv(unknown).GetNoEndpoints(); ne == nil || ne.GetExists() {
		t.Fatalf("unknown service: want NoEndpoints{exists:false}")
	}
	writeFile(t, filepath.Join(e.resDir, "books.yaml"), `kind: Service
metadata: {name: books, namespace: library}
spec: {selector: {app: books}, ports: [{port: 80}]}
`)
	if ne := recv(unknown).GetNoEndpoints(); ne == nil || !ne.GetExists() {
		t.Fatalf("after the service appears: want NoEndpoints{exists:true}")
	}

	// ip:port of a meshed workload's declared port.
	if add := recv(get("127.0.0.1:8080")).GetAdd(); len(add.GetAddrs()) != 1 || add.GetAddrs()[0].GetAddr() != "127.0.0.1:14143" ||
		add.GetAddrs()[0].GetTargetPort() != 8080 {
		t.Fatalf("ip:port lookup: %v", add)
	}
	if ne := recv(get("127.0.0.1:9999")).GetNoEndpoints(); ne == nil || ne.GetExists() {
		t.Fatalf("ip:port with no workload: want NoEndpoints{exists:false}")
	}

	// A malformed path is the caller's error.
	if _, err := get("no-port").Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed path: %v, want InvalidArgument", err)
	}
}

func TestMutualTLSRequired(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"emojivoto.yaml": emojivoto})
	noCert := &tls.Config{RootCAs: e.anchors, ServerName: serverName(names.DestinationAccount)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := destinationv1.NewDestinationClient(dial(t, e.cp.DestinationAddr(), noCert)).
		Get(ctx, &destinationv1.GetRequest{Path: "web-svc.emojivoto:80"})
	if err == nil {
		_, err = s.Recv()
	}
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("destination without a client certificate: %v, want the connection refused (Unavailable)", err)
	}
	p, err := policyv1.NewInboundPoliciesClient(dial(t, e.cp.PolicyAddr(), noCert)).
		WatchInbound(ctx, &policyv1.InboundRequest{Workload: "emojivoto/web", Port: 8080})
	if err == nil {
		_, err = p.Recv()
	}
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("policy without a client certificate: %v, want the connection refused (Unavailable)", err)
	}
}

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"emojivoto.yaml": emojivoto})
	conn := dial(t, e.cp.PolicyAddr(), e.meshClientTLS(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	in, err := policyv1.NewInboundPoliciesClient(conn).WatchInbound(ctx, &policyv1.InboundRequest{Workload: "emojivoto/web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := in.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if srv.GetProtocol() != policyv1.Protocol_PROTOCOL_DETECT || srv.GetMtlsMode() != policyv1.MTLSMode_MTLS_MODE_OPTIONAL ||
		len(srv.GetAuthorizations()) != 1 || srv.GetAuthorizations()[0].GetName() != "default:all-unauthenticated" ||
		!srv.GetAuthorizations()[0].GetUnauthenticated() {
		t.Errorf("inbound policy %v", srv)
	}
	out, err := policyv1.NewOutboundPoliciesClient(conn).WatchOutbound(ctx, &policyv1.OutboundRequest{Target: "web-svc.emojivoto.svc.cluster.local:80"})
	if err != nil {
		t.Fatal(err)
	}
	op, err := out.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if b := op.GetRoutes()[0].GetRules()[0].GetBackends(); op.GetProtocol() != policyv1.Protocol_PROTOCOL_DETECT ||
		len(b) != 1 || b[0].GetAuthority() != "web-svc.emojivoto.svc.cluster.local:80" || b[0].GetWeight() != 1 {
		t.Errorf("outbound policy %v", op)
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"emojivoto.yaml": emojivoto, "broken.yaml": "kind: Workload\nmetadata: {name: x}\nspec: {bogus: 1}\n"})
	base := "http://" + e.cp.AdminAddr()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.Eventually(t, 15*time.Second, "/ready to answer 200", func() bool { code, _ := get("/ready"); return code == http.StatusOK })
	if code, _ := get("/live"); code != http.StatusOK {
		t.Errorf("/live: %d", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "local_source_invalid_files 1") {
		t.Errorf("/metrics does not count the broken file:\n%s", body)
	}
	_, body := get("/debug/model")
	var view struct {
		Services []struct {
			Name      string              `json:"name"`
			Endpoints map[string][]string `json:"endpoints"`
		} `json:"services"`
		Errors []struct{ Message string } `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &view); err != nil {
		t.Fatalf("/debug/model: %v\n%s", err, body)
	}
	if len(view.Errors) != 1 || !strings.Contains(view.Errors[0].Message, `broken.yaml: document 1 (Workload): json: unknown field "bogus"`) {
		t.Errorf("/debug/model errors: %+v", view.Errors)
	}
	if len(view.Services) != 2 || view.Services[1].Endpoints["80"][0] != "emojivoto/web:8080" {
		t.Errorf("/debug/model services: %+v", view.Services)
	}
}

func TestRestartReusesCAAndJoinKey(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := controlplane.Config{DataDir: dataDir, ResourceDir: t.TempDir(),
		IdentityAddr: "127.0.0.1:0", DestinationAddr: "127.0.0.1:0", PolicyAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}
	first, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runBriefly(t, first)
	tok, err := controlplane.IssueJoinTokenFromDataDir(dataDir, "emojivoto", "web")
	if err != nil {
		t.Fatal(err)
	}
	second, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runBriefly(t, second)
	if string(first.TrustAnchorsPEM()) != string(second.TrustAnchorsPEM()) {
		t.Error("trust anchors changed across a restart")
	}
	onDisk, _ := os.ReadFile(filepath.Join(dataDir, "ca.crt"))
	if string(onDisk) != string(second.TrustAnchorsPEM()) {
		t.Error("DataDir/ca.crt differs from TrustAnchorsPEM")
	}
	tok2, err := second.IssueJoinToken("emojivoto", "web")
	if err != nil {
		t.Fatal(err)
	}
	// Same key, same claims: the MAC parts agree (iat may differ by a second, so compare only when it does not).
	if strings.SplitN(tok, ".", 2)[0] == strings.SplitN(tok2, ".", 2)[0] && tok != tok2 {
		t.Error("join-token key changed across a restart")
	}
	for _, f := range []string{"issuer.key", "join-token.key"} {
		if fi, err := os.Stat(filepath.Join(dataDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, want mode 0700", err)
	}
}

func runBriefly(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := cp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  controlplane.Config
		want string
	}{
		"no data dir":      {controlplane.Config{ResourceDir: "r"}, "DataDir: required"},
		"bad trust domain": {controlplane.Config{DataDir: "d", ResourceDir: "r", TrustDomain: "Bad Domain"}, "TrustDomain"},
		"partial byo":      {controlplane.Config{DataDir: "d", ResourceDir: "r", IssuerCertFile: "x"}, "all three or none"},
		"bad address":      {controlplane.Config{DataDir: "d", ResourceDir: "r", AdminAddr: "nope"}, "AdminAddr"},
		"too short a cert": {controlplane.Config{DataDir: "d", ResourceDir: "r", CertLifetime: 500 * time.Millisecond}, "CertLifetime"},
	} {
		if _, err := controlplane.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	if _, err := controlplane.IssueJoinTokenFromDataDir(t.TempDir(), "emojivoto", "Web/../x"); err == nil {
		t.Error("join token for an invalid workload name was issued")
	}
}
