package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
)

// Watcher keeps the gateway's configuration up to date: one WatchGateway stream, resubscribed when it ends. The
// last configuration stays while the control plane is away.
type Watcher struct {
	client  policyv1.GatewaysClient
	gateway string
	log     *slog.Logger
	sleep   resubscribe.SleepFunc

	cfg      atomic.Pointer[Config]
	changed  atomic.Pointer[chan struct{}] // closed and replaced on every new configuration
	updates  prometheus.Counter
	failures prometheus.Counter
	rejected prometheus.Counter
}

// NewWatcher watches the Gateway named gateway ("namespace/name"). Until the first answer, Current is a Config
// that serves nothing.
func NewWatcher(client policyv1.GatewaysClient, gateway string, log *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	w := &Watcher{client: client, gateway: gateway, log: log, sleep: resubscribe.Sleep,
		updates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_config_updates_total", Help: "Gateway configurations received from the control plane."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_config_watch_failures_total", Help: "Gateway configuration streams that ended or failed (each is resubscribed)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_config_rejected_total", Help: "Parts of gateway configurations the proxy could not use (a listener, a certificate, a route's rule)."}),
	}
	for _, c := range []prometheus.Collector{w.updates, w.failures, w.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	w.cfg.Store(&Config{Ports: map[uint16]*Port{}})
	ch := make(chan struct{})
	w.changed.Store(&ch)
	return w, nil
}

// Current is the latest configuration.
func (w *Watcher) Current() *Config { return w.cfg.Load() }

// Changed is closed when the next configuration arrives.
func (w *Watcher) Changed() <-chan struct{} { return *w.changed.Load() }

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	resubscribe.Run(ctx, w.sleep, w.stream, func(wait time.Duration, err error) {
		w.failures.Inc()
		w.log.Warn("gateway configuration watch ended; resubscribing", "gateway", w.gateway, "retry_in", wait, "err", err)
	})
	return nil
}

func (w *Watcher) stream(ctx context.Context) (received bool, err error) {
	s, err := w.client.WatchGateway(ctx, &policyv1.GatewayRequest{Gateway: w.gateway})
	if err != nil {
		return false, err
	}
	for {
		msg, err := s.Recv()
		if err != nil {
			return received, err
		}
		received = true
		w.updates.Inc()
		cfg, problems := Translate(msg)
		w.rejected.Add(float64(len(problems)))
		for _, p := range problems {
			w.log.Warn("gateway configuration: part ignored", "gateway", w.gateway, "problem", p)
		}
		if !cfg.Exists {
			w.log.Warn("the control plane does not know this gateway (yet): serving nothing", "gateway", w.gateway)
		}
		w.cfg.Store(cfg)
		next := make(chan struct{})
		close(*w.changed.Swap(&next))
	}
}
