// Package jwks fetches the JSON Web Key Sets that the model's JWTAuthentications name by URL or by Secret, so
// that proxies never need to: it keeps the last good keys of each source, refreshes them periodically (sooner,
// with backoff, after a failure), stops fetching sources no longer named, and tells subscribers when the keys
// change so the policy streams resend. It hands the keys to the translation as an immutable authz.Keys and must
// not translate anything itself. Fetched bytes are checked to be a key set of public keys only.
package jwks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Defaults.
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultMaxBytes = 1 << 20
	// DefaultRefetchEvery bounds Refetch: a source is fetched on demand at most this often.
	DefaultRefetchEvery = 30 * time.Second
	firstRetry          = time.Second
)

// SecretReader reads one key of a Secret (Kubernetes mode).
type SecretReader interface {
	SecretKey(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// Config configures a Fetcher.
type Config struct {
	Store *model.Store
	// Secrets reads Secret references; nil: they are reported as unavailable (local mode has no Secrets).
	Secrets SecretReader
	// Interval between refreshes of a source that works; default DefaultInterval. After a failure the next
	// attempt comes after 1s, doubling up to Interval.
	Interval time.Duration
	// Timeout of one fetch; default DefaultTimeout.
	Timeout time.Duration
	// MaxBytes a key set may have; default DefaultMaxBytes.
	MaxBytes int64
	// RefetchEvery is the least time between a source's last fetch and one on demand (Refetch); default
	// DefaultRefetchEvery. It bounds what tokens naming unknown keys can make the control plane fetch.
	RefetchEvery time.Duration
	// Client fetches URLs; default one with Timeout that follows at most 3 redirects.
	Client     *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Fetcher keeps the key sets of the model's JWTAuthentications.
type Fetcher struct {
	cfg     Config
	log     *slog.Logger
	fetches *prometheus.CounterVec
	failing prometheus.Gauge

	mu      sync.Mutex
	keys    *authz.Keys
	workers map[api.KeySource]*worker
	subs    map[chan struct{}]struct{}
}

type worker struct {
	cancel    context.CancelFunc
	done      chan struct{}
	refetch   chan struct{}
	lastFetch time.Time
}

// New builds a Fetcher; Run starts it.
func New(cfg Config) *Fetcher {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.RefetchEvery <= 0 {
		cfg.RefetchEvery = DefaultRefetchEvery
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{
		cfg: cfg, log: cfg.Logger,
		fetches: promreg.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwks_fetches_total", Help: "Fetches of JWTAuthentication key sets (URLs, Secrets), by result (success, failure).",
		}, []string{"result"})),
		failing: promreg.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jwks_sources_failing", Help: "Key set sources whose last fetch failed (their last good keys, if any, are kept).",
		})),
		keys:    &authz.Keys{},
		workers: map[api.KeySource]*worker{},
		subs:    map[chan struct{}]struct{}{},
	}
}

// Keys is the current key sets; the value is never modified.
func (f *Fetcher) Keys() *authz.Keys {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys
}

// Subscribe returns a channel that receives a value after the keys change (bursts coalesce) and a function that
// ends the subscription.
func (f *Fetcher) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// Refetch asks for the source whose Handle is handle to be fetched now, because a token named a key (kid) that
// its set lacks: a rotation the periodic refresh has not seen yet. Only sources the model names are fetched, at
// most once per RefetchEvery on demand, and not when the set has the key already (the asking proxy's policy is
// about to catch up). It reports whether a fetch was started.
func (f *Fetcher) Refetch(handle, kid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for src, w := range f.workers {
		if src.Handle() != handle {
			continue
		}
		if time.Since(w.lastFetch) < f.cfg.RefetchEvery || hasKey(f.keys.Sets[src], kid) {
			return false
		}
		select {
		case w.refetch <- struct{}{}:
			f.log.Info("fetching JWT keys again: a token names a key the set lacks", "source", src.String(), "kid", clip(kid, 64))
			return true
		default:
			return false
		}
	}
	return false
}

// clip shortens s, which a client chose, for a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// hasKey reports whether the key set b has a key with id kid.
func hasKey(b []byte, kid string) bool {
	var set jose.JSONWebKeySet
	if len(b) == 0 || json.Unmarshal(b, &set) != nil {
		return false
	}
	return len(set.Key(kid)) > 0
}

// Run fetches the sources the model names until ctx ends.
func (f *Fetcher) Run(ctx context.Context) error {
	changed, unsubscribe := f.cfg.Store.Subscribe()
	defer unsubscribe()
	defer f.stopAll()
	for {
		f.reconcile(ctx, sources(f.cfg.Store.Snapshot()))
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// sources are the key sources the snapshot's JWTAuthentications name.
func sources(snap *model.Snapshot) map[api.KeySource]bool {
	out := map[api.KeySource]bool{}
	for _, j := range snap.Policies().JWTAuthentications {
		for i := range j.Spec.Issuers {
			if src, ok := j.Spec.Issuers[i].KeySource(j.Metadata.Namespace); ok {
				out[src] = true
			}
		}
	}
	return out
}

// reconcile starts a worker per new source and stops those of sources no longer named, forgetting their keys.
func (f *Fetcher) reconcile(ctx context.Context, want map[api.KeySource]bool) {
	f.mu.Lock()
	var stopped []*worker
	for src, w := range f.workers {
		if !want[src] {
			w.cancel()
			stopped = append(stopped, w)
			delete(f.workers, src)
		}
	}
	for src := range want {
		if f.workers[src] == nil {
			wctx, cancel := context.WithCancel(ctx)
			w := &worker{cancel: cancel, done: make(chan struct{}), refetch: make(chan struct{}, 1)}
			f.workers[src] = w
			go f.work(wctx, src, w)
		}
	}
	f.mu.Unlock()
	for _, w := range stopped {
		<-w.done
	}
	if len(stopped) > 0 {
		f.mu.Lock()
		next := &authz.Keys{Sets: maps.Clone(f.keys.Sets), Errors: maps.Clone(f.keys.Errors)}
		for src := range next.Sets {
			if !want[src] {
				delete(next.Sets, src)
			}
		}
		for src := range next.Errors {
			if !want[src] {
				delete(next.Errors, src)
			}
		}
		f.publishLocked(next)
		f.mu.Unlock()
	}
}

func (f *Fetcher) stopAll() {
	f.mu.Lock()
	ws := make([]*worker, 0, len(f.workers))
	for src, w := range f.workers {
		w.cancel()
		ws = append(ws, w)
		delete(f.workers, src)
	}
	f.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
}

// work fetches src now, then every Interval, or sooner with backoff after failures, or on Refetch.
func (f *Fetcher) work(ctx context.Context, src api.KeySource, w *worker) {
	defer close(w.done)
	retry := firstRetry
	for {
		b, err := f.fetch(ctx, src)
		if ctx.Err() != nil {
			return
		}
		wait := f.cfg.Interval
		if err != nil {
			wait = min(retry, f.cfg.Interval)
			retry *= 2
		} else {
			retry = firstRetry
		}
		f.record(src, w, b, err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-w.refetch:
			t.Stop()
		}
	}
}

// record keeps a fetch's result: new keys replace the old, a failure keeps them and is remembered.
func (f *Fetcher) record(src api.KeySource, w *worker, b []byte, err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	f.fetches.WithLabelValues(result).Inc()
	f.mu.Lock()
	defer f.mu.Unlock()
	w.lastFetch = time.Now()
	if f.workers[src] != w {
		return // no longer named
	}
	old, had := f.keys.Sets[src]
	oldErr := f.keys.Errors[src]
	next := &authz.Keys{Sets: maps.Clone(f.keys.Sets), Errors: maps.Clone(f.keys.Errors)}
	if next.Sets == nil {
		next.Sets = map[api.KeySource][]byte{}
	}
	if next.Errors == nil {
		next.Errors = map[api.KeySource]string{}
	}
	if err != nil {
		if oldErr != err.Error() {
			f.log.Warn("fetching JWT keys failed", "source", src.String(), "keptLastGood", had, "err", err)
		}
		next.Errors[src] = err.Error()
	} else {
		if oldErr != "" || !had {
			f.log.Info("fetched JWT keys", "source", src.String())
		}
		delete(next.Errors, src)
		next.Sets[src] = b
	}
	if had == (next.Sets[src] != nil) && bytes.Equal(old, next.Sets[src]) && oldErr == next.Errors[src] {
		return
	}
	f.publishLocked(next)
}

func (f *Fetcher) publishLocked(next *authz.Keys) {
	f.keys = next
	f.failing.Set(float64(len(next.Errors)))
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// ErrNoSecrets: a Secret reference where there is no Secret to read (local mode).
var ErrNoSecrets = errors.New("reading a Secret needs Kubernetes mode; give the keys inline or by URL")

// fetch reads and checks one source.
func (f *Fetcher) fetch(ctx context.Context, src api.KeySource) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	var (
		b   []byte
		err error
	)
	if src.URL != "" {
		b, err = f.get(ctx, src.URL)
	} else {
		if f.cfg.Secrets == nil {
			return nil, ErrNoSecrets
		}
		b, err = f.cfg.Secrets.SecretKey(ctx, src.Namespace, src.Secret, src.Key)
		if err == nil && int64(len(b)) > f.cfg.MaxBytes {
			err = fmt.Errorf("larger than %d bytes", f.cfg.MaxBytes)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := api.CheckJWKS(b); err != nil {
		return nil, err
	}
	return b, nil
}

func (f *Fetcher) get(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("not an http(s) URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err // the URL is the source's name already; it may hold credentials
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > f.cfg.MaxBytes {
		return nil, fmt.Errorf("larger than %d bytes", f.cfg.MaxBytes)
	}
	return b, nil
}
