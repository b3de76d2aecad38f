// Package status writes the status of HTTPRoutes and GRPCRoutes in Kubernetes mode: for each Service parent, the conditions that
// routes.ParentStatuses computes, under routes.ControllerName; and, given Config.GatewayParents, for each parent
// that is one of sinew's Gateways, the gateway package's, under names.GatewayController (the controllerName of
// sinew's GatewayClass, as the Gateway API asks). It writes a route only when what it would write changed, keeps
// the entries of other controllers (another implementation's Gateway, say) and the transition time of a condition
// whose status stays, and writes nothing before the model has synced (a half-read cluster would call every
// backend missing). It decides nothing itself.
package status

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/controlplane/internal/reconcile"
	"github.com/sinewmesh/sinew/internal/names"
)

// Config configures a Writer.
type Config struct {
	Client dynamic.Interface
	Store  *model.Store
	// Synced reports whether the model holds the whole cluster yet.
	Synced func() bool
	// GatewayParents is the status of a route for each of its parents that is one of sinew's Gateways, with
	// controllerName names.GatewayController; nil: the writer leaves such entries alone.
	GatewayParents func(*model.Snapshot, *api.Route) []gatewayv1.RouteParentStatus
	// Debounce batches bursts of model changes; default 200 ms. Retry is how soon a failed write is tried again;
	// default 5 s.
	Debounce, Retry time.Duration
	Logger          *slog.Logger
	// Now is the clock of transition times; default time.Now.
	Now func() time.Time
}

// Writer keeps the status of HTTPRoutes and GRPCRoutes up to date with the model.
type Writer struct {
	cfg Config
	// gvrs are the resources of the route kinds, by kind.
	gvrs map[string]schema.GroupVersionResource
	// written is what was last written (or found) per route, by "Kind namespace/name", with its UID and
	// generation.
	written map[string]written
}

type written struct {
	// uid tells a route deleted and created again under its name (as the Gateway API conformance tests do from
	// one test to the next) from the one written: both may be at generation 1 with the same parents, and the
	// new one has no status yet.
	uid        types.UID
	generation int64
	parents    []gatewayv1.RouteParentStatus // as computed: without transition times
}

// New builds a writer; nothing is written before Run.
func New(cfg Config) *Writer {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 200 * time.Millisecond
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Writer{cfg: cfg, written: map[string]written{}, gvrs: map[string]schema.GroupVersionResource{
		api.KindHTTPRoute: {Group: api.Group, Version: api.Version, Resource: api.ResourceHTTPRoutes},
		api.KindGRPCRoute: {Group: api.Group, Version: api.Version, Resource: api.ResourceGRPCRoutes},
	}}
}

// Run writes status after every model change (batched over Debounce) until ctx ends. Before the model has
// synced it only waits; a failed write is tried again after Retry.
func (w *Writer) Run(ctx context.Context) error {
	changed, unsubscribe := w.cfg.Store.Subscribe()
	defer unsubscribe()
	reconcile.Loop(ctx, w.cfg.Debounce, w.cfg.Retry, w.cfg.Synced, func() bool { return w.sync(ctx, w.cfg.Store.Snapshot()) },
		changed, nil)
	return nil
}

// sync writes the status of every route whose computed status changed; false when a write failed.
func (w *Writer) sync(ctx context.Context, snap *model.Snapshot) bool {
	ok := true
	seen := map[string]bool{}
	for _, rt := range snap.Routes() {
		key := rt.Kind + " " + rt.Namespace + "/" + rt.Name
		seen[key] = true
		parents := routes.ParentStatuses(snap, rt)
		if w.cfg.GatewayParents != nil {
			parents = append(parents, w.cfg.GatewayParents(snap, rt)...)
		}
		want := written{uid: rt.UID, generation: rt.Generation, parents: parents}
		if last, had := w.written[key]; had && reflect.DeepEqual(last, want) {
			continue
		}
		if err := w.write(ctx, rt, want.parents); err != nil {
			if ctx.Err() == nil {
				w.cfg.Logger.Warn("writing route status; retrying", "route", key, "err", err)
			}
			ok = false
			continue
		}
		w.written[key] = want
	}
	for key := range w.written {
		if !seen[key] {
			delete(w.written, key)
		}
	}
	return ok
}

// write merges ours into the route's live status and updates it when that changes anything.
func (w *Writer) write(ctx context.Context, rt *api.Route, ours []gatewayv1.RouteParentStatus) error {
	res := w.cfg.Client.Resource(w.gvrs[rt.Kind]).Namespace(rt.Namespace)
	u, err := res.Get(ctx, rt.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile; the model will follow
	}
	if err != nil {
		return err
	}
	var live gatewayv1.RouteStatus // both kinds' status
	if raw, ok := u.Object["status"]; ok {
		b, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &live); err != nil {
			return err
		}
	}
	next := merge(live.Parents, ours, w.ours, w.cfg.Now())
	if reflect.DeepEqual(next, live.Parents) || (len(next) == 0 && len(live.Parents) == 0) {
		return nil
	}
	live.Parents = next
	if live.Parents == nil {
		live.Parents = []gatewayv1.RouteParentStatus{} // required by the CRDs: [], not null, once our last entry goes
	}
	b, err := json.Marshal(live)
	if err != nil {
		return err
	}
	var status map[string]any
	if err := json.Unmarshal(b, &status); err != nil {
		return err
	}
	u = u.DeepCopy()
	if err := unstructured.SetNestedField(u.Object, status, "status"); err != nil {
		return err
	}
	_, err = res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

// ours reports whether the writer owns the entries of a controller name: the policy controller's, and the
// gateway controller's when it writes those.
func (w *Writer) ours(c gatewayv1.GatewayController) bool {
	return c == routes.ControllerName || (w.cfg.GatewayParents != nil && c == names.GatewayController)
}

// merge replaces the entries of live whose controller is ours with the new ones, keeping the others in their
// place and, for each condition whose status is unchanged, its transition time.
func merge(live, next []gatewayv1.RouteParentStatus, ours func(gatewayv1.GatewayController) bool, now time.Time) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	var previous []gatewayv1.RouteParentStatus
	for _, p := range live {
		if ours(p.ControllerName) {
			previous = append(previous, p)
			continue
		}
		out = append(out, p)
	}
	stamp := metav1.NewTime(now.Truncate(time.Second))
	for _, p := range next {
		p.Conditions = slices.Clone(p.Conditions)
		var before []metav1.Condition
		for _, q := range previous {
			if q.ControllerName == p.ControllerName && reflect.DeepEqual(q.ParentRef, p.ParentRef) {
				before = q.Conditions
			}
		}
		for i := range p.Conditions {
			c := &p.Conditions[i]
			c.LastTransitionTime = stamp
			for _, b := range before {
				if b.Type == c.Type && b.Status == c.Status {
					c.LastTransitionTime = b.LastTransitionTime
				}
			}
		}
		out = append(out, p)
	}
	return out
}
