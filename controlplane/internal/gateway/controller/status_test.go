package controller

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
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

func TestInfrastructure(t *testing.T) {
	t.Parallel()
	ready := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Status: appsv1.DeploymentStatus{AvailableReplicas: 1}}
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.1"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}, {Hostname: "lb.example.com"}}}}}
	for name, tc := range map[string]struct {
		o         observed
		reason    string // "" for ready
		addresses []string
	}{
		"behind a load balancer": {o: observed{replicas: 1, deployment: ready, service: lb}, addresses: []string{"192.0.2.1", "lb.example.com"}},
		"no load balancer": {o: observed{replicas: 1, deployment: ready, service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.1"}}},
			reason: "AddressNotAssigned"},
		"node port: the cluster IPs": {o: observed{replicas: 1, deployment: ready, service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			ClusterIP: "10.0.0.1", ClusterIPs: []string{"10.0.0.1", "fd00::1"}}}}, addresses: []string{"10.0.0.1", "fd00::1"}},
		"scaled to zero":   {o: observed{replicas: 0, deployment: ready, service: lb}, reason: "NoResources"},
		"not available":    {o: observed{replicas: 1, deployment: &appsv1.Deployment{}, service: lb}, reason: "Pending"},
		"no Deployment":    {o: observed{replicas: 1}, reason: "Pending"},
		"no Service":       {o: observed{replicas: 1, deployment: ready}, reason: "Pending"},
		"nothing to serve": {o: observed{noPorts: true, replicas: 1, deployment: ready}, reason: "Invalid"},
		"name taken":       {o: observed{notProgrammed: gatewayv1.GatewayReasonInvalid, notProgrammedReason: "taken", replicas: 1}, reason: "Invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			in := infrastructure(tc.o)
			var addrs []string
			for _, a := range in.Addresses {
				addrs = append(addrs, a.Value)
			}
			if in.Ready != (tc.reason == "") || in.Reason != tc.reason || !slices.Equal(addrs, tc.addresses) {
				t.Errorf("got %+v, want reason %q, addresses %v", in, tc.reason, tc.addresses)
			}
		})
	}
}

// The controller's own reasons not to accept a Gateway override the gateway package's Accepted and Programmed.
func TestGatewayStatusRejected(t *testing.T) {
	t.Parallel()
	gw := newGateway("public", names.GatewayClass, nil, 80)
	store := model.NewStore()
	store.Update(model.Resources{GatewayResources: model.GatewayResources{Gateways: []*gatewayv1.Gateway{gw},
		GatewayClasses: []*gatewayv1.GatewayClass{class(names.GatewayClass, names.GatewayController)}}})
	ready := observed{replicas: 1, deployment: &appsv1.Deployment{Status: appsv1.DeploymentStatus{AvailableReplicas: 1}},
		service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.1"}}}
	st := gatewayStatus(store.Snapshot(), gw, ready)
	if !conditionIs(st, "Accepted", "True", "Accepted", false) || !conditionIs(st, "Programmed", "True", "Programmed", false) || len(st.Addresses) != 1 {
		t.Errorf("ready: %+v", st)
	}
	rejected := ready
	rejected.rejected, rejected.rejectedReason = gatewayv1.GatewayReasonInvalidParameters, "bad"
	st = gatewayStatus(store.Snapshot(), gw, rejected)
	if !conditionIs(st, "Accepted", "False", "InvalidParameters", false) || !conditionIs(st, "Programmed", "False", "Invalid", false) || len(st.Addresses) != 0 {
		t.Errorf("rejected: %+v", st)
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
