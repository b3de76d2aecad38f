package app

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	pb "github.com/sinewmesh/sinew/examples/emojivoto/gen/emojivotov1"
	"github.com/sinewmesh/sinew/examples/emojivoto/internal/catalog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

//go:embed static
var static embed.FS

// WebConfig says where the gRPC backends are (in a mesh: the local sidecar's outbound ports or service names).
type WebConfig struct {
	EmojiAddr, VotingAddr string
	Log                   *slog.Logger
}

type web struct {
	emoji  pb.EmojiServiceClient
	voting *grpc.ClientConn
	log    *slog.Logger
}

// RunWeb serves the page and the JSON API on ln until ctx ends.
func RunWeb(ctx context.Context, ln net.Listener, cfg WebConfig) error {
	emojiConn, err := grpc.NewClient(cfg.EmojiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("emoji service %s: %w", cfg.EmojiAddr, err)
	}
	defer func() { _ = emojiConn.Close() }()
	votingConn, err := grpc.NewClient(cfg.VotingAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("voting service %s: %w", cfg.VotingAddr, err)
	}
	defer func() { _ = votingConn.Close() }()
	w := &web{emoji: pb.NewEmojiServiceClient(emojiConn), voting: votingConn, log: cfg.Log}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", w.page)
	mux.HandleFunc("GET /leaderboard", w.page)
	mux.HandleFunc("GET /api/list", w.list)
	mux.HandleFunc("/api/vote", w.vote)
	mux.HandleFunc("GET /api/leaderboard", w.leaderboard)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (w *web) page(rw http.ResponseWriter, _ *http.Request) {
	b, _ := static.ReadFile("static/index.html")
	rw.Header().Set("content-type", "text/html; charset=utf-8")
	rw.Write(b) //nolint:errcheck
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("content-type", "application/json")
	rw.WriteHeader(status)
	json.NewEncoder(rw).Encode(v) //nolint:errcheck
}

func (w *web) fail(rw http.ResponseWriter, status int, err error) {
	w.log.Warn("request failed", "status", status, "err", err)
	writeJSON(rw, status, map[string]string{"error": err.Error()})
}

type emojiJSON struct {
	Shortcode string `json:"shortcode"`
	Unicode   string `json:"unicode"`
}

func (w *web) list(rw http.ResponseWriter, r *http.Request) {
	resp, err := w.emoji.ListAll(r.Context(), &pb.ListAllEmojiRequest{})
	if err != nil {
		w.fail(rw, http.StatusInternalServerError, err)
		return
	}
	out := make([]emojiJSON, 0, len(resp.GetList()))
	for _, e := range resp.GetList() {
		out = append(out, emojiJSON{Shortcode: e.GetShortcode(), Unicode: e.GetUnicode()})
	}
	writeJSON(rw, http.StatusOK, out)
}

func (w *web) vote(rw http.ResponseWriter, r *http.Request) {
	choice := r.FormValue("choice")
	if choice == "" {
		w.fail(rw, http.StatusBadRequest, fmt.Errorf("Emoji choice [%s] is mandatory", choice))
		return
	}
	found, err := w.emoji.FindByShortcode(r.Context(), &pb.FindByShortcodeRequest{Shortcode: choice})
	if err != nil {
		w.fail(rw, http.StatusInternalServerError, err)
		return
	}
	e, ok := catalog.Find(found.GetEmoji().GetShortcode())
	if found.GetEmoji() == nil || !ok {
		w.fail(rw, http.StatusBadRequest, fmt.Errorf("Choice [%s] doesn't exist", choice))
		return
	}
	method := "/" + pb.VotingService_ServiceDesc.ServiceName + "/" + e.VoteRPC
	if err := w.voting.Invoke(r.Context(), method, &pb.VoteRequest{}, &pb.VoteResponse{}); err != nil {
		w.fail(rw, http.StatusInternalServerError, err)
		return
	}
}

type resultJSON struct {
	Votes     int32  `json:"votes"`
	Unicode   string `json:"unicode"`
	Shortcode string `json:"shortcode"`
}

func (w *web) leaderboard(rw http.ResponseWriter, r *http.Request) {
	var res pb.ResultsResponse
	if err := w.voting.Invoke(r.Context(), "/"+pb.VotingService_ServiceDesc.ServiceName+"/Results", &pb.ResultsRequest{}, &res); err != nil {
		w.fail(rw, http.StatusInternalServerError, err)
		return
	}
	out := make([]resultJSON, 0, len(res.GetResults()))
	for _, v := range res.GetResults() {
		found, err := w.emoji.FindByShortcode(r.Context(), &pb.FindByShortcodeRequest{Shortcode: v.GetShortcode()})
		if err != nil {
			w.fail(rw, http.StatusInternalServerError, err)
			return
		}
		out = append(out, resultJSON{Votes: v.GetVotes(), Unicode: found.GetEmoji().GetUnicode(), Shortcode: v.GetShortcode()})
	}
	writeJSON(rw, http.StatusOK, out)
}

// RunVoteBot votes against web at rate requests per second until ctx ends: it lists the emoji, then votes for
// the doughnut 15% of the time and for a random emoji otherwise.
func RunVoteBot(ctx context.Context, webURL string, rate float64, log *slog.Logger) error {
	if rate < 1 {
		rate = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var list []emojiJSON
		if err := getJSON(ctx, c, webURL+"/api/list", &list); err != nil || len(list) == 0 {
			log.Warn("listing emoji failed", "err", err)
			continue
		}
		choice := list[rand.IntN(len(list))].Shortcode
		if rand.Float64() < 0.15 {
			choice = ":doughnut:"
		}
		if err := getJSON(ctx, c, webURL+"/api/vote?choice="+url.QueryEscape(choice), nil); err != nil {
			log.Info("vote failed", "choice", choice, "err", err)
		}
	}
}

func getJSON(ctx context.Context, c *http.Client, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
