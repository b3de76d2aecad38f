package tap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math"
	"slices"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Server implements tap.v1.Tap for one proxy.
type Server struct {
	tapv1.UnimplementedTapServer
	hub        *Hub
	authorized []string
	log        *slog.Logger
}

// NewServer serves hub's events to clients whose mesh identity is one of authorized.
func NewServer(hub *Hub, authorized []string, log *slog.Logger) *Server {
	return &Server{hub: hub, authorized: slices.Clone(authorized), log: log}
}

// GRPCServer is a gRPC server that requires mesh mTLS (a client certificate chaining to anchors) and serves s.
// Authorization by identity happens per call, so an unauthorized client gets PERMISSION_DENIED rather than a
// failed handshake.
func (s *Server) GRPCServer(anchors *x509.CertPool, getCert func() *tls.Certificate) *grpc.Server {
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(meshtls.ServerConfig(anchors, getCert, true, "h2"))))
	tapv1.RegisterTapServer(g, s)
	return g
}

// Observe streams events for the requests matching req until its limit is reached or the client leaves.
func (s *Server) Observe(req *tapv1.ObserveRequest, stream grpc.ServerStreamingServer[tapv1.TapEvent]) error {
	ctx := stream.Context()
	id, err := peerID(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(s.authorized, id) {
		s.log.Info("tap refused", "client_id", id)
		return status.Errorf(codes.PermissionDenied, "identity %q may not tap this proxy", id)
	}
	if m := req.GetMatch(); m != nil {
		if err := validate(m, 0); err != nil {
			return status.Errorf(codes.InvalidArgument, "match: %v", err)
		}
	}
	if r := req.GetMaxRps(); r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return status.Errorf(codes.InvalidArgument, "max_rps: must be a finite number >= 0, got %v", r)
	}
	sub := s.hub.Subscribe(req)
	defer sub.Close()
	events := sub.Events()
	s.log.Debug("tap started", "client_id", id, "limit", req.GetLimit(), "max_rps", req.GetMaxRps())
	for {
		select {
		case ev := <-events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-sub.Done():
			// Every taken request has ended and its events are queued: deliver them, then end the stream.
			for {
				select {
				case ev := <-events:
					if err := stream.Send(ev); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func peerID(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return "", status.Error(codes.Unauthenticated, "mesh mTLS client certificate required")
	}
	id := meshtls.PeerID(ti.State.PeerCertificates[0])
	if id == "" {
		return "", status.Error(codes.Unauthenticated, "client certificate has no SPIFFE identity")
	}
	return id, nil
}
