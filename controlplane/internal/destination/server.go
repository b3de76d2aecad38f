package destination

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Config configures a Server.
type Config struct {
	Store         *model.Store
	TrustDomain   string
	ClusterDomain string
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// QueueSize bounds each subscriber's pending updates; default 100. A subscriber that falls this far behind is
	// disconnected and resubscribes from a fresh full set.
	QueueSize int
	// Debounce coalesces bursts of model changes into one recomputation; default 50ms.
	Debounce time.Duration
}

// Server implements destinationv1.Destination.
type Server struct {
	destinationv1.UnimplementedDestinationServer

	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	subs     map[*subscriber]struct{}
	shutdown chan struct{}
	stopOnce sync.Once

	subscribers prometheus.Gauge
	overflows   prometheus.Counter
	updates     *prometheus.CounterVec
}

type subscriber struct {
	target   Target
	last     Resolution // guarded by Server.mu
	queue    chan *destinationv1.Update
	overflow chan struct{}
}

// New builds the server; Run must run for subscribers to see changes.
func New(cfg Config) *Server {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 100
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		subs:     make(map[*subscriber]struct{}),
		shutdown: make(chan struct{}),
		subscribers: promreg.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "destination_subscribers", Help: "Open Destination.Get streams.",
		})),
		overflows: promreg.Register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "destination_subscriber_overflow_total",
			Help: "Destination.Get streams closed because the subscriber fell behind its bounded queue.",
		})),
		updates: promreg.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "destination_updates_total", Help: "Destination updates sent, by type (add, remove, no_endpoints).",
		}, []string{"type"})),
	}
}

// Run recomputes subscribers' views when the model changes, until ctx is done; then it ends open streams so that a
// graceful gRPC stop can complete.
func (s *Server) Run(ctx context.Context) error {
	changed, unsubscribe := s.cfg.Store.Subscribe()
	defer unsubscribe()
	defer s.Stop()
	// The model may have changed between construction and now.
	s.recompute()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		// Let the burst settle, then compute once against the newest snapshot.
		t := time.NewTimer(s.cfg.Debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		select {
		case <-changed:
		default:
		}
		s.recompute()
	}
}

// Stop ends every open stream with UNAVAILABLE (the proxies resubscribe elsewhere or later).
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.shutdown) }) }

func (s *Server) recompute() {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.cfg.Store.Snapshot()
subs:
	for sub := range s.subs {
		next := Resolve(snap, sub.target, s.cfg.TrustDomain)
		ups := Diff(sub.last, next)
		sub.last = next
		for _, u := range ups {
			select {
			case sub.queue <- u:
			default:
				s.overflows.Inc()
				close(sub.overflow)
				delete(s.subs, sub)
				continue subs
			}
		}
	}
}

// Get streams the target's endpoints: the full set first, then deltas.
func (s *Server) Get(req *destinationv1.GetRequest, stream destinationv1.Destination_GetServer) error {
	target, err := ParseTarget(req.GetPath(), s.cfg.ClusterDomain)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	sub := &subscriber{
		target:   target,
		queue:    make(chan *destinationv1.Update, s.cfg.QueueSize),
		overflow: make(chan struct{}),
	}
	s.mu.Lock()
	sub.last = Resolve(s.cfg.Store.Snapshot(), target, s.cfg.TrustDomain)
	for _, u := range Initial(sub.last) {
		sub.queue <- u // fresh queue: cannot block
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	s.subscribers.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		s.subscribers.Dec()
	}()
	if s.log.Enabled(stream.Context(), slog.LevelDebug) {
		s.log.Debug("destination subscribe", "path", req.GetPath(), "client", req.GetContextToken())
	}

	for {
		// Drain what is queued before reacting to overflow, so the proxy gets as much as it can.
		select {
		case u := <-sub.queue:
			if err := stream.Send(u); err != nil {
				return err
			}
			s.updates.WithLabelValues(updateType(u)).Inc()
			continue
		default:
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "destination server shutting down")
		case <-sub.overflow:
			s.log.Warn("destination subscriber fell behind; closing its stream", "path", req.GetPath())
			return status.Error(codes.ResourceExhausted, "subscriber fell behind; resubscribe for a full set")
		case u := <-sub.queue:
			if err := stream.Send(u); err != nil {
				return err
			}
			s.updates.WithLabelValues(updateType(u)).Inc()
		}
	}
}

func updateType(u *destinationv1.Update) string {
	switch u.GetUpdate().(type) {
	case *destinationv1.Update_Add:
		return "add"
	case *destinationv1.Update_Remove:
		return "remove"
	default:
		return "no_endpoints"
	}
}

// overflowCount reads the overflow counter (for tests and /debug).
func (s *Server) overflowCount() float64 {
	var m dto.Metric
	_ = s.overflows.Write(&m)
	return m.GetCounter().GetValue()
}
