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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

// The policy.sinew.dev objects are read with dynamic informers (no generated clients) and decoded through JSON
// into the same types the local source decodes YAML into. The CRDs may be missing (installed later, or not at
// all): kinds the API server does not serve are looked for again every CRDRecheck, and meanwhile there are none.

// policyInformer is the informer of one served kind.
type policyInformer struct {
	kind   string
	lister cache.GenericLister
}

// discoverPolicyKinds asks which of the kinds the API server serves. A NotFound answer means none (the CRDs are
// not installed); any other failure is retried until ctx ends (false), since answering as if no Server existed
// could admit clients that a Server denies.
func (s *Source) discoverPolicyKinds(ctx context.Context) (map[string]bool, bool) {
	backoff := 500 * time.Millisecond
	for {
		list, err := s.client.Discovery().ServerResourcesForGroupVersion(api.APIVersion)
		if err == nil {
			served := map[string]bool{}
			for _, r := range list.APIResources {
				served[r.Name] = true
			}
			return served, true
		}
		if apierrors.IsNotFound(err) {
			return map[string]bool{}, true
		}
		s.log.Warn("discovering the policy kinds; retrying", "groupVersion", api.APIVersion, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, false
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
	for _, k := range api.Kinds {
		if _, ok := s.policyInformers[k.Kind]; ok {
			continue
		}
		if !served[k.Resource] {
			missing = append(missing, k.Kind)
			continue
		}
		gi := s.dynFactory.ForResource(schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: k.Resource})
		inf := gi.Informer()
		_ = inf.SetTransform(func(obj any) (any, error) {
			if a, err := meta.Accessor(obj); err == nil {
				a.SetManagedFields(nil)
			}
			return obj, nil
		})
		kind := strings.ToLower(k.Kind)
		mark := func(any) {
			s.events.WithLabelValues(kind).Inc()
			s.enqueue(func() { s.dirtyPolicies = true })
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: mark, UpdateFunc: func(_, obj any) { mark(obj) }, DeleteFunc: mark,
		}); err != nil {
			s.log.Error("watching a policy kind", "kind", k.Kind, "err", err)
			missing = append(missing, k.Kind)
			continue
		}
		s.policyInformers[k.Kind] = policyInformer{kind: k.Kind, lister: gi.Lister()}
		synced = append(synced, inf.HasSynced)
	}
	s.dynFactory.Start(ctx.Done())
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

// processPolicies re-reads the policy objects; it reports whether they changed.
func (s *Source) processPolicies() bool {
	next, problems := s.translatePolicies()
	changed := false
	for key := range s.policyProblemKeys {
		if _, still := problems[key]; !still {
			changed = s.setProblems(key, nil) || changed
		}
	}
	s.policyProblemKeys = map[string]struct{}{}
	for key, p := range problems {
		s.policyProblemKeys[key] = struct{}{}
		changed = s.setProblems(key, p) || changed
	}
	if !reflect.DeepEqual(next, s.policies) {
		s.policies = next
		changed = true
	}
	return changed
}
