package identityclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

var (
	serverID = meshtls.ID(names.DefaultTrustDomain, names.ControlPlaneNamespace, names.IdentityAccount)
	localID  = meshtls.ID(names.DefaultTrustDomain, "emojivoto", "web")
)

// answer is what the fake identity service does with one Certify call.
type answer int

const (
	issue         answer = iota
	unavailable          // fail with UNAVAILABLE
	wrongIdentity        // certify another SPIFFE ID
	wrongKey             // certify our identity for another key
)

// call is one Certify call as the fake identity service saw it.
type call struct {
	at       time.Time
	token    string
	identity string
	notAfter time.Time // of the certificate issued; zero when none was
}

// fakeIdentity is an identity service over real TLS that issues leaves of a given lifetime from an intermediate
// under a root, like the control plane's, answering its first calls as told by script and the rest as told by
// then (issue unless set).
type fakeIdentity struct {
	identityv1.UnimplementedIdentityServer

	anchors  *x509.CertPool
	issuer   *x509.Certificate
	key      *ecdsa.PrivateKey
	lifetime time.Duration
	addr     string

	mu     sync.Mutex
	script []answer
	then   answer
	calls  []call
}

func newCert(t *testing.T, tmpl *x509.Certificate, pub any, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func leafTemplate(id string, now time.Time, lifetime time.Duration) *x509.Certificate {
	u, err := url.Parse(id)
	if err != nil {
		panic(err) // the tests' own constants
	}
	return &x509.Certificate{
		SerialNumber: meshtls.Serial(),
		NotBefore:    now.Add(-20 * time.Second),
		NotAfter:     now.Add(lifetime),
		URIs:         []*url.URL{u},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

func startIdentity(t *testing.T, lifetime time.Duration, script ...answer) *fakeIdentity {
	t.Helper()
	now := time.Now()
	root, rootKey, err := meshtls.NewCA("root", 1, nil, nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issuer, issuerKey, err := meshtls.NewCA("issuer", 0, root, rootKey, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdentity{anchors: x509.NewCertPool(), issuer: issuer, key: issuerKey, lifetime: lifetime, script: script}
	f.anchors.AddCert(root)

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverCert := newCert(t, leafTemplate(serverID, now, time.Hour), &serverKey.PublicKey, issuer, issuerKey)
	tlsCert := &tls.Certificate{Certificate: [][]byte{serverCert.Raw, issuer.Raw}, PrivateKey: serverKey, Leaf: serverCert}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(meshtls.ServerConfig(f.anchors, func() *tls.Certificate { return tlsCert }, false))))
	identityv1.RegisterIdentityServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeIdentity) Certify(_ context.Context, req *identityv1.CertifyRequest) (*identityv1.CertifyResponse, error) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.then
	if len(f.calls) < len(f.script) {
		a = f.script[len(f.calls)]
	}
	c := call{at: now, token: string(req.GetToken()), identity: req.GetIdentity()}
	defer func() { f.calls = append(f.calls, c) }()

	if a == unavailable {
		return nil, status.Error(codes.Unavailable, "scripted failure")
	}
	csr, err := x509.ParseCertificateRequest(req.GetCertificateSigningRequest())
	if err != nil || csr.CheckSignature() != nil || len(csr.URIs) != 1 || csr.URIs[0].String() != req.GetIdentity() {
		return nil, status.Error(codes.InvalidArgument, "bad CSR")
	}
	id, pub := req.GetIdentity(), csr.PublicKey
	switch a {
	case wrongIdentity:
		id = "spiffe://cluster.local/ns/emojivoto/sa/voting"
	case wrongKey:
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = &other.PublicKey
	}
	tmpl := leafTemplate(id, now, f.lifetime)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.issuer, pub, f.key)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	leaf, _ := x509.ParseCertificate(der)
	c.notAfter = leaf.NotAfter
	return &identityv1.CertifyResponse{LeafCertificate: der, IntermediateCertificates: [][]byte{f.issuer.Raw}}, nil
}

// answerThen sets how calls after the script are answered.
func (f *fakeIdentity) answerThen(a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.then = a
}

// Calls returns the calls so far.
func (f *fakeIdentity) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// writeToken replaces the token file in one step, as the kubelet does, so the client never reads half a token.
func writeToken(t *testing.T, path, token string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newClient makes a client of f with the token in a file; the file is only written when token is not empty.
func newClient(t *testing.T, f *fakeIdentity, token string) (*identityclient.Client, *prometheus.Registry, string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if token != "" {
		writeToken(t, tokenFile, token)
	}
	reg := prometheus.NewRegistry()
	c, err := identityclient.New(identityclient.Config{
		Addr: f.addr, ServerName: serverID, LocalName: localID, TokenFile: tokenFile, Anchors: f.anchors,
	}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg, tokenFile
}

// metric reads a gauge or counter without labels from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func waitReady(t *testing.T, c *identityclient.Client) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no certificate within 10s")
	}
}

func TestFirstCertificate(t *testing.T) {
	t.Parallel()
	f := startIdentity(t, time.Hour)
	c, reg, _ := newClient(t, f, "token-1")
	if c.Certificate() != nil || !c.Expiry().IsZero() {
		t.Fatal("a certificate before Run")
	}
	testutil.RunInBackground(t, c.Run)
	waitReady(t, c)

	cert := c.Certificate()
	if cert == nil || cert.Leaf == nil {
		t.Fatal("Ready closed without a certificate")
	}
	// The chain is usable as is: leaf and intermediate, chaining to the anchors, with our identity and key.
	if id, err := meshtls.VerifyChain(cert.Certificate, f.anchors, localID); err != nil || id != localID {
		t.Errorf("chain does not verify as %s: %v", localID, err)
	}
	if len(cert.Certificate) != 2 {
		t.Errorf("chain of %d certificates, want leaf and intermediate", len(cert.Certificate))
	}
	if key, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || !key.PublicKey.Equal(cert.Leaf.PublicKey) {
		t.Error("private key does not match the leaf")
	}
	if !c.Expiry().Equal(cert.Leaf.NotAfter) {
		t.Errorf("Expiry %s, leaf NotAfter %s", c.Expiry(), cert.Leaf.NotAfter)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].token != "token-1" || calls[0].identity != localID {
		t.Errorf("identity service saw %+v, want one call with the file's token for %s", calls, localID)
	}
	if got := metric(t, reg, "identity_cert_refresh_count"); got != 1 {
		t.Errorf("identity_cert_refresh_count %v, want 1", got)
	}
	if got := metric(t, reg, "identity_cert_expiration_timestamp_seconds"); got != float64(cert.Leaf.NotAfter.Unix()) {
		t.Errorf("identity_cert_expiration_timestamp_seconds %v, want %d", got, cert.Leaf.NotAfter.Unix())
	}
}

// TestRenewsAt70PercentWithFreshToken: with a 4s lifetime the certificate is renewed after 70 % of what is left
// of it and before it expires, with the token read again from the file (the kubelet rotates it).
func TestRenewsAt70PercentWithFreshToken(t *testing.T) {
	t.Parallel()
	const lifetime = 4 * time.Second
	f := startIdentity(t, lifetime)
	c, reg, tokenFile := newClient(t, f, "token-1")
	testutil.RunInBackground(t, c.Run)
	waitReady(t, c)
	first := c.Certificate()
	writeToken(t, tokenFile, "token-2")

	testutil.Eventually(t, 2*lifetime, "a renewal", func() bool { return len(f.Calls()) >= 2 })
	calls := f.Calls()
	issued, renewed := calls[0], calls[1]
	// Certificates carry whole seconds, so the NotAfter the client sees may be up to a second before issue+lifetime;
	// the client waits 70 % of what is left from when the answer reached it, which is no earlier than issue.
	if gap, least := renewed.at.Sub(issued.at), time.Duration(0.7*float64(issued.notAfter.Sub(issued.at))); gap < least-10*time.Millisecond {
		t.Errorf("renewed %s after the first certificate, before 70%% of its lifetime (%s)", gap, least)
	}
	if !renewed.at.Before(issued.notAfter) {
		t.Errorf("renewed at %s, after the first certificate expired at %s", renewed.at, issued.notAfter)
	}
	if renewed.token != "token-2" {
		t.Errorf("renewal sent token %q, want the rewritten file's token-2", renewed.token)
	}

	testutil.Eventually(t, 5*time.Second, "the renewed certificate in use", func() bool {
		return c.Certificate().Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0
	})
	second := c.Certificate()
	if !second.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(first.Leaf.PublicKey) {
		t.Error("the key changed on renewal; it is generated once and kept")
	}
	if second.Leaf.NotAfter.Before(first.Leaf.NotAfter) {
		t.Errorf("renewed certificate expires %s, before the first (%s)", second.Leaf.NotAfter, first.Leaf.NotAfter)
	}
	if got := metric(t, reg, "identity_cert_refresh_count"); got < 2 {
		t.Errorf("identity_cert_refresh_count %v, want at least 2", got)
	}
}

// TestRetriesWithBackoff: while the identity service fails, attempts are spaced by a doubling, jittered backoff
// (from 250ms, at least half of it each time), each failure is counted, and the first success ends the wait.
func TestRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	f := startIdentity(t, time.Hour, unavailable, unavailable, unavailable)
	c, reg, _ := newClient(t, f, "token-1")
	testutil.RunInBackground(t, c.Run)
	waitReady(t, c)

	calls := f.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 3 failures and a success", len(calls))
	}
	for i, least := range []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < least {
			t.Errorf("retry %d came %s after the failure, want at least %s", i+1, gap, least)
		}
	}
	if got := metric(t, reg, "identity_cert_refresh_failures_total"); got != 3 {
		t.Errorf("identity_cert_refresh_failures_total %v, want 3", got)
	}
	if got := metric(t, reg, "identity_cert_refresh_count"); got != 1 {
		t.Errorf("identity_cert_refresh_count %v, want 1", got)
	}
}

// TestKeepsCertificateWhileRenewalFails: failed renewals leave the current certificate in use until a retry
// succeeds.
func TestKeepsCertificateWhileRenewalFails(t *testing.T) {
	t.Parallel()
	f := startIdentity(t, 2*time.Second, issue)
	f.answerThen(unavailable)
	c, reg, _ := newClient(t, f, "token-1")
	testutil.RunInBackground(t, c.Run)
	waitReady(t, c)
	first := c.Certificate()

	testutil.Eventually(t, 10*time.Second, "two failed renewals", func() bool {
		return metric(t, reg, "identity_cert_refresh_failures_total") >= 2
	})
	if c.Certificate() != first {
		t.Error("the certificate changed although every renewal failed")
	}
	f.answerThen(issue)
	testutil.Eventually(t, 10*time.Second, "a renewal once the service answers", func() bool { return c.Certificate() != first })
}

// TestRejectsUnusableCertificates: an answer for another identity or another key is a failed attempt, never the
// certificate in use.
func TestRejectsUnusableCertificates(t *testing.T) {
	t.Parallel()
	f := startIdentity(t, time.Hour, wrongIdentity, wrongKey)
	c, reg, _ := newClient(t, f, "token-1")
	testutil.RunInBackground(t, c.Run)
	waitReady(t, c)

	if got := len(f.Calls()); got != 3 {
		t.Errorf("%d calls, want two rejected answers and a good one", got)
	}
	if got := metric(t, reg, "identity_cert_refresh_failures_total"); got != 2 {
		t.Errorf("identity_cert_refresh_failures_total %v, want 2", got)
	}
	cert := c.Certificate()
	if id, err := meshtls.VerifyChain(cert.Certificate, f.anchors, localID); err != nil || id != localID {
		t.Errorf("certificate in use is not ours: %v", err)
	}
	if !cert.PrivateKey.(*ecdsa.PrivateKey).PublicKey.Equal(cert.Leaf.PublicKey) {
		t.Error("certificate in use does not match the private key")
	}
}

// TestWaitsForTokenFile: without the token file (the projected volume not there yet) nothing is sent, the attempt
// counts as failed, and the file is read again on the next attempt.
func TestWaitsForTokenFile(t *testing.T) {
	t.Parallel()
	f := startIdentity(t, time.Hour)
	c, reg, tokenFile := newClient(t, f, "")
	testutil.RunInBackground(t, c.Run)

	testutil.Eventually(t, 5*time.Second, "a failed attempt", func() bool {
		return metric(t, reg, "identity_cert_refresh_failures_total") >= 1
	})
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls without a token", n)
	}
	writeToken(t, tokenFile, "late-token")
	waitReady(t, c)
	if calls := f.Calls(); len(calls) != 1 || calls[0].token != "late-token" {
		t.Errorf("calls %+v, want one with the token written late", calls)
	}
}

func TestNewRejectsBadIdentity(t *testing.T) {
	t.Parallel()
	_, err := identityclient.New(identityclient.Config{LocalName: "spiffe://cluster.local/web"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err == nil {
		t.Error("New accepted an identity that is not spiffe://<td>/ns/<ns>/sa/<sa>")
	}
}
