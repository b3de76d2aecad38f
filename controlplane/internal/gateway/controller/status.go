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
)

// What the controller writes: the GatewayClass's Accepted, and each Gateway's Accepted, Programmed, addresses and
// listeners (the gateway package's). Conditions are computed without transition times; mergeConditions keeps the
// live one while a condition's status stays.

// classStatus is the status of a GatewayClass of sinew's: Accepted, unless it names parameters (sinew reads none).
func classStatus(c *gatewayv1.GatewayClass) gatewayv1.GatewayClassStatus {
	cond := metav1.Condition{
		Type: string(gatewayv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gatewayv1.GatewayClassReasonAccepted), Message: "Handled by sinew's gateway controller", ObservedGeneration: c.Generation,
	}
	if ref := c.Spec.ParametersRef; ref != nil {
		cond.Status, cond.Reason = metav1.ConditionFalse, string(gatewayv1.GatewayClassReasonInvalidParameters)
		cond.Message = fmt.Sprintf("spec.parametersRef (%s %s): sinew reads no parameters objects; a Gateway's spec.infrastructure.annotations configure it",
			kindOf(string(ref.Group), string(ref.Kind)), ref.Name)
	}
	return gatewayv1.GatewayClassStatus{Conditions: []metav1.Condition{cond}}
}

// classAccepted reports whether classStatus accepts the class.
func classAccepted(c *gatewayv1.GatewayClass) bool { return c.Spec.ParametersRef == nil }

// observed is what the cluster says about a Gateway's objects, for its status.
type observed struct {
	// rejected is why the Gateway is not accepted, with the Accepted reason; "" when it is.
	rejected       gatewayv1.GatewayConditionReason
	rejectedReason string
	// notProgrammed is a reason the objects could not be made (a name taken, a configuration error, a failed
	// write), with its Programmed reason.
	notProgrammed       gatewayv1.GatewayConditionReason
	notProgrammedReason string
	// noPorts: no listener can be served, so there is no Service.
	noPorts bool
	// replicas wanted, and the live Deployment and Service (nil when missing).
	replicas   int32
	deployment *appsv1.Deployment
	service    *corev1.Service
}

// gatewayStatus is the status of one of sinew's Gateways. listeners are the gateway package's listener statuses
// (nil: none known), which also decide whether Accepted says ListenersNotValid. It is pure.
func gatewayStatus(gw *gatewayv1.Gateway, listeners []gatewayv1.ListenerStatus, o observed) gatewayv1.GatewayStatus {
	gen := gw.Generation
	cond := func(t gatewayv1.GatewayConditionType, ok bool, reason gatewayv1.GatewayConditionReason, format string, args ...any) metav1.Condition {
		s := metav1.ConditionTrue
		if !ok {
			s = metav1.ConditionFalse
		}
		return metav1.Condition{Type: string(t), Status: s, Reason: string(reason), Message: fmt.Sprintf(format, args...), ObservedGeneration: gen}
	}
	st := gatewayv1.GatewayStatus{Listeners: listeners}

	var accepted metav1.Condition
	valid, invalid := 0, 0
	for _, l := range listeners {
		if c := findCondition(l.Conditions, string(gatewayv1.ListenerConditionAccepted)); c != nil && c.Status == metav1.ConditionFalse {
			invalid++
		} else {
			valid++
		}
	}
	switch {
	case o.rejected != "":
		accepted = cond(gatewayv1.GatewayConditionAccepted, false, o.rejected, "%s", o.rejectedReason)
	case invalid > 0 && valid == 0:
		accepted = cond(gatewayv1.GatewayConditionAccepted, false, gatewayv1.GatewayReasonListenersNotValid, "No listener is valid (see status.listeners)")
	case invalid > 0:
		accepted = cond(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonListenersNotValid, "%d of %d listeners are not valid (see status.listeners)", invalid, invalid+valid)
	default:
		accepted = cond(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonAccepted, "Accepted")
	}
	st.Conditions = append(st.Conditions, accepted)

	name := "sinew-gateway objects"
	if o.deployment != nil {
		name = "Deployment " + o.deployment.Name
	}
	var programmed metav1.Condition
	switch {
	case accepted.Status == metav1.ConditionFalse:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonInvalid, "The Gateway is not accepted")
	case o.notProgrammed != "":
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, o.notProgrammed, "%s", o.notProgrammedReason)
	case o.noPorts:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonInvalid, "No listener can be served")
	case o.deployment == nil:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonPending, "Creating the gateway's proxies")
	case o.replicas == 0:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonNoResources, "%s is scaled to 0 replicas (%s)", name, AnnReplicas)
	case o.deployment.Status.AvailableReplicas == 0:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonPending,
			"Waiting for the gateway's proxies: %s has no available replica yet", name)
	case o.service == nil:
		programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonPending, "Creating the gateway's Service")
	default:
		st.Addresses = addresses(o.service)
		if len(st.Addresses) == 0 {
			msg := "Waiting for an address for Service " + o.service.Name
			if o.service.Spec.Type == corev1.ServiceTypeLoadBalancer {
				msg = fmt.Sprintf("Waiting for a load balancer to give Service %s an address (a cluster without one: %s NodePort or ClusterIP)",
					o.service.Name, AnnServiceType)
			}
			programmed = cond(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonAddressNotAssigned, "%s", msg)
		} else {
			programmed = cond(gatewayv1.GatewayConditionProgrammed, true, gatewayv1.GatewayReasonProgrammed, "Programmed: %d of %d proxies available",
				o.deployment.Status.AvailableReplicas, o.replicas)
		}
	}
	st.Conditions = append(st.Conditions, programmed)
	return st
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
