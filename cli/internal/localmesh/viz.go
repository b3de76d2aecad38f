package localmesh

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/scrape"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// VizOptions says where to serve viz (the API the `sinew viz` commands read, and the dashboard).
type VizOptions struct {
	// Listen is the viz server's address; empty: no viz.
	Listen string
	// Assets is the dashboard; nil: the API only.
	Assets fs.FS
	// StateDir, when set, is where viz leaves its URL while it runs, for the `sinew viz` commands to find
	// (viz.StateDir).
	StateDir string
}

// startViz runs viz in-process. Its tap service holds a certificate for the tap identity, issued by the in-process
// control plane; its metrics come from the Prometheus beside the mesh, if any, else from its embedded scraper.
func (r *runner) startViz(cp *controlplane.ControlPlane) error {
	cert, err := cp.LocalCertificate(names.VizNamespace, names.TapAccount) // the proxies' default authorized tapper, as in Kubernetes
	if err != nil {
		return fmt.Errorf("viz: tap certificate: %w", err)
	}
	anchors, err := meshtls.ParseAnchors(cp.TrustAnchorsPEM())
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	var targets tapsvc.Static
	for _, mp := range r.meshed() {
		targets = append(targets, tapsvc.Target{Namespace: mp.namespace, Deployment: mp.deployment, Pod: mp.pod,
			Addr: mp.p.TapAddr(), Identity: meshtls.ID(r.m.Spec.TrustDomain, mp.namespace, mp.account)})
	}
	logFile, err := os.Create(filepath.Join(r.logDir, "viz.log"))
	if err != nil {
		return err
	}
	r.vizLog = logFile
	cfg := viz.Config{
		Mode: viz.ModeLocal, Listen: r.opts.Viz.Listen, Tap: targets, TrustAnchors: anchors, TapCertificate: cert,
		Assets: r.opts.Viz.Assets, StateDir: r.opts.Viz.StateDir, Logger: slog.New(slog.NewTextHandler(logFile, nil)),
	}
	if r.prom != nil {
		cfg.PrometheusURL, cfg.QueryTimeout = "http://"+r.opts.Prometheus.Listen, 10*time.Second
	} else {
		cfg.Scrape = &scrape.Config{Targets: r.scrapeTargets(), Interval: r.opts.Prometheus.ScrapeInterval}
	}
	v, err := viz.New(cfg)
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Run(ctx); err != nil {
			r.fail(fmt.Errorf("viz: %w (log: %s)", err, logFile.Name()))
		}
	}()
	r.vizAddr = v.Addr()
	r.vizStop = func() { cancel(); <-done }
	return nil
}
