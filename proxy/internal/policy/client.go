package policy

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe"
)

// Watch is the policy of one target, kept current while it is used.
type Watch struct {
	Target   string
	policy   atomic.Pointer[Outbound]
	lastUsed atomic.Int64
	first    chan struct{} // closed on the first answer
	once     sync.Once
	cancel   context.CancelFunc
	evicted  atomic.Bool
}

// Policy is the target's policy: Default until the control plane answered, then its latest answer, which stays
// while the control plane cannot be reached. Never nil.
func (w *Watch) Policy() *Outbound {
	w.lastUsed.Store(time.Now().UnixNano())
	return w.policy.Load()
}

// Current is the target's policy, as Policy returns it, without counting as a use (for /debug/config).
func (w *Watch) Current() *Outbound { return w.policy.Load() }

// Wait blocks until the control plane answered once or ctx ends, then returns the latest policy (and ctx's error
// when it ended first).
func (w *Watch) Wait(ctx context.Context) (*Outbound, error) {
	select {
	case <-w.first: // an answer there already wins over a context that has ended too
		return w.Policy(), nil
	default:
	}
	select {
	case <-w.first:
		return w.Policy(), nil
	case <-ctx.Done():
		return w.Policy(), ctx.Err()
	}
}

// Answered reports whether the control plane answered once (or there is no policy service to ask).
func (w *Watch) Answered() bool {
	select {
	case <-w.first:
		return true
	default:
		return false
	}
}

// Evicted reports that the client stopped watching this target; ask the client again.
func (w *Watch) Evicted() bool { return w.evicted.Load() }

// Client watches the outbound policies of the targets the proxy sends to, on demand, through the control plane's
// policy service. A nil Client is valid: every target has its Default policy.
type Client struct {
	client   policyv1.OutboundPoliciesClient
	workload string
	log      *slog.Logger
	idle     time.Duration // a watch unused for this long is dropped
	// evictEvery is how often Run looks for idle watches; sleep waits between attempts to resubscribe, false
	// when ctx ended first. Tests replace both.
	evictEvery time.Duration
	sleep      resubscribe.SleepFunc
	mu         sync.Mutex
	fast       sync.Map        // target -> *Watch, the same as watches: read by Get on every request without c.mu
	ctx        context.Context // set by Run; watches start only once it is
	running    bool
	watches    map[string]*Watch
	updates    prometheus.Counter
	failures   prometheus.Counter
	rejected   prometheus.Counter
	active     prometheus.GaugeFunc
}

// NewClient builds a client that watches outbound policies through c; workload names the proxy's workload
// ("namespace/name"). A nil c (no policy service) gives every target its Default policy.
func NewClient(c policyv1.OutboundPoliciesClient, workload string, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	cl := &Client{
		client: c, workload: workload, log: log, idle: 10 * time.Minute, evictEvery: time.Minute, sleep: resubscribe.Sleep,
		watches: map[string]*Watch{},
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_policy_updates_total", Help: "Outbound policies received from the policy service.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_policy_stream_failures_total", Help: "Outbound policy watches that failed and were resubscribed.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "control_policy_rejected_total", Help: "Parts of outbound policies (rules, backends, timeouts, retry settings) the proxy could not use and ignored.",
		}),
	}
	cl.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "control_policy_watches", Help: "Outbound policies currently watched.",
	}, func() float64 { cl.mu.Lock(); defer cl.mu.Unlock(); return float64(len(cl.watches)) })
	for _, m := range []prometheus.Collector{cl.updates, cl.failures, cl.rejected, cl.active} {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// Run keeps watches alive until ctx ends and drops those unused for longer than the idle timeout. On a nil Client
// it only waits for ctx to end.
func (c *Client) Run(ctx context.Context) error {
	if c == nil {
		<-ctx.Done()
		return nil
	}
	c.mu.Lock()
	c.ctx, c.running = ctx, true
	for _, w := range c.watches {
		c.start(w)
	}
	c.mu.Unlock()
	tick := time.NewTicker(c.evictEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			c.evictIdle(now)
		}
	}
}

// evictIdle stops the watches not used since c.idle before now.
func (c *Client) evictIdle(now time.Time) {
	cutoff := now.Add(-c.idle).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for target, w := range c.watches {
		if w.lastUsed.Load() < cutoff {
			w.evicted.Store(true)
			w.cancel()
			delete(c.watches, target)
			c.fast.Delete(target)
		}
	}
}

// Get returns the watch of target ("host:port" or "ip:port"), starting one if there is none. On a nil Client it
// is a new watch whose policy is always Default(target).
func (c *Client) Get(target string) *Watch {
	if c == nil {
		w := &Watch{Target: target, first: make(chan struct{}), cancel: func() {}}
		w.policy.Store(Default(target))
		close(w.first)
		return w
	}
	if v, ok := c.fast.Load(target); ok {
		return v.(*Watch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.watches[target]; ok {
		return w
	}
	w := &Watch{Target: target, first: make(chan struct{})}
	w.policy.Store(Default(target))
	w.lastUsed.Store(time.Now().UnixNano())
	c.watches[target] = w
	c.fast.Store(target, w)
	c.start(w)
	return w
}

// Watches lists the watched targets' watches by target, for /debug/config.
func (c *Client) Watches() []*Watch {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.SortedFunc(maps.Values(c.watches), func(a, b *Watch) int { return strings.Compare(a.Target, b.Target) })
}

// start begins watching; before Run it does nothing, and Run starts every watch registered so far. Callers hold
// c.mu.
func (c *Client) start(w *Watch) {
	if c.client == nil {
		// No policy service: Default is the answer.
		w.cancel = func() {}
		w.once.Do(func() { close(w.first) })
		return
	}
	if !c.running {
		w.cancel = func() {}
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	w.cancel = cancel
	go c.watch(ctx, w)
}

// watch keeps w subscribed until ctx ends: when a stream ends or fails, it resubscribes after a backoff. The last
// policy w received stays until a new stream replaces it.
func (c *Client) watch(ctx context.Context, w *Watch) {
	resubscribe.Run(ctx, c.sleep, func(ctx context.Context) (bool, error) { return c.stream(ctx, w) },
		func(wait time.Duration, err error) {
			c.failures.Inc()
			c.log.Debug("outbound policy watch ended; resubscribing", "target", w.Target, "retry_in", wait, "err", err)
		})
}

// stream runs one subscription. Every message is the target's whole policy and replaces the one before.
func (c *Client) stream(ctx context.Context, w *Watch) (received bool, err error) {
	s, err := c.client.WatchOutbound(ctx, &policyv1.OutboundRequest{Target: w.Target, SourceWorkload: c.workload})
	if err != nil {
		return false, err
	}
	for {
		msg, err := s.Recv()
		if err != nil {
			return received, err
		}
		c.updates.Inc()
		o, problems := Translate(w.Target, msg)
		if len(problems) > 0 {
			c.rejected.Add(float64(len(problems)))
			for _, p := range problems {
				c.log.Warn("outbound policy: part ignored", "target", w.Target, "problem", p)
			}
		}
		received = true
		w.policy.Store(o)
		w.once.Do(func() { close(w.first) })
	}
}
