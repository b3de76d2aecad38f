package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
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
	"k8s.io/client-go/rest"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/identity"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/controlplane/internal/source/kube"
	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
)

// Kubernetes-mode defaults: listen on every interface (the pod's), files where the chart mounts them.
const (
	DefaultKubeIdentityAddr         = ":8080"
	DefaultKubeDestinationAddr      = ":8086"
	DefaultKubePolicyAddr           = ":8090"
	DefaultKubeIdentityAdminAddr    = ":9990"
	DefaultKubeDestinationAdminAddr = ":9996"

	DefaultTrustAnchorsPath = "/var/run/sinew/identity/trust-roots/ca-bundle.crt"
	DefaultIssuerCertPath   = "/var/run/sinew/identity/issuer/tls.crt"
	DefaultIssuerKeyPath    = "/var/run/sinew/identity/issuer/tls.key"
)

// DefaultIdentityServiceAddr is where the identity service is reached in a cluster with that domain.
func DefaultIdentityServiceAddr(clusterDomain string) string {
	return names.ServiceAddr(names.IdentityService, names.ControlPlaneNamespace, clusterDomain, names.IdentityPort)
}

// KubeClient connects to the API server with kubeconfig, or with the pod's in-cluster configuration when
// kubeconfig is empty.
func KubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// restConfig is the controller's API-server configuration: from kubeconfig, or in-cluster when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := daemon.RESTConfig(kubeconfig, "sinew-controller")
	if err != nil {
		return nil, err
	}
	// Informers need little; TokenReviews, and the injector's namespace and owner GETs, come in bursts when many
	// pods start at once (a rollout, a scale-up).
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

func kubeClientFor(given kubernetes.Interface, kubeconfig string) (kubernetes.Interface, error) {
	if given != nil {
		return given, nil
	}
	return KubeClient(kubeconfig)
}

func validateCommon(trustDomain, clusterDomain string, addrs map[string]string) []error {
	var errs []error
	if _, err := spiffeid.TrustDomainFromString(trustDomain); err != nil {
		errs = append(errs, fmt.Errorf("TrustDomain %q: %w", trustDomain, err))
	}
	if clusterDomain != "" && !names.IsDNSName(clusterDomain) {
		errs = append(errs, fmt.Errorf("ClusterDomain %q: must be a lower-case DNS name", clusterDomain))
	}
	for name, addr := range addrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	return errs
}

// ---------------------------------------------------------------------------------------------------- identity

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
	setDefault(&c.TrustAnchorsFile, DefaultTrustAnchorsPath)
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

// ------------------------------------------------------------------------------------------------- destination

// DestinationConfig configures the Kubernetes-mode destination and policy services. Zero values take the
// defaults.
type DestinationConfig struct {
	TrustDomain   string // default "cluster.local"
	ClusterDomain string // default "cluster.local"

	DestinationAddr, PolicyAddr, AdminAddr string

	// IdentityAddr is the identity service to obtain the serving certificate from; default
	// DefaultIdentityServiceAddr(ClusterDomain).
	IdentityAddr string
	// TrustAnchorsFile verifies the identity service and the proxies (clients).
	TrustAnchorsFile string
	// TokenFile is the projected ServiceAccount token (audience identity.sinew.dev), re-read at every renewal.
	TokenFile string
	// Namespace and ServiceAccount are the controller's own: its certificate is
	// spiffe://<td>/ns/<Namespace>/sa/<ServiceAccount>. Defaults "sinew" and "sinew-destination".
	Namespace, ServiceAccount string
	// DefaultOpaquePorts is the list opaque-ports annotations replace (numbers and ranges, comma-separated);
	// default DefaultOpaquePorts. "none" for no default.
	DefaultOpaquePorts string

	Kubeconfig string
	KubeClient kubernetes.Interface
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c DestinationConfig) withDefaults() DestinationConfig {
	setDefault(&c.TrustDomain, names.DefaultTrustDomain)
	setDefault(&c.ClusterDomain, names.DefaultClusterDomain)
	setDefault(&c.DestinationAddr, DefaultKubeDestinationAddr)
	setDefault(&c.PolicyAddr, DefaultKubePolicyAddr)
	setDefault(&c.AdminAddr, DefaultKubeDestinationAdminAddr)
	setDefault(&c.IdentityAddr, DefaultIdentityServiceAddr(c.ClusterDomain))
	setDefault(&c.TrustAnchorsFile, DefaultTrustAnchorsPath)
	setDefault(&c.TokenFile, names.TokenPath)
	setDefault(&c.Namespace, names.ControlPlaneNamespace)
	setDefault(&c.ServiceAccount, names.DestinationAccount)
	setDefault(&c.DefaultOpaquePorts, names.DefaultOpaquePorts)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks a defaulted config; errors name the field.
func (c DestinationConfig) Validate() error {
	errs := validateCommon(c.TrustDomain, c.ClusterDomain, map[string]string{
		"DestinationAddr": c.DestinationAddr, "PolicyAddr": c.PolicyAddr, "AdminAddr": c.AdminAddr, "IdentityAddr": c.IdentityAddr,
	})
	if _, err := c.opaquePorts(); err != nil {
		errs = append(errs, fmt.Errorf("DefaultOpaquePorts %q: %w", c.DefaultOpaquePorts, err))
	}
	for name, v := range map[string]string{"Namespace": c.Namespace, "ServiceAccount": c.ServiceAccount} {
		if !names.IsDNSName(v) {
			errs = append(errs, fmt.Errorf("%s %q: must be a Kubernetes name", name, v))
		}
	}
	return errors.Join(errs...)
}

func (c DestinationConfig) opaquePorts() ([]model.PortRange, error) {
	if c.DefaultOpaquePorts == "none" {
		return []model.PortRange{}, nil
	}
	ranges, err := kube.ParsePortList(c.DefaultOpaquePorts, nil)
	if ranges == nil && err == nil {
		ranges = []model.PortRange{}
	}
	return ranges, err
}

// Destination is a bound Kubernetes-mode destination + policy service.
type Destination struct {
	cfg    DestinationConfig
	log    *slog.Logger
	source *kube.Source
	store  *model.Store
	cert   *identityclient.Client

	discoveryServers

	admin *http.Server

	destinationLis, policyLis, adminLis net.Listener

	stopping atomic.Bool
	started  atomic.Bool
}

// certSource adapts the identity client to the servers' TLS configuration.
type certSource struct{ c *identityclient.Client }

func (s certSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := s.c.Certificate(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no serving certificate from the identity service yet")
}

// NewDestination reads the trust anchors, prepares the informers and the identity client, and binds the
// listeners. Nothing talks to the API server or the identity service before Run.
func NewDestination(cfg DestinationConfig) (_ *Destination, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("destination config: %w", err)
	}
	td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	reg, gatherer := promreg.Registries(cfg.Registerer)
	log := cfg.Logger

	anchorsPEM, err := os.ReadFile(cfg.TrustAnchorsFile)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	anchors, err := meshtls.ParseAnchors(anchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("trust anchors %s: %w", cfg.TrustAnchorsFile, err)
	}
	if _, err := os.Stat(cfg.TokenFile); err != nil {
		return nil, fmt.Errorf("identity token: %w", err)
	}
	client, err := kubeClientFor(cfg.KubeClient, cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	opaque, _ := cfg.opaquePorts() // validated
	src, err := kube.New(kube.Config{Client: client, DefaultOpaquePorts: opaque, Logger: log.With("component", "kube-source"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	cert, err := identityclient.New(identityclient.Config{
		Addr:       cfg.IdentityAddr,
		ServerName: model.SPIFFEID(cfg.TrustDomain, names.ControlPlaneNamespace, names.IdentityAccount),
		LocalName:  model.SPIFFEID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount),
		TokenFile:  cfg.TokenFile,
		Anchors:    anchors,
	}, log.With("component", "identity-client"), reg)
	if err != nil {
		return nil, err
	}

	store := model.NewStore()
	d := &Destination{cfg: cfg, log: log, source: src, store: store, cert: cert}
	d.discoveryServers = newDiscoveryServers(store, cfg.TrustDomain, cfg.ClusterDomain,
		identity.MutualTLS(certSource{cert}, anchors, td), log, reg)
	d.admin = adminServer(d.Ready, gatherer, func() any { return store.Snapshot().Debug() })

	var ls listeners
	defer func() {
		if err != nil {
			ls.close()
		}
	}()
	if d.destinationLis, err = ls.listen("destination", cfg.DestinationAddr); err != nil {
		return nil, err
	}
	if d.policyLis, err = ls.listen("policy", cfg.PolicyAddr); err != nil {
		return nil, err
	}
	if d.adminLis, err = ls.listen("admin", cfg.AdminAddr); err != nil {
		return nil, err
	}
	return d, nil
}

// Ready reports whether the service has a certificate, a synced model, and is not stopping.
func (d *Destination) Ready() bool {
	return d.started.Load() && !d.stopping.Load() && d.cert.Certificate() != nil && d.source.Synced()
}

// Run watches the cluster, obtains and renews the serving certificate, and serves destination and policy once
// both the certificate and the first full model are there (answers from a half-synced cache would send proxies
// around the mesh). It stops gracefully when ctx ends and can be called once.
func (d *Destination) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("destination: Run called twice")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.source.Run(gctx, d.store) })
	g.Go(func() error { return d.destination.Run(gctx) })
	g.Go(func() error { return d.cert.Run(gctx) })
	serveAdmin(g, d.admin, d.adminLis)
	g.Go(func() error {
		if !d.waitReady(gctx) {
			// Never served: the servers do not own the listeners yet.
			_ = d.destinationLis.Close()
			_ = d.policyLis.Close()
			return nil
		}
		d.log.Info("destination serving", "destination", d.DestinationAddr(), "policy", d.PolicyAddr(), "admin", d.AdminAddr(),
			"identity", model.SPIFFEID(d.cfg.TrustDomain, d.cfg.Namespace, d.cfg.ServiceAccount))
		var sg errgroup.Group
		serveGRPC(&sg, "destination", d.destinationGRPC, d.destinationLis)
		serveGRPC(&sg, "policy", d.policyGRPC, d.policyLis)
		return sg.Wait()
	})
	g.Go(func() error {
		<-gctx.Done()
		d.stopping.Store(true)
		d.log.Info("destination shutting down")
		d.endStreams()
		stopServers(d.admin, d.destinationGRPC, d.policyGRPC)
		return nil
	})
	d.log.Info("destination starting: syncing informers and obtaining a certificate",
		"identityService", d.cfg.IdentityAddr, "admin", d.AdminAddr())
	err := g.Wait()
	d.log.Info("destination stopped")
	return err
}

// waitReady polls until the certificate and the model are there; false when ctx ended first.
func (d *Destination) waitReady(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	certReady := d.cert.Ready()
	for {
		if d.cert.Certificate() != nil && d.source.Synced() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-certReady:
			certReady = nil // closed for good; from now on only the ticker
		case <-t.C:
		}
	}
}

// DestinationAddr is the bound address of the destination server.
func (d *Destination) DestinationAddr() string { return d.destinationLis.Addr().String() }

// PolicyAddr is the bound address of the policy server.
func (d *Destination) PolicyAddr() string { return d.policyLis.Addr().String() }

// AdminAddr is the bound address of the admin server.
func (d *Destination) AdminAddr() string { return d.adminLis.Addr().String() }
