// Package certs makes and checks the certificates an install needs: the identity trust anchor and issuer (the mesh
// CA, made by controlplane.GenerateCA like the control plane's own) and the proxy injector's webhook CA and serving
// certificate. It reads no files and talks to no cluster: callers give it PEM and a clock, and errors name what the
// caller says the PEM came from.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
)

// DefaultLifetime is how long generated certificates are valid (controlplane.GenerateCA's too).
const DefaultLifetime = 365 * 24 * time.Hour

// Identity is the mesh CA: trust anchors (PEM, one or more CA certificates), the issuer certificate (an
// intermediate CA under one of them, optionally followed by its chain) and the issuer's key.
type Identity struct {
	TrustAnchorsPEM, IssuerCertPEM, IssuerKeyPEM []byte
}

// Webhook is the proxy injector's TLS: the CA the API server trusts for it, the serving certificate and its key.
type Webhook struct {
	CAPEM, CertPEM, KeyPEM []byte
}

// Generator makes fresh certificates. Tests replace it with one that returns fixed ones.
type Generator interface {
	// Identity makes a self-signed trust anchor and an issuer under it for the trust domain, valid a year.
	Identity(trustDomain string) (Identity, error)
	// Webhook makes a CA and a serving certificate for the DNS names (the first is the common name).
	Webhook(dnsNames []string) (Webhook, error)
}

// CAFunc makes a mesh CA for a trust domain: PEM trust anchors, issuer certificate and issuer key. The CLI gives
// controlplane.GenerateCA, so that the identity it installs is made like the control plane's own; it is passed in
// rather than imported so that what only checks certificates (package check, and the viz extension's commands
// through it) does not link the control plane.
type CAFunc func(trustDomain string) (anchors, issuer, key []byte, err error)

// NewGenerator returns a Generator of ECDSA P-256 certificates: the identity's from ca, the webhook's valid for
// lifetime from now().
func NewGenerator(now func() time.Time, lifetime time.Duration, ca CAFunc) Generator {
	if now == nil {
		now = time.Now
	}
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	return ecdsaGenerator{now: now, lifetime: lifetime, ca: ca}
}

type ecdsaGenerator struct {
	now      func() time.Time
	lifetime time.Duration
	ca       CAFunc
}

var _ Generator = ecdsaGenerator{}

func (g ecdsaGenerator) Identity(trustDomain string) (Identity, error) {
	if g.ca == nil {
		return Identity{}, errors.New("identity certificates: this generator has no CA function")
	}
	anchors, issuer, key, err := g.ca(trustDomain)
	if err != nil {
		return Identity{}, err
	}
	return Identity{TrustAnchorsPEM: anchors, IssuerCertPEM: issuer, IssuerKeyPEM: key}, nil
}

func (g ecdsaGenerator) Webhook(dnsNames []string) (Webhook, error) {
	if len(dnsNames) == 0 {
		return Webhook{}, errors.New("webhook certificate: no DNS name")
	}
	now := g.now()
	ca, caKey, err := meshtls.NewCA("webhook-ca.sinew", 0, nil, nil, now, g.lifetime)
	if err != nil {
		return Webhook{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Webhook{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: meshtls.Serial(),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(g.lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook certificate: %w", err)
	}
	keyPEM, err := meshtls.EncodeKey(key)
	if err != nil {
		return Webhook{}, err
	}
	return Webhook{CAPEM: meshtls.EncodeCertificate(ca.Raw), CertPEM: meshtls.EncodeCertificate(der), KeyPEM: keyPEM}, nil
}

// Sources names where each part of an Identity came from, for error messages (file paths, or object names).
type Sources struct {
	TrustAnchors, IssuerCert, IssuerKey string
}

// Checked is a parsed, validated Identity.
type Checked struct {
	Anchors []*x509.Certificate
	Issuer  *x509.Certificate
}

// CheckIdentity validates an Identity at time now: the anchors parse and are CA certificates valid now, the issuer
// is a CA (CA:true, keyUsage certSign) valid now that chains to one of the anchors, and the key is the issuer's.
// The error names the source at fault and the problem.
func CheckIdentity(id Identity, src Sources, now time.Time) (*Checked, error) {
	anchors, err := meshtls.ParseCertificates(id.TrustAnchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("trust anchors %s: %w", src.TrustAnchors, err)
	}
	pool := x509.NewCertPool()
	for _, a := range anchors {
		if !a.IsCA {
			return nil, fmt.Errorf("trust anchors %s: certificate %q is not a CA (basicConstraints CA:true)", src.TrustAnchors, Name(a))
		}
		if err := ValidAt(a, now); err != nil {
			return nil, fmt.Errorf("trust anchors %s: certificate %q %w", src.TrustAnchors, Name(a), err)
		}
		pool.AddCert(a)
	}
	chain, err := meshtls.ParseCertificates(id.IssuerCertPEM)
	if err != nil {
		return nil, fmt.Errorf("issuer certificate %s: %w", src.IssuerCert, err)
	}
	issuer := chain[0]
	if !issuer.IsCA || issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("issuer certificate %s: %q is not a CA certificate (it needs basicConstraints CA:true and keyUsage certSign to sign workload certificates)", src.IssuerCert, Name(issuer))
	}
	if err := ValidAt(issuer, now); err != nil {
		return nil, fmt.Errorf("issuer certificate %s: %q %w", src.IssuerCert, Name(issuer), err)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := issuer.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("issuer certificate %s: %q does not chain to the trust anchors in %s: %w", src.IssuerCert, Name(issuer), src.TrustAnchors, err)
	}
	key, err := meshtls.ParseKey(id.IssuerKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("issuer key %s: %w", src.IssuerKey, err)
	}
	if !meshtls.KeyMatches(key, issuer) {
		return nil, fmt.Errorf("issuer key %s: is not the key of the issuer certificate %s", src.IssuerKey, src.IssuerCert)
	}
	return &Checked{Anchors: anchors, Issuer: issuer}, nil
}

// CheckWebhook validates webhook TLS at time now: the serving certificate is valid now, names every DNS name,
// chains to the CA, and the key is its key.
func CheckWebhook(w Webhook, dnsNames []string, now time.Time) (*x509.Certificate, error) {
	cas, err := meshtls.ParseCertificates(w.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("webhook CA: %w", err)
	}
	chain, err := meshtls.ParseCertificates(w.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	cert := chain[0]
	if err := ValidAt(cert, now); err != nil {
		return nil, fmt.Errorf("webhook certificate %q %w", Name(cert), err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	for _, n := range dnsNames {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: now}); err != nil {
			return nil, fmt.Errorf("webhook certificate %q for %s: %w", Name(cert), n, err)
		}
	}
	key, err := meshtls.ParseKey(w.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	if !meshtls.KeyMatches(key, cert) {
		return nil, errors.New("webhook key: is not the key of the webhook certificate")
	}
	return cert, nil
}

// ValidAt says why c is not valid at now (nil when it is), to follow the certificate's name in an error.
func ValidAt(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("is not valid before %s (is a clock wrong?)", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("expired on %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Name is a certificate's common name, or its whole subject when it has none.
func Name(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return strings.TrimSpace(c.Subject.String())
}
