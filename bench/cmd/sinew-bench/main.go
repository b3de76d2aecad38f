// Command sinew-bench runs sinew's performance scenarios (see bench/README.md and PERFORMANCE.md) against
// direct, Go's ReverseProxy, nginx, HAProxy and sinew, and writes a Markdown report plus <out>.json.
//
// It re-executes itself under `taskset -c 1` (load generator and app on core 1, proxies on core 0), and
// also serves as the app and the Go reverse-proxy peer through the hidden `app` and `revproxy` subcommands.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/run"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sinew-bench:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "app":
			fs := flag.NewFlagSet("app", flag.ContinueOnError)
			addr := fs.String("addr", "127.0.0.1:0", "listen address")
			size := fs.Int("size", 1024, "response body bytes")
			echo := fs.String("echo", "", "also serve a TCP echo on this address (S6)")
			tlsAddr := fs.String("tls-addr", "", "also serve the app over TLS 1.3 on this address, client certificate required (S7)")
			ca := fs.String("ca", "", "CA certificate (PEM) for -tls-addr")
			cert := fs.String("cert", "", "server certificate (PEM) for -tls-addr")
			key := fs.String("key", "", "server key (PEM) for -tls-addr")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			var tcfg *tls.Config
			if *tlsAddr != "" {
				var err error
				if tcfg, err = peers.ServerTLS(peers.TLSFiles{CA: *ca, ServerCert: *cert, ServerKey: *key}); err != nil {
					return err
				}
			}
			return peers.RunAppAndEcho(ctx, peers.AppOptions{Addr: *addr, Echo: *echo, TLSAddr: *tlsAddr, TLS: tcfg, Size: *size})
		case "revproxy":
			return revproxy(ctx, args[1:])
		}
	}
	return run.Main(ctx, args, os.Stderr)
}

func revproxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("revproxy", flag.ContinueOnError)
	listen := fs.String("listen", "", "listen address")
	upstream := fs.String("upstream", "", "upstream host:port")
	tlsServer := fs.Bool("tls-server", false, "terminate mTLS on the listener")
	tlsClient := fs.Bool("tls-client", false, "originate mTLS to the upstream")
	ca := fs.String("ca", "", "CA certificate (PEM)")
	cert := fs.String("cert", "", "certificate (PEM)")
	key := fs.String("key", "", "private key (PEM)")
	h2 := fs.Bool("h2", false, "HTTP/2 on both sides (h2c in the clear, ALPN h2 over TLS)")
	frontCert := fs.String("front-cert", "", "terminate TLS on the listener with this certificate (PEM), independently of -tls-server; mTLS unless -front-client-cert=false")
	frontKey := fs.String("front-key", "", "private key of -front-cert (PEM)")
	frontClientCert := fs.Bool("front-client-cert", true, "require a client certificate on -front-cert's listener (false: an edge, S12)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := peers.TLSFiles{CA: *ca, ServerCert: *cert, ServerKey: *key, ClientCert: *cert, ClientKey: *key}
	o := peers.RevProxyOptions{Listen: *listen, Upstream: *upstream, H2: *h2}
	var err error
	var cfg *tls.Config
	if *tlsServer {
		if cfg, err = peers.ServerTLS(files); err != nil {
			return err
		}
		o.ServerTLS = cfg
	}
	if *frontCert != "" {
		front := files
		front.ServerCert, front.ServerKey = *frontCert, *frontKey
		if cfg, err = peers.ServerTLS(front); err != nil {
			return err
		}
		if !*frontClientCert {
			cfg.ClientAuth, cfg.ClientCAs = tls.NoClientCert, nil
		}
		o.ServerTLS = cfg
	}
	if *tlsClient {
		if cfg, err = peers.ClientTLS(files); err != nil {
			return err
		}
		o.ClientTLS = cfg
	}
	return peers.RunRevProxy(ctx, o)
}
