package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/examples/emojivoto/app"
	"github.com/sinewmesh/sinew/proxy"
)

// The sample app with a sidecar beside each service: web reaches emoji and voting only through its sidecar, and
// the doughnut's failure shows up in the proxies' metrics as a failed gRPC route over mTLS.
func TestEmojivotoThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	serve := func(run func(net.Listener) error) string {
		ln := listen(t)
		go run(ln) //nolint:errcheck // stops with ctx
		return ln.Addr().String()
	}
	emojiApp := serve(func(ln net.Listener) error { return app.RunEmoji(ctx, ln) })
	votingApp := serve(func(ln net.Listener) error { return app.RunVoting(ctx, ln) })

	emoji := m.sidecar(sidecarOpts{ns: "emojivoto", name: "emoji", sa: "emoji", inbound: []proxy.InboundPort{{Port: 8080, App: emojiApp}}})
	voting := m.sidecar(sidecarOpts{ns: "emojivoto", name: "voting", sa: "voting", inbound: []proxy.InboundPort{{Port: 8080, App: votingApp}}})
	webLn := listen(t)
	web := m.sidecar(sidecarOpts{ns: "emojivoto", name: "web", sa: "web",
		inbound:  []proxy.InboundPort{{Port: 8080, App: webLn.Addr().String()}},
		outbound: []string{"emoji-svc.emojivoto.svc.cluster.local:8080", "voting-svc.emojivoto.svc.cluster.local:8080"}})
	m.write("emojivoto.yaml",
		workloadYAML("emojivoto", "emoji", "emoji", "emoji-svc", emoji.inboundPort(), 8080)+"---\n"+
			serviceYAML("emojivoto", "emoji-svc", "emoji-svc", 8080, 8080)+"---\n"+
			workloadYAML("emojivoto", "voting", "voting", "voting-svc", voting.inboundPort(), 8080)+"---\n"+
			serviceYAML("emojivoto", "voting-svc", "voting-svc", 8080, 8080)+"---\n"+
			workloadYAML("emojivoto", "web", "web", "web-svc", web.inboundPort(), 8080)+"---\n"+
			serviceYAML("emojivoto", "web-svc", "web-svc", 80, 8080))
	go app.RunWeb(ctx, webLn, app.WebConfig{EmojiAddr: web.p.OutboundAddrs()[0], VotingAddr: web.p.OutboundAddrs()[1]}) //nolint:errcheck
	for _, s := range []*sidecar{emoji, voting, web} {
		s.waitReady(t)
	}
	// The user's browser reaches web through web's own sidecar (inbound, plaintext from outside the mesh).
	webURL := "http://" + web.p.InboundAddr()
	status := func(path string) int {
		resp, err := http.Get(webURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/api/vote?choice=:rocket:"); got != 200 {
		t.Fatalf("vote rocket: %d", got)
	}
	if got := status("/api/vote?choice=:doughnut:"); got != 500 {
		t.Fatalf("vote doughnut: %d, want 500", got)
	}
	resp, err := http.Get(webURL + "/api/leaderboard")
	if err != nil {
		t.Fatal(err)
	}
	var board []struct {
		Votes     int    `json:"votes"`
		Shortcode string `json:"shortcode"`
	}
	json.NewDecoder(resp.Body).Decode(&board)
	resp.Body.Close()
	if len(board) != 1 || board[0].Shortcode != ":rocket:" || board[0].Votes != 1 {
		t.Fatalf("leaderboard %+v", board)
	}
	eventually(t, 5*time.Second, "web's sidecar saw mTLS calls to voting, one failed", func() error {
		text := web.metrics(t)
		voter := []string{`direction="outbound"`, `tls="true"`, `dst_service="voting-svc"`, `server_id="` + spiffeID("emojivoto", "voting") + `"`}
		if v := metricValue(text, "response_total", append(voter, `grpc_status_code="2"`, `classification="failure"`)...); v != 1 {
			return fmt.Errorf("failed votes = %v", v)
		}
		if v := metricValue(text, "response_total", append(voter, `grpc_status_code="0"`, `classification="success"`)...); v < 2 {
			return fmt.Errorf("successful voting calls = %v", v)
		}
		return nil
	})
	eventually(t, 5*time.Second, "voting's sidecar saw web's identity", func() error {
		if v := metricValue(voting.metrics(t), "request_total", `direction="inbound"`, `tls="true"`, `client_id="`+spiffeID("emojivoto", "web")+`"`); v < 3 {
			return fmt.Errorf("inbound requests from web = %v", v)
		}
		return nil
	})
}
