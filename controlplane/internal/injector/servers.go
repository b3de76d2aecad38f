package injector

import (
	"context"
	"log/slog"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/source/kube"
)

// servers caches the policy.sinew.dev Servers, so that a pod's proxy is told which of its ports a Server covers:
// until the policy service first answers, those ports admit nobody and the others get the default inbound policy.
// It never holds up a review: until its informer has synced (the CRD may be missing, or RBAC may not allow it),
// the ports are unknown and the proxy treats every port as covered, which admits less, never more.
type servers struct {
	dyn      dynamic.Interface
	log      *slog.Logger
	informer toolscache.SharedIndexInformer
	started  chan struct{}
}

var serversResource = schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: "servers"}

func newServers(dyn dynamic.Interface, log *slog.Logger) *servers {
	return &servers{dyn: dyn, log: log, started: make(chan struct{})}
}

// run keeps the cache until ctx ends. Without a dynamic client it does nothing, and every pod's ports stay unknown.
func (s *servers) run(ctx context.Context) {
	if s.dyn == nil {
		s.log.Info("no dynamic client: proxies are not told which ports have a Server")
		return
	}
	f := dynamicinformer.NewDynamicSharedInformerFactory(s.dyn, 0)
	s.informer = f.ForResource(serversResource).Informer()
	close(s.started)
	f.Start(ctx.Done())
	if toolscache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced) {
		s.log.Info("Server cache synced", "servers", len(s.informer.GetStore().ListKeys()))
	}
	<-ctx.Done()
	f.Shutdown()
}

// portsFor returns the ports (numbers or container port names) of the Servers in namespace ns whose podSelector
// matches labels, and whether they are known.
func (s *servers) portsFor(ns string, labels map[string]string) ([]intstr.IntOrString, bool) {
	select {
	case <-s.started:
	default:
		return nil, false
	}
	if !s.informer.HasSynced() {
		return nil, false
	}
	objs, err := s.informer.GetIndexer().ByIndex(toolscache.NamespaceIndex, ns)
	if err != nil {
		return nil, false
	}
	var out []intstr.IntOrString
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		obj, err := kube.DecodePolicy(api.KindServer, u)
		if err != nil {
			continue // the policy service ignores it too
		}
		srv := obj.(*api.Server)
		if srv.Spec.PodSelector == nil || !srv.Spec.PodSelector.Matches(labels) {
			continue
		}
		if p := srv.Spec.Port; p.Name != "" {
			out = append(out, intstr.FromString(p.Name))
		} else {
			out = append(out, intstr.FromInt32(int32(p.Number)))
		}
	}
	return out, true
}
