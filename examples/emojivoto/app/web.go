package app

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
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
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Serve returns as soon as Shutdown closes the listener; the requests in flight still need the gRPC
	// connections that the deferred Closes above would end.
	<-drained
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

// VoteBotConfig says where web is and how vote-bot votes.
type VoteBotConfig struct {
	WebURL string  // e.g. http://web-svc.emojivoto:80
	Rate   float64 // rounds (list, then vote) per second; at least 1
	// DoughnutShare is the share of votes for the doughnut, whose vote always fails; the others go to the
	// other emoji at random.
	DoughnutShare float64
	Stats         *BotStats // counts every request's outcome; nil: not counted
	// Header is sent with every request (an A/B test's group, say).
	Header http.Header
	Log    *slog.Logger
}

// RunVoteBot votes against web at cfg.Rate rounds per second until ctx ends: it lists the emoji, then votes (for
// the doughnut cfg.DoughnutShare of the time).
func RunVoteBot(ctx context.Context, cfg VoteBotConfig) error {
	rate, log := max(cfg.Rate, 1), cfg.Log
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
		if err := cfg.Stats.get(ctx, c, cfg.WebURL, "/api/list", cfg.Header, &list); err != nil || len(list) == 0 {
			log.Warn("listing emoji failed", "err", err)
			continue
		}
		choice := ":doughnut:"
		others := slices.DeleteFunc(list, func(e emojiJSON) bool { return e.Shortcode == choice })
		if len(others) > 0 && rand.Float64() >= cfg.DoughnutShare {
			choice = others[rand.IntN(len(others))].Shortcode
		}
		if err := cfg.Stats.get(ctx, c, cfg.WebURL, "/api/vote?choice="+url.QueryEscape(choice), cfg.Header, nil); err != nil {
			log.Info("vote failed", "choice", choice, "err", err)
		}
	}
}

// BotStats counts vote-bot's requests and their failures: a response other than 2xx, no response at all, or a
// body that does not decode. It serves them as JSON (vote-bot -stats-port), so a test can tell how many requests
// failed during, say, a rolling restart.
type BotStats struct {
	mu       sync.Mutex
	requests int64
	failed   int64
	kinds    map[string]int64 // failures by kind
	recent   []string         // the last few failures, with their time
}

// botStatsKinds bounds the failure kinds kept apart; the rest count as "other".
const botStatsKinds = 32

func (s *BotStats) record(path string, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if err == nil {
		return
	}
	s.failed++
	if s.kinds == nil {
		s.kinds = map[string]int64{}
	}
	kind := path + ": " + err.Error()
	if _, ok := s.kinds[kind]; !ok && len(s.kinds) >= botStatsKinds {
		kind = "other"
	}
	s.kinds[kind]++
	s.recent = append(s.recent, time.Now().UTC().Format(time.RFC3339Nano)+" "+path+": "+err.Error())
	if len(s.recent) > 20 {
		s.recent = s.recent[1:]
	}
}

// BotStatsJSON is what GET /stats answers.
type BotStatsJSON struct {
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	Failures map[string]int64 `json:"failures"`
	Recent   []string         `json:"recent"`
}

func (s *BotStats) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := BotStatsJSON{Requests: s.requests, Failed: s.failed, Failures: maps.Clone(s.kinds), Recent: slices.Clone(s.recent)}
	s.mu.Unlock()
	writeJSON(rw, http.StatusOK, out)
}

// get asks web for path, with header h, and decodes the JSON answer into into (unless nil), counting the outcome.
func (s *BotStats) get(ctx context.Context, c *http.Client, webURL, path string, h http.Header, into any) error {
	err := getJSON(ctx, c, webURL+path, h, into)
	p, _, _ := strings.Cut(path, "?")
	s.record("GET "+p, err)
	return err
}

func getJSON(ctx context.Context, c *http.Client, u string, h http.Header, into any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known to the caller
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if pe := resp.Header.Get("sinew-proxy-error"); pe != "" {
			return fmt.Errorf("status %d (sinew-proxy-error: %s)", resp.StatusCode, pe)
		}
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if into == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
