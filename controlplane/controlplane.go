// Package controlplane composes sinew's control plane: the identity service (a CA that signs workload
// certificates for callers that prove who they are), the destination service (endpoints of services, streamed)
// and the policy service (inbound authorization, outbound routing), fed by one model.
//
// Local mode (New) runs all three in one process against a directory of YAML resources, with join tokens.
// Kubernetes mode splits them like the deployments that run them: NewIdentity (TokenReview on projected
// ServiceAccount tokens, issuer from mounted files) and NewDestination (destination and policy fed by informers,
// serving with a certificate it obtains from the identity service like any workload). Each New validates and
// binds; Run serves until its context ends. The implementation lives under internal/; this package only
// composes it.
package controlplane

import (
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

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/identity"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/jwks"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/controlplane/internal/source/local"
	"github.com/sinewmesh/sinew/internal/names"
)

// Defaults.
const (
	DefaultIdentityAddr    = "127.0.0.1:8080"
	DefaultDestinationAddr = "127.0.0.1:8086"
	DefaultPolicyAddr      = "127.0.0.1:8090"
	DefaultAdminAddr       = "127.0.0.1:9990"
	DefaultCertLifetime    = 24 * time.Hour

	// DefaultLocalClusterNetworks are the cluster's networks plus loopback, where local-mode proxies reach each
	// other.
	DefaultLocalClusterNetworks = names.DefaultClusterNetworks + ",127.0.0.0/8,::1/128"
)

// shutdownGrace bounds the graceful part of shutdown; after it, connections are closed hard.
const shutdownGrace = 10 * time.Second

// Config configures a local-mode control plane. Zero values take the defaults above.
type Config struct {
	DataDir       string // holds generated CA material and the join-token key; created if missing (0700)
	ResourceDir   string // directory of YAML resources (local source), watched for changes
	TrustDomain   string // default "cluster.local"
	ClusterDomain string // default "cluster.local" (service FQDN suffix)

	IdentityAddr, DestinationAddr, PolicyAddr, AdminAddr string // ":0"/"127.0.0.1:0" allowed

	// Bring your own CA (PEM), all three or none; else generated once into DataDir and reused on restart.
	TrustAnchorsFile, IssuerCertFile, IssuerKeyFile string

	CertLifetime time.Duration // workload cert lifetime, default 24h

	// DefaultInboundPolicy applies to workload ports no Server selects, unless a Workload's annotation
	// config.sinew.dev/default-inbound-policy says otherwise: one of names.InboundPolicies, default
	// all-unauthenticated.
	DefaultInboundPolicy string
	// ClusterNetworks are the networks of the cluster-* inbound policies, comma-separated; default
	// DefaultLocalClusterNetworks.
	ClusterNetworks string
	// ProbeNetworks are where HTTP probes may come from, comma-separated; default names.DefaultProbeNetworks.
	// Local workloads declare no probes, so it matters little here.
	ProbeNetworks string
	// JWKSRefreshInterval is how often JWKS URLs named by JWTAuthentications are fetched again; default
	// jwks.DefaultInterval (5m).
	JWKSRefreshInterval time.Duration
	// JWKSRefetchEvery is the least time between fetches of a JWKS URL that tokens naming unknown keys ask for;
	// default jwks.DefaultRefetchEvery (30s).
	JWKSRefetchEvery time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer // if it is also a prometheus.Gatherer, /metrics serves it; nil: a private registry
}

func (c Config) withDefaults() Config {
	setDefault(&c.TrustDomain, names.DefaultTrustDomain)
	setDefault(&c.ClusterDomain, names.DefaultClusterDomain)
	setDefault(&c.IdentityAddr, DefaultIdentityAddr)
	setDefault(&c.DestinationAddr, DefaultDestinationAddr)
	setDefault(&c.PolicyAddr, DefaultPolicyAddr)
	setDefault(&c.AdminAddr, DefaultAdminAddr)
	setDefault(&c.DefaultInboundPolicy, names.DefaultInboundPolicy)
	setDefault(&c.ClusterNetworks, DefaultLocalClusterNetworks)
	setDefault(&c.ProbeNetworks, names.DefaultProbeNetworks)
	if c.CertLifetime == 0 {
		c.CertLifetime = DefaultCertLifetime
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks a defaulted config; errors name the field.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir: required"))
	}
	if c.ResourceDir == "" {
		errs = append(errs, errors.New("ResourceDir: required"))
	}
	errs = append(errs, validateCommon(c.TrustDomain, c.ClusterDomain, map[string]string{"IdentityAddr": c.IdentityAddr,
		"DestinationAddr": c.DestinationAddr, "PolicyAddr": c.PolicyAddr, "AdminAddr": c.AdminAddr})...)
	_, inboundErrs := c.inbound()
	errs = append(errs, inboundErrs...)
	byo := 0
	for _, f := range []string{c.TrustAnchorsFile, c.IssuerCertFile, c.IssuerKeyFile} {
		if f != "" {
			byo++
		}
	}
	if byo != 0 && byo != 3 {
		errs = append(errs, errors.New("TrustAnchorsFile, IssuerCertFile, IssuerKeyFile: give all three or none"))
	}
	// Seconds-long lifetimes are useful to exercise rotation (tests, chaos drills); below that, clock skew and
	// the 70% renewal point leave no room to renew.
	if c.CertLifetime < time.Second {
		errs = append(errs, fmt.Errorf("CertLifetime %s: must be at least 1s", c.CertLifetime))
	}
	return errors.Join(errs...)
}

func (c Config) inbound() (authz.Config, []error) {
	return inboundPolicyConfig(c.TrustDomain, c.DefaultInboundPolicy, c.ClusterNetworks, c.ProbeNetworks)
}

// ControlPlane is a bound, ready-to-run control plane.
type ControlPlane struct {
	cfg Config
	log *slog.Logger

	ca      *identity.CA
	joinKey []byte
	store   *model.Store
	source  *local.Source

	discoveryServers

	identityGRPC *grpc.Server
	admin        *http.Server

	identityLis, destinationLis, policyLis, adminLis net.Listener

	ready   atomic.Bool
	started atomic.Bool
}

// New validates cfg, loads or generates the CA, reads the resources and binds every listener, so the addresses are
// known before Run.
func New(cfg Config) (_ *ControlPlane, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control plane config: %w", err)
	}
	td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	log := cfg.Logger

	reg, gatherer := promreg.Registries(cfg.Registerer)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	ca, err := identity.LoadOrGenerateCA(cfg.DataDir, cfg.TrustDomain, identity.CAFiles{
		TrustAnchors: cfg.TrustAnchorsFile, IssuerCert: cfg.IssuerCertFile, IssuerKey: cfg.IssuerKeyFile,
	}, time.Now())
	if err != nil {
		return nil, err
	}
	joinKey, err := identity.LoadOrCreateJoinKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}

	store := model.NewStore()
	src, err := local.New(local.Config{Dir: cfg.ResourceDir, Logger: log.With("component", "local-source"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = src.Close()
		}
	}()
	store.Update(src.Resources())

	identityCert, err := identity.NewServingCert(ca, td, names.ControlPlaneNamespace, names.IdentityAccount, cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}
	destinationCert, err := identity.NewServingCert(ca, td, names.ControlPlaneNamespace, names.DestinationAccount, cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}

	c := &ControlPlane{cfg: cfg, log: log, ca: ca, joinKey: joinKey, store: store, source: src}

	idSrv := identity.NewServer(identity.ServerConfig{
		CA: ca, TrustDomain: td, CertLifetime: cfg.CertLifetime, Registerer: reg,
		Authenticator: identity.NewJoinTokenAuthenticator(joinKey, store.Snapshot),
		Logger:        log.With("component", "identity"),
	})
	c.identityGRPC = newGRPCServer(identity.ServerTLS(identityCert))
	identityv1.RegisterIdentityServer(c.identityGRPC, idSrv)

	inbound, _ := cfg.inbound() // validated
	c.discoveryServers = newDiscoveryServers(store, cfg.TrustDomain, cfg.ClusterDomain, inbound,
		jwks.Config{Interval: cfg.JWKSRefreshInterval, RefetchEvery: cfg.JWKSRefetchEvery}, identity.MutualTLS(destinationCert, ca.Anchors, td), log, reg)

	c.admin = adminServer(c.ready.Load, gatherer, c.policy.DebugModel)

	var ls listeners
	defer func() {
		if err != nil {
			ls.close()
		}
	}()
	if c.identityLis, err = ls.listen("identity", cfg.IdentityAddr); err != nil {
		return nil, err
	}
	if c.destinationLis, err = ls.listen("destination", cfg.DestinationAddr); err != nil {
		return nil, err
	}
	if c.policyLis, err = ls.listen("policy", cfg.PolicyAddr); err != nil {
		return nil, err
	}
	if c.adminLis, err = ls.listen("admin", cfg.AdminAddr); err != nil {
		return nil, err
	}
	return c, nil
}

// Run serves until ctx is cancelled, then stops gracefully: not ready, open streams ended (proxies resubscribe),
// in-flight calls finished, within a grace period after which connections are closed. It can be called once.
func (c *ControlPlane) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("control plane: Run called twice")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.source.Run(gctx, c.store) })
	g.Go(func() error { return c.destination.Run(gctx) })
	g.Go(func() error { return c.policy.Run(gctx) })
	g.Go(func() error { return c.jwks.Run(gctx) })
	serveGRPC(g, "identity", c.identityGRPC, c.identityLis)
	serveGRPC(g, "destination", c.destinationGRPC, c.destinationLis)
	serveGRPC(g, "policy", c.policyGRPC, c.policyLis)
	serveAdmin(g, c.admin, c.adminLis)
	g.Go(func() error {
		<-gctx.Done()
		c.shutdown()
		return nil
	})
	c.ready.Store(true)
	c.log.Info("control plane serving",
		"identity", c.IdentityAddr(), "destination", c.DestinationAddr(), "policy", c.PolicyAddr(), "admin", c.AdminAddr(),
		"trustDomain", c.cfg.TrustDomain, "resources", c.cfg.ResourceDir)
	err := g.Wait()
	c.log.Info("control plane stopped")
	return err
}

func (c *ControlPlane) shutdown() {
	c.ready.Store(false)
	c.log.Info("control plane shutting down")
	// Long-lived streams would hold GracefulStop forever; end them first.
	c.endStreams()
	stopServers(c.admin, c.identityGRPC, c.destinationGRPC, c.policyGRPC)
}

// TrustAnchorsPEM returns the trust anchors proxies must trust (also written to DataDir/ca.crt).
func (c *ControlPlane) TrustAnchorsPEM() []byte { return append([]byte(nil), c.ca.AnchorsPEM...) }

// LocalCertificate returns a certificate source for an in-process client of the mesh with identity
// spiffe://<trust domain>/ns/<namespace>/sa/<serviceAccount>, such as the local mode's tap service. Its private key
// is generated here and never leaves the process; the certificate renews itself at 70 % of its lifetime.
func (c *ControlPlane) LocalCertificate(namespace, serviceAccount string) (func() *tls.Certificate, error) {
	td, err := spiffeid.TrustDomainFromString(c.cfg.TrustDomain)
	if err != nil {
		return nil, err
	}
	sc, err := identity.NewServingCert(c.ca, td, namespace, serviceAccount, c.cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}
	return func() *tls.Certificate {
		cert, err := sc.GetCertificate(nil)
		if err != nil {
			c.log.Error("renewing a local certificate", "identity", sc.ID().String(), "err", err)
			return nil
		}
		return cert
	}, nil
}

// IssueJoinToken issues a token that lets the proxy of workload namespace/workload obtain its certificate. The
// workload need not exist yet; it must when the token is used.
func (c *ControlPlane) IssueJoinToken(namespace, workload string) (string, error) {
	return issueJoinToken(c.joinKey, namespace, workload)
}

// IssueJoinTokenFromDataDir issues a join token with the key in dataDir (creating the key when missing), without
// a running control plane.
func IssueJoinTokenFromDataDir(dataDir, namespace, workload string) (string, error) {
	if dataDir == "" {
		return "", errors.New("join token: data directory is required")
	}
	key, err := identity.LoadOrCreateJoinKey(dataDir)
	if err != nil {
		return "", err
	}
	return issueJoinToken(key, namespace, workload)
}

func issueJoinToken(key []byte, namespace, workload string) (string, error) {
	for what, v := range map[string]string{"namespace": namespace, "workload": workload} {
		if !names.IsDNSLabel(v) {
			return "", fmt.Errorf("join token: %s %q must be a DNS label (lower-case letters, digits, '-')", what, v)
		}
	}
	return identity.IssueJoinToken(key, namespace, workload, time.Now())
}

// IdentityAddr is the bound address of the identity server.
func (c *ControlPlane) IdentityAddr() string { return c.identityLis.Addr().String() }

// DestinationAddr is the bound address of the destination server.
func (c *ControlPlane) DestinationAddr() string { return c.destinationLis.Addr().String() }

// PolicyAddr is the bound address of the policy server.
func (c *ControlPlane) PolicyAddr() string { return c.policyLis.Addr().String() }

// AdminAddr is the bound address of the admin server.
func (c *ControlPlane) AdminAddr() string { return c.adminLis.Addr().String() }

// GenerateCA creates a trust anchor (self-signed root) and an issuer (intermediate) under it, ECDSA P-256, valid
// a year: the PEM a Kubernetes install puts in the trust-roots ConfigMap (anchorsPEM) and the issuer Secret
// (issuerCertPEM, issuerKeyPEM as PKCS#8).
func GenerateCA(trustDomain string) (anchorsPEM, issuerCertPEM, issuerKeyPEM []byte, err error) {
	if _, err := spiffeid.TrustDomainFromString(trustDomain); err != nil {
		return nil, nil, nil, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	_, anchorsPEM, issuerCertPEM, issuerKeyPEM, err = identity.GenerateCA(trustDomain, time.Now())
	return anchorsPEM, issuerCertPEM, issuerKeyPEM, err
}
