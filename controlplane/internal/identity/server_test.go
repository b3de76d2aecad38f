package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// startIdentity serves Certify over real TLS on loopback for workloads emojivoto/web (sa web) and
// emojivoto/voting (sa voting).
func startIdentity(t *testing.T) (identityv1.IdentityClient, *CA, []byte) {
	t.Helper()
	ca, _, _, _, err := GenerateCA("cluster.local", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateJoinKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	store.Update(model.Resources{Workloads: []*model.Workload{
		{Namespace: "emojivoto", Name: "web", ServiceAccount: "web", Address: netip.MustParseAddr("127.0.0.1")},
		{Namespace: "emojivoto", Name: "voting", ServiceAccount: "voting", Address: netip.MustParseAddr("127.0.0.1")},
	}})
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	sc, err := NewServingCert(ca, td, "sinew", "sinew-identity", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ServerTLS(sc))))
	identityv1.RegisterIdentityServer(srv, NewServer(ServerConfig{
		CA: ca, TrustDomain: td, CertLifetime: 24 * time.Hour,
		Authenticator: NewJoinTokenAuthenticator(key, store.Snapshot),
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: ca.Anchors, ServerName: DNSName(td, "sinew", "sinew-identity"),
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return identityv1.NewIdentityClient(conn), ca, key
}

func csrFor(t *testing.T, uris ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		p, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertify(t *testing.T) {
	t.Parallel()
	client, ca, key := startIdentity(t)
	now := time.Now()
	tok := func(ns, wl string) []byte {
		s, err := IssueJoinToken(key, ns, wl, now)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(s)
	}
	const web = "spiffe://cluster.local/ns/emojivoto/sa/web"
	const voting = "spiffe://cluster.local/ns/emojivoto/sa/voting"
	badSig := csrFor(t, web)
	badSig[len(badSig)-3] ^= 0xff
	forged, _ := IssueJoinToken(make([]byte, 32), "emojivoto", "web", now)

	for name, tc := range map[string]struct {
		identity string
		token    []byte
		csr      []byte
		want     codes.Code
		msg      string
	}{
		"valid":                     {web, tok("emojivoto", "web"), csrFor(t, web), codes.OK, ""},
		"token for another":         {voting, tok("emojivoto", "web"), csrFor(t, voting), codes.PermissionDenied, "token for emojivoto/web may not certify " + voting},
		"token for unknown wl":      {web, tok("emojivoto", "ghost"), csrFor(t, web), codes.PermissionDenied, "no such workload"},
		"garbage token":             {web, []byte("garbage"), csrFor(t, web), codes.Unauthenticated, ""},
		"no token":                  {web, nil, csrFor(t, web), codes.Unauthenticated, ""},
		"token signed by other key": {web, []byte(forged), csrFor(t, web), codes.Unauthenticated, ""},
		"csr SAN differs":           {web, tok("emojivoto", "web"), csrFor(t, voting), codes.InvalidArgument, "exactly one URI SAN"},
		"csr two SANs":              {web, tok("emojivoto", "web"), csrFor(t, web, voting), codes.InvalidArgument, "exactly one URI SAN"},
		"csr bad signature":         {web, tok("emojivoto", "web"), badSig, codes.InvalidArgument, "bad signature"},
		"csr garbage":               {web, tok("emojivoto", "web"), []byte{1, 2, 3}, codes.InvalidArgument, "certificate signing request"},
		"foreign trust domain":      {"spiffe://example.org/ns/emojivoto/sa/web", tok("emojivoto", "web"), csrFor(t, "spiffe://example.org/ns/emojivoto/sa/web"), codes.InvalidArgument, "trust domain"},
		"not a workload id":         {"spiffe://cluster.local/web", tok("emojivoto", "web"), csrFor(t, "spiffe://cluster.local/web"), codes.InvalidArgument, "/ns/<namespace>/sa/<serviceaccount>"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Certify(ctx, &identityv1.CertifyRequest{Identity: tc.identity, Token: tc.token, CertificateSigningRequest: tc.csr})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
			if err != nil {
				if !strings.Contains(status.Convert(err).Message(), tc.msg) {
					t.Errorf("message %q, want it to contain %q", status.Convert(err).Message(), tc.msg)
				}
				if strings.Contains(err.Error(), string(tc.token)) && len(tc.token) > 8 {
					t.Error("the error echoes the token")
				}
				return
			}
			leaf, err := x509.ParseCertificate(resp.GetLeafCertificate())
			if err != nil {
				t.Fatal(err)
			}
			inter := x509.NewCertPool()
			for _, der := range resp.GetIntermediateCertificates() {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Anchors, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("leaf does not verify: %v", err)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != web {
				t.Errorf("URI SANs %v", leaf.URIs)
			}
			if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "web.emojivoto.serviceaccount.identity.sinew.cluster.local" {
				t.Errorf("DNS SANs %v", leaf.DNSNames)
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d != 24*time.Hour+20*time.Second {
				t.Errorf("validity %s, want 24h plus 20s of backdating", d)
			}
			if !resp.GetValidUntil().AsTime().Equal(leaf.NotAfter) {
				t.Errorf("valid_until %v, leaf NotAfter %v", resp.GetValidUntil().AsTime(), leaf.NotAfter)
			}
		})
	}
}

func TestServingCertRenews(t *testing.T) {
	t.Parallel()
	ca, _, _, _, err := GenerateCA("cluster.local", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	sc, err := NewServingCert(ca, spiffeid.RequireTrustDomainFromString("cluster.local"), "sinew", "sinew-destination", time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := sc.GetCertificate(nil)
	if u := first.Leaf.URIs; len(u) != 1 || u[0].String() != "spiffe://cluster.local/ns/sinew/sa/sinew-destination" {
		t.Fatalf("serving cert URIs %v", u)
	}
	now = now.Add(30 * time.Minute)
	if same, _ := sc.GetCertificate(nil); same != first {
		t.Error("renewed before 70% of the lifetime")
	}
	now = now.Add(15 * time.Minute)
	if renewed, _ := sc.GetCertificate(nil); renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("not renewed after 70% of the lifetime")
	}
}

func TestJoinKeyIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/new"
	a, err := LoadOrCreateJoinKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateJoinKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || len(a) != 32 {
		t.Error("join key not stable across loads")
	}
}
