// Package discovery resolves destinations through the control plane's destination service, on demand: the first
// time a target is used a watch starts; updates stream in; the last known endpoints survive a control-plane
// outage while the watch resubscribes with backoff; targets unused for a while are dropped.
package discovery

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
)

// Endpoint is one resolved address.
type Endpoint struct {
	Addr       string
	Weight     uint32
	Labels     map[string]string
	Identity   string // expected SPIFFE ID; empty when not meshed
	Opaque     bool
	TargetPort uint16
	// NoTLSReason says why an endpoint without Identity is reached in plaintext ("disabled": its mTLS mode is
	// DISABLE); empty when it is not meshed. It becomes the tls metric label.
	NoTLSReason string
}

// Meshed reports whether the endpoint has a sinew proxy we must speak mTLS to.
func (e *Endpoint) Meshed() bool { return e.Identity != "" }

// Snapshot is the current view of a target. Version increases on every change.
type Snapshot struct {
	Version uint64
	// Known is false until the destination service answered once.
	Known bool
	// Exists is false when the destination service does not know the name: pass through to the original address.
	Exists    bool
	Endpoints []Endpoint // sorted by Addr
	Labels    map[string]string
}

// Target is one watched name.
type Target struct {
	Name     string
	snap     atomic.Pointer[Snapshot]
	lastUsed atomic.Int64
	first    chan struct{}
	next     atomic.Pointer[chan struct{}] // closed and replaced on every update
	once     sync.Once
	cancel   context.CancelFunc
	evicted  atomic.Bool
}

// Next is closed when the next update arrives: a caller that needs something the current snapshot lacks (another
// endpoint) waits on it.
func (t *Target) Next() <-chan struct{} { return *t.next.Load() }

// Evicted reports that the resolver stopped watching this target; ask the resolver again.
func (t *Target) Evicted() bool { return t.evicted.Load() }

// Snapshot returns the latest view.
func (t *Target) Snapshot() *Snapshot {
	t.lastUsed.Store(time.Now().UnixNano())
	return t.snap.Load()
}

// Wait blocks until the first answer arrived or ctx ends, then returns the latest view.
func (t *Target) Wait(ctx context.Context) (*Snapshot, error) {
	select {
	case <-t.first:
		return t.Snapshot(), nil
	case <-ctx.Done():
		return t.Snapshot(), ctx.Err()
	}
}

// Resolver owns the watches.
type Resolver struct {
	client  destinationv1.DestinationClient
	context string
	log     *slog.Logger
	idle    time.Duration // a target unused for this long is dropped
	// evictEvery is how often Run looks for idle targets; sleep waits between attempts to resubscribe, false
	// when ctx ended first. Tests replace both.
	evictEvery time.Duration
	sleep      resubscribe.SleepFunc
	mu         sync.Mutex
	ctx        context.Context // set by Run; watches start only once it is
	running    bool
	targets    map[string]*Target
	updates    prometheus.Counter
	failures   prometheus.Counter
	active     prometheus.GaugeFunc
}

// NewResolver builds a resolver; contextToken names the calling workload ("ns/name").
func NewResolver(client destinationv1.DestinationClient, contextToken string, log *slog.Logger, reg prometheus.Registerer) (*Resolver, error) {
	r := &Resolver{
		client: client, context: contextToken, log: log, idle: 10 * time.Minute, evictEvery: time.Minute, sleep: resubscribe.Sleep,
		targets: map[string]*Target{},
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_destination_updates_total", Help: "Endpoint updates received from the destination service.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_destination_stream_failures_total", Help: "Destination watches that failed and were resubscribed.",
		}),
	}
	r.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "control_destination_watches", Help: "Destinations currently watched.",
	}, func() float64 { r.mu.Lock(); defer r.mu.Unlock(); return float64(len(r.targets)) })
	for _, c := range []prometheus.Collector{r.updates, r.failures, r.active} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run keeps watches alive until ctx ends and drops targets idle for longer than the idle timeout.
func (r *Resolver) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx, r.running = ctx, true
	for _, t := range r.targets {
		r.start(t)
	}
	r.mu.Unlock()
	tick := time.NewTicker(r.evictEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			r.evictIdle(now)
		}
	}
}

// evictIdle stops watching the targets not used since r.idle before now.
func (r *Resolver) evictIdle(now time.Time) {
	cutoff := now.Add(-r.idle).UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, t := range r.targets {
		if t.lastUsed.Load() < cutoff {
			t.evicted.Store(true)
			t.cancel()
			delete(r.targets, name)
		}
	}
}

// Get returns the target for name, starting a watch if there is none.
func (r *Resolver) Get(name string) *Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.targets[name]; ok {
		return t
	}
	t := &Target{Name: name, first: make(chan struct{})}
	t.snap.Store(&Snapshot{})
	next := make(chan struct{})
	t.next.Store(&next)
	t.lastUsed.Store(time.Now().UnixNano())
	r.targets[name] = t
	r.start(t)
	return t
}

// Targets lists the watched targets, for /debug/config.
func (r *Resolver) Targets() []*Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Values(r.targets), func(a, b *Target) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
}

// start begins watching t; before Run it does nothing, and Run starts every target registered so far.
// Callers hold r.mu.
func (r *Resolver) start(t *Target) {
	if !r.running {
		t.cancel = func() {}
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	t.cancel = cancel
	go r.watch(ctx, t)
}

// watch keeps t subscribed until ctx ends: when a stream ends or fails, it resubscribes after a backoff. What t
// knew stays until a new stream's first message replaces it.
func (r *Resolver) watch(ctx context.Context, t *Target) {
	resubscribe.Run(ctx, r.sleep, func(ctx context.Context) (bool, error) { return r.stream(ctx, t) },
		func(wait time.Duration, err error) {
			r.failures.Inc()
			r.log.Debug("destination watch ended; resubscribing", "target", t.Name, "retry_in", wait, "err", err)
		})
}

// stream runs one subscription. The first message of a stream replaces what we had; later ones are deltas.
func (r *Resolver) stream(ctx context.Context, t *Target) (received bool, err error) {
	s, err := r.client.Get(ctx, &destinationv1.GetRequest{Path: t.Name, ContextToken: r.context})
	if err != nil {
		return false, err
	}
	var eps map[string]Endpoint
	for {
		up, err := s.Recv()
		if err != nil {
			return received, err
		}
		r.updates.Inc()
		prev := t.snap.Load()
		next := &Snapshot{Version: prev.Version + 1, Known: true, Exists: true, Labels: prev.Labels}
		if !received || eps == nil {
			eps = map[string]Endpoint{}
		}
		switch u := up.GetUpdate().(type) {
		case *destinationv1.Update_Add:
			if !received || len(next.Labels) == 0 {
				next.Labels = u.Add.GetMetricLabels()
			}
			for _, a := range u.Add.GetAddrs() {
				eps[a.GetAddr()] = convert(a)
			}
		case *destinationv1.Update_Remove:
			for _, addr := range u.Remove.GetAddrs() {
				delete(eps, addr)
			}
		case *destinationv1.Update_NoEndpoints:
			clear(eps)
			next.Exists = u.NoEndpoints.GetExists()
		default:
			return received, errors.New("destination update of unknown kind")
		}
		received = true
		next.Endpoints = slices.SortedFunc(maps.Values(eps), func(a, b Endpoint) int {
			if a.Addr < b.Addr {
				return -1
			}
			return 1
		})
		t.snap.Store(next)
		t.once.Do(func() { close(t.first) })
		changed := make(chan struct{})
		close(*t.next.Swap(&changed))
	}
}

func convert(a *destinationv1.WeightedAddr) Endpoint {
	e := Endpoint{
		Addr:       a.GetAddr(),
		Weight:     a.GetWeight(),
		Labels:     a.GetMetricLabels(),
		Identity:   a.GetTlsIdentity().GetSpiffeId(),
		TargetPort: uint16(a.GetTargetPort()),
	}
	if e.Identity == "" {
		e.NoTLSReason = a.GetNoTlsReason()
	}
	if _, ok := a.GetProtocolHint().GetProtocol().(*destinationv1.ProtocolHint_Opaque_); ok {
		e.Opaque = true
	}
	if e.Weight == 0 {
		e.Weight = 1
	}
	return e
}
