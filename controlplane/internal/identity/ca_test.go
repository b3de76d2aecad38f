package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGeneratedCAChainsAndIsReused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	ca, err := LoadOrGenerateCA(dir, "cluster.local", CAFiles{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issuer.Verify(x509.VerifyOptions{Roots: ca.Anchors, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("issuer does not chain to the anchors: %v", err)
	}
	if got := ca.Issuer.NotAfter.Sub(now); got < 364*24*time.Hour {
		t.Errorf("issuer valid for %s, want a year", got)
	}
	if pub, ok := ca.Issuer.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("issuer key %T, want ECDSA P-256", ca.Issuer.PublicKey)
	}
	if fi, err := os.Stat(filepath.Join(dir, IssuerKeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("issuer.key mode: %v %v", fi, err)
	}
	again, err := LoadOrGenerateCA(dir, "cluster.local", CAFiles{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Issuer.Equal(ca.Issuer) || string(again.AnchorsPEM) != string(ca.AnchorsPEM) {
		t.Error("restart generated new CA material instead of reusing it")
	}

	// A partial set is refused rather than silently replaced.
	if err := os.Remove(filepath.Join(dir, IssuerKeyFileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrGenerateCA(dir, "cluster.local", CAFiles{}, now); err == nil || !strings.Contains(err.Error(), "issuer.key") {
		t.Errorf("partial CA material: %v, want an error naming issuer.key", err)
	}
}

func TestBringYourOwnCA(t *testing.T) {
	t.Parallel()
	now := time.Now()
	dir := t.TempDir()
	_, anchors, issuer, key, err := GenerateCA("cluster.local", now)
	if err != nil {
		t.Fatal(err)
	}
	_, foreignAnchors, foreignIssuer, foreignKey, err := GenerateCA("cluster.local", now)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKeyDER, _ := x509.MarshalECPrivateKey(otherKey)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := CAFiles{TrustAnchors: write("anchors.pem", anchors), IssuerCert: write("issuer.pem", issuer), IssuerKey: write("issuer-key.pem", key)}
	foreign := write("foreign-issuer.pem", foreignIssuer)
	write("foreign-anchors.pem", foreignAnchors)
	foreignKeyFile := write("foreign-key.pem", foreignKey)
	wrongKey := write("wrong-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherKeyDER}))
	notPEM := write("garbage.pem", []byte("hello"))

	for name, tc := range map[string]struct {
		files CAFiles
		want  string // error substring; "" means accepted
	}{
		"accepted":              {files, ""},
		"mismatched key":        {CAFiles{files.TrustAnchors, files.IssuerCert, wrongKey}, "identity issuer key " + wrongKey + ": does not match the issuer certificate"},
		"foreign issuer":        {CAFiles{files.TrustAnchors, foreign, foreignKeyFile}, "identity issuer certificate " + foreign + ": not signed by any trust anchor"},
		"issuer not PEM":        {CAFiles{files.TrustAnchors, notPEM, files.IssuerKey}, "no PEM certificate in it"},
		"anchors missing":       {CAFiles{filepath.Join(dir, "nope"), files.IssuerCert, files.IssuerKey}, "identity trust anchors"},
		"only some files given": {CAFiles{TrustAnchors: files.TrustAnchors}, "must be given together"},
	} {
		dataDir := t.TempDir()
		ca, err := LoadOrGenerateCA(dataDir, "cluster.local", tc.files, now)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			onDisk, _ := os.ReadFile(filepath.Join(dataDir, TrustAnchorsFileName))
			if string(onDisk) != string(anchors) || string(ca.AnchorsPEM) != string(anchors) {
				t.Errorf("%s: anchors not copied to the data dir", name)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}
