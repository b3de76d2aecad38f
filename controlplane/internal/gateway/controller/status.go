package controller

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// What the controller writes: the GatewayClass's and each Gateway's status as the gateway package computes them
// (gateway.ClassConditions, gateway.Status), given what the cluster says about the Gateway's objects
// (infrastructure), and with the controller's own reasons not to accept a Gateway (its GatewayClass not accepted,
// a bad sinew.dev/gateway-* annotation). Conditions are computed without transition times; mergeConditions keeps
// the live one while a condition's status stays.

// classStatus is the status of a GatewayClass of sinew's.
func classStatus(c *gatewayv1.GatewayClass) gatewayv1.GatewayClassStatus {
	return gatewayv1.GatewayClassStatus{Conditions: gateway.ClassConditions(c)}
}

// classAccepted reports whether the class is accepted (gateway.ClassConditions: it names no parameters).
func classAccepted(c *gatewayv1.GatewayClass) bool {
	a := findCondition(gateway.ClassConditions(c), string(gatewayv1.GatewayClassConditionStatusAccepted))
	return a != nil && a.Status == metav1.ConditionTrue
}

// observed is what the controller found out about a Gateway and its objects, for its status.
type observed struct {
	// rejected is why the controller does not accept the Gateway, with the Accepted reason; "" when it does.
	rejected       gatewayv1.GatewayConditionReason
	rejectedReason string
	// notProgrammed is a reason the objects could not be made (a name taken, a configuration error, a failed
	// write), with its Programmed reason.
	notProgrammed       gatewayv1.GatewayConditionReason
	notProgrammedReason string
	// noPorts: no listener can be served, so there is nothing to run.
	noPorts bool
	// replicas wanted, and the live Deployment and Service (nil when missing).
	replicas   int32
	deployment *appsv1.Deployment
	service    *corev1.Service
}

// gatewayStatus is the status of one of sinew's Gateways: the gateway package's, given infrastructure(o), with
// Accepted False (and Programmed False, Invalid) when the controller rejects the Gateway. It is pure.
func gatewayStatus(snap *model.Snapshot, gw *gatewayv1.Gateway, o observed) gatewayv1.GatewayStatus {
	st := gateway.Status(snap, gw, infrastructure(o))
	if o.rejected == "" {
		return st
	}
	st.Addresses = nil
	for i := range st.Conditions {
		c := &st.Conditions[i]
		switch gatewayv1.GatewayConditionType(c.Type) {
		case gatewayv1.GatewayConditionAccepted:
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(o.rejected), o.rejectedReason
		case gatewayv1.GatewayConditionProgrammed:
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(gatewayv1.GatewayReasonInvalid), "The Gateway is not accepted"
		}
	}
	return st
}

// infrastructure says whether a Gateway's proxies serve (Programmed), and if not why, with the Programmed
// reasons of the Gateway API: Pending while they are being made or started, NoResources when scaled to zero,
// AddressNotAssigned while a load balancer has not given the Service an address, Invalid when they cannot be
// made.
func infrastructure(o observed) gateway.Infrastructure {
	not := func(reason gatewayv1.GatewayConditionReason, format string, args ...any) gateway.Infrastructure {
		return gateway.Infrastructure{Reason: string(reason), Message: fmt.Sprintf(format, args...)}
	}
	name := "the gateway's Deployment"
	if o.deployment != nil {
		name = "Deployment " + o.deployment.Name
	}
	switch {
	case o.notProgrammed != "":
		return not(o.notProgrammed, "%s", o.notProgrammedReason)
	case o.noPorts:
		return not(gatewayv1.GatewayReasonInvalid, "No listener can be served")
	case o.deployment == nil:
		return not(gatewayv1.GatewayReasonPending, "Creating the gateway's proxies")
	case o.replicas == 0:
		return not(gatewayv1.GatewayReasonNoResources, "%s is scaled to 0 replicas (%s)", name, AnnReplicas)
	case o.deployment.Status.AvailableReplicas == 0:
		return not(gatewayv1.GatewayReasonPending, "Waiting for the gateway's proxies: %s has no available replica yet", name)
	case o.service == nil:
		return not(gatewayv1.GatewayReasonPending, "Creating the gateway's Service")
	}
	addrs := addresses(o.service)
	if len(addrs) == 0 {
		if o.service.Spec.Type == corev1.ServiceTypeLoadBalancer {
			return not(gatewayv1.GatewayReasonAddressNotAssigned,
				"Waiting for a load balancer to give Service %s an address (on a cluster without one, set %s to NodePort or ClusterIP)",
				o.service.Name, AnnServiceType)
		}
		return not(gatewayv1.GatewayReasonAddressNotAssigned, "Waiting for an address for Service %s", o.service.Name)
	}
	return gateway.Infrastructure{Ready: true, Addresses: addrs}
}

// addresses are where the Gateway's Service takes connections on the listeners' ports: its load balancer's
// addresses (type LoadBalancer), else its cluster IPs. A NodePort Service also takes them on every node, at
// the node ports the Service lists, which are not the listeners' ports and so are not the Gateway's addresses.
func addresses(svc *corev1.Service) []gatewayv1.GatewayStatusAddress {
	ip, host := gatewayv1.IPAddressType, gatewayv1.HostnameAddressType
	var out []gatewayv1.GatewayStatusAddress
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			switch {
			case in.IP != "":
				out = append(out, gatewayv1.GatewayStatusAddress{Type: &ip, Value: in.IP})
			case in.Hostname != "":
				out = append(out, gatewayv1.GatewayStatusAddress{Type: &host, Value: in.Hostname})
			}
		}
		return out
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, a := range ips {
		if _, err := netip.ParseAddr(a); err == nil {
			out = append(out, gatewayv1.GatewayStatusAddress{Type: &ip, Value: a})
		}
	}
	return out
}

func findCondition(cs []metav1.Condition, t string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// mergeConditions gives each of next's conditions the transition time of live's condition of the same type when
// its status is the same, else now.
func mergeConditions(live, next []metav1.Condition, now time.Time) []metav1.Condition {
	out := slices.Clone(next)
	stamp := metav1.NewTime(now.Truncate(time.Second))
	for i := range out {
		out[i].LastTransitionTime = stamp
		if c := findCondition(live, out[i].Type); c != nil && c.Status == out[i].Status {
			out[i].LastTransitionTime = c.LastTransitionTime
		}
	}
	return out
}

// mergeGatewayStatus is next with the live transition times kept (mergeConditions), for the Gateway and for each
// listener by name.
func mergeGatewayStatus(live, next gatewayv1.GatewayStatus, now time.Time) gatewayv1.GatewayStatus {
	out := next
	out.Conditions = mergeConditions(live.Conditions, next.Conditions, now)
	out.Listeners = slices.Clone(next.Listeners)
	for i := range out.Listeners {
		var before []metav1.Condition
		for _, l := range live.Listeners {
			if l.Name == out.Listeners[i].Name {
				before = l.Conditions
			}
		}
		out.Listeners[i].Conditions = mergeConditions(before, out.Listeners[i].Conditions, now)
	}
	return out
}

// sameStatus compares statuses as JSON would render them (nil and empty lists alike).
func sameStatus(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}
