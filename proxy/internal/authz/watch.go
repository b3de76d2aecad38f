package authz

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
)

// ErrNoPolicy: the policy service has not answered for a port that has a Server, so nobody is admitted.
var ErrNoPolicy = errors.New("no inbound policy for the port from the control plane yet")

// Port is the policy of one inbound port, kept current by its watch.
type Port struct {
	Port   uint16
	server atomic.Pointer[Server]
	first  chan struct{} // closed on the first answer
	once   sync.Once
	// interim is the policy for a port that never got an answer: the workload's default inbound policy when no
	// Server covers the port, nil (nobody is admitted) when one does or when that is unknown.
	interim *Server
	log     *slog.Logger
}

// Server waits, until ctx ends, for the port's first policy, then returns the latest one. The last policy stays
// while the control plane cannot be reached. A port that never got one returns ErrNoPolicy when a Server covers
// it (fail closed), and otherwise the default inbound policy, kept until the control plane answers.
func (p *Port) Server(ctx context.Context) (*Server, error) {
	if s := p.server.Load(); s != nil {
		return s, nil
	}
	select {
	case <-p.first:
		return p.server.Load(), nil
	case <-ctx.Done():
		if p.interim == nil {
			return nil, ErrNoPolicy
		}
		if p.server.CompareAndSwap(nil, p.interim) {
			p.once.Do(func() { close(p.first) })
			p.log.Warn("no inbound policy from the control plane yet; the port has no Server, so the default inbound policy applies until one arrives",
				"port", p.Port, "policy", p.interim.Name)
		}
		return p.server.Load(), nil
	}
}

// Current is the port's policy, nil before the first answer (for /debug/config).
func (p *Port) Current() *Server { return p.server.Load() }

func (p *Port) set(s *Server) {
	if prev := p.server.Load(); prev != nil && s != nil {
		s.Limiter = s.Limiter.adopt(prev.Limiter)
	}
	p.server.Store(s)
	p.once.Do(func() { close(p.first) })
}

// Watcher watches the inbound policy of the proxy's ports through the policy service, each from the first time a
// client connects to it. A Watcher without a policy service gives every port its fallback policy (the
// workload's default inbound policy, from the proxy's configuration).
type Watcher struct {
	client   policyv1.InboundPoliciesClient
	workload string
	fallback *Server
	// serverPorts are the ports that a Server covered when the pod was admitted; nil: unknown, so every port is
	// treated as covered.
	serverPorts map[uint16]bool
	log         *slog.Logger
	sleep       resubscribe.SleepFunc // tests replace it

	mu      sync.Mutex
	fast    sync.Map // uint16 -> *Port, the same as ports, read without mu on every connection
	ports   map[uint16]*Port
	ctx     context.Context
	running bool

	refreshMu sync.Mutex
	refreshed map[string]time.Time // key sources by when the policy service was last asked to fetch them

	updates, failures, rejected, keyRefreshes prometheus.Counter
}

// keyRefreshEvery is how often the proxy asks for one key source to be fetched again, however many tokens name
// unknown keys; the control plane has its own, longer, bound.
const keyRefreshEvery = 2 * time.Second

// NewWatcher builds a watcher for workload ("namespace/name"). A nil c (no policy service) gives every port
// fallback.
func NewWatcher(c policyv1.InboundPoliciesClient, workload string, fallback *Server, log *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	w := &Watcher{
		client: c, workload: workload, fallback: fallback, log: log, sleep: resubscribe.Sleep, ports: map[uint16]*Port{},
		refreshed: map[string]time.Time{},
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_inbound_policy_updates_total", Help: "Inbound port policies received from the policy service.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_inbound_policy_stream_failures_total", Help: "Inbound policy watches that failed and were resubscribed.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_inbound_policy_rejected_total", Help: "Parts of inbound policies (malformed networks) the proxy could not use; an authorization without them admits less, never more.",
		}),
	}
	w.keyRefreshes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "control_inbound_policy_key_refreshes_total", Help: "Requests to the policy service to fetch a JWT provider's keys again, because a token named a key the provider lacks.",
	})
	for _, m := range []prometheus.Collector{w.updates, w.failures, w.rejected, w.keyRefreshes} {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// SetServerPorts says which ports a Server covers, as the proxy injector saw them: a port among them admits
// nobody until the control plane sends its policy; any other port gets the fallback once the caller stops
// waiting for it. Without this call every port is treated as covered. Call it before Get.
func (w *Watcher) SetServerPorts(ports []uint16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.serverPorts = map[uint16]bool{}
	for _, p := range ports {
		w.serverPorts[p] = true
	}
}

// Run keeps the watches alive until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	w.ctx, w.running = ctx, true
	for _, p := range w.ports {
		w.start(p)
	}
	w.mu.Unlock()
	<-ctx.Done()
	return nil
}

// Get returns port's policy, starting its watch the first time.
func (w *Watcher) Get(port uint16) *Port {
	if v, ok := w.fast.Load(port); ok {
		return v.(*Port)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.ports[port]; ok {
		return p
	}
	p := &Port{Port: port, first: make(chan struct{}), log: w.log}
	if w.serverPorts != nil && !w.serverPorts[port] {
		p.interim = w.fallback
	}
	w.ports[port] = p
	w.fast.Store(port, p)
	w.start(p)
	return p
}

// Ports lists the watched ports, for /debug/config.
func (w *Watcher) Ports() []*Port {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Port, 0, len(w.ports))
	for _, p := range w.ports {
		out = append(out, p)
	}
	return out
}

// start begins watching p; before Run it does nothing, and Run starts every port registered so far. Callers hold
// w.mu.
func (w *Watcher) start(p *Port) {
	if w.client == nil {
		p.set(w.fallback)
		return
	}
	if !w.running {
		return
	}
	go resubscribe.Run(w.ctx, w.sleep, func(ctx context.Context) (bool, error) { return w.stream(ctx, p) },
		func(wait time.Duration, err error) {
			w.failures.Inc()
			w.log.Debug("inbound policy watch ended; resubscribing", "port", p.Port, "retry_in", wait, "err", err)
		})
}

// stream runs one subscription. Every message is the port's whole policy and replaces the one before; it applies
// to the next request and the next connection, and open connections stay.
func (w *Watcher) stream(ctx context.Context, p *Port) (received bool, err error) {
	s, err := w.client.WatchInbound(ctx, &policyv1.InboundRequest{Workload: w.workload, Port: uint32(p.Port)})
	if err != nil {
		return false, err
	}
	for {
		msg, err := s.Recv()
		if err != nil {
			return received, err
		}
		w.updates.Inc()
		srv, problems := Compile(msg)
		if len(problems) > 0 {
			w.rejected.Add(float64(len(problems)))
			for _, pr := range problems {
				w.log.Warn("inbound policy: part ignored", "port", p.Port, "problem", pr)
			}
		}
		received = true
		srv.SetKeyRefresher(w.refreshKeys)
		p.set(srv)
	}
}

// refreshKeys asks the policy service to fetch a JWT provider's keys again (source is the provider's key_source),
// because a token named the key kid that the provider lacks; at most once per keyRefreshEvery per source, without
// waiting for the answer: the keys come on the port's watch.
func (w *Watcher) refreshKeys(source, kid string) {
	now := time.Now()
	w.refreshMu.Lock()
	if last, ok := w.refreshed[source]; ok && now.Sub(last) < keyRefreshEvery {
		w.refreshMu.Unlock()
		return
	}
	if len(w.refreshed) >= 1024 {
		clear(w.refreshed)
	}
	w.refreshed[source] = now
	w.refreshMu.Unlock()
	w.mu.Lock()
	ctx := w.ctx
	w.mu.Unlock()
	if ctx == nil || w.client == nil {
		return
	}
	w.keyRefreshes.Inc()
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := w.client.RefreshKeys(ctx, &policyv1.RefreshKeysRequest{KeySource: source, KeyId: kid})
		if err != nil {
			w.log.Warn("asking the policy service to fetch JWT keys again failed", "err", err)
			return
		}
		w.log.Debug("asked the policy service to fetch JWT keys again", "fetching", resp.GetFetching())
	}()
}
