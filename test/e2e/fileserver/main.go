// Command fileserver serves the files of one directory over plain HTTP, logging each request. The e2e suite runs it
// in the cluster (image ghcr.io/sinewmesh/sinew-e2e-fileserver, built by `make images`) with a ConfigMap mounted
// as that directory, to serve a JWKS that the control plane fetches: the local cluster pulls no images, so the
// server is built from source like the mesh's own images. It is a test fixture, not part of the product.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	dir := flag.String("dir", "/data", "directory whose files are served")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, *addr, *dir)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fileserver: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, dir string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.Info("request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "userAgent", r.UserAgent())
			files.ServeHTTP(w, r)
		}),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving", "addr", addr, "dir", dir)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}
