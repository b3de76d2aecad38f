package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Main runs one part of emojivoto as its program does: args are web|emoji|voting|vote-bot and that part's flags,
// which default to the environment variables of the classic demo (WEB_PORT, GRPC_PORT, EMOJISVC_HOST,
// VOTINGSVC_HOST, WEB_HOST, REQUEST_RATE; BIND_HOST for the listeners). It returns when ctx ends or the part fails.
// prog names the program in messages. cmd/emojivoto and the hidden `sinew __emojivoto` (what `sinew demo` runs when
// no emojivoto program is installed) both call it.
func Main(ctx context.Context, prog string, args []string, stderr io.Writer) error {
	usage := "usage: " + prog + " web|emoji|voting|vote-bot [flags]"
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("service", args[0])
	fs := flag.NewFlagSet(prog+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	// listen parses the flags, then binds the service's port.
	listen := func(port *string) (net.Listener, error) {
		if err := fs.Parse(args[1:]); err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(env("BIND_HOST", ""), *port))
		if err == nil {
			log.Info("serving", "addr", ln.Addr().String())
		}
		return ln, err
	}
	switch args[0] {
	case "web":
		port := fs.String("port", env("WEB_PORT", "8080"), "HTTP port")
		emoji := fs.String("emoji-addr", env("EMOJISVC_HOST", "emoji-svc.emojivoto:8080"), "emoji service address")
		voting := fs.String("voting-addr", env("VOTINGSVC_HOST", "voting-svc.emojivoto:8080"), "voting service address")
		ln, err := listen(port)
		if err != nil {
			return err
		}
		return RunWeb(ctx, ln, WebConfig{EmojiAddr: *emoji, VotingAddr: *voting, Log: log})
	case "emoji", "voting":
		port := fs.String("port", env("GRPC_PORT", "8080"), "gRPC port")
		ln, err := listen(port)
		if err != nil {
			return err
		}
		if args[0] == "emoji" {
			return RunEmoji(ctx, ln)
		}
		return RunVoting(ctx, ln)
	case "vote-bot":
		host := fs.String("web-host", env("WEB_HOST", "web-svc.emojivoto:80"), "web address (host:port)")
		rateDef, _ := strconv.ParseFloat(env("REQUEST_RATE", "1"), 64)
		rate := fs.Float64("rate", rateDef, "requests per second (minimum 1)")
		doughnut := fs.Float64("doughnut-share", 0.15, "share of votes for the doughnut (they fail by design)")
		statsPort := fs.String("stats-port", "", "serve GET /stats (requests and failures, JSON) on this port")
		header := http.Header{}
		fs.Func("header", "name: value sent with every request (repeatable)", func(v string) error {
			name, value, ok := strings.Cut(v, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return fmt.Errorf("%q: want name: value", v)
			}
			header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
			return nil
		})
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg := VoteBotConfig{WebURL: "http://" + *host, Rate: *rate, DoughnutShare: *doughnut, Header: header, Log: log}
		if *statsPort != "" {
			ln, err := net.Listen("tcp", net.JoinHostPort(env("BIND_HOST", ""), *statsPort))
			if err != nil {
				return err
			}
			cfg.Stats = new(BotStats)
			srv := &http.Server{Handler: cfg.Stats, ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)                   //nolint:errcheck // ends with Close below
			defer func() { _ = srv.Close() }() // vote-bot is done; so are its stats
			log.Info("serving stats", "addr", ln.Addr().String())
		}
		return RunVoteBot(ctx, cfg)
	}
	return fmt.Errorf("unknown service %q; %s", args[0], usage)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
