// Package controller is sinew's Gateway API gateway controller in Kubernetes mode (decision 0006): for each
// Gateway whose GatewayClass has controllerName names.GatewayController it keeps a ServiceAccount, a Deployment
// of sinew-proxy in gateway mode (controlplane/inject.GatewayPodTemplate) and a Service, all named
// names.GatewayResourceName in the Gateway's namespace and owned by it, and writes the status of sinew's
// GatewayClasses and Gateways. What is valid, which ports are served and what attaches where is the gateway
// package's (pure functions of the model); this package only makes objects and writes status.
//
// It reads the Gateways and GatewayClasses from the model (the Kubernetes source), and the objects it made from
// its own informers (label gateway.networking.k8s.io/gateway-name). It reconciles every Gateway after each change
// (bursts batched), writes an object or a status only when what it wants changed, and acts only once the model
// has synced (a half-read cluster would look as if Gateways were gone). Several replicas may run it at once:
// they want the same objects and status, a create that finds the object there is success, and a write that
// loses a race is tried again.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/reconcile"
	"github.com/sinewmesh/sinew/internal/names"
)

// The resources whose status the controller writes.
var (
	gatewaysGV        = schema.GroupVersion{Group: gatewayv1.GroupVersion.Group, Version: gatewayv1.GroupVersion.Version}
	gatewaysGVR       = gatewaysGV.WithResource("gateways")
	gatewayClassesGVR = gatewaysGV.WithResource("gatewayclasses")
)

// Config configures a Controller.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Store   *model.Store
	// Synced reports whether the model holds the whole cluster yet.
	Synced func() bool
	// Inject is the injector's configuration, from which the gateway proxies' pods are built (image, trust
	// anchors, control plane, proxy defaults).
	Inject inject.Config
	// Debounce batches bursts of changes; default 200 ms. Retry is how soon a failed write is tried again;
	// default 5 s.
	Debounce, Retry time.Duration
	Logger          *slog.Logger
	// Now is the clock of transition times; default time.Now.
	Now func() time.Time
}

// Controller keeps sinew's Gateways running and their status written. Construct with New, then Run.
type Controller struct {
	cfg       Config
	createdBy string

	factory     informers.SharedInformerFactory
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
	accounts    corelisters.ServiceAccountLister
	hasSynced   []cache.InformerSynced
	changed     chan struct{}

	// written is the status last written (or found) per object, by statusKey, as computed (without transition
	// times).
	written map[string]any
	// synced is the version of the last model snapshot a pass reconciled in full.
	synced atomic.Uint64
}

// New builds a controller; nothing talks to the API server before Run.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Store == nil {
		return nil, errors.New("gateway controller: a client, a dynamic client and a store are required")
	}
	if err := cfg.Inject.Validate(); err != nil {
		return nil, fmt.Errorf("gateway controller: the proxies' configuration: %w", err)
	}
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
	c := &Controller{cfg: cfg, createdBy: "sinew/gateway-controller", changed: make(chan struct{}, 1), written: map[string]any{}}
	if cfg.Inject.CreatedBy != "" {
		c.createdBy = cfg.Inject.CreatedBy
	}
	// Only the objects of Gateways (of any implementation: each is checked for being ours before it is touched).
	c.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = names.GatewayLabel }))
	dep, svc, sa := c.factory.Apps().V1().Deployments(), c.factory.Core().V1().Services(), c.factory.Core().V1().ServiceAccounts()
	c.deployments, c.services, c.accounts = dep.Lister(), svc.Lister(), sa.Lister()
	poke := func(any) {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	for _, inf := range []cache.SharedIndexInformer{dep.Informer(), svc.Informer(), sa.Informer()} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke,
		}); err != nil {
			return nil, fmt.Errorf("gateway controller: %w", err)
		}
		c.hasSynced = append(c.hasSynced, inf.HasSynced)
	}
	return c, nil
}

// Run reconciles after every change of the model or of the objects it made (batched over Debounce) until ctx
// ends. Before the model and its informers have synced it only waits; a failed write is tried again after Retry.
func (c *Controller) Run(ctx context.Context) error {
	modelChanged, unsubscribe := c.cfg.Store.Subscribe()
	defer unsubscribe()
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), c.hasSynced...) {
		return nil // ctx ended
	}
	reconcile.Loop(ctx, c.cfg.Debounce, c.cfg.Retry, c.cfg.Synced, func() bool {
		snap := c.cfg.Store.Snapshot()
		ok := c.sync(ctx, snap)
		if ok {
			c.synced.Store(snap.Version())
		}
		return ok
	}, modelChanged, c.changed)
	return nil
}

// sync reconciles every Gateway and GatewayClass of sinew's, and deletes what the controller made for Gateways
// that are no longer sinew's; false when something failed.
func (c *Controller) sync(ctx context.Context, snap *model.Snapshot) bool {
	ok := true
	seen := map[string]bool{}
	accepted := map[string]bool{}
	for _, gc := range snap.GatewayClasses() {
		if string(gc.Spec.ControllerName) != names.GatewayController {
			continue
		}
		accepted[gc.Name] = classAccepted(gc)
		key := statusKey("GatewayClass", &gc.ObjectMeta)
		seen[key] = true
		ok = c.writeStatus(ctx, key, gatewayClassesGVR, "", gc.Name, classStatus(gc), mergeClassStatus) && ok
	}
	ours := map[string]bool{}
	for _, gw := range snap.Gateways() {
		classOK, isOurs := accepted[string(gw.Spec.GatewayClassName)]
		if !isOurs {
			continue
		}
		ours[gw.Namespace+"/"+gw.Name] = true
		seen[statusKey("Gateway", &gw.ObjectMeta)] = true
		ok = c.reconcile(ctx, snap, gw, classOK) && ok
	}
	ok = c.deleteOrphans(ctx, ours) && ok
	for key := range c.written {
		if !seen[key] {
			delete(c.written, key)
		}
	}
	return ok
}

// reconcile makes one Gateway's objects (when it is accepted) and writes its status. A Gateway that is not
// accepted keeps what it has: a bad edit does not take a serving gateway down.
func (c *Controller) reconcile(ctx context.Context, snap *model.Snapshot, gw *gatewayv1.Gateway, classAccepted bool) bool {
	log := c.cfg.Logger.With("gateway", gw.Namespace+"/"+gw.Name)
	name := names.GatewayResourceName(gw.Name)
	o := observed{}
	p, err := gatewayParams(gw)
	switch {
	case !classAccepted:
		o.rejected, o.rejectedReason = gatewayv1.GatewayReasonInvalidParameters,
			fmt.Sprintf("GatewayClass %s is not accepted (see its status)", gw.Spec.GatewayClassName)
	case err != nil:
		o.rejected, o.rejectedReason = gatewayv1.GatewayReasonInvalidParameters, err.Error()
	case len(gw.Spec.Addresses) > 0:
		o.rejected, o.rejectedReason = gatewayv1.GatewayReasonUnsupportedAddress,
			"spec.addresses: sinew does not assign requested addresses; the Service's own address is the Gateway's"
	}
	ok := true
	ports := gateway.Ports(snap, gw)
	o.noPorts = len(ports) == 0
	// Not accepted, or nothing to serve: what runs stays as it is.
	if o.rejected == "" && !o.noPorts {
		o.replicas = p.replicas
		want, err := desiredObjects(gw, p, ports, c.cfg.Inject, c.createdBy)
		if err != nil {
			// The controller's own configuration, or a config.sinew.dev/* annotation the Gateway carries.
			o.notProgrammed, o.notProgrammedReason = gatewayv1.GatewayReasonInvalid, "The gateway proxies' configuration: "+err.Error()
		} else {
			o.noPorts = want.service == nil // every port reserved
			if err := c.apply(ctx, gw, want); err != nil {
				var taken *takenError
				if errors.As(err, &taken) {
					o.notProgrammed, o.notProgrammedReason = gatewayv1.GatewayReasonInvalid, err.Error()
				} else {
					if ctx.Err() == nil {
						log.Warn("making the gateway's objects; retrying", "err", err)
					}
					o.notProgrammed, o.notProgrammedReason = gatewayv1.GatewayReasonPending, "Making the gateway's objects: "+err.Error()
					ok = false
				}
			}
		}
	}
	if d, err := c.deployments.Deployments(gw.Namespace).Get(name); err == nil && ownedBy(&d.ObjectMeta, gw.Name, "") {
		o.deployment = d
	}
	if s, err := c.services.Services(gw.Namespace).Get(name); err == nil && ownedBy(&s.ObjectMeta, gw.Name, "") {
		o.service = s
	}
	if (o.rejected != "" || o.noPorts) && o.deployment != nil && o.deployment.Spec.Replicas != nil {
		o.replicas = *o.deployment.Spec.Replicas
	}
	st := gatewayStatus(snap, gw, o)
	return c.writeStatus(ctx, statusKey("Gateway", &gw.ObjectMeta), gatewaysGVR, gw.Namespace, gw.Name, st, mergeGatewayStatusAny) && ok
}

// statusKey names an object for the written cache: "Kind namespace/name uid". With the UID, an object deleted and
// made again under its name gets its status written even when it comes out the same.
func statusKey(kind string, m *metav1.ObjectMeta) string {
	return kind + " " + m.Namespace + "/" + m.Name + " " + string(m.UID)
}

// takenError says an object the Gateway needs exists and is someone else's.
type takenError struct{ kind, namespace, name string }

func (e *takenError) Error() string {
	return fmt.Sprintf("%s %s/%s exists and is not this Gateway's; delete or rename it", e.kind, e.namespace, e.name)
}

// apply creates or updates the Gateway's objects, as the informers' caches have them. The Service of a Gateway
// with nothing to serve is deleted.
func (c *Controller) apply(ctx context.Context, gw *gatewayv1.Gateway, want objects) error {
	core, apps := c.cfg.Client.CoreV1(), c.cfg.Client.AppsV1()
	ns, name := gw.Namespace, names.GatewayResourceName(gw.Name)
	var errs []error

	sa, err := c.accounts.ServiceAccounts(ns).Get(name)
	errs = append(errs, applyOne(ctx, gw.Name, "ServiceAccount", want.account, sa, err,
		func(o *corev1.ServiceAccount) error {
			_, err := core.ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
			return err
		},
		func(live *corev1.ServiceAccount) error {
			next := live.DeepCopy()
			next.Labels, next.Annotations, next.OwnerReferences = want.account.Labels, want.account.Annotations, want.account.OwnerReferences
			_, err := core.ServiceAccounts(ns).Update(ctx, next, metav1.UpdateOptions{})
			return err
		}))

	dep, err := c.deployments.Deployments(ns).Get(name)
	errs = append(errs, applyOne(ctx, gw.Name, "Deployment", want.deployment, dep, err,
		func(o *appsv1.Deployment) error {
			_, err := apps.Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
			return err
		},
		func(live *appsv1.Deployment) error {
			next := live.DeepCopy()
			next.Labels, next.Annotations, next.OwnerReferences = want.deployment.Labels, want.deployment.Annotations, want.deployment.OwnerReferences
			next.Spec.Replicas, next.Spec.Template = want.deployment.Spec.Replicas, want.deployment.Spec.Template
			_, err := apps.Deployments(ns).Update(ctx, next, metav1.UpdateOptions{})
			return err
		}))

	svc, err := c.services.Services(ns).Get(name)
	if want.service == nil {
		if err == nil && ownedBy(&svc.ObjectMeta, gw.Name, "") {
			errs = append(errs, deleteOne(ctx, core.Services(ns).Delete, svc.Name, svc.UID))
		}
		return errors.Join(errs...)
	}
	errs = append(errs, applyOne(ctx, gw.Name, "Service", want.service, svc, err,
		func(o *corev1.Service) error {
			_, err := core.Services(ns).Create(ctx, o, metav1.CreateOptions{})
			return err
		},
		func(live *corev1.Service) error {
			_, err := core.Services(ns).Update(ctx, updatedService(live, want.service), metav1.UpdateOptions{})
			return err
		}))
	return errors.Join(errs...)
}

// updatedService is live changed into want, keeping what the API server assigned: the cluster IPs, and the node
// ports of ports that stay while the type still has node ports.
func updatedService(live, want *corev1.Service) *corev1.Service {
	next := live.DeepCopy()
	next.Labels, next.Annotations, next.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
	next.Spec.Type, next.Spec.Selector = want.Spec.Type, want.Spec.Selector
	nodePorts := want.Spec.Type == corev1.ServiceTypeNodePort || want.Spec.Type == corev1.ServiceTypeLoadBalancer
	next.Spec.Ports = nil
	for _, p := range want.Spec.Ports {
		for _, lp := range live.Spec.Ports {
			if nodePorts && lp.Port == p.Port && lp.Protocol == p.Protocol {
				p.NodePort = lp.NodePort
			}
		}
		next.Spec.Ports = append(next.Spec.Ports, p)
	}
	if want.Spec.Type != corev1.ServiceTypeLoadBalancer {
		next.Spec.AllocateLoadBalancerNodePorts, next.Spec.LoadBalancerClass = nil, nil
		next.Spec.ExternalTrafficPolicy, next.Spec.HealthCheckNodePort = "", 0
	}
	if want.Spec.Type == corev1.ServiceTypeClusterIP {
		next.Spec.ExternalTrafficPolicy = ""
	}
	return next
}

// applyOne creates want when there is no live object, updates a live one of the Gateway's whose spec hash
// differs, and refuses (takenError) to touch one that is someone else's.
func applyOne[T metav1.Object](ctx context.Context, gateway, kind string, want T, live T, getErr error, create func(T) error, update func(T) error) error {
	switch {
	case apierrors.IsNotFound(getErr):
		if err := create(want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", kind, want.GetName(), err)
		}
		return nil
	case getErr != nil:
		return getErr
	}
	m := metaOf(live)
	if !ownedBy(m, gateway, "") {
		return &takenError{kind: kind, namespace: live.GetNamespace(), name: live.GetName()}
	}
	if live.GetAnnotations()[AnnSpecHash] == want.GetAnnotations()[AnnSpecHash] {
		return nil
	}
	if err := update(live); err != nil {
		return fmt.Errorf("updating %s %s: %w", kind, live.GetName(), err)
	}
	return nil
}

// metaOf is an object's ObjectMeta, for ownedBy.
func metaOf(o metav1.Object) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Annotations: o.GetAnnotations(), OwnerReferences: o.GetOwnerReferences()}
}

// deleteOne deletes an object, only the one seen (its UID); gone already is success.
func deleteOne(ctx context.Context, del func(context.Context, string, metav1.DeleteOptions) error, name string, uid types.UID) error {
	err := del(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// deleteOrphans deletes what the controller made for Gateways that are not sinew's (any more): their class
// changed, or they are gone (the garbage collector would get there too).
func (c *Controller) deleteOrphans(ctx context.Context, ours map[string]bool) bool {
	core, apps := c.cfg.Client.CoreV1(), c.cfg.Client.AppsV1()
	orphan := func(m *metav1.ObjectMeta) bool {
		ref := metav1.GetControllerOfNoCopy(m)
		return ref != nil && ref.Kind == "Gateway" && m.Name == names.GatewayResourceName(ref.Name) &&
			ownedBy(m, ref.Name, "") && !ours[m.Namespace+"/"+ref.Name]
	}
	var errs []error
	deps, _ := c.deployments.List(labels.Everything())
	for _, d := range deps {
		if orphan(&d.ObjectMeta) {
			errs = append(errs, deleteOne(ctx, apps.Deployments(d.Namespace).Delete, d.Name, d.UID))
		}
	}
	svcs, _ := c.services.List(labels.Everything())
	for _, s := range svcs {
		if orphan(&s.ObjectMeta) {
			errs = append(errs, deleteOne(ctx, core.Services(s.Namespace).Delete, s.Name, s.UID))
		}
	}
	sas, _ := c.accounts.List(labels.Everything())
	for _, sa := range sas {
		if orphan(&sa.ObjectMeta) {
			errs = append(errs, deleteOne(ctx, core.ServiceAccounts(sa.Namespace).Delete, sa.Name, sa.UID))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.cfg.Logger.Warn("deleting what Gateways that are no longer sinew's ran on; retrying", "err", err)
		return false
	}
	return true
}

// writeStatus writes an object's status when it differs from what was last written: the live object's status
// is read, merged with next (merge keeps transition times) and updated when that changes it.
func (c *Controller) writeStatus(ctx context.Context, key string, gvr schema.GroupVersionResource, namespace, name string, next any,
	merge func(live map[string]any, next any, now time.Time) (any, error)) bool {
	if last, had := c.written[key]; had && sameStatus(last, next) {
		return true
	}
	err := func() error {
		res := c.cfg.Dynamic.Resource(gvr).Namespace(namespace)
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile; the model will follow
		}
		if err != nil {
			return err
		}
		live, _ := u.Object["status"].(map[string]any)
		merged, err := merge(live, next, c.cfg.Now())
		if err != nil {
			return err
		}
		status := normalize(merged)
		if sameStatus(live, status) {
			return nil
		}
		u = u.DeepCopy()
		if err := unstructured.SetNestedField(u.Object, status, "status"); err != nil {
			return err
		}
		_, err = res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	}()
	if err != nil {
		if ctx.Err() == nil {
			c.cfg.Logger.Warn("writing status; retrying", "object", key, "err", err)
		}
		return false
	}
	c.written[key] = next
	return true
}

func mergeClassStatus(live map[string]any, next any, now time.Time) (any, error) {
	var l gatewayv1.GatewayClassStatus
	if err := fromJSON(live, &l); err != nil {
		return nil, err
	}
	n := next.(gatewayv1.GatewayClassStatus)
	n.Conditions = mergeConditions(l.Conditions, n.Conditions, now)
	n.SupportedFeatures = l.SupportedFeatures
	return n, nil
}

func mergeGatewayStatusAny(live map[string]any, next any, now time.Time) (any, error) {
	var l gatewayv1.GatewayStatus
	if err := fromJSON(live, &l); err != nil {
		return nil, err
	}
	return mergeGatewayStatus(l, next.(gatewayv1.GatewayStatus), now), nil
}

// fromJSON decodes a live status (nil: empty) into out.
func fromJSON(live map[string]any, out any) error {
	if live == nil {
		return nil
	}
	b, err := json.Marshal(live)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// normalize renders v as JSON values (map[string]any …), as the API server's objects hold them.
func normalize(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return out
}
