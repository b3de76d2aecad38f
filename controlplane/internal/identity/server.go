package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Server implements identityv1.Identity.
type Server struct {
	identityv1.UnimplementedIdentityServer

	ca       atomic.Pointer[CA]
	td       spiffeid.TrustDomain
	auth     Authenticator
	lifetime time.Duration
	log      *slog.Logger
	now      func() time.Time
	issued   *prometheus.CounterVec
}

// ServerConfig configures a Server.
type ServerConfig struct {
	CA            *CA
	TrustDomain   spiffeid.TrustDomain
	Authenticator Authenticator
	CertLifetime  time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// NewServer builds the Certify service.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		td: cfg.TrustDomain, auth: cfg.Authenticator, lifetime: cfg.CertLifetime, log: cfg.Logger, now: cfg.Now,
		issued: promreg.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identity_cert_issued_total",
			Help: "Certify requests by result (ok, unauthenticated, permission_denied, invalid_argument, unavailable, error).",
		}, []string{"result"})),
	}
	s.ca.Store(cfg.CA)
	return s
}

// SetCA replaces the CA for the requests that follow (a rotated issuer).
func (s *Server) SetCA(ca *CA) { s.ca.Store(ca) }

// ParseWorkloadID checks that id is spiffe://<td>/ns/<ns>/sa/<sa> in trust domain td.
func ParseWorkloadID(td spiffeid.TrustDomain, id string) (spiffeid.ID, string, string, error) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return spiffeid.ID{}, "", "", fmt.Errorf("identity %q is not a SPIFFE ID: %w", id, err)
	}
	if !sid.MemberOf(td) {
		return spiffeid.ID{}, "", "", fmt.Errorf("identity %q is not in trust domain %q", id, td.Name())
	}
	seg := strings.Split(strings.TrimPrefix(sid.Path(), "/"), "/")
	if len(seg) != 4 || seg[0] != "ns" || seg[2] != "sa" || seg[1] == "" || seg[3] == "" {
		return spiffeid.ID{}, "", "", fmt.Errorf("identity %q must be spiffe://%s/ns/<namespace>/sa/<serviceaccount>", id, td.Name())
	}
	return sid, seg[1], seg[3], nil
}

// DNSName is the DNS SAN that accompanies a workload's SPIFFE ID.
func DNSName(td spiffeid.TrustDomain, namespace, serviceAccount string) string {
	return serviceAccount + "." + namespace + ".serviceaccount.identity.sinew." + td.Name()
}

// Certify signs a workload's CSR when its token proves it may hold the requested identity.
func (s *Server) Certify(ctx context.Context, req *identityv1.CertifyRequest) (*identityv1.CertifyResponse, error) {
	resp, result, err := s.certify(ctx, req)
	s.issued.WithLabelValues(result).Inc()
	if err != nil {
		s.log.Warn("certify refused", "identity", req.GetIdentity(), "result", result, "err", status.Convert(err).Message())
		return nil, err
	}
	return resp, nil
}

func (s *Server) certify(ctx context.Context, req *identityv1.CertifyRequest) (*identityv1.CertifyResponse, string, error) {
	if len(req.GetToken()) == 0 {
		return nil, "unauthenticated", status.Error(codes.Unauthenticated, "a token is required")
	}
	subj, err := s.auth.Authenticate(ctx, req.GetToken())
	switch {
	case errors.Is(err, ErrPermissionDenied):
		return nil, "permission_denied", status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrUnavailable):
		return nil, "unavailable", status.Error(codes.Unavailable, err.Error())
	case err != nil:
		// Never echo the token itself.
		return nil, "unauthenticated", status.Error(codes.Unauthenticated, err.Error())
	}

	sid, ns, sa, err := ParseWorkloadID(s.td, req.GetIdentity())
	if err != nil {
		return nil, "invalid_argument", status.Error(codes.InvalidArgument, err.Error())
	}
	if ns != subj.Namespace || sa != subj.ServiceAccount {
		return nil, "permission_denied", status.Errorf(codes.PermissionDenied, "token for %s may not certify %s (its identity is %s)",
			subj, sid, spiffeid.RequireFromSegments(s.td, "ns", subj.Namespace, "sa", subj.ServiceAccount))
	}

	csr, err := x509.ParseCertificateRequest(req.GetCertificateSigningRequest())
	if err != nil {
		return nil, "invalid_argument", status.Errorf(codes.InvalidArgument, "certificate signing request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "invalid_argument", status.Errorf(codes.InvalidArgument, "certificate signing request: bad signature: %v", err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != sid.String() {
		uris := make([]string, len(csr.URIs))
		for i, u := range csr.URIs {
			uris[i] = u.String()
		}
		return nil, "invalid_argument", status.Errorf(codes.InvalidArgument,
			"certificate signing request must have exactly one URI SAN equal to %s, has %v", sid, uris)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, "invalid_argument", status.Error(codes.InvalidArgument, "certificate signing request: key must be ECDSA P-256")
	}

	now := s.now()
	ca := s.ca.Load()
	leaf, err := ca.Sign(Leaf{ID: sid.URL(), DNSName: DNSName(s.td, ns, sa), PublicKey: pub, Lifetime: s.lifetime}, now)
	if err != nil {
		s.log.Error("signing workload certificate", "identity", sid.String(), "err", err)
		return nil, "error", status.Error(codes.Internal, "signing failed")
	}
	s.log.Info("issued workload certificate", "identity", sid.String(), "subject", subj.String(),
		"serial", leaf.SerialNumber.Text(16), "notAfter", leaf.NotAfter)
	return &identityv1.CertifyResponse{
		LeafCertificate:          leaf.Raw,
		IntermediateCertificates: [][]byte{ca.Issuer.Raw},
		ValidUntil:               timestamppb.New(leaf.NotAfter),
	}, "ok", nil
}
