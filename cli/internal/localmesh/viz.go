package localmesh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/scrape"
	"github.com/sinewmesh/sinew/viz/server"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// VizOptions says where to serve viz (the API the `sinew viz` commands read, and the dashboard).
type VizOptions struct {
	// Listen is the viz server's address; empty: no viz.
	Listen string
	// Assets is the dashboard; nil: the API only.
	Assets fs.FS
}

// startViz serves the viz API and dashboard in-process. Its tap service holds a certificate for the tap identity,
// issued by the in-process control plane; its metrics come from the Prometheus beside the mesh, if any.
func (r *runner) startViz(cp *controlplane.ControlPlane) error {
	cert, err := cp.LocalCertificate(names.VizNamespace, names.TapAccount) // the proxies' default authorized tapper, as in Kubernetes
	if err != nil {
		return fmt.Errorf("viz: tap certificate: %w", err)
	}
	anchors, err := meshtls.ParseAnchors(cp.TrustAnchorsPEM())
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	ns := r.m.Spec.Namespace
	var targets tapsvc.Static
	for i, w := range r.m.Spec.Workloads {
		targets = append(targets, tapsvc.Target{
			Namespace: ns, Deployment: metricsapi.LocalDeployment(w.Name, w.Labels), Pod: w.Name,
			Addr: r.proxies[i].p.TapAddr(), Identity: meshtls.ID(r.m.Spec.TrustDomain, ns, w.ServiceAccount),
		})
	}
	logFile, err := os.Create(filepath.Join(r.logDir, "viz.log"))
	if err != nil {
		return err
	}
	r.vizLog = logFile
	log := slog.New(slog.NewTextHandler(logFile, nil))
	cfg := server.Config{
		Mode: server.ModeLocal, Assets: r.opts.Viz.Assets, Log: log,
		Tap: tapsvc.New(targets, anchors, cert, log.With("component", "tap")),
	}
	if r.prom != nil {
		url := "http://" + r.opts.Prometheus.Listen
		if cfg.Querier, err = metricsapi.NewClient(url, 10*time.Second); err != nil {
			return err
		}
		cfg.Prometheus = url
	} else {
		sc, err := scrape.New(scrape.Config{Targets: r.scrapeTargets(), Interval: r.opts.Prometheus.ScrapeInterval,
			Logger: log.With("component", "scraper")})
		if err != nil {
			return fmt.Errorf("viz: embedded scraper: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = sc.Run(ctx) }()
		r.scraperStop = func() { cancel(); <-done; _ = sc.Close() }
		cfg.Querier, cfg.Prometheus = sc, "embedded"
	}
	ln, err := net.Listen("tcp", r.opts.Viz.Listen)
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	if h, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		cfg.AllowedHosts = []string{h}
	}
	r.viz = &http.Server{Handler: server.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	r.vizAddr = ln.Addr().String()
	go func() {
		if err := r.viz.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.fail(fmt.Errorf("viz server: %w", err))
		}
	}()
	return nil
}
