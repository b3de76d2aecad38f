// Package local is the local-mode source: a directory of YAML files (Workload and Service kinds of sinew.dev,
// the inbound authorization kinds of policy.sinew.dev: Server, ServerAuthorization, AuthorizationPolicy,
// MeshTLSAuthentication, NetworkAuthentication; the Gateway API's HTTPRoute, GRPCRoute, Gateway, GatewayClass
// and ReferenceGrant; and for the ingress gateway, core Secrets of type kubernetes.io/tls and Namespaces),
// watched for changes. A file that fails to parse or validate keeps contributing its last good resources, and its error is
// reported with the model; other files are unaffected. It must never panic on input.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Config configures a Source.
type Config struct {
	Dir        string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Debounce batches bursts of file events (editors write several times). Default 100ms.
	Debounce time.Duration
}

// Source reads and watches a directory of resource files.
type Source struct {
	dir      string
	log      *slog.Logger
	debounce time.Duration
	watcher  *fsnotify.Watcher

	mu    sync.Mutex
	files map[string]*fileState // by base name

	invalidFiles prometheus.Gauge
	reloads      *prometheus.CounterVec
}

var _ model.Source = (*Source)(nil)

type fileState struct {
	good    parsed
	hasGood bool
	err     error
	digest  string // SHA-256 (hex) of the content last read
}

// New creates the directory if needed, starts watching it and reads it once, so the resources are known before
// Run.
func New(cfg Config) (*Source, error) {
	if cfg.Dir == "" {
		return nil, errors.New("local source: resource directory is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("local source: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("local source: watching %s: %w", cfg.Dir, err)
	}
	if err := w.Add(cfg.Dir); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("local source: watching %s: %w", cfg.Dir, err)
	}
	s := &Source{
		dir:      cfg.Dir,
		log:      cfg.Logger,
		debounce: cfg.Debounce,
		watcher:  w,
		files:    make(map[string]*fileState),
		invalidFiles: promreg.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "local_source_invalid_files",
			Help: "Resource files that currently fail to parse or validate (their last good content is still used).",
		})),
		reloads: promreg.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "local_source_file_loads_total",
			Help: "Resource file (re)loads, by result (ok, error, removed).",
		}, []string{"result"})),
	}
	s.rescan()
	return s, nil
}

// Close stops watching; Run does it on return, so only call Close when Run is never called.
func (s *Source) Close() error { return s.watcher.Close() }

// Run publishes the resources, then every change, until ctx is done.
func (s *Source) Run(ctx context.Context, sink model.Sink) error {
	defer func() { _ = s.watcher.Close() }()
	s.rescan() // pick up anything that changed between New and Run
	sink.Update(s.Resources())

	dirty := map[string]bool{}
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-s.watcher.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			if filepath.Clean(ev.Name) == filepath.Clean(s.dir) {
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					s.log.Error("resource directory removed; keeping the last known resources", "dir", s.dir)
				}
				continue
			}
			if !isResourceFile(name) {
				continue
			}
			dirty[name] = true
			if fire == nil {
				fire = time.After(s.debounce)
			}
		case err, ok := <-s.watcher.Errors:
			if !ok {
				return nil
			}
			// Overflowed inotify queue and the like: a full rescan repairs whatever was missed.
			s.log.Warn("watching resource directory", "dir", s.dir, "err", err)
			s.rescan()
			sink.Update(s.Resources())
		case <-fire:
			fire = nil
			for name := range dirty {
				s.load(name)
			}
			clear(dirty)
			sink.Update(s.Resources())
		}
	}
}

func isResourceFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false // editor swap and lock files
	}
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// rescan reloads every resource file and forgets files that are gone.
func (s *Source) rescan() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Error("reading resource directory; keeping the last known resources", "dir", s.dir, "err", err)
		return
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !isResourceFile(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		s.load(e.Name())
	}
	s.mu.Lock()
	var gone []string
	for name := range s.files {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	s.mu.Unlock()
	for _, name := range gone {
		s.load(name)
	}
}

// load (re)reads one file into its state.
func (s *Source) load(name string) {
	data, err := os.ReadFile(filepath.Join(s.dir, name))
	if err == nil {
		info, statErr := os.Stat(filepath.Join(s.dir, name))
		if statErr == nil && info.IsDir() {
			err = fs.ErrNotExist
		}
	}
	s.mu.Lock()
	defer func() {
		n := 0
		for _, f := range s.files {
			if f.err != nil {
				n++
			}
		}
		s.mu.Unlock()
		s.invalidFiles.Set(float64(n))
	}()
	if errors.Is(err, fs.ErrNotExist) {
		if _, ok := s.files[name]; ok {
			delete(s.files, name)
			s.reloads.WithLabelValues("removed").Inc()
			s.log.Info("resource file removed", "file", name)
		}
		return
	}
	st := s.files[name]
	if st == nil {
		st = &fileState{}
		s.files[name] = st
	}
	if err == nil {
		sum := sha256.Sum256(data)
		st.digest = hex.EncodeToString(sum[:])
		var p parsed
		p, err = parseFile(name, data)
		if err == nil {
			for _, kind := range p.ignored {
				s.log.Debug("ignoring resource of unknown kind", "file", name, "kind", kind)
			}
			for _, problem := range p.problems {
				s.log.Warn("ignoring part of a resource", "file", name, "problem", problem)
			}
			st.good, st.hasGood, st.err = p, true, nil
			s.reloads.WithLabelValues("ok").Inc()
			s.log.Debug("resource file loaded", "file", name, "services", len(p.services), "workloads", len(p.workloads), "policies", len(p.policies), "httpRoutes", len(p.httpRoutes))
			return
		}
	} else {
		err = fmt.Errorf("%s: %w", name, err)
	}
	st.err = err
	s.reloads.WithLabelValues("error").Inc()
	if st.hasGood {
		s.log.Error("invalid resource file; keeping its last good resources", "file", name, "err", err)
	} else {
		s.log.Error("invalid resource file; ignoring it", "file", name, "err", err)
	}
}

// Resources merges the files' last good resources. Files are read in name order; a resource defined again in a
// later file is reported as an error and the first definition wins.
func (s *Source) Resources() model.Resources {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.files))
	for name := range s.files {
		names = append(names, name)
	}
	slices.Sort(names)

	var r model.Resources
	seenSvc := map[string]string{}
	seenWl := map[string]string{}
	seenPolicy := map[string]string{} // by "Kind namespace/name"
	r.Files = make(map[string]string, len(names))
	for _, name := range names {
		st := s.files[name]
		r.Files[name] = st.digest
		if st.err != nil {
			r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name), Message: st.err.Error()})
		}
		if !st.hasGood {
			continue
		}
		for _, problem := range st.good.problems {
			r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name), Message: problem})
		}
		for _, svc := range st.good.services {
			if first, dup := seenSvc[svc.Key()]; dup {
				r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name),
					Message: fmt.Sprintf("%s: Service %s is already defined in %s; ignoring this one", name, svc.Key(), first)})
				continue
			}
			seenSvc[svc.Key()] = name
			r.Services = append(r.Services, svc)
		}
		for _, w := range st.good.workloads {
			if first, dup := seenWl[w.Key()]; dup {
				r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name),
					Message: fmt.Sprintf("%s: Workload %s is already defined in %s; ignoring this one", name, w.Key(), first)})
				continue
			}
			seenWl[w.Key()] = name
			r.Workloads = append(r.Workloads, w)
		}
		for _, o := range st.good.policies {
			key := o.ObjectKind() + " " + o.ObjectMeta().Key()
			if first, dup := seenPolicy[key]; dup {
				r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name),
					Message: fmt.Sprintf("%s: %s is already defined in %s; ignoring this one", name, key, first)})
				continue
			}
			seenPolicy[key] = name
			r.Policies.Add(o)
		}
		// once reports whether an object (a route, a gateway kind) is the first of its kind and name; a later one
		// is an error. Cluster-scoped kinds (GatewayClass, Namespace) have no namespace.
		once := func(kind string, m *metav1.ObjectMeta) bool {
			key := kind + " " + m.Namespace + "/" + m.Name
			if m.Namespace == "" {
				key = kind + " " + m.Name
			}
			if first, dup := seenPolicy[key]; dup {
				r.Errors = append(r.Errors, model.SourceError{Source: filepath.Join(s.dir, name),
					Message: fmt.Sprintf("%s: %s is already defined in %s; ignoring this one", name, key, first)})
				return false
			}
			seenPolicy[key] = name
			return true
		}
		for _, rt := range st.good.httpRoutes {
			if once(routesapi.KindHTTPRoute, &rt.ObjectMeta) {
				r.HTTPRoutes = append(r.HTTPRoutes, rt)
			}
		}
		for _, rt := range st.good.grpcRoutes {
			if once(routesapi.KindGRPCRoute, &rt.ObjectMeta) {
				r.GRPCRoutes = append(r.GRPCRoutes, rt)
			}
		}
		for _, gw := range st.good.gateways {
			if once(kindGateway, &gw.ObjectMeta) {
				r.Gateways = append(r.Gateways, gw)
			}
		}
		for _, c := range st.good.gatewayClasses {
			if once(kindGatewayClass, &c.ObjectMeta) {
				r.GatewayClasses = append(r.GatewayClasses, c)
			}
		}
		for _, g := range st.good.referenceGrants {
			if once(kindReferenceGrant, &g.ObjectMeta) {
				r.ReferenceGrants = append(r.ReferenceGrants, g)
			}
		}
		for _, sec := range st.good.secrets {
			if once(kindSecret, &metav1.ObjectMeta{Namespace: sec.Namespace, Name: sec.Name}) {
				r.TLSSecrets = append(r.TLSSecrets, sec)
			}
		}
		for _, ns := range st.good.namespaces {
			if once(kindNamespace, &metav1.ObjectMeta{Name: ns.Name}) {
				r.Namespaces = append(r.Namespaces, ns)
			}
		}
	}
	return r
}
