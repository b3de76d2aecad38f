package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServingCert is a control-plane server's own certificate, issued by the CA in process and renewed before it
// expires (at 70% of its lifetime), from GetCertificate so that no timer is needed.
type ServingCert struct {
	ca       *CA
	td       spiffeid.TrustDomain
	ns, sa   string
	lifetime time.Duration
	now      func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

// NewServingCert issues the first certificate for spiffe://<td>/ns/<ns>/sa/<sa>.
func NewServingCert(ca *CA, td spiffeid.TrustDomain, ns, sa string, lifetime time.Duration, now func() time.Time) (*ServingCert, error) {
	if now == nil {
		now = time.Now
	}
	s := &ServingCert{ca: ca, td: td, ns: ns, sa: sa, lifetime: lifetime, now: now}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// ID is the certificate's SPIFFE ID.
func (s *ServingCert) ID() spiffeid.ID {
	return spiffeid.RequireFromSegments(s.td, "ns", s.ns, "sa", s.sa)
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *ServingCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.renewAt) {
		return s.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := s.ca
	leaf, err := ca.Sign(Leaf{ID: s.ID().URL(), DNSName: DNSName(s.td, s.ns, s.sa), PublicKey: &key.PublicKey, Lifetime: s.lifetime}, now)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil // keep serving the old one; it is still valid for a while
		}
		return nil, fmt.Errorf("issuing serving certificate for %s: %w", s.ID(), err)
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Issuer.Raw}, PrivateKey: key, Leaf: leaf}
	s.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 7 / 10)
	return s.cert, nil
}

// CertificateSource supplies a server's current certificate: a ServingCert issued in process, or (Kubernetes
// mode, outside the identity service) one obtained from the identity service like any workload's.
type CertificateSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

var _ CertificateSource = (*ServingCert)(nil)

// SetCA switches to a rotated issuer: the next handshake gets a certificate from it.
func (s *ServingCert) SetCA(ca *CA) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ca = ca
	s.renewAt = time.Time{}
}

// ServerTLS is TLS 1.3 with the serving certificate and no client certificate (identity: proxies have none yet).
func ServerTLS(sc CertificateSource) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: sc.GetCertificate}
}

// MutualTLS additionally requires a client certificate that chains to the anchors and carries a SPIFFE ID in td.
func MutualTLS(sc CertificateSource, anchors *x509.CertPool, td spiffeid.TrustDomain) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: sc.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      anchors,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("client certificate required")
			}
			id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
			if err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			if !id.MemberOf(td) {
				return fmt.Errorf("client identity %s is not in trust domain %s", id, td.Name())
			}
			return nil
		},
	}
}
