// Package app is emojivoto, the sample application: emoji (catalogue over gRPC), voting (counts over gRPC, one
// method per emoji; voting for the doughnut always fails), web (HTTP page + JSON API calling both) and vote-bot
// (steady traffic against web). Each part is Run(ctx) on a listener, so tests and `sinew demo` can host them.
package app

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"

	pb "github.com/sinewmesh/sinew/examples/emojivoto/gen/emojivotov1"
	"github.com/sinewmesh/sinew/examples/emojivoto/internal/catalog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serveGRPC serves s on ln until ctx ends.
func serveGRPC(ctx context.Context, ln net.Listener, s *grpc.Server) error {
	go func() {
		<-ctx.Done()
		s.GracefulStop()
	}()
	if err := s.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// emojiServer serves the catalogue.
type emojiServer struct {
	pb.UnimplementedEmojiServiceServer
}

func (emojiServer) ListAll(context.Context, *pb.ListAllEmojiRequest) (*pb.ListAllEmojiResponse, error) {
	resp := &pb.ListAllEmojiResponse{}
	for _, e := range catalog.All {
		resp.List = append(resp.List, &pb.Emoji{Unicode: e.Unicode, Shortcode: e.Shortcode})
	}
	return resp, nil
}

func (emojiServer) FindByShortcode(_ context.Context, req *pb.FindByShortcodeRequest) (*pb.FindByShortcodeResponse, error) {
	e, ok := catalog.Find(req.GetShortcode())
	if !ok {
		return &pb.FindByShortcodeResponse{}, nil
	}
	return &pb.FindByShortcodeResponse{Emoji: &pb.Emoji{Unicode: e.Unicode, Shortcode: e.Shortcode}}, nil
}

// RunEmoji serves EmojiService on ln.
func RunEmoji(ctx context.Context, ln net.Listener) error {
	s := grpc.NewServer()
	pb.RegisterEmojiServiceServer(s, emojiServer{})
	return serveGRPC(ctx, ln, s)
}

// Poll keeps the votes in memory.
type Poll struct {
	mu    sync.Mutex
	votes map[string]int32
}

// Vote counts one vote. The doughnut always fails: the mesh's dashboards need something to find.
func (p *Poll) Vote(shortcode string) error {
	if shortcode == ":doughnut:" {
		return status.Error(codes.Unknown, "ERROR")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.votes == nil {
		p.votes = map[string]int32{}
	}
	p.votes[shortcode]++
	return nil
}

// Results returns the counts, most votes first.
func (p *Poll) Results() []*pb.VotingResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*pb.VotingResult, 0, len(p.votes))
	for s, n := range p.votes {
		out = append(out, &pb.VotingResult{Shortcode: s, Votes: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Votes != out[j].Votes {
			return out[i].Votes > out[j].Votes
		}
		return out[i].Shortcode < out[j].Shortcode
	})
	return out
}

// votingDesc describes VotingService with one handler per emoji, built from the catalogue rather than written
// out 100 times; it serves exactly the methods of the generated client.
func votingDesc() *grpc.ServiceDesc {
	desc := &grpc.ServiceDesc{
		ServiceName: pb.VotingService_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Metadata:    pb.VotingService_ServiceDesc.Metadata,
	}
	desc.Methods = append(desc.Methods, grpc.MethodDesc{
		MethodName: "Results",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(&pb.ResultsRequest{}); err != nil {
				return nil, err
			}
			return &pb.ResultsResponse{Results: srv.(*Poll).Results()}, nil
		},
	})
	for _, e := range catalog.All {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: e.VoteRPC,
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(&pb.VoteRequest{}); err != nil {
					return nil, err
				}
				if err := srv.(*Poll).Vote(e.Shortcode); err != nil {
					return nil, err
				}
				return &pb.VoteResponse{}, nil
			},
		})
	}
	return desc
}

// RunVoting serves VotingService on ln.
func RunVoting(ctx context.Context, ln net.Listener) error {
	s := grpc.NewServer()
	s.RegisterService(votingDesc(), &Poll{})
	return serveGRPC(ctx, ln, s)
}
