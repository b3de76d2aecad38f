// Package identity is the mesh's certificate authority: it holds the trust anchors and the issuer, signs workload
// certificates for callers that prove their identity (Certify), and issues the control plane's own serving
// certificates. It never logs keys or tokens.
package identity

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
)

// File names of generated material in the data directory.
const (
	TrustAnchorsFileName = "ca.crt"
	IssuerCertFileName   = "issuer.crt"
	IssuerKeyFileName    = "issuer.key"
)

const caLifetime = 365 * 24 * time.Hour

// CA is the trust anchors plus the issuer (intermediate) that signs leaves.
type CA struct {
	AnchorsPEM []byte
	Anchors    *x509.CertPool
	Issuer     *x509.Certificate
	IssuerKey  crypto.Signer
}

// CAFiles names user-provided CA material. All three or none.
type CAFiles struct {
	TrustAnchors, IssuerCert, IssuerKey string
}

func (f CAFiles) empty() bool { return f.TrustAnchors == "" && f.IssuerCert == "" && f.IssuerKey == "" }

// LoadOrGenerateCA loads the user's CA files when given (and copies the anchors into dataDir/ca.crt so proxies
// can be pointed there), else loads the material generated into dataDir by an earlier run, else generates it.
func LoadOrGenerateCA(dataDir, trustDomain string, files CAFiles, now time.Time) (*CA, error) {
	if !files.empty() {
		if files.TrustAnchors == "" || files.IssuerCert == "" || files.IssuerKey == "" {
			return nil, errors.New("identity: the trust anchors, issuer certificate and issuer key files must be given together")
		}
		ca, err := LoadCA(files, now)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dataDir, TrustAnchorsFileName), ca.AnchorsPEM, 0o644); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		return ca, nil
	}
	gen := CAFiles{
		TrustAnchors: filepath.Join(dataDir, TrustAnchorsFileName),
		IssuerCert:   filepath.Join(dataDir, IssuerCertFileName),
		IssuerKey:    filepath.Join(dataDir, IssuerKeyFileName),
	}
	var present, missing []string
	for _, p := range []string{gen.TrustAnchors, gen.IssuerCert, gen.IssuerKey} {
		if _, err := os.Stat(p); err == nil {
			present = append(present, p)
		} else {
			missing = append(missing, p)
		}
	}
	switch {
	case len(missing) == 0:
		return LoadCA(gen, now)
	case len(present) > 0:
		// Regenerating would silently change the trust anchors every proxy trusts; make the operator choose.
		return nil, fmt.Errorf("identity: data directory has %v but not %v; restore them, pass the issuer files explicitly, or remove the partial set to generate a new CA", present, missing)
	}
	ca, anchorPEM, issuerPEM, keyPEM, err := GenerateCA(trustDomain, now)
	if err != nil {
		return nil, err
	}
	// Key first, anchors last: a crash in between leaves a partial set that the check above reports.
	if err := writeFileAtomic(gen.IssuerKey, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileAtomic(gen.IssuerCert, issuerPEM, 0o644); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileAtomic(gen.TrustAnchors, anchorPEM, 0o644); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return ca, nil
}

// GenerateCA creates a self-signed root and an intermediate issuer under it, both ECDSA P-256, valid a year.
func GenerateCA(trustDomain string, now time.Time) (ca *CA, anchorPEM, issuerPEM, keyPEM []byte, err error) {
	root, rootKey, err := meshtls.NewCA("root.sinew."+trustDomain, 1, nil, nil, now, caLifetime)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	issuer, issuerKey, err := meshtls.NewCA("identity.sinew."+trustDomain, 0, root, rootKey, now, caLifetime)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if keyPEM, err = meshtls.EncodeKey(issuerKey); err != nil {
		return nil, nil, nil, nil, err
	}
	anchorPEM, issuerPEM = meshtls.EncodeCertificate(root.Raw), meshtls.EncodeCertificate(issuer.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &CA{AnchorsPEM: anchorPEM, Anchors: pool, Issuer: issuer, IssuerKey: issuerKey}, anchorPEM, issuerPEM, keyPEM, nil
}

// LoadCA reads and validates CA material: the anchors parse, the issuer is a CA that chains to one of them and is
// currently valid, and the key belongs to the issuer.
func LoadCA(files CAFiles, now time.Time) (*CA, error) {
	anchorPEM, err := os.ReadFile(files.TrustAnchors)
	if err != nil {
		return nil, fmt.Errorf("identity trust anchors: %w", err)
	}
	anchors, err := meshtls.ParseCertificates(anchorPEM)
	if err != nil {
		return nil, fmt.Errorf("identity trust anchors %s: %w", files.TrustAnchors, err)
	}
	pool := x509.NewCertPool()
	for _, a := range anchors {
		if !a.IsCA {
			return nil, fmt.Errorf("identity trust anchors %s: certificate %q is not a CA", files.TrustAnchors, a.Subject.CommonName)
		}
		pool.AddCert(a)
	}

	issuerPEM, err := os.ReadFile(files.IssuerCert)
	if err != nil {
		return nil, fmt.Errorf("identity issuer certificate: %w", err)
	}
	issuerChain, err := meshtls.ParseCertificates(issuerPEM)
	if err != nil {
		return nil, fmt.Errorf("identity issuer certificate %s: %w", files.IssuerCert, err)
	}
	issuer := issuerChain[0]
	if !issuer.IsCA || issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("identity issuer certificate %s: not a CA certificate (needs basicConstraints CA:true and keyUsage certSign)", files.IssuerCert)
	}
	if now.Before(issuer.NotBefore) || now.After(issuer.NotAfter) {
		return nil, fmt.Errorf("identity issuer certificate %s: not valid now (valid %s to %s)", files.IssuerCert,
			issuer.NotBefore.Format(time.RFC3339), issuer.NotAfter.Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, c := range issuerChain[1:] {
		inter.AddCert(c)
	}
	if _, err := issuer.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("identity issuer certificate %s: not signed by any trust anchor in %s: %w", files.IssuerCert, files.TrustAnchors, err)
	}

	keyPEM, err := os.ReadFile(files.IssuerKey)
	if err != nil {
		return nil, fmt.Errorf("identity issuer key: %w", err)
	}
	key, err := meshtls.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity issuer key %s: %w", files.IssuerKey, err)
	}
	if !meshtls.KeyMatches(key, issuer) {
		return nil, fmt.Errorf("identity issuer key %s: does not match the issuer certificate %s", files.IssuerKey, files.IssuerCert)
	}
	return &CA{AnchorsPEM: anchorPEM, Anchors: pool, Issuer: issuer, IssuerKey: key}, nil
}

// writeFileAtomic writes through a temporary file and a rename, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after the rename there is nothing left to remove
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Leaf describes a certificate to issue.
type Leaf struct {
	ID        *url.URL
	DNSName   string
	PublicKey crypto.PublicKey
	Lifetime  time.Duration
}

// Sign issues a leaf under the issuer. Its lifetime is capped at the issuer's.
func (ca *CA) Sign(l Leaf, now time.Time) (*x509.Certificate, error) {
	notAfter := now.Add(l.Lifetime)
	if notAfter.After(ca.Issuer.NotAfter) {
		notAfter = ca.Issuer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          meshtls.Serial(),
		Subject:               pkix.Name{CommonName: l.DNSName},
		NotBefore:             now.Add(-20 * time.Second), // tolerate clock skew between nodes
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{l.ID},
		DNSNames:              []string{l.DNSName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Issuer, l.PublicKey, ca.IssuerKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
