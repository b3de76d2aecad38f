// Package viz composes the viz extension's server: the API the `sinew viz` commands read, the tap fan-out to the
// proxies and the dashboard, over a Prometheus or the embedded scraper (docs/architecture/viz.md). cmd/sinew-viz
// runs it in Kubernetes, the local mesh (sinew demo, sinew run) in-process; both build a Config, call New, then Run.
// The pieces live in viz/server, viz/tapsvc, viz/metricsapi and viz/scrape; this package only composes them. It
// must not import the control plane or the CLI: what it knows of the mesh comes in through Config.
package viz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/scrape"
	"github.com/sinewmesh/sinew/viz/server"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// Modes viz runs in (the "mode" of /api/version).
const (
	ModeKubernetes = server.ModeKubernetes
	ModeLocal      = server.ModeLocal
)

// DefaultQueryTimeout bounds one PromQL query to the Prometheus at PrometheusURL.
const DefaultQueryTimeout = 20 * time.Second

// Config is everything one viz serves from. Zero values take the defaults named on each field.
type Config struct {
	// Mode is ModeKubernetes or ModeLocal.
	Mode string
	// Listen serves the API and the dashboard (":0" allowed). Its host is accepted in the Host header.
	Listen string
	// AdminAddr, when set, serves /ready (once there is a tap certificate), /live and /metrics; empty: none (local
	// mode, where the API's own /ready and /live do).
	AdminAddr string

	// Tap finds the proxies of a resource (tapsvc.Kubernetes, tapsvc.Static). When it can also list the meshed
	// pods' admin ports (tapsvc.Kubernetes), the API serves them for Prometheus's HTTP discovery.
	Tap tapsvc.Resolver
	// TrustAnchors verify the proxies' tap servers (and the identity service).
	TrustAnchors *x509.CertPool
	// The tap identity's certificate, one of: Identity, to obtain and renew it from an identity service
	// (Kubernetes; its Anchors default to TrustAnchors), or TapCertificate, a certificate source of its own (the
	// local mesh's in-process control plane).
	Identity       *identityclient.Config
	TapCertificate func() *tls.Certificate

	// The metrics, one of: PrometheusURL, a Prometheus that scrapes the proxies, asked with QueryTimeout (default
	// DefaultQueryTimeout); or Scrape, the embedded scraper (its Logger and Registerer default to viz's).
	PrometheusURL string
	QueryTimeout  time.Duration
	Scrape        *scrape.Config

	// Assets is the dashboard (web.Assets); nil: the API only.
	Assets fs.FS
	// AllowedHosts are host names accepted in the Host header besides localhost, 127.0.0.1, [::1] and Listen's host.
	AllowedHosts []string
	// EnforcedHost, when set, accepts the host names it matches too.
	EnforcedHost *regexp.Regexp

	// StateDir, when set, is where Run leaves the API's URL for the `sinew viz` commands while it serves (local mode;
	// see AnnounceLocal).
	StateDir string

	// Logger defaults to discarding; Registerer, if it is also a prometheus.Gatherer, is what /metrics serves; nil:
	// a private registry with the Go and process collectors.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Validate checks a config; errors name the field.
func (c Config) Validate() error {
	var errs []error
	invalid := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }
	if c.Mode != ModeKubernetes && c.Mode != ModeLocal {
		invalid(fmt.Sprintf("Mode %q", c.Mode), "want "+ModeKubernetes+" or "+ModeLocal)
	}
	if c.Listen == "" {
		invalid("Listen", "required")
	}
	if c.Tap == nil {
		invalid("Tap", "required")
	}
	if c.TrustAnchors == nil {
		invalid("TrustAnchors", "required")
	}
	if (c.Identity == nil) == (c.TapCertificate == nil) {
		invalid("Identity, TapCertificate", "give exactly one")
	}
	if (c.PrometheusURL == "") == (c.Scrape == nil) {
		invalid("PrometheusURL, Scrape", "give exactly one")
	}
	return errors.Join(errs...)
}

// Viz is a bound, ready-to-run viz.
type Viz struct {
	cfg      Config
	log      *slog.Logger
	ident    *identityclient.Client // nil with TapCertificate
	scraper  *scrape.Scraper        // nil with PrometheusURL
	api      *http.Server
	admin    *http.Server // nil without AdminAddr
	apiLn    net.Listener
	adminLn  net.Listener
	promName string
}

// ScrapeTargetLister is a tap resolver that can also list every meshed pod's admin port (tapsvc.Kubernetes).
type ScrapeTargetLister interface {
	ScrapeTargets(ctx context.Context) ([]metricsapi.ScrapeTarget, error)
}

var _ ScrapeTargetLister = tapsvc.Kubernetes{}

// New validates cfg, builds the pieces and binds the listeners, so that a taken port fails here. Nothing is served
// until Run.
func New(cfg Config) (_ *Viz, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("viz config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	reg, gatherer := cfg.Registerer, prometheus.Gatherer(nil)
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	log := cfg.Logger
	v := &Viz{cfg: cfg, log: log}

	cert := cfg.TapCertificate
	if cfg.Identity != nil {
		ic := *cfg.Identity
		if ic.Anchors == nil {
			ic.Anchors = cfg.TrustAnchors
		}
		if v.ident, err = identityclient.New(ic, log.With("component", "identity-client"), reg); err != nil {
			return nil, err
		}
		cert = v.ident.Certificate
	}
	sc := server.Config{
		Mode:   cfg.Mode,
		Tap:    tapsvc.New(cfg.Tap, cfg.TrustAnchors, cert, log.With("component", "tap")),
		Assets: cfg.Assets, Log: log, EnforcedHost: cfg.EnforcedHost,
		AllowedHosts: append([]string(nil), cfg.AllowedHosts...),
	}
	if lister, ok := cfg.Tap.(ScrapeTargetLister); ok {
		sc.ScrapeTargets = func(ctx context.Context) ([]server.ScrapeGroup, error) { return scrapeGroups(ctx, lister) }
	}
	if cfg.PrometheusURL != "" {
		if sc.Querier, err = metricsapi.NewClient(cfg.PrometheusURL, cfg.QueryTimeout); err != nil {
			return nil, fmt.Errorf("%s: %w", "PrometheusURL", err)
		}
		sc.Prometheus = cfg.PrometheusURL
	} else {
		scfg := *cfg.Scrape
		if scfg.Logger == nil {
			scfg.Logger = log.With("component", "scraper")
		}
		if scfg.Registerer == nil {
			scfg.Registerer = reg
		}
		if v.scraper, err = scrape.New(scfg); err != nil {
			return nil, fmt.Errorf("embedded scraper: %w", err)
		}
		sc.Querier, sc.Prometheus = v.scraper, "embedded"
	}
	v.promName = sc.Prometheus
	defer func() {
		if err != nil {
			v.closeAll()
		}
	}()

	if v.apiLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("%s: %w", "Listen", err)
	}
	if h, _, err := net.SplitHostPort(v.apiLn.Addr().String()); err == nil {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			sc.AllowedHosts = append(sc.AllowedHosts, h)
		}
	}
	v.api = &http.Server{Handler: server.New(sc), ReadHeaderTimeout: 10 * time.Second}
	if cfg.AdminAddr != "" {
		if v.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return nil, fmt.Errorf("%s: %w", "AdminAddr", err)
		}
		v.admin = &http.Server{Handler: adminHandler(cert, gatherer), ReadHeaderTimeout: 10 * time.Second}
	}
	return v, nil
}

func adminHandler(cert func() *tls.Certificate, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if cert() == nil {
			http.Error(w, "no tap certificate from the identity service yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// closeAll releases what New bound, when New fails.
func (v *Viz) closeAll() {
	if v.apiLn != nil {
		v.apiLn.Close()
	}
	if v.adminLn != nil {
		v.adminLn.Close()
	}
	if v.scraper != nil {
		_ = v.scraper.Close()
	}
}

// Addr is the API's bound address.
func (v *Viz) Addr() string { return v.apiLn.Addr().String() }

// URL is the API and dashboard's base URL.
func (v *Viz) URL() string { return "http://" + v.Addr() }

// AdminAddr is the admin server's bound address ("" without one).
func (v *Viz) AdminAddr() string {
	if v.adminLn == nil {
		return ""
	}
	return v.adminLn.Addr().String()
}

// Run serves until ctx ends (then nil) or a part fails. Stopping closes the servers outright: viz holds no state,
// and closing ends the taps in flight, which the proxies then see end.
func (v *Viz) Run(ctx context.Context) error {
	if v.cfg.StateDir != "" {
		remove, err := AnnounceLocal(v.cfg.StateDir, v.URL())
		if err != nil {
			v.log.Warn("cannot leave viz's address for the sinew viz commands", "dir", v.cfg.StateDir, "err", err)
		} else {
			defer remove()
		}
	}
	v.log.Info("viz serving", "version", version.Version, "mode", v.cfg.Mode, "api", v.Addr(), "admin", v.AdminAddr(), "prometheus", v.promName)
	g, gctx := errgroup.WithContext(ctx)
	if v.ident != nil {
		g.Go(func() error { return v.ident.Run(gctx) })
	}
	if v.scraper != nil {
		defer func() { _ = v.scraper.Close() }()
		g.Go(func() error { return v.scraper.Run(gctx) })
	}
	serve := func(name string, s *http.Server, ln net.Listener) {
		g.Go(func() error {
			if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s server: %w", name, err)
			}
			return nil
		})
	}
	serve("viz API", v.api, v.apiLn)
	if v.admin != nil {
		serve("viz admin", v.admin, v.adminLn)
	}
	g.Go(func() error {
		<-gctx.Done()
		_ = v.api.Close()
		if v.admin != nil {
			_ = v.admin.Close()
		}
		return nil
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// scrapeGroups answers Prometheus's HTTP discovery with the labels Kubernetes discovery would give each meshed pod's
// admin port, so the chart's relabeling is the same in both modes (docs/observability/viz.md).
func scrapeGroups(ctx context.Context, l ScrapeTargetLister) ([]server.ScrapeGroup, error) {
	targets, err := l.ScrapeTargets(ctx)
	if err != nil {
		return nil, err
	}
	groups := make([]server.ScrapeGroup, 0, len(targets))
	for _, t := range targets {
		groups = append(groups, server.ScrapeGroup{Targets: []string{t.Address}, Labels: map[string]string{
			"__meta_kubernetes_namespace":                            t.Namespace,
			"__meta_kubernetes_pod_name":                             t.Pod,
			"__meta_kubernetes_pod_container_port_name":              names.ProxyAdminPortName,
			"__meta_kubernetes_pod_label_sinew_dev_proxy_deployment": t.Deployment,
		}})
	}
	return groups, nil
}
