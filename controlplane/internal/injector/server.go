// Package injector is the proxy-injector: a mutating admission webhook for pods. For every pod being created it
// reads the pod's namespace (and, best effort, its workload's annotations), calls package inject, and answers with
// a JSON Patch. It must never stand in the way of a pod: on any failure it lets the pod through unmodified and says
// why in a Kubernetes Event, an admission warning, a log line and a metric.
//
// It does not watch pods, write to the API server (other than Events), or hold any state beyond its caches.
package injector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/controlplane/internal/admin"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/internal/names"
)

// Defaults of Config.
const (
	DefaultAddr      = ":8443"
	DefaultAdminAddr = ":9995"
	DefaultCertFile  = "/var/run/sinew/tls/tls.crt"
	DefaultKeyFile   = "/var/run/sinew/tls/tls.key"
	// EventSource is the component name on the Events the injector records.
	EventSource = "sinew-proxy-injector"
	// maxReviewBytes bounds an AdmissionReview body (a pod with a big spec is well under 1 MiB).
	maxReviewBytes = 8 << 20
	// ownerLookupTimeout bounds the GET of the pod's workload; the API server waits for us (timeoutSeconds).
	ownerLookupTimeout = 2 * time.Second
	shutdownGrace      = 10 * time.Second
)

// Config configures the injector. Zero values take the defaults.
type Config struct {
	Addr, AdminAddr   string // HTTPS webhook (default :8443), admin HTTP (default :9995)
	CertFile, KeyFile string // serving certificate and key, re-read when they change

	// Inject is the injection configuration without trust anchors: those come from the ConfigMap
	// sinew-identity-trust-roots in Inject.ControlPlaneNamespace, and follow its changes.
	Inject inject.Config

	Client kubernetes.Interface // namespaces (list/watch/get), the trust-roots ConfigMap, Events
	// Metadata reads the annotations of a pod's workload (its controller); nil skips that level.
	Metadata metadata.Interface
	// Dynamic reads the Servers (list/watch), to tell each proxy which of its ports have one; nil: proxies are
	// not told, and every port waits for its policy from the control plane.
	Dynamic dynamic.Interface
	// Recorder records Events; nil means one that writes through Client.
	Recorder record.EventRecorder

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Server is the injector. Build it with New, then Run it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	cache   *cache
	servers *servers
	certs   *certLoader
	events  record.EventRecorder
	bcast   record.EventBroadcaster

	lis, admLis  net.Listener
	https, admin *http.Server
	ready        atomic.Bool
	started      atomic.Bool
}

// New checks the configuration, loads the serving certificate and binds both listeners.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Client == nil {
		return nil, errors.New("injector: no Kubernetes client")
	}
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&cfg.Addr, DefaultAddr)
	set(&cfg.AdminAddr, DefaultAdminAddr)
	set(&cfg.CertFile, DefaultCertFile)
	set(&cfg.KeyFile, DefaultKeyFile)
	// everything but the trust anchors must already be right
	check := cfg.Inject
	check.TrustAnchorsPEM = placeholderAnchor
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	if cfg.Inject.ControlPlaneNamespace == "" {
		cfg.Inject.ControlPlaneNamespace = names.ControlPlaneNamespace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg, gatherer := promreg.Registries(cfg.Registerer)
	s := &Server{
		cfg: cfg, log: log, metrics: newMetrics(reg),
		certs: &certLoader{certFile: cfg.CertFile, keyFile: cfg.KeyFile},
	}
	if _, err := s.certs.get(); err != nil {
		return nil, fmt.Errorf("injector: serving certificate: %w", err)
	}
	s.cache = newCache(cfg.Client, cfg.Inject.ControlPlaneNamespace, log, s.metrics)
	s.servers = newServers(cfg.Dynamic, log)
	s.events = cfg.Recorder
	if s.events == nil {
		s.bcast = record.NewBroadcaster()
		s.events = s.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventSource})
	}

	var lc net.ListenConfig
	if s.lis, err = lc.Listen(context.Background(), "tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("injector: webhook listener: %w", err)
	}
	if s.admLis, err = lc.Listen(context.Background(), "tcp", cfg.AdminAddr); err != nil {
		_ = s.lis.Close()
		return nil, fmt.Errorf("injector: admin listener: %w", err)
	}
	s.https = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.getCertificate},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.admin = admin.NewServer(func() error {
		if why := s.readiness(); why != "" {
			return errors.New("not ready: " + why)
		}
		return nil
	}, gatherer, nil)
	return s, nil
}

// Run serves until ctx ends, then drains (not ready, finish in-flight reviews) and stops. It can be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("injector: Run called twice")
	}
	if s.bcast != nil {
		s.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cfg.Client.CoreV1().Events("")})
		defer s.bcast.Shutdown()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.cache.run(gctx) })
	g.Go(func() error { s.servers.run(gctx); return nil })
	g.Go(func() error {
		if err := s.https.ServeTLS(s.lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("webhook server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.admin.Serve(s.admLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.ready.Store(false)
		s.log.Info("proxy injector shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		for _, srv := range []*http.Server{s.https, s.admin} {
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
		}
		return nil
	})
	s.ready.Store(true)
	s.log.Info("proxy injector serving", "addr", s.Addr(), "admin", s.AdminAddr(),
		"controlPlaneNamespace", s.cfg.Inject.ControlPlaneNamespace)
	err := g.Wait()
	s.log.Info("proxy injector stopped")
	return err
}

// Addr is the bound address of the webhook; AdminAddr that of the admin server.
func (s *Server) Addr() string      { return s.lis.Addr().String() }
func (s *Server) AdminAddr() string { return s.admLis.Addr().String() }

// readiness says what is missing before the injector can inject ("" when ready).
func (s *Server) readiness() string {
	switch {
	case !s.ready.Load():
		return "not serving"
	case !s.cache.synced():
		return "namespace and trust-roots caches not synced"
	case s.cache.anchors() == "":
		return fmt.Sprintf("no trust anchors: ConfigMap %s/%s (key %s) missing or invalid",
			s.cfg.Inject.ControlPlaneNamespace, names.TrustRootsConfigMap, names.TrustRootsKey)
	}
	if _, err := s.certs.get(); err != nil {
		return "serving certificate: " + err.Error()
	}
	return ""
}

// placeholderAnchor stands in for the trust anchors when New checks the rest of the configuration.
const placeholderAnchor = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
