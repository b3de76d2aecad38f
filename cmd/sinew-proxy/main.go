// Command sinew-proxy is the sidecar. It is configured only through SINEW_PROXY_* environment variables
// (`sinew-proxy --help` lists them). SIGTERM or SIGINT drains; a second signal stops at once.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sinewmesh/sinew/proxy"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "usage: sinew-proxy (configured by environment)\n\n%s", proxy.Usage())
		if os.Args[1] == "-h" || os.Args[1] == "--help" {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "sinew-proxy: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := proxy.Load(os.Environ())
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	log := slog.New(h)

	p, err := proxy.New(cfg, log, level)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		cancel()
		<-sigs
		log.Warn("second signal: stopping now")
		os.Exit(1)
	}()
	return p.Run(ctx)
}
