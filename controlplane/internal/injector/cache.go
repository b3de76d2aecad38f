package injector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

// namespaceGetTimeout bounds the GET of a namespace the informer has not seen yet (just created).
const namespaceGetTimeout = 2 * time.Second

// cache holds what every review needs: namespaces (for inherited annotations) and the trust anchors, both fed by
// informers so a review costs no API call in the common case.
type cache struct {
	client  kubernetes.Interface
	cpNS    string
	log     *slog.Logger
	metrics *metrics

	nsLister listerscorev1.NamespaceLister
	nsSynced toolscache.InformerSynced
	cmSynced toolscache.InformerSynced
	started  chan struct{} // closed once the informers are set up (listers usable)
	isSynced atomic.Bool

	mu         sync.RWMutex
	trustRoots string
}

func newCache(client kubernetes.Interface, cpNS string, log *slog.Logger, m *metrics) *cache {
	return &cache{client: client, cpNS: cpNS, log: log, metrics: m, started: make(chan struct{})}
}

func (c *cache) run(ctx context.Context) error {
	nsFactory := informers.NewSharedInformerFactory(c.client, 0)
	nsInf := nsFactory.Core().V1().Namespaces()
	c.nsLister = nsInf.Lister()
	c.nsSynced = nsInf.Informer().HasSynced

	// one ConfigMap, by name: RBAC may restrict the injector to it
	cmFactory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(c.cpNS),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", names.TrustRootsConfigMap).String()
		}))
	cmInf := cmFactory.Core().V1().ConfigMaps().Informer()
	c.cmSynced = cmInf.HasSynced
	if _, err := cmInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.setTrustRoots(obj) },
		UpdateFunc: func(_, obj any) { c.setTrustRoots(obj) },
		DeleteFunc: func(any) {
			c.log.Warn("trust-roots ConfigMap deleted; keeping the last trust anchors", "configMap", c.cpNS+"/"+names.TrustRootsConfigMap)
		},
	}); err != nil {
		return fmt.Errorf("trust-roots informer: %w", err)
	}
	close(c.started)
	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), c.nsSynced, c.cmSynced) {
		nsFactory.Shutdown()
		cmFactory.Shutdown()
		return nil // ctx ended first
	}
	c.isSynced.Store(true)
	c.log.Info("caches synced", "trustAnchors", c.anchors() != "")
	<-ctx.Done()
	nsFactory.Shutdown()
	cmFactory.Shutdown()
	return nil
}

func (c *cache) synced() bool { return c.isSynced.Load() }

func (c *cache) setTrustRoots(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	pem := cm.Data[names.TrustRootsKey]
	check := inject.Config{TrustAnchorsPEM: pem}
	if err := check.Validate(); err != nil {
		c.metrics.trustRootUpdates.WithLabelValues("invalid").Inc()
		c.log.Error("trust-roots ConfigMap holds no valid trust anchors; keeping the previous ones",
			"configMap", cm.Namespace+"/"+cm.Name, "key", names.TrustRootsKey, "err", err)
		return
	}
	c.mu.Lock()
	changed := c.trustRoots != pem
	c.trustRoots = pem
	c.mu.Unlock()
	if changed {
		c.metrics.trustRootUpdates.WithLabelValues("ok").Inc()
		c.log.Info("trust anchors loaded", "sha256", inject.TrustRootHash(pem))
	}
}

func (c *cache) anchors() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.trustRoots
}

// namespaceAnnotations returns a namespace's annotations from the cache, or from the API server when the cache
// does not have it yet.
func (c *cache) namespaceAnnotations(ctx context.Context, name string) (map[string]string, error) {
	select {
	case <-c.started:
	default:
		return nil, errors.New("namespace cache not started")
	}
	ns, err := c.nsLister.Get(name)
	if err == nil {
		return ns.Annotations, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, namespaceGetTimeout)
	defer cancel()
	ns, err = c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", name, err)
	}
	return ns.Annotations, nil
}
