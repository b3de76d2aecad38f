package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/identity"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/internal/names"
)

// Kubernetes-mode identity service defaults: listen on every interface (the pod's), the issuer where the chart
// mounts its Secret.
const (
	DefaultKubeIdentityAddr      = ":8080"
	DefaultKubeIdentityAdminAddr = ":9990"

	DefaultIssuerCertPath = "/var/run/sinew/identity/issuer/tls.crt"
	DefaultIssuerKeyPath  = "/var/run/sinew/identity/issuer/tls.key"
)

// IdentityConfig configures the Kubernetes-mode identity service. Zero values take the defaults.
type IdentityConfig struct {
	TrustDomain string // default "cluster.local"
	// Addr serves Certify (TLS); AdminAddr /live, /ready, /metrics.
	Addr, AdminAddr string
	// The CA: anchors from the trust-roots ConfigMap, issuer from the issuer Secret (PEM files).
	TrustAnchorsFile, IssuerCertFile, IssuerKeyFile string
	CertLifetime                                    time.Duration // workload certificates, default 24h
	TokenAudience                                   string        // default "identity.sinew.dev"
	// IssuerReloadInterval is how often the three CA files are checked for changes (a rotated issuer Secret);
	// default 30s. Changed files that do not form a valid CA are reported and the current CA is kept.
	IssuerReloadInterval time.Duration

	Kubeconfig string                // empty: in-cluster
	KubeClient kubernetes.Interface  // overrides Kubeconfig (tests)
	Logger     *slog.Logger          //
	Registerer prometheus.Registerer // as in Config
}

func (c IdentityConfig) withDefaults() IdentityConfig {
	setDefault(&c.TrustDomain, names.DefaultTrustDomain)
	setDefault(&c.Addr, DefaultKubeIdentityAddr)
	setDefault(&c.AdminAddr, DefaultKubeIdentityAdminAddr)
	setDefault(&c.TrustAnchorsFile, names.TrustAnchorsPath)
	setDefault(&c.IssuerCertFile, DefaultIssuerCertPath)
	setDefault(&c.IssuerKeyFile, DefaultIssuerKeyPath)
	setDefault(&c.TokenAudience, names.TokenAudience)
	if c.CertLifetime == 0 {
		c.CertLifetime = DefaultCertLifetime
	}
	if c.IssuerReloadInterval == 0 {
		c.IssuerReloadInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks a defaulted config; errors name the field.
func (c IdentityConfig) Validate() error {
	errs := validateCommon(c.TrustDomain, "", map[string]string{"Addr": c.Addr, "AdminAddr": c.AdminAddr})
	if c.CertLifetime < time.Second {
		errs = append(errs, fmt.Errorf("CertLifetime %s: must be at least 1s", c.CertLifetime))
	}
	if c.IssuerReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("IssuerReloadInterval %s: must not be negative", c.IssuerReloadInterval))
	}
	return errors.Join(errs...)
}

// Identity is a bound Kubernetes-mode identity service.
type Identity struct {
	cfg         IdentityConfig
	log         *slog.Logger
	ca          *identity.CA
	caFiles     identity.CAFiles
	caContent   []byte // the files' bytes the current CA came from
	server      *identity.Server
	servingCert *identity.ServingCert
	reloads     *prometheus.CounterVec
	issuerTTL   prometheus.Gauge
	grpc        *grpc.Server
	admin       *http.Server
	lis, admLis net.Listener
	ready       atomic.Bool
	started     atomic.Bool
}

// NewIdentity loads and checks the CA, connects the TokenReview client and binds the listeners.
func NewIdentity(cfg IdentityConfig) (_ *Identity, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity config: %w", err)
	}
	td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	reg, gatherer := promreg.Registries(cfg.Registerer)
	files := identity.CAFiles{TrustAnchors: cfg.TrustAnchorsFile, IssuerCert: cfg.IssuerCertFile, IssuerKey: cfg.IssuerKeyFile}
	content := readCAFiles(files)
	ca, err := identity.LoadCA(files, time.Now())
	if err != nil {
		return nil, err
	}
	client, err := kubeClientFor(cfg.KubeClient, cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cert, err := identity.NewServingCert(ca, td, names.ControlPlaneNamespace, names.IdentityAccount, cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}
	s := &Identity{cfg: cfg, log: cfg.Logger, ca: ca, caFiles: files, caContent: content, servingCert: cert,
		reloads: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identity_issuer_reloads_total", Help: "Changes of the CA files, by result (ok: now in use; error: kept the previous CA).",
		}, []string{"result"})),
		issuerTTL: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "identity_issuer_expiration_timestamp_seconds", Help: "When the issuer certificate in use expires.",
		})),
	}
	s.issuerTTL.Set(float64(ca.Issuer.NotAfter.Unix()))
	s.server = identity.NewServer(identity.ServerConfig{
		CA: ca, TrustDomain: td, CertLifetime: cfg.CertLifetime, Registerer: reg,
		Authenticator: identity.NewTokenReviewAuthenticator(client, cfg.TokenAudience, reg),
		Logger:        cfg.Logger.With("component", "identity"),
	})
	s.grpc = newGRPCServer(identity.ServerTLS(cert))
	identityv1.RegisterIdentityServer(s.grpc, s.server)
	s.admin = adminServer(s.ready.Load, gatherer, nil)
	var ls listeners
	defer func() {
		if err != nil {
			ls.close()
		}
	}()
	if s.lis, err = ls.listen("identity", cfg.Addr); err != nil {
		return nil, err
	}
	if s.admLis, err = ls.listen("admin", cfg.AdminAddr); err != nil {
		return nil, err
	}
	return s, nil
}

// Run serves until ctx ends, then stops gracefully. It can be called once.
func (s *Identity) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("identity: Run called twice")
	}
	// Read before the reload loop may replace s.ca.
	issuer, issuerNotAfter := s.ca.Issuer.Subject.String(), s.ca.Issuer.NotAfter
	g, gctx := errgroup.WithContext(ctx)
	serveGRPC(g, "identity", s.grpc, s.lis)
	serveAdmin(g, s.admin, s.admLis)
	g.Go(func() error {
		t := time.NewTicker(s.cfg.IssuerReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				s.reloadCA()
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		s.ready.Store(false)
		s.log.Info("identity shutting down")
		stopServers(s.admin, s.grpc)
		return nil
	})
	s.ready.Store(true)
	s.log.Info("identity serving", "addr", s.Addr(), "admin", s.AdminAddr(), "trustDomain", s.cfg.TrustDomain,
		"issuer", issuer, "issuerNotAfter", issuerNotAfter, "audience", s.cfg.TokenAudience)
	err := g.Wait()
	s.log.Info("identity stopped")
	return err
}

// readCAFiles concatenates the files' contents (unreadable files read as nothing), to notice changes.
func readCAFiles(f identity.CAFiles) []byte {
	var all []byte
	for _, p := range []string{f.TrustAnchors, f.IssuerCert, f.IssuerKey} {
		b, _ := os.ReadFile(p)
		all = append(append(all, b...), 0)
	}
	return all
}

// reloadCA switches to the CA in the files when they changed and form a valid CA. A mounted Secret or ConfigMap
// changes all its files at once, but the anchors and the issuer live in different objects and may change a
// minute apart: until they agree again the previous CA stays, and the next change is tried again.
func (s *Identity) reloadCA() {
	content := readCAFiles(s.caFiles)
	if bytes.Equal(content, s.caContent) {
		return
	}
	s.caContent = content
	ca, err := identity.LoadCA(s.caFiles, time.Now())
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.log.Error("CA files changed but do not form a valid CA; still issuing with the previous issuer", "err", err)
		return
	}
	s.ca = ca
	s.server.SetCA(ca)
	s.servingCert.SetCA(ca)
	s.issuerTTL.Set(float64(ca.Issuer.NotAfter.Unix()))
	s.reloads.WithLabelValues("ok").Inc()
	s.log.Info("issuing with a new issuer", "issuer", ca.Issuer.Subject.String(), "issuerNotAfter", ca.Issuer.NotAfter)
}

// Addr is the bound address of the Certify server.
func (s *Identity) Addr() string { return s.lis.Addr().String() }

// AdminAddr is the bound address of the admin server.
func (s *Identity) AdminAddr() string { return s.admLis.Addr().String() }
