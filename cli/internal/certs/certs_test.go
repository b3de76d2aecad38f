package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/meshtls"
)

var writeFixtures = flag.Bool("write-fixtures", false, "regenerate the fixed certificates in cli/testdata/install")

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func gen(t *testing.T, lifetime time.Duration) Generator {
	t.Helper()
	return NewGenerator(func() time.Time { return t0 }, lifetime, controlplane.GenerateCA)
}

func TestGeneratedIdentityChecks(t *testing.T) {
	before := time.Now()
	id, err := gen(t, 0).Identity("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	c, err := CheckIdentity(id, Sources{"a", "b", "c"}, after.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// controlplane.GenerateCA's clock is time.Now; certificate times are whole seconds
	if end := c.Issuer.NotAfter; end.Before(before.Add(DefaultLifetime).Truncate(time.Second)) || end.After(after.Add(DefaultLifetime)) {
		t.Errorf("issuer valid until %s, want %s after it was made (%s to %s)", end, DefaultLifetime, before, after)
	}
	if c.Anchors[0].Subject.CommonName != "root.sinew.cluster.local" || c.Issuer.Subject.CommonName != "identity.sinew.cluster.local" {
		t.Errorf("names %q %q", c.Anchors[0].Subject.CommonName, c.Issuer.Subject.CommonName)
	}
	if _, ok := c.Issuer.PublicKey.(*ecdsa.PublicKey); !ok || c.Issuer.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("issuer key is %T, want ECDSA P-256", c.Issuer.PublicKey)
	}
	if !c.Issuer.MaxPathLenZero {
		t.Error("issuer may sign CAs (MaxPathLen 0 not set)")
	}
	// a year and a day later nothing is valid
	if _, err := CheckIdentity(id, Sources{"a.crt", "b", "c"}, after.Add(DefaultLifetime+24*time.Hour)); err == nil || !strings.Contains(err.Error(), "trust anchors a.crt") || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired anchors: %v", err)
	}
}

func TestCheckIdentityRejects(t *testing.T) {
	g := gen(t, 0)
	a, err := g.Identity("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Identity("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	src := Sources{"ca.crt", "issuer.crt", "issuer.key"}
	cases := map[string]struct {
		id   Identity
		want string
	}{
		"issuer of another CA":  {Identity{a.TrustAnchorsPEM, b.IssuerCertPEM, b.IssuerKeyPEM}, `issuer certificate issuer.crt: "identity.sinew.cluster.local" does not chain to the trust anchors in ca.crt`},
		"key of another issuer": {Identity{a.TrustAnchorsPEM, a.IssuerCertPEM, b.IssuerKeyPEM}, "issuer key issuer.key: is not the key of the issuer certificate issuer.crt"},
		"garbage anchors":       {Identity{[]byte("hello"), a.IssuerCertPEM, a.IssuerKeyPEM}, "trust anchors ca.crt: no PEM certificate in it"},
		"key as certificate":    {Identity{a.TrustAnchorsPEM, a.IssuerKeyPEM, a.IssuerKeyPEM}, "issuer certificate issuer.crt: no PEM certificate"},
		"certificate as key":    {Identity{a.TrustAnchorsPEM, a.IssuerCertPEM, a.IssuerCertPEM}, "issuer key issuer.key: no PEM private key"},
		"leaf as issuer":        {Identity{a.TrustAnchorsPEM, leaf(t, a), a.IssuerKeyPEM}, `issuer certificate issuer.crt: "leaf" is not a CA certificate`},
		"leaf as anchor":        {Identity{leaf(t, a), a.IssuerCertPEM, a.IssuerKeyPEM}, `trust anchors ca.crt: certificate "leaf" is not a CA`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := CheckIdentity(c.id, src, time.Now().Add(time.Hour))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// centuryIdentity is what controlplane.GenerateCA makes (root.sinew.cluster.local, and identity.sinew.cluster.local
// under it) but valid for lifetime from start: GenerateCA's are valid a year from now, the fixtures must outlive
// the golden files.
func centuryIdentity(t *testing.T, start time.Time, lifetime time.Duration) Identity {
	t.Helper()
	root, rootKey, err := meshtls.NewCA("root.sinew.cluster.local", 1, nil, nil, start, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	issuer, issuerKey, err := meshtls.NewCA("identity.sinew.cluster.local", 0, root, rootKey, start, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := meshtls.EncodeKey(issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{TrustAnchorsPEM: meshtls.EncodeCertificate(root.Raw), IssuerCertPEM: meshtls.EncodeCertificate(issuer.Raw), IssuerKeyPEM: keyPEM}
}

// leaf is a non-CA certificate signed by id's issuer.
func leaf(t *testing.T, id Identity) []byte {
	t.Helper()
	issuers, _ := meshtls.ParseCertificates(id.IssuerCertPEM)
	key, _ := meshtls.ParseKey(id.IssuerKeyPEM)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: meshtls.Serial(), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: t0, NotAfter: t0.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuers[0], &k.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return meshtls.EncodeCertificate(der)
}

func TestWebhook(t *testing.T) {
	names := []string{"sinew-proxy-injector.sinew.svc", "sinew-proxy-injector.sinew.svc.cluster.local"}
	w, err := gen(t, 0).Webhook(names)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckWebhook(w, names, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckWebhook(w, []string{"other.sinew.svc"}, t0.Add(time.Hour)); err == nil {
		t.Error("a certificate for other names passed")
	}
	w2, _ := gen(t, 0).Webhook(names)
	if _, err := CheckWebhook(Webhook{w2.CAPEM, w.CertPEM, w.KeyPEM}, names, t0.Add(time.Hour)); err == nil {
		t.Error("a certificate of another CA passed")
	}
	if _, err := CheckWebhook(Webhook{w.CAPEM, w.CertPEM, w2.KeyPEM}, names, t0.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "webhook key") {
		t.Errorf("wrong key: %v", err)
	}
}

// TestWriteFixtures regenerates the fixed certificates the CLI's golden tests install (valid for a century, so the
// golden files stay valid): go test ./cli/internal/certs -run TestWriteFixtures -write-fixtures
func TestWriteFixtures(t *testing.T) {
	if !*writeFixtures {
		t.Skip("run with -write-fixtures to regenerate cli/testdata/install certificates")
	}
	start, century := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 100*365*24*time.Hour
	id, other := centuryIdentity(t, start, century), centuryIdentity(t, start, century)
	wh, err := NewGenerator(func() time.Time { return start }, century, nil).Webhook([]string{"sinew-proxy-injector.sinew.svc"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "testdata", "install")
	files := map[string][]byte{
		"ca.crt": id.TrustAnchorsPEM, "issuer.crt": id.IssuerCertPEM, "issuer.key": id.IssuerKeyPEM,
		"other-issuer.crt": other.IssuerCertPEM, "other-issuer.key": other.IssuerKeyPEM,
		"webhook-ca.crt": wh.CAPEM, "webhook.crt": wh.CertPEM, "webhook.key": wh.KeyPEM,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
