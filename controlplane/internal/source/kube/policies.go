package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// The policy.sinew.dev objects and the Gateway API routes are read with dynamic informers (no generated clients)
// and decoded through JSON into the same types the local source decodes YAML into. The CRDs may be missing
// (installed later, or not at all; the Gateway API's are often absent): kinds the API server does not serve are
// looked for again every CRDRecheck, and meanwhile there are none.

// informedKind is a kind read with a dynamic informer.
type informedKind struct {
	gv             schema.GroupVersion
	kind, resource string
	// gateway: one of the ingress gateway's kinds (gateways.go), re-read by processGateways.
	gateway bool
}

// informedKinds are the policy kinds, the route kinds, then the ingress gateway's.
func informedKinds() []informedKind {
	var out []informedKind
	for _, k := range api.Kinds {
		out = append(out, informedKind{gv: schema.GroupVersion{Group: api.Group, Version: api.Version}, kind: k.Kind, resource: k.Resource})
	}
	routes := schema.GroupVersion{Group: routesapi.Group, Version: routesapi.Version}
	out = append(out, informedKind{gv: routes, kind: routesapi.KindHTTPRoute, resource: routesapi.ResourceHTTPRoutes},
		informedKind{gv: routes, kind: routesapi.KindGRPCRoute, resource: routesapi.ResourceGRPCRoutes})
	return append(out, gatewayKinds()...)
}

// servedKey is how discoverPolicyKinds names a served resource.
func servedKey(gv schema.GroupVersion, resource string) string { return gv.String() + "/" + resource }

// policyInformer is the informer of one served kind.
type policyInformer struct {
	kind   string
	lister cache.GenericLister
}

// discoverPolicyKinds asks which of the informed kinds the API server serves, by servedKey. A NotFound answer for
// a group version means none of its kinds (the CRDs are not installed); any other failure is retried until ctx
// ends (false), since answering as if no Server existed could admit clients that a Server denies.
func (s *Source) discoverPolicyKinds(ctx context.Context) (map[string]bool, bool) {
	served := map[string]bool{}
	seen := map[schema.GroupVersion]bool{}
	for _, k := range informedKinds() {
		if seen[k.gv] {
			continue
		}
		seen[k.gv] = true
		if !s.discoverGroupVersion(ctx, k.gv, served) {
			return nil, false
		}
	}
	return served, true
}

func (s *Source) discoverGroupVersion(ctx context.Context, gv schema.GroupVersion, served map[string]bool) bool {
	backoff := 500 * time.Millisecond
	for {
		list, err := s.client.Discovery().ServerResourcesForGroupVersion(gv.String())
		if err == nil {
			for _, r := range list.APIResources {
				served[servedKey(gv, r.Name)] = true
			}
			return true
		}
		if apierrors.IsNotFound(err) {
			return true
		}
		s.log.Warn("discovering the policy kinds; retrying", "groupVersion", gv.String(), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// startPolicyInformers starts informers for the served kinds that have none yet and returns their HasSynced; it
// reports whether any kind is still missing.
func (s *Source) startPolicyInformers(ctx context.Context, served map[string]bool) (synced []cache.InformerSynced, missing []string) {
	if s.dynFactory == nil {
		s.dynFactory = dynamicinformer.NewDynamicSharedInformerFactory(s.dyn, 0)
	}
	for _, k := range informedKinds() {
		if _, ok := s.policyInformers[k.kind]; ok {
			continue
		}
		if !served[servedKey(k.gv, k.resource)] {
			missing = append(missing, k.kind)
			continue
		}
		gi := s.dynFactory.ForResource(k.gv.WithResource(k.resource))
		inf := gi.Informer()
		_ = inf.SetTransform(func(obj any) (any, error) {
			if a, err := meta.Accessor(obj); err == nil {
				a.SetManagedFields(nil)
			}
			return obj, nil
		})
		kind := strings.ToLower(k.kind)
		gateway := k.gateway
		mark := func(any) {
			s.events.WithLabelValues(kind).Inc()
			s.enqueue(func() {
				if gateway {
					s.dirtyGateways = true
				} else {
					s.dirtyPolicies = true
				}
			})
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: mark, UpdateFunc: func(_, obj any) { mark(obj) }, DeleteFunc: mark,
		}); err != nil {
			s.log.Error("watching a policy kind", "kind", k.kind, "err", err)
			missing = append(missing, k.kind)
			continue
		}
		s.policyInformers[k.kind] = policyInformer{kind: k.kind, lister: gi.Lister()}
		synced = append(synced, inf.HasSynced)
	}
	s.dynFactory.Start(ctx.Done())
	// The TLS Secrets matter once there are Gateways; without their CRD, the source does not read Secrets at all.
	if _, ok := s.policyInformers[KindGateway]; ok && !s.secretStarted {
		s.secretStarted = true
		s.secretFactory.Start(ctx.Done())
		synced = append(synced, s.secretSynced)
	}
	return synced, missing
}

// translatePolicies decodes every policy object from the caches, in a stable order. Objects that do not decode
// or validate are left out and reported by "kind namespace/name".
func (s *Source) translatePolicies() (api.Policies, map[string][]string) {
	var out api.Policies
	problems := map[string][]string{}
	for _, k := range api.Kinds {
		inf, ok := s.policyInformers[k.Kind]
		if !ok {
			continue
		}
		objs, err := inf.lister.List(labels.Everything())
		if err != nil {
			continue
		}
		var decoded []api.Object
		for _, o := range objs {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			obj, err := DecodePolicy(k.Kind, u)
			key := strings.ToLower(k.Kind) + " " + u.GetNamespace() + "/" + u.GetName()
			if err != nil {
				problems[key] = []string{err.Error() + "; ignoring it"}
				continue
			}
			decoded = append(decoded, obj)
		}
		slices.SortFunc(decoded, func(a, b api.Object) int { return strings.Compare(a.ObjectMeta().Key(), b.ObjectMeta().Key()) })
		for _, o := range decoded {
			out.Add(o)
		}
	}
	return out, problems
}

// DecodePolicy turns an object of one of the policy kinds into its Go form and validates it (the API server's
// schema should have, but an object stored before a CRD change may not pass).
func DecodePolicy(kind string, u *unstructured.Unstructured) (api.Object, error) {
	obj, ok := api.New(kind)
	if !ok {
		return nil, fmt.Errorf("kind %q is not a policy kind", kind)
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, obj); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	return obj, nil
}

// translateRoutes decodes every route of one kind from its informer's cache with decode, sorted by
// namespace/name. Routes that do not decode or validate are left out and reported in problems by
// "kind namespace/name" (kind in lower case).
func translateRoutes[R any](s *Source, kind string, decode func(*unstructured.Unstructured) (*R, error), meta func(*R) *metav1.ObjectMeta, problems map[string][]string) []*R {
	inf, ok := s.policyInformers[kind]
	if !ok {
		return nil
	}
	objs, err := inf.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*R
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		rt, err := decode(u)
		if err != nil {
			problems[strings.ToLower(kind)+" "+u.GetNamespace()+"/"+u.GetName()] = []string{err.Error() + "; ignoring it"}
			continue
		}
		out = append(out, rt)
	}
	slices.SortFunc(out, func(a, b *R) int {
		ma, mb := meta(a), meta(b)
		return strings.Compare(ma.Namespace+"/"+ma.Name, mb.Namespace+"/"+mb.Name)
	})
	return out
}

// decodeRoute turns a route object into rt, its Go form. Its status, managed fields and resource version are
// dropped by dropStatus: the translation does not read them, and the model need not change when only the status does.
func decodeRoute(u *unstructured.Unstructured, rt any, dropStatus func()) error {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, rt); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	dropStatus()
	return nil
}

// DecodeHTTPRoute turns an HTTPRoute object into its Go form and validates it (the CRD's schema should have, but
// an object stored under an older CRD may not pass). Its status is dropped (decodeRoute).
func DecodeHTTPRoute(u *unstructured.Unstructured) (*routesapi.HTTPRoute, error) {
	rt := &routesapi.HTTPRoute{}
	if err := decodeRoute(u, rt, func() {
		rt.Status = gatewayv1.HTTPRouteStatus{}
		rt.ManagedFields, rt.ResourceVersion = nil, ""
	}); err != nil {
		return nil, err
	}
	if err := routesapi.Validate(rt); err != nil {
		return nil, err
	}
	return rt, nil
}

// DecodeGRPCRoute is DecodeHTTPRoute for a GRPCRoute.
func DecodeGRPCRoute(u *unstructured.Unstructured) (*routesapi.GRPCRoute, error) {
	rt := &routesapi.GRPCRoute{}
	if err := decodeRoute(u, rt, func() {
		rt.Status = gatewayv1.GRPCRouteStatus{}
		rt.ManagedFields, rt.ResourceVersion = nil, ""
	}); err != nil {
		return nil, err
	}
	if err := routesapi.ValidateGRPC(rt); err != nil {
		return nil, err
	}
	return rt, nil
}

// replaceProblems sets the problems of every object in problems and clears those of the objects in *keys (the
// keys of the last call for the same kinds) that have none now; it reports whether any changed.
func (s *Source) replaceProblems(keys *map[string]struct{}, problems map[string][]string) bool {
	changed := false
	for key := range *keys {
		if _, still := problems[key]; !still {
			changed = s.setProblems(key, nil) || changed
		}
	}
	*keys = make(map[string]struct{}, len(problems))
	for key, p := range problems {
		(*keys)[key] = struct{}{}
		changed = s.setProblems(key, p) || changed
	}
	return changed
}

// processPolicies re-reads the policy objects and routes; it reports whether they changed.
func (s *Source) processPolicies() bool {
	next, problems := s.translatePolicies()
	httpRoutes := translateRoutes(s, routesapi.KindHTTPRoute, DecodeHTTPRoute, func(rt *routesapi.HTTPRoute) *metav1.ObjectMeta { return &rt.ObjectMeta }, problems)
	grpcRoutes := translateRoutes(s, routesapi.KindGRPCRoute, DecodeGRPCRoute, func(rt *routesapi.GRPCRoute) *metav1.ObjectMeta { return &rt.ObjectMeta }, problems)
	changed := s.replaceProblems(&s.policyProblemKeys, problems)
	if !reflect.DeepEqual(next, s.policies) {
		s.policies = next
		changed = true
	}
	if !reflect.DeepEqual(httpRoutes, s.httpRoutes) {
		s.httpRoutes = httpRoutes
		changed = true
	}
	if !reflect.DeepEqual(grpcRoutes, s.grpcRoutes) {
		s.grpcRoutes = grpcRoutes
		changed = true
	}
	return changed
}
