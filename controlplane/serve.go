package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/admin"
	"github.com/sinewmesh/sinew/controlplane/internal/destination"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/jwks"
	"github.com/sinewmesh/sinew/internal/names"
)

// What every mode's servers share: registries, listeners, gRPC and admin servers, and the two-stage stop.

// setDefault sets *s to def when it is empty.
func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// validateCommon checks what every mode's config has: the trust domain, the cluster domain (when the mode has
// one) and the listen addresses, named by field.
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

func newGRPCServer(tlsConfig *tls.Config) *grpc.Server {
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		// Proxies keep streams open for a long time and ping to keep them alive; let them, and find dead ones.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
}

// listeners binds addresses in order; on failure it closes what it bound.
type listeners []net.Listener

func (ls *listeners) listen(name, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	*ls = append(*ls, l)
	return l, nil
}

func (ls listeners) close() {
	for _, l := range ls {
		_ = l.Close()
	}
}

// adminServer is the admin server of a component whose readiness is a yes or no.
func adminServer(ready func() bool, gatherer prometheus.Gatherer, debugModel func() any) *http.Server {
	return admin.NewServer(func() error {
		if !ready() {
			return errNotReady
		}
		return nil
	}, gatherer, debugModel)
}

var errNotReady = errors.New("not ready")

// serveGRPC runs s on l in g; a stop that wins the race against Serve is not an error.
func serveGRPC(g *errgroup.Group, name string, s *grpc.Server, l net.Listener) {
	g.Go(func() error {
		if err := s.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("%s server: %w", name, err)
		}
		return nil
	})
}

func serveAdmin(g *errgroup.Group, s *http.Server, l net.Listener) {
	g.Go(func() error {
		if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
}

// stopServers stops gracefully within shutdownGrace, then hard. Callers end long-lived streams first, or
// GracefulStop would wait for them until the deadline.
func stopServers(admin *http.Server, servers ...*grpc.Server) {
	deadline := time.Now().Add(shutdownGrace)
	var g errgroup.Group
	for _, s := range servers {
		g.Go(func() error {
			done := make(chan struct{})
			go func() { s.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Until(deadline)):
				s.Stop()
				<-done
			}
			return nil
		})
	}
	g.Go(func() error {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := admin.Shutdown(ctx); err != nil {
			_ = admin.Close()
		}
		return nil
	})
	_ = g.Wait()
}

// discoveryServers are the destination and policy services over one model, each on its own mTLS gRPC server.
// Local and Kubernetes mode embed them alike; only the model's source and the serving certificate differ.
type discoveryServers struct {
	destination                 *destination.Server
	policy                      *policy.Server
	jwks                        *jwks.Fetcher
	destinationGRPC, policyGRPC *grpc.Server
}

func newDiscoveryServers(store *model.Store, trustDomain, clusterDomain string, inbound authz.Config, keys jwks.Config, mtls *tls.Config, log *slog.Logger, reg prometheus.Registerer) discoveryServers {
	keys.Store, keys.Logger, keys.Registerer = store, log.With("component", "jwks"), reg
	fetcher := jwks.New(keys)
	s := discoveryServers{
		jwks: fetcher,
		destination: destination.New(destination.Config{
			Store: store, TrustDomain: trustDomain, ClusterDomain: clusterDomain,
			Logger: log.With("component", "destination"), Registerer: reg,
		}),
		policy: policy.New(policy.Config{
			Store: store, ClusterDomain: clusterDomain, Inbound: inbound, Keys: fetcher, Logger: log.With("component", "policy"),
		}),
		destinationGRPC: newGRPCServer(mtls),
		policyGRPC:      newGRPCServer(mtls.Clone()),
	}
	destinationv1.RegisterDestinationServer(s.destinationGRPC, s.destination)
	policyv1.RegisterInboundPoliciesServer(s.policyGRPC, s.policy)
	policyv1.RegisterOutboundPoliciesServer(s.policyGRPC, s.policy)
	policyv1.RegisterGatewaysServer(s.policyGRPC, s.policy)
	return s
}

// inboundPolicyConfig checks the inbound policy settings every mode's config has and turns them into the
// translation's configuration; errors name the field.
func inboundPolicyConfig(trustDomain, defaultPolicy, clusterNetworks, probeNetworks string) (authz.Config, []error) {
	var errs []error
	cfg := authz.Config{TrustDomain: trustDomain, DefaultPolicy: defaultPolicy}
	if !slices.Contains(names.InboundPolicies, defaultPolicy) {
		errs = append(errs, fmt.Errorf("DefaultInboundPolicy %q: must be one of %s", defaultPolicy, strings.Join(names.InboundPolicies, ", ")))
	}
	var err error
	if cfg.ClusterNetworks, err = authz.ParseNetworks(clusterNetworks); err != nil {
		errs = append(errs, fmt.Errorf("ClusterNetworks %q: %w", clusterNetworks, err))
	}
	if cfg.ProbeNetworks, err = authz.ParseNetworks(probeNetworks); err != nil {
		errs = append(errs, fmt.Errorf("ProbeNetworks %q: %w", probeNetworks, err))
	}
	return cfg, errs
}

// endStreams ends the long-lived streams, which would otherwise hold a graceful stop forever; proxies resubscribe.
func (s *discoveryServers) endStreams() {
	s.destination.Stop()
	s.policy.Stop()
}
