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
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	gatewaycontroller "github.com/sinewmesh/sinew/controlplane/internal/gateway/controller"
	"github.com/sinewmesh/sinew/controlplane/internal/identity"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/jwks"
	routestatus "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/status"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/controlplane/internal/source/kube"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// Kubernetes-mode destination and policy defaults: listen on every interface (the pod's).
const (
	DefaultKubeDestinationAddr      = ":8086"
	DefaultKubePolicyAddr           = ":8090"
	DefaultKubeDestinationAdminAddr = ":9996"
)

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
	// DefaultInboundPolicy applies to pod ports no Server selects, unless the pod's or its namespace's
	// annotation config.sinew.dev/default-inbound-policy says otherwise: one of names.InboundPolicies, default
	// all-unauthenticated (chart value defaultInboundPolicy).
	DefaultInboundPolicy string
	// ClusterNetworks are the networks of the cluster-* inbound policies, comma-separated; default
	// names.DefaultClusterNetworks (chart value clusterNetworks).
	ClusterNetworks string
	// ProbeNetworks are where kubelet probes may come from, comma-separated; default names.DefaultProbeNetworks
	// (chart value probeNetworks).
	ProbeNetworks string

	// GatewayProxy configures the proxies of sinew's Gateways (images, proxy defaults) as the injector's flags
	// configure sidecars. Empty ControlPlaneNamespace, TrustDomain, ClusterDomain and TrustAnchorsPEM are this
	// config's Namespace, TrustDomain, ClusterDomain and trust anchors; other empty fields take the injector's
	// defaults (images <registry>/sinew-proxy:<this build's version>).
	GatewayProxy inject.Config

	Kubeconfig string
	KubeClient kubernetes.Interface
	// DynamicClient reads the policy.sinew.dev objects; nil: one from Kubeconfig, or none (no policies read) when
	// KubeClient is given.
	DynamicClient dynamic.Interface
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

func (c DestinationConfig) withDefaults() DestinationConfig {
	setDefault(&c.TrustDomain, names.DefaultTrustDomain)
	setDefault(&c.ClusterDomain, names.DefaultClusterDomain)
	setDefault(&c.DestinationAddr, DefaultKubeDestinationAddr)
	setDefault(&c.PolicyAddr, DefaultKubePolicyAddr)
	setDefault(&c.AdminAddr, DefaultKubeDestinationAdminAddr)
	setDefault(&c.IdentityAddr, DefaultIdentityServiceAddr(c.ClusterDomain))
	setDefault(&c.TrustAnchorsFile, names.TrustAnchorsPath)
	setDefault(&c.TokenFile, names.TokenPath)
	setDefault(&c.Namespace, names.ControlPlaneNamespace)
	setDefault(&c.ServiceAccount, names.DestinationAccount)
	setDefault(&c.DefaultOpaquePorts, names.DefaultOpaquePorts)
	setDefault(&c.DefaultInboundPolicy, names.DefaultInboundPolicy)
	setDefault(&c.ClusterNetworks, names.DefaultClusterNetworks)
	setDefault(&c.ProbeNetworks, names.DefaultProbeNetworks)
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
	_, inboundErrs := c.inbound()
	errs = append(errs, inboundErrs...)
	for name, v := range map[string]string{"Namespace": c.Namespace, "ServiceAccount": c.ServiceAccount} {
		if !names.IsDNSName(v) {
			errs = append(errs, fmt.Errorf("%s %q: must be a Kubernetes name", name, v))
		}
	}
	return errors.Join(errs...)
}

func (c DestinationConfig) inbound() (authz.Config, []error) {
	return inboundPolicyConfig(c.TrustDomain, c.DefaultInboundPolicy, c.ClusterNetworks, c.ProbeNetworks)
}

// gatewayProxy is the gateway proxies' configuration: GatewayProxy with this control plane's place and trust.
func (c DestinationConfig) gatewayProxy(anchorsPEM string) inject.Config {
	p := c.GatewayProxy
	setDefault(&p.ControlPlaneNamespace, c.Namespace)
	setDefault(&p.TrustDomain, c.TrustDomain)
	setDefault(&p.ClusterDomain, c.ClusterDomain)
	setDefault(&p.TrustAnchorsPEM, anchorsPEM)
	setDefault(&p.CreatedBy, "sinew/gateway-controller "+version.Version)
	return p
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
	// routeStatus writes HTTPRoute and GRPCRoute status (Service and sinew Gateway parents); nil without a
	// dynamic client.
	routeStatus *routestatus.Writer
	// gateways runs sinew's Gateways and writes their status; nil without a dynamic client.
	gateways *gatewaycontroller.Controller

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
	dyn, err := dynamicClientFor(cfg.DynamicClient, cfg.KubeClient, cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	opaque, _ := cfg.opaquePorts() // validated
	src, err := kube.New(kube.Config{Client: client, Dynamic: dyn, DefaultOpaquePorts: opaque,
		Logger: log.With("component", "kube-source"), Registerer: reg})
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
	if dyn != nil {
		d.routeStatus = routestatus.New(routestatus.Config{Client: dyn, Store: store, Synced: src.Synced,
			GatewayParents: gateway.RouteParentStatuses, Logger: log.With("component", "route-status")})
		d.gateways, err = gatewaycontroller.New(gatewaycontroller.Config{Client: client, Dynamic: dyn, Store: store, Synced: src.Synced,
			Inject: cfg.gatewayProxy(string(anchorsPEM)), Logger: log.With("component", "gateway-controller")})
		if err != nil {
			return nil, err
		}
	}
	inbound, _ := cfg.inbound() // validated
	d.discoveryServers = newDiscoveryServers(store, cfg.TrustDomain, cfg.ClusterDomain, inbound,
		jwks.Config{Secrets: secretReader{client}}, identity.MutualTLS(certSource{cert}, anchors, td), log, reg)
	d.admin = adminServer(d.Ready, gatherer, d.policy.DebugModel)

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
	g.Go(func() error { return d.policy.Run(gctx) })
	g.Go(func() error { return d.jwks.Run(gctx) })
	g.Go(func() error { return d.cert.Run(gctx) })
	if d.routeStatus != nil {
		g.Go(func() error { return d.routeStatus.Run(gctx) })
	}
	if d.gateways != nil {
		g.Go(func() error { return d.gateways.Run(gctx) })
	}
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
