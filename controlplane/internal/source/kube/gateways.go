package kube

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// The ingress gateway's objects (decision 0006): Gateways and GatewayClasses (gateway.networking.k8s.io/v1) and
// ReferenceGrants (v1beta1, which every Gateway API release serves) through the dynamic informers, like the
// routes; the kubernetes.io/tls Secrets that listeners of sinew's Gateways reference through a typed informer
// that lists only that type (a field selector), started once the API server serves Gateways; and the Namespaces'
// labels, from the namespace informer the source has anyway. A Secret's data goes into the model and nowhere else:
// never into a log line or a problem.

// The Gateway API kinds the ingress gateway reads, and their resources.
const (
	KindGateway             = "Gateway"
	ResourceGateways        = "gateways"
	KindGatewayClass        = "GatewayClass"
	ResourceGatewayClasses  = "gatewayclasses"
	KindReferenceGrant      = "ReferenceGrant"
	ResourceReferenceGrants = "referencegrants"
)

// tlsSecretSelector lists only TLS Secrets.
const tlsSecretSelector = "type=" + string(corev1.SecretTypeTLS)

// gatewayKinds are the dynamically informed kinds of the ingress gateway.
func gatewayKinds() []informedKind {
	v1 := schema.GroupVersion{Group: gatewayv1.GroupName, Version: "v1"}
	v1beta1 := schema.GroupVersion{Group: gatewayv1.GroupName, Version: "v1beta1"}
	return []informedKind{
		{gv: v1, kind: KindGateway, resource: ResourceGateways, gateway: true},
		{gv: v1, kind: KindGatewayClass, resource: ResourceGatewayClasses, gateway: true},
		{gv: v1beta1, kind: KindReferenceGrant, resource: ResourceReferenceGrants, gateway: true},
	}
}

// newSecretInformer sets up the TLS Secret informer on its own factory (a field selector applies to a whole
// factory). Its transform keeps only what the model reads: the name, the type and the two keys; the rest
// (kubectl's last-applied annotation holds the whole Secret again) is not kept in memory.
func (s *Source) newSecretInformer() error {
	s.secretFactory = informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = tlsSecretSelector }),
		informers.WithTransform(func(obj any) (any, error) {
			sec, ok := obj.(*corev1.Secret)
			if !ok {
				return obj, nil
			}
			out := &corev1.Secret{Type: sec.Type, Data: map[string][]byte{}}
			out.Namespace, out.Name, out.ResourceVersion = sec.Namespace, sec.Name, sec.ResourceVersion
			for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
				if v, ok := sec.Data[k]; ok {
					out.Data[k] = v
				}
			}
			return out, nil
		}))
	inf := s.secretFactory.Core().V1().Secrets()
	s.secrets = inf.Lister()
	mark := func(any) {
		s.events.WithLabelValues("secret").Inc()
		s.enqueue(func() { s.dirtyGateways = true })
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: mark, UpdateFunc: func(_, obj any) { mark(obj) }, DeleteFunc: mark,
	})
	s.secretSynced = inf.Informer().HasSynced
	return err
}

// decodeGatewayObject turns a Gateway API object into its Go form, without status, managed fields and resource
// version (the model need not change when only the status does: the gateway controller writes it), and checks
// it with validate (the CRD's schema should have, but an object stored under an older CRD may not pass).
func decodeGatewayObject[T any](u *unstructured.Unstructured, dropStatus func(*T), validate func(*T) error) (*T, error) {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	dropStatus(out)
	if err := validate(out); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeGateway turns a Gateway object into its Go form, without its status, and validates it.
func DecodeGateway(u *unstructured.Unstructured) (*gatewayv1.Gateway, error) {
	return decodeGatewayObject(u, func(g *gatewayv1.Gateway) {
		g.Status = gatewayv1.GatewayStatus{}
		g.ManagedFields, g.ResourceVersion = nil, ""
	}, gateway.Validate)
}

// DecodeGatewayClass turns a GatewayClass object into its Go form, without its status, and validates it.
func DecodeGatewayClass(u *unstructured.Unstructured) (*gatewayv1.GatewayClass, error) {
	return decodeGatewayObject(u, func(c *gatewayv1.GatewayClass) {
		c.Status = gatewayv1.GatewayClassStatus{}
		c.ManagedFields, c.ResourceVersion = nil, ""
	}, gateway.ValidateClass)
}

// DecodeReferenceGrant turns a ReferenceGrant object into its Go form and validates it.
func DecodeReferenceGrant(u *unstructured.Unstructured) (*gatewayv1beta1.ReferenceGrant, error) {
	return decodeGatewayObject(u, func(g *gatewayv1beta1.ReferenceGrant) {
		g.ManagedFields, g.ResourceVersion = nil, ""
	}, gateway.ValidateReferenceGrant)
}

// listInformed decodes every object of one informed kind, sorted by namespace/name; what does not decode is
// reported in problems by "kind namespace/name" (kind in lower case).
func listInformed[T any](s *Source, kind string, decode func(*unstructured.Unstructured) (*T, error), problems map[string][]string) []*T {
	inf, ok := s.policyInformers[kind]
	if !ok {
		return nil
	}
	objs, err := inf.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	type keyed struct {
		key string
		obj *T
	}
	var out []keyed
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		key := u.GetNamespace() + "/" + u.GetName()
		obj, err := decode(u)
		if err != nil {
			problems[strings.ToLower(kind)+" "+key] = []string{err.Error() + "; ignoring it"}
			continue
		}
		out = append(out, keyed{key, obj})
	}
	slices.SortFunc(out, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	res := make([]*T, 0, len(out))
	for _, k := range out {
		res = append(res, k.obj)
	}
	return res
}

// processGateways re-reads the gateway objects, the Secrets sinew's Gateways reference and the namespaces; it
// reports whether any changed.
func (s *Source) processGateways() bool {
	problems := map[string][]string{}
	next := model.GatewayResources{
		Gateways:        listInformed(s, KindGateway, DecodeGateway, problems),
		GatewayClasses:  listInformed(s, KindGatewayClass, DecodeGatewayClass, problems),
		ReferenceGrants: listInformed(s, KindReferenceGrant, DecodeReferenceGrant, problems),
	}
	next.TLSSecrets = s.referencedSecrets(next.Gateways, next.GatewayClasses)
	next.Namespaces = s.namespaceLabels()

	changed := s.replaceProblems(&s.gatewayProblemKeys, problems)
	if !reflect.DeepEqual(next, s.gateways) {
		s.gateways = next
		changed = true
	}
	return changed
}

// referencedSecrets are the TLS Secrets that listeners of Gateways of a sinew GatewayClass reference (whether a
// ReferenceGrant allows a reference across namespaces is for the gateway package to decide), sorted.
func (s *Source) referencedSecrets(gws []*gatewayv1.Gateway, classes []*gatewayv1.GatewayClass) []*model.TLSSecret {
	if s.secrets == nil {
		return nil
	}
	ours := map[string]bool{}
	for _, c := range classes {
		ours[c.Name] = gateway.OurClass(c)
	}
	seen := map[string]bool{}
	var out []*model.TLSSecret
	for _, g := range gws {
		if !ours[string(g.Spec.GatewayClassName)] {
			continue
		}
		for _, key := range gateway.CertificateSecrets(g) {
			if seen[key] {
				continue
			}
			seen[key] = true
			ns, name, _ := strings.Cut(key, "/")
			sec, err := s.secrets.Secrets(ns).Get(name)
			if err != nil || sec.Type != corev1.SecretTypeTLS {
				continue // a missing Secret is the gateway package's to report, on the listener
			}
			out = append(out, &model.TLSSecret{Namespace: ns, Name: sec.Name,
				Chain: sec.Data[corev1.TLSCertKey], PrivateKey: sec.Data[corev1.TLSPrivateKeyKey]})
		}
	}
	slices.SortFunc(out, func(a, b *model.TLSSecret) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// namespaceLabels are every namespace with its labels, sorted by name.
func (s *Source) namespaceLabels() []*model.Namespace {
	list, err := s.namespaces.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]*model.Namespace, 0, len(list))
	for _, n := range list {
		out = append(out, &model.Namespace{Name: n.Name, Labels: n.Labels})
	}
	slices.SortFunc(out, func(a, b *model.Namespace) int { return strings.Compare(a.Name, b.Name) })
	return out
}
