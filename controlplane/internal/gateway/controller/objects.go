package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

// AnnSpecHash is on every object the controller creates: the hash of what it wanted the object to be. An object
// is updated only when what the controller wants changes, so the API server's defaults, and changes others make
// (a `kubectl scale`, an autoscaler), stand until then.
const AnnSpecHash = "sinew.dev/gateway-spec-hash"

// objects are what a Gateway runs on, all named names.GatewayResourceName in its namespace and owned by it.
type objects struct {
	account    *corev1.ServiceAccount
	deployment *appsv1.Deployment
	// service is nil while no listener can be served (a Service needs a port).
	service *corev1.Service
}

// desiredObjects builds a Gateway's objects from its parameters, the ports its proxies listen on, and the
// injector's configuration (the proxy's image, identity and control plane). Errors are inject's configuration
// errors. It is pure.
func desiredObjects(gw *gatewayv1.Gateway, p params, ports []int32, cfg inject.Config, createdBy string) (objects, error) {
	tmpl, err := inject.GatewayPodTemplate(inject.GatewayInput{
		Namespace: gw.Namespace, Name: gw.Name, Ports: ports, Labels: p.labels, Annotations: p.annotations,
	}, cfg)
	if err != nil {
		return objects{}, err
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Namespace:   gw.Namespace,
			Name:        names.GatewayResourceName(gw.Name),
			Labels:      merged(p.labels, map[string]string{names.GatewayLabel: gw.Name}),
			Annotations: merged(p.annotations, map[string]string{names.CreatedByAnnotation: createdBy}),
			// Deleting the Gateway deletes them. No blockOwnerDeletion: that would need update rights on
			// gateways/finalizers, and nothing waits for them.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gatewayv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
				Controller: new(true),
			}},
		}
	}
	selector := map[string]string{names.GatewayLabel: gw.Name, names.DeploymentLabel: names.GatewayResourceName(gw.Name)}

	o := objects{
		account: &corev1.ServiceAccount{ObjectMeta: meta()},
		deployment: &appsv1.Deployment{ObjectMeta: meta(), Spec: appsv1.DeploymentSpec{
			Replicas: new(p.replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: tmpl,
		}},
	}
	if len(tmpl.Spec.Containers) > 0 {
		for _, cp := range tmpl.Spec.Containers[0].Ports {
			if cp.Name != inject.GatewayPortName(cp.ContainerPort) {
				continue // the proxy's own ports
			}
			if o.service == nil {
				o.service = &corev1.Service{ObjectMeta: meta(), Spec: corev1.ServiceSpec{Type: p.serviceType, Selector: selector}}
			}
			o.service.Spec.Ports = append(o.service.Spec.Ports, corev1.ServicePort{
				Name: cp.Name, Port: cp.ContainerPort, TargetPort: intstr.FromInt32(cp.ContainerPort), Protocol: corev1.ProtocolTCP,
			})
		}
	}
	stamp(&o.account.ObjectMeta, nil)
	stamp(&o.deployment.ObjectMeta, o.deployment.Spec)
	if o.service != nil {
		stamp(&o.service.ObjectMeta, o.service.Spec)
	}
	return o, nil
}

// stamp records the hash of an object's labels, annotations, owner and spec in AnnSpecHash.
func stamp(m *metav1.ObjectMeta, spec any) {
	b, err := json.Marshal([]any{m.Labels, m.Annotations, m.OwnerReferences, spec})
	if err != nil {
		panic("gateway objects do not marshal: " + err.Error()) // plain API types always do
	}
	sum := sha256.Sum256(b)
	m.Annotations[AnnSpecHash] = hex.EncodeToString(sum[:12])
}

// ownedBy reports whether an object is one the controller made for the Gateway: controlled by a Gateway of that
// name (and UID, when given) and marked with AnnSpecHash.
func ownedBy(m *metav1.ObjectMeta, gateway string, uid string) bool {
	if _, ok := m.Annotations[AnnSpecHash]; !ok {
		return false
	}
	ref := metav1.GetControllerOfNoCopy(m)
	return ref != nil && ref.Kind == "Gateway" && ref.APIVersion == gatewayv1.GroupVersion.String() && ref.Name == gateway &&
		(uid == "" || string(ref.UID) == uid)
}
