package meshtls

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"
)

func TestParseAnchors(t *testing.T) {
	t.Parallel()
	now := time.Now()
	root, rootKey, err := NewCA("root", 1, nil, nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewCA("other", 0, nil, nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: Serial(), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: now, NotAfter: now.Add(time.Hour),
	}, root, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(EncodeCertificate(root.Raw), EncodeCertificate(other.Raw)...)
	pool, err := ParseAnchors(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Equal(func() *x509.CertPool { p := x509.NewCertPool(); p.AddCert(root); p.AddCert(other); return p }()) {
		t.Error("pool does not hold both anchors")
	}
	for name, tc := range map[string]struct {
		pem  []byte
		want string
	}{
		"empty":    {nil, "trust anchors: no PEM certificate"},
		"a leaf":   {append(EncodeCertificate(root.Raw), EncodeCertificate(leafDER)...), "trust anchor 2 (CN=leaf): not a CA certificate"},
		"garbage":  {EncodeCertificate([]byte("x")), "trust anchors: PEM block 1: not a valid certificate"},
		"key only": {[]byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"), "no PEM certificate"},
	} {
		if _, err := ParseAnchors(tc.pem); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseAnchors error %v, want %q", name, err, tc.want)
		}
	}
}
