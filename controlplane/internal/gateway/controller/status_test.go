package controller

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestGatewayParams(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		meta  map[string]string
		infra *gatewayv1.GatewayInfrastructure
		want  params
		err   string
	}{
		"defaults": {want: params{replicas: 1, serviceType: corev1.ServiceTypeLoadBalancer}},
		"metadata annotations": {meta: map[string]string{AnnReplicas: "2", AnnServiceType: "NodePort"},
			want: params{replicas: 2, serviceType: corev1.ServiceTypeNodePort}},
		"infrastructure wins": {meta: map[string]string{AnnReplicas: "2"},
			infra: &gatewayv1.GatewayInfrastructure{Annotations: map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{AnnReplicas: "0", "a": "b"}},
			want:  params{replicas: 0, serviceType: corev1.ServiceTypeLoadBalancer, annotations: map[string]string{AnnReplicas: "0", "a": "b"}}},
		"bad replicas":     {meta: map[string]string{AnnReplicas: "-1"}, err: "want a number of replicas"},
		"bad service type": {meta: map[string]string{AnnServiceType: "ExternalName"}, err: "want LoadBalancer, NodePort or ClusterIP"},
		"parametersRef": {infra: &gatewayv1.GatewayInfrastructure{ParametersRef: &gatewayv1.LocalParametersReference{Kind: "ConfigMap", Name: "p"}},
			err: "spec.infrastructure.parametersRef (ConfigMap p): sinew reads no parameters objects"},
	} {
		t.Run(name, func(t *testing.T) {
			gw := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Annotations: tc.meta}, Spec: gatewayv1.GatewaySpec{Infrastructure: tc.infra}}
			got, err := gatewayParams(gw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.replicas != tc.want.replicas || got.serviceType != tc.want.serviceType || len(got.annotations) != len(tc.want.annotations) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestGatewayStatus(t *testing.T) {
	t.Parallel()
	gw := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Generation: 7}}
	ready := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Status: appsv1.DeploymentStatus{AvailableReplicas: 1}}
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.1"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}, {Hostname: "lb.example.com"}}}}}
	listener := func(name string, ok bool) gatewayv1.ListenerStatus {
		s := metav1.ConditionTrue
		if !ok {
			s = metav1.ConditionFalse
		}
		return gatewayv1.ListenerStatus{Name: gatewayv1.SectionName(name), Conditions: []metav1.Condition{{Type: "Accepted", Status: s}}}
	}
	for name, tc := range map[string]struct {
		listeners            []gatewayv1.ListenerStatus
		o                    observed
		accepted, programmed string // "True/Reason"
		addresses            int
	}{
		"programmed behind a load balancer": {o: observed{replicas: 1, deployment: ready, service: lb},
			accepted: "True/Accepted", programmed: "True/Programmed", addresses: 2},
		"some listeners invalid": {listeners: []gatewayv1.ListenerStatus{listener("a", true), listener("b", false)},
			o: observed{replicas: 1, deployment: ready, service: lb}, accepted: "True/ListenersNotValid", programmed: "True/Programmed", addresses: 2},
		"no listener valid": {listeners: []gatewayv1.ListenerStatus{listener("b", false)},
			accepted: "False/ListenersNotValid", programmed: "False/Invalid"},
		"rejected": {o: observed{rejected: gatewayv1.GatewayReasonUnsupportedAddress, rejectedReason: "no"},
			accepted: "False/UnsupportedAddress", programmed: "False/Invalid"},
		"no load balancer": {o: observed{replicas: 1, deployment: ready, service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.1"}}},
			accepted: "True/Accepted", programmed: "False/AddressNotAssigned"},
		"node port: the cluster IP": {o: observed{replicas: 1, deployment: ready, service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.1"}}},
			accepted: "True/Accepted", programmed: "True/Programmed", addresses: 1},
		"scaled to zero":   {o: observed{replicas: 0, deployment: ready, service: lb}, accepted: "True/Accepted", programmed: "False/NoResources"},
		"not available":    {o: observed{replicas: 1, deployment: &appsv1.Deployment{}, service: lb}, accepted: "True/Accepted", programmed: "False/Pending"},
		"nothing to serve": {o: observed{noPorts: true, replicas: 1, deployment: ready}, accepted: "True/Accepted", programmed: "False/Invalid"},
		"name taken": {o: observed{notProgrammed: gatewayv1.GatewayReasonInvalid, notProgrammedReason: "taken", replicas: 1},
			accepted: "True/Accepted", programmed: "False/Invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			st := gatewayStatus(gw, tc.listeners, tc.o)
			got := func(typ string) string {
				c := findCondition(st.Conditions, typ)
				if c == nil || c.ObservedGeneration != 7 {
					return "missing"
				}
				return string(c.Status) + "/" + c.Reason
			}
			if got("Accepted") != tc.accepted || got("Programmed") != tc.programmed || len(st.Addresses) != tc.addresses {
				t.Errorf("Accepted %s, Programmed %s, addresses %v; want %s, %s, %d", got("Accepted"), got("Programmed"), st.Addresses,
					tc.accepted, tc.programmed, tc.addresses)
			}
		})
	}
}

func TestMergeConditionsKeepsTransitionTimes(t *testing.T) {
	t.Parallel()
	then, now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	live := gatewayv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: "True", LastTransitionTime: metav1.NewTime(then)},
			{Type: "Programmed", Status: "False", LastTransitionTime: metav1.NewTime(then)}},
		Listeners: []gatewayv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{{Type: "Accepted", Status: "True", LastTransitionTime: metav1.NewTime(then)}}}},
	}
	next := gatewayv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: "True"}, {Type: "Programmed", Status: "True"}},
		Listeners:  []gatewayv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{{Type: "Accepted", Status: "True"}}}},
	}
	got := mergeGatewayStatus(live, next, now)
	if !got.Conditions[0].LastTransitionTime.Time.Equal(then) || !got.Conditions[1].LastTransitionTime.Time.Equal(now) ||
		!got.Listeners[0].Conditions[0].LastTransitionTime.Time.Equal(then) {
		t.Errorf("times %v", got)
	}
	if !next.Conditions[1].LastTransitionTime.IsZero() {
		t.Error("the computed status was changed")
	}
}
