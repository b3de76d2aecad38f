// Package kube is the Kubernetes source: shared informers on Services, EndpointSlices, Pods, Namespaces and
// ServiceAccounts, dynamic informers on the policy.sinew.dev kinds and the Gateway API routes (policies.go), and
// the ingress gateway's Gateways, GatewayClasses, ReferenceGrants and TLS Secrets (gateways.go), translated into the same
// model the local source feeds. Event handlers only mark keys dirty; one
// loop translates the dirty objects from the informer caches, batching bursts, and publishes the whole resource
// set. Pods become workloads; EndpointSlices (not selectors) decide which pods back a service. It never writes to
// the API server, and translation never panics on odd objects: problems are reported with the model.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Config configures a Source.
type Config struct {
	Client kubernetes.Interface
	// Dynamic reads the policy.sinew.dev objects; nil: none are read.
	Dynamic dynamic.Interface
	// CRDRecheck is how often policy kinds the API server does not serve (CRDs not installed) are looked for
	// again. Default 1m.
	CRDRecheck time.Duration
	// DefaultOpaquePorts apply where no annotation says otherwise; nil means DefaultOpaquePorts, an empty
	// non-nil slice none.
	DefaultOpaquePorts []model.PortRange
	// Debounce batches bursts of events into one model update. Default 100ms.
	Debounce   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Source watches the API server. Construct with New, then Run.
type Source struct {
	log           *slog.Logger
	debounce      time.Duration
	defaultOpaque []model.PortRange
	client        kubernetes.Interface
	dyn           dynamic.Interface
	crdRecheck    time.Duration

	factory    informers.SharedInformerFactory
	pods       corelisters.PodLister
	services   corelisters.ServiceLister
	namespaces corelisters.NamespaceLister
	accounts   corelisters.ServiceAccountLister
	slices     cache.Indexer
	hasSynced  []cache.InformerSynced

	// TLS Secrets, on their own factory (a field selector), started once Gateways are served.
	secretFactory informers.SharedInformerFactory
	secrets       corelisters.SecretLister
	secretSynced  cache.InformerSynced
	secretStarted bool

	// Dirty keys, written by event handlers.
	mu         sync.Mutex
	dirtyPods  map[string]struct{}
	dirtySvcs  map[string]struct{}
	dirtyNS    map[string]struct{}
	dirtyAccts bool
	// dirtyPolicies: some policy object changed; they are re-read as a whole.
	dirtyPolicies bool
	// dirtyGateways: some gateway object, TLS Secret or namespace changed; they are re-read as a whole.
	dirtyGateways bool
	notify        chan struct{}
	synced        atomic.Bool
	runOnce       atomic.Bool

	// Translations, owned by the Run goroutine.
	workloads map[string]*model.Workload
	svcs      map[string]*model.Service
	accts     []model.ServiceAccount
	objErrors map[string]model.SourceError // by "kind ns/name"

	// Policy informers, started by Run for the kinds the API server serves, and their translation.
	dynFactory        dynamicinformer.DynamicSharedInformerFactory
	policyInformers   map[string]policyInformer
	policies          authzapi.Policies
	httpRoutes        []*routesapi.HTTPRoute
	grpcRoutes        []*routesapi.GRPCRoute
	policyProblemKeys map[string]struct{}
	// gateways are the ingress gateway's objects (gateways.go).
	gateways           model.GatewayResources
	gatewayProblemKeys map[string]struct{}

	events   *prometheus.CounterVec
	updates  prometheus.Counter
	problems prometheus.Gauge
}

var _ model.Source = (*Source)(nil)

const serviceIndex = "service"

// New sets the informers up; nothing talks to the API server before Run.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes source: a client is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.DefaultOpaquePorts == nil {
		cfg.DefaultOpaquePorts = DefaultOpaquePorts
	}
	if cfg.CRDRecheck <= 0 {
		cfg.CRDRecheck = time.Minute
	}
	// managedFields are a large share of every object and nothing here reads them.
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(func(obj any) (any, error) {
		if a, err := meta.Accessor(obj); err == nil {
			a.SetManagedFields(nil)
		}
		return obj, nil
	}))
	s := &Source{
		log:                cfg.Logger,
		debounce:           cfg.Debounce,
		defaultOpaque:      cfg.DefaultOpaquePorts,
		client:             cfg.Client,
		dyn:                cfg.Dynamic,
		crdRecheck:         cfg.CRDRecheck,
		factory:            factory,
		policyInformers:    map[string]policyInformer{},
		policyProblemKeys:  map[string]struct{}{},
		gatewayProblemKeys: map[string]struct{}{},
		dirtyPods:          map[string]struct{}{},
		dirtySvcs:          map[string]struct{}{},
		dirtyNS:            map[string]struct{}{},
		notify:             make(chan struct{}, 1),
		workloads:          map[string]*model.Workload{},
		svcs:               map[string]*model.Service{},
		objErrors:          map[string]model.SourceError{},
		events: promreg.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_source_events_total", Help: "Informer events received, by kind.",
		}, []string{"kind"})),
		updates: promreg.Register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kube_source_model_updates_total", Help: "Model updates published by the Kubernetes source.",
		})),
		problems: promreg.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kube_source_object_problems", Help: "Objects with problems the translation ignored (see /debug/model).",
		})),
	}

	podInf := factory.Core().V1().Pods()
	svcInf := factory.Core().V1().Services()
	nsInf := factory.Core().V1().Namespaces()
	saInf := factory.Core().V1().ServiceAccounts()
	esInf := factory.Discovery().V1().EndpointSlices()
	if err := esInf.Informer().AddIndexers(cache.Indexers{serviceIndex: sliceServiceKeys}); err != nil {
		return nil, fmt.Errorf("kubernetes source: %w", err)
	}
	s.pods, s.services, s.namespaces, s.accounts = podInf.Lister(), svcInf.Lister(), nsInf.Lister(), saInf.Lister()
	s.slices = esInf.Informer().GetIndexer()

	keyed := func(kind string, mark func(key string)) cache.ResourceEventHandler {
		one := func(obj any) {
			s.events.WithLabelValues(kind).Inc()
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				s.enqueue(func() { mark(key) })
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: one, UpdateFunc: func(_, obj any) { one(obj) }, DeleteFunc: one}
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{podInf.Informer(), keyed("pod", func(k string) { s.dirtyPods[k] = struct{}{} })},
		{svcInf.Informer(), keyed("service", func(k string) { s.dirtySvcs[k] = struct{}{} })},
		{nsInf.Informer(), keyed("namespace", func(k string) { s.dirtyNS[k] = struct{}{}; s.dirtyGateways = true })},
		{saInf.Informer(), keyed("serviceaccount", func(string) { s.dirtyAccts = true })},
		{esInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: s.onSlice,
			// A slice relabelled to another service dirties both.
			UpdateFunc: func(old, obj any) { s.onSlice(old); s.onSlice(obj) },
			DeleteFunc: s.onSlice,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("kubernetes source: %w", err)
		}
		s.hasSynced = append(s.hasSynced, h.inf.HasSynced)
	}
	if err := s.newSecretInformer(); err != nil {
		return nil, fmt.Errorf("kubernetes source: %w", err)
	}
	return s, nil
}

func (s *Source) onSlice(obj any) {
	s.events.WithLabelValues("endpointslice").Inc()
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	keys, _ := sliceServiceKeys(obj)
	if len(keys) > 0 {
		s.enqueue(func() {
			for _, k := range keys {
				s.dirtySvcs[k] = struct{}{}
			}
		})
	}
}

// sliceServiceKeys indexes an EndpointSlice by the "namespace/name" of the Service it belongs to.
func sliceServiceKeys(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
		return []string{es.Namespace + "/" + name}, nil
	}
	return nil, nil
}

// enqueue marks under the lock and wakes the loop; it never blocks.
func (s *Source) enqueue(mark func()) {
	s.mu.Lock()
	mark()
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Synced reports whether the informers have synced and the first model has been published.
func (s *Source) Synced() bool { return s.synced.Load() }

// Run starts the informers, waits for their caches, publishes the full model, then every change (bursts
// batched over the debounce interval), until ctx ends. It stops the informers before returning.
func (s *Source) Run(ctx context.Context, sink model.Sink) error {
	if !s.runOnce.CompareAndSwap(false, true) {
		return errors.New("kubernetes source: Run called twice")
	}
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	defer s.secretFactory.Shutdown()
	synced := s.hasSynced
	var recheck <-chan time.Time
	if s.dyn != nil {
		served, ok := s.discoverPolicyKinds(ctx)
		if !ok {
			return nil
		}
		policySynced, missing := s.startPolicyInformers(ctx, served)
		defer s.dynFactory.Shutdown()
		synced = append(slices.Clone(synced), policySynced...)
		if len(missing) > 0 {
			s.log.Warn("policy or route kinds not served (CRDs not installed?); there are none of them until there are",
				"kinds", missing, "recheckEvery", s.crdRecheck)
			t := time.NewTicker(s.crdRecheck)
			defer t.Stop()
			recheck = t.C
		}
	} else {
		s.log.Info("no dynamic client: policy.sinew.dev objects are not read")
	}
	s.log.Info("waiting for informer caches to sync")
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kubernetes source: informer caches did not sync")
	}
	s.markAll()
	s.publish(sink)
	s.synced.Store(true)
	s.log.Info("informer caches synced", "workloads", len(s.workloads), "services", len(s.svcs))

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-recheck:
			served, ok := s.discoverPolicyKinds(ctx)
			if !ok {
				return nil
			}
			if _, missing := s.startPolicyInformers(ctx, served); len(missing) == 0 {
				s.log.Info("every policy and route kind is served now")
				recheck = nil
			}
			continue
		case <-s.notify:
		}
		// Fixed window from the first event: a steady stream of events still yields an update per window.
		t := time.NewTimer(s.debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		s.publish(sink)
	}
}

// markAll dirties every known object (the first build).
func (s *Source) markAll() {
	pods, _ := s.pods.List(labels.Everything())
	svcs, _ := s.services.List(labels.Everything())
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pods {
		s.dirtyPods[p.Namespace+"/"+p.Name] = struct{}{}
	}
	for _, svc := range svcs {
		s.dirtySvcs[svc.Namespace+"/"+svc.Name] = struct{}{}
	}
	s.dirtyAccts = true
	s.dirtyPolicies = true
	s.dirtyGateways = true
}

// publish translates what is dirty and sends the resource set when anything changed.
func (s *Source) publish(sink model.Sink) {
	if s.process() {
		sink.Update(s.resources())
		s.updates.Inc()
	}
}

// process re-translates the dirty objects from the caches; it reports whether any translation changed.
func (s *Source) process() bool {
	s.mu.Lock()
	pods, svcs, nss, accts, pols, gws := s.dirtyPods, s.dirtySvcs, s.dirtyNS, s.dirtyAccts, s.dirtyPolicies, s.dirtyGateways
	s.dirtyPods, s.dirtySvcs, s.dirtyNS, s.dirtyAccts, s.dirtyPolicies, s.dirtyGateways = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}, false, false, false
	s.mu.Unlock()
	// A wake-up left pending for keys taken here costs one more pass that finds nothing changed.

	// A namespace's annotations are defaults for its pods and services.
	for ns := range nss {
		if ps, err := s.pods.Pods(ns).List(labels.Everything()); err == nil {
			for _, p := range ps {
				pods[ns+"/"+p.Name] = struct{}{}
			}
		}
		if ss, err := s.services.Services(ns).List(labels.Everything()); err == nil {
			for _, svc := range ss {
				svcs[ns+"/"+svc.Name] = struct{}{}
			}
		}
	}

	changed := false
	if pols {
		changed = s.processPolicies()
	}
	if gws {
		changed = s.processGateways() || changed
	}
	for key := range pods {
		ns, name, _ := strings.Cut(key, "/")
		var w *model.Workload
		var problems []string
		if pod, err := s.pods.Pods(ns).Get(name); err == nil {
			w, problems = TranslatePod(pod, s.namespace(ns), s.defaultOpaque)
		} else if !apierrors.IsNotFound(err) {
			continue
		}
		changed = s.setProblems("pod "+key, problems) || changed
		old, had := s.workloads[key]
		switch {
		case w == nil && had:
			delete(s.workloads, key)
			changed = true
		case w != nil && (!had || !reflect.DeepEqual(old, w)):
			s.workloads[key] = w
			changed = true
		}
	}
	for key := range svcs {
		ns, name, _ := strings.Cut(key, "/")
		var svc *model.Service
		var problems []string
		if obj, err := s.services.Services(ns).Get(name); err == nil {
			svc, problems = TranslateService(obj, s.endpointSlices(key), s.namespace(ns), s.defaultOpaque)
		} else if !apierrors.IsNotFound(err) {
			continue
		}
		changed = s.setProblems("service "+key, problems) || changed
		old, had := s.svcs[key]
		switch {
		case svc == nil && had:
			delete(s.svcs, key)
			changed = true
		case svc != nil && (!had || !reflect.DeepEqual(old, svc)):
			s.svcs[key] = svc
			changed = true
		}
	}
	if accts {
		list, _ := s.accounts.List(labels.Everything())
		next := make([]model.ServiceAccount, 0, len(list))
		for _, sa := range list {
			next = append(next, model.ServiceAccount{Namespace: sa.Namespace, Name: sa.Name})
		}
		slices.SortFunc(next, func(a, b model.ServiceAccount) int {
			return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
		})
		if !slices.Equal(next, s.accts) {
			s.accts = next
			changed = true
		}
	}
	return changed
}

func (s *Source) setProblems(key string, problems []string) bool {
	old, had := s.objErrors[key]
	if len(problems) == 0 {
		if had {
			delete(s.objErrors, key)
			s.problems.Set(float64(len(s.objErrors)))
			return true
		}
		return false
	}
	e := model.SourceError{Source: key, Message: strings.Join(problems, "; ")}
	if had && old == e {
		return false
	}
	s.log.Warn("ignoring part of a Kubernetes object", "object", key, "problem", e.Message)
	s.objErrors[key] = e
	s.problems.Set(float64(len(s.objErrors)))
	return true
}

func (s *Source) namespace(name string) *corev1.Namespace {
	ns, err := s.namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns
}

func (s *Source) endpointSlices(serviceKey string) []*discoveryv1.EndpointSlice {
	objs, err := s.slices.ByIndex(serviceIndex, serviceKey)
	if err != nil {
		return nil
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, es)
		}
	}
	// Stable order, so equal inputs translate equally.
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// resources assembles the current translations, sorted, as one resource set.
func (s *Source) resources() model.Resources {
	r := model.Resources{
		Workloads:        make([]*model.Workload, 0, len(s.workloads)),
		Services:         make([]*model.Service, 0, len(s.svcs)),
		ServiceAccounts:  s.accts,
		Policies:         s.policies,
		HTTPRoutes:       s.httpRoutes,
		GRPCRoutes:       s.grpcRoutes,
		GatewayResources: s.gateways,
	}
	for _, w := range s.workloads {
		r.Workloads = append(r.Workloads, w)
	}
	slices.SortFunc(r.Workloads, func(a, b *model.Workload) int { return strings.Compare(a.Key(), b.Key()) })
	for _, svc := range s.svcs {
		r.Services = append(r.Services, svc)
	}
	slices.SortFunc(r.Services, func(a, b *model.Service) int { return strings.Compare(a.Key(), b.Key()) })
	for _, e := range s.objErrors {
		r.Errors = append(r.Errors, e)
	}
	slices.SortFunc(r.Errors, func(a, b model.SourceError) int { return strings.Compare(a.Source, b.Source) })
	return r
}
