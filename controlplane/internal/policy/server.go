package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/internal/names"
)

// Server implements policyv1.InboundPolicies, policyv1.OutboundPolicies and policyv1.Gateways.
type Server struct {
	policyv1.UnimplementedInboundPoliciesServer
	policyv1.UnimplementedOutboundPoliciesServer
	policyv1.UnimplementedGatewaysServer

	store         *model.Store
	keys          Keys
	clusterDomain string
	inbound       authz.Config
	log           *slog.Logger
	shutdown      chan struct{}
	stopOnce      sync.Once
}

// Config configures a Server.
type Config struct {
	Store *model.Store
	// ClusterDomain is the suffix of service names in outbound targets ("cluster.local").
	ClusterDomain string
	// Inbound configures the inbound translation: trust domain, default policy, cluster and probe networks.
	Inbound authz.Config
	// Keys are the fetched JWKS of JWTAuthentications (the jwks package's Fetcher); nil: none, so issuers whose
	// keys must be fetched are left out.
	Keys   Keys
	Logger *slog.Logger
}

// Keys is where the translation's fetched keys come from, and when they change.
type Keys interface {
	Keys() *authz.Keys
	Subscribe() (<-chan struct{}, func())
	// Refetch fetches the source with the handle (api.KeySource.Handle) again, because a token named a key kid
	// its set lacks; it reports whether a fetch started.
	Refetch(handle, kid string) bool
}

// noKeys is Keys when nothing fetches.
type noKeys struct{}

func (noKeys) Keys() *authz.Keys { return nil }

func (noKeys) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

func (noKeys) Refetch(string, string) bool { return false }

// New builds the server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Keys == nil {
		cfg.Keys = noKeys{}
	}
	return &Server{store: cfg.Store, keys: cfg.Keys, clusterDomain: cfg.ClusterDomain, inbound: cfg.Inbound, log: cfg.Logger,
		shutdown: make(chan struct{})}
}

// inboundConfig is the inbound translation's configuration with the current keys.
func (s *Server) inboundConfig() authz.Config {
	cfg := s.inbound
	cfg.Keys = s.keys.Keys()
	return cfg
}

// Run logs the policy problems (Problems) of each model as they appear and go away, until ctx ends: once
// per change, not once per proxy. /debug/model (DebugModel) shows the current ones.
func (s *Server) Run(ctx context.Context) error {
	changed, unsubscribe := s.store.Subscribe()
	defer unsubscribe()
	keysChanged, unsubscribeKeys := s.keys.Subscribe()
	defer unsubscribeKeys()
	var last []string
	for {
		next := Problems(s.store.Snapshot(), s.inboundConfig(), s.clusterDomain)
		for _, p := range next {
			if !slices.Contains(last, p) {
				s.log.Warn("policy problem", "problem", p)
			}
		}
		for _, p := range last {
			if !slices.Contains(next, p) {
				s.log.Info("policy problem resolved", "problem", p)
			}
		}
		last = next
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-keysChanged:
		}
	}
}

// DebugModel is the current model for /debug/model, with its policy problems.
func (s *Server) DebugModel() any {
	snap := s.store.Snapshot()
	v := snap.Debug()
	v.PolicyProblems = Problems(snap, s.inboundConfig(), s.clusterDomain)
	return v
}

// Stop ends every open stream with UNAVAILABLE.
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.shutdown) }) }

// WatchInbound streams the policy of one port of a workload.
func (s *Server) WatchInbound(req *policyv1.InboundRequest, stream grpc.ServerStreamingServer[policyv1.InboundServer]) error {
	if req.GetWorkload() == "" || req.GetPort() == 0 || req.GetPort() > 65535 {
		return status.Error(codes.InvalidArgument, "workload (namespace/name) and port (1-65535) are required")
	}
	return watch(stream.Context(), s, stream.Send, func(snap *model.Snapshot) *policyv1.InboundServer {
		return Inbound(snap, s.inboundConfig(), req.GetWorkload(), req.GetPort())
	})
}

// RefreshKeys fetches a JWT provider's keys again when a proxy saw a token name a key the set lacks; the keys
// reach the proxies on their watches. The fetcher decides whether to fetch (only sources it fetches anyway, at
// most once per interval), so a client sending made-up key ids costs at most that.
func (s *Server) RefreshKeys(_ context.Context, req *policyv1.RefreshKeysRequest) (*policyv1.RefreshKeysResponse, error) {
	if req.GetKeySource() == "" || req.GetKeyId() == "" {
		return nil, status.Error(codes.InvalidArgument, "key_source and key_id are required")
	}
	return &policyv1.RefreshKeysResponse{Fetching: s.keys.Refetch(req.GetKeySource(), req.GetKeyId())}, nil
}

// WatchOutbound streams the routing policy of a target.
func (s *Server) WatchOutbound(req *policyv1.OutboundRequest, stream grpc.ServerStreamingServer[policyv1.OutboundPolicy]) error {
	if req.GetTarget() == "" {
		return status.Error(codes.InvalidArgument, "target is required")
	}
	return watch(stream.Context(), s, stream.Send, func(snap *model.Snapshot) *policyv1.OutboundPolicy {
		return Outbound(snap, req.GetTarget(), s.clusterDomain, req.GetSourceWorkload())
	})
}

// WatchGateway streams the configuration of a sinew Gateway ("namespace/name") to its proxies: its listeners,
// their certificates with private keys, and the routes attached to each (gateway.Config), again whenever a
// model change alters it. It answers only the gateway's own identity: a caller whose mTLS certificate is not
// spiffe://<trust domain>/ns/<namespace>/sa/<names.GatewayIdentityAccount(name)> gets PERMISSION_DENIED, so
// that keys reach no one else.
func (s *Server) WatchGateway(req *policyv1.GatewayRequest, stream grpc.ServerStreamingServer[policyv1.GatewayConfig]) error {
	ns, name, ok := strings.Cut(req.GetGateway(), "/")
	if !ok || names.CheckDNSLabel(ns) != nil || name == "" || strings.Contains(name, "/") {
		return status.Error(codes.InvalidArgument, "gateway (namespace/name) is required")
	}
	want := model.SPIFFEID(s.inbound.TrustDomain, ns, names.GatewayIdentityAccount(name))
	caller, err := callerID(stream.Context())
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "gateway %s/%s: %v; only %s may watch it", ns, name, err, want)
	}
	if caller != want {
		s.log.Warn("gateway configuration refused", "gateway", ns+"/"+name, "caller", caller)
		return status.Errorf(codes.PermissionDenied, "gateway %s/%s: caller %s is not its identity %s", ns, name, caller, want)
	}
	return watch(stream.Context(), s, stream.Send, func(snap *model.Snapshot) *policyv1.GatewayConfig {
		return gateway.Config(snap, s.clusterDomain, ns, name)
	})
}

// callerID is the SPIFFE ID of the mTLS client certificate of the call in ctx.
func callerID(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", errors.New("no client certificate")
	}
	id, err := x509svid.IDFromCert(info.State.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("client certificate: %w", err)
	}
	return id.String(), nil
}

// watch sends the translation of the current model, then again whenever a change of the model or of the fetched
// keys alters it. Notifications coalesce, so a slow stream holds at most one pending recomputation.
func watch[T proto.Message](ctx context.Context, s *Server, send func(T) error, translate func(*model.Snapshot) T) error {
	changed, unsubscribe := s.store.Subscribe()
	defer unsubscribe()
	keysChanged, unsubscribeKeys := s.keys.Subscribe()
	defer unsubscribeKeys()
	last := translate(s.store.Snapshot())
	if err := send(last); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "policy server shutting down")
		case <-changed:
		case <-keysChanged:
		}
		next := translate(s.store.Snapshot())
		if proto.Equal(last, next) {
			continue
		}
		if err := send(next); err != nil {
			return err
		}
		last = next
	}
}
