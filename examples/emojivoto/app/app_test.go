package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// start runs emoji, voting and web on loopback and returns web's base URL.
func start(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lns := make([]net.Listener, 3)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	done := make(chan error, 3)
	go func() { done <- RunEmoji(ctx, lns[0]) }()
	go func() { done <- RunVoting(ctx, lns[1]) }()
	go func() {
		done <- RunWeb(ctx, lns[2], WebConfig{EmojiAddr: lns[0].Addr().String(), VotingAddr: lns[1].Addr().String()})
	}()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
	return "http://" + lns[2].Addr().String()
}

func get(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestVotingJourney(t *testing.T) {
	t.Parallel()
	web := start(t)
	var list []emojiJSON
	// the original emojivoto's catalogue: its 99 emoji, in its order, with its shortcodes
	if code := get(t, web+"/api/list", &list); code != 200 || len(list) != 99 ||
		list[0] != (emojiJSON{":joy:", "😂"}) || list[2] != (emojiJSON{":doughnut:", "🍩"}) || list[98].Shortcode != ":poop:" {
		t.Fatalf("list: %d, %d emoji, starting %+v", code, len(list), list[:min(3, len(list))])
	}
	for range 3 {
		if code := get(t, web+"/api/vote?choice=:rocket:", nil); code != 200 {
			t.Fatalf("vote rocket: %d", code)
		}
	}
	if code := get(t, web+"/api/vote?choice=:joy:", nil); code != 200 {
		t.Fatalf("vote joy: %d", code)
	}
	// an earlier shortcode of the same emoji counts for it
	if code := get(t, web+"/api/vote?choice=:face_with_tears_of_joy:", nil); code != 200 {
		t.Fatalf("vote joy by its Unicode name: %d", code)
	}
	var e map[string]string
	if code := get(t, web+"/api/vote?choice=:doughnut:", &e); code != 500 || e["error"] == "" {
		t.Fatalf("doughnut: %d %v", code, e)
	}
	if code := get(t, web+"/api/vote?choice=:no_such:", &e); code != 400 || e["error"] != "Choice [:no_such:] doesn't exist" {
		t.Fatalf("unknown: %d %v", code, e)
	}
	if code := get(t, web+"/api/vote", &e); code != 400 || e["error"] != "Emoji choice [] is mandatory" {
		t.Fatalf("missing: %d %v", code, e)
	}
	var board []resultJSON
	if code := get(t, web+"/api/leaderboard", &board); code != 200 || len(board) != 2 ||
		board[0] != (resultJSON{3, "🚀", ":rocket:"}) || board[1] != (resultJSON{2, "😂", ":joy:"}) {
		t.Fatalf("leaderboard: %d %+v", code, board)
	}
	resp, err := http.Get(web + "/")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestVoteBot(t *testing.T) {
	t.Parallel()
	web := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stats := new(BotStats)
	go func() {
		done <- RunVoteBot(ctx, VoteBotConfig{WebURL: web, Rate: 50, DoughnutShare: 0.5, Stats: stats})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var board []resultJSON
		get(t, web+"/api/leaderboard", &board)
		total := int32(0)
		for _, r := range board {
			total += r.Votes
		}
		if total >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vote-bot cast %d votes in 10s at 50/s", total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every request is counted; the doughnut's votes are the only failures (500 by design).
	rec := httptest.NewRecorder()
	stats.ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	var got BotStatsJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	canceled := got.Failures["GET /api/list: context canceled"] + got.Failures["GET /api/vote: context canceled"]
	if got.Requests < 20 || got.Failed == 0 || got.Failures["GET /api/vote: status 500"] != got.Failed-canceled {
		t.Fatalf("stats: %+v", got)
	}
}

// TestVoteBotHeader: vote-bot sends its configured header with every request (an A/B test's group).
func TestVoteBotHeader(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path + " " + r.Header.Get("X-Ab-Group")
		if r.URL.Path == "/api/list" {
			_, _ = io.WriteString(w, `[{"shortcode":":joy:","unicode":"x"}]`)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunVoteBot(ctx, VoteBotConfig{WebURL: srv.URL, Rate: 50, Header: http.Header{"X-Ab-Group": {"b"}}}) //nolint:errcheck
	for _, want := range []string{"/api/list b", "/api/vote b"} {
		select {
		case got := <-seen:
			if got != want {
				t.Errorf("request %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("vote-bot sent nothing")
		}
	}
}
