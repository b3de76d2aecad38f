// Package meshtls holds the TLS rules every sinew component shares: SPIFFE identities carried as URI SANs,
// TLS 1.3 only, and peer verification against the mesh trust anchors by SPIFFE ID rather than DNS name.
// It knows nothing about Kubernetes, the proxy or the control plane.
package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ALPN is the protocol a sinew proxy offers when it opens mesh mTLS to another sinew proxy. An inbound proxy
// terminates TLS only for ClientHellos that offer it; any other TLS is the application's and passes through.
const ALPN = "sinew/1"

// ID builds the SPIFFE ID of a service account.
func ID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// ParseID splits a SPIFFE ID of the form spiffe://<td>/ns/<ns>/sa/<sa>.
func ParseID(id string) (trustDomain, namespace, serviceAccount string, err error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", "", fmt.Errorf("identity %q: must start with spiffe://", id)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[0] == "" || parts[1] != "ns" || parts[2] == "" || parts[3] != "sa" || parts[4] == "" {
		return "", "", "", fmt.Errorf("identity %q: must be spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>", id)
	}
	return parts[0], parts[2], parts[4], nil
}

// PeerID returns the single spiffe:// URI SAN of a certificate, or "" when it has none.
func PeerID(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

// ParseAnchors parses a PEM bundle of trust anchors into a pool; every certificate in it must be a CA.
func ParseAnchors(pemBytes []byte) (*x509.CertPool, error) {
	certs, err := ParseCertificates(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	pool := x509.NewCertPool()
	for i, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("trust anchor %d (%s): not a CA certificate", i+1, c.Subject)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// ErrIdentityMismatch means the peer proved an identity other than the one expected.
var ErrIdentityMismatch = errors.New("peer identity mismatch")

// VerifyChain checks rawCerts (leaf first) against anchors and returns the leaf's SPIFFE ID. If want is not
// empty, the ID must equal it.
func VerifyChain(rawCerts [][]byte, anchors *x509.CertPool, want string) (string, error) {
	if len(rawCerts) == 0 {
		return "", errors.New("peer presented no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return "", fmt.Errorf("peer certificate: %w", err)
		}
		certs = append(certs, c)
	}
	return verifyCerts(certs, anchors, want)
}

// verifyCerts is VerifyChain on parsed certificates (a handshake's ConnectionState has them parsed already).
func verifyCerts(certs []*x509.Certificate, anchors *x509.CertPool, want string) (string, error) {
	if len(certs) == 0 {
		return "", errors.New("peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         anchors,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return "", fmt.Errorf("peer certificate does not chain to the mesh trust anchors: %w", err)
	}
	id := PeerID(certs[0])
	if id == "" {
		return "", errors.New("peer certificate has no spiffe:// URI SAN")
	}
	if want != "" && id != want {
		return id, fmt.Errorf("%w: expected %s, got %s", ErrIdentityMismatch, want, id)
	}
	return id, nil
}

// ClientConfig is the TLS configuration for dialing a mesh peer that must prove identity want (any mesh
// identity when empty). getCert supplies the local certificate; it may return an empty certificate when the
// caller has none yet (talking to the identity service).
func ClientConfig(anchors *x509.CertPool, want string, getCert func() *tls.Certificate, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: alpn,
		// Go's default verification matches DNS names; mesh peers are named by SPIFFE URI SANs, which we check
		// ourselves below against the same anchors.
		// VerifyConnection, unlike VerifyPeerCertificate, also runs when a session is resumed, so a resumed
		// session is held to the same identity check as a full handshake.
		InsecureSkipVerify: true, //nolint:gosec // verification is done in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verifyCerts(cs.PeerCertificates, anchors, want)
			return err
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := getCert(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
		CurvePreferences: Curves,
	}
}

// Curves are the key exchanges of mesh TLS, preferred first: the post-quantum hybrid X25519MLKEM768 (as
// Linkerd 2.19 prefers between its proxies), so traffic recorded today cannot be decrypted by a future quantum
// computer, then X25519 and P-256 for peers that lack it.
var Curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// ServerConfig is the TLS configuration of a mesh server. When requireClient is set, clients must present a
// certificate that chains to the anchors (any SPIFFE identity); the caller reads it from the connection state.
func ServerConfig(anchors *x509.CertPool, getCert func() *tls.Certificate, requireClient bool, alpn ...string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: alpn,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := getCert(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate yet")
		},
		CurvePreferences: Curves,
	}
	if requireClient {
		cfg.ClientAuth = tls.RequireAnyClientCert
		// VerifyConnection runs on resumed sessions too (VerifyPeerCertificate does not).
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			_, err := verifyCerts(cs.PeerCertificates, anchors, "")
			return err
		}
	}
	return cfg
}
