//go:build conformance

package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sinewmesh/sinew/internal/names"
)

// loadBalancer stands in for a load balancer implementation (as cloud-provider-kind does for kind) until ctx is
// done: it gives each LoadBalancer Service of a sinew Gateway in the suite's namespaces (gateway-conformance-*)
// the Service's own cluster IP as its load balancer ingress address.
//
// Why: the suite sends its requests from this process to the Gateway's status.addresses, and it creates its
// Gateways itself, without sinew's Service-type annotation, so their Services are LoadBalancer (the default).
// sinew reports a LoadBalancer Service's ingress addresses and, until there is one, keeps the Gateway
// Programmed: False, AddressNotAssigned, as the Gateway API asks. The local cluster has no load balancer, but
// the node this test runs on reaches cluster IPs (kube-proxy), so the cluster IP is an address that works here;
// kube-proxy also serves a load balancer IP equal to it. The controller's behaviour under test is unchanged.
//
// It polls (every 250 ms) rather than watches: a handful of Services, and nothing to resync after an API error.
func loadBalancer(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := cs.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: names.GatewayLabel})
		if err == nil {
			for i := range list.Items {
				svc := &list.Items[i]
				if !wantsAddress(svc) {
					continue
				}
				vip := corev1.LoadBalancerIPModeVIP
				svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: svc.Spec.ClusterIP, IPMode: &vip}}
				if _, err := cs.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err == nil {
					t.Logf("load balancer: Service %s/%s gets address %s", svc.Namespace, svc.Name, svc.Spec.ClusterIP)
				} else if ctx.Err() == nil {
					t.Logf("load balancer: Service %s/%s: %v (trying again)", svc.Namespace, svc.Name, err)
				}
			}
		} else if ctx.Err() == nil {
			t.Logf("load balancer: listing Services: %v (trying again)", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// wantsAddress: a sinew gateway's LoadBalancer Service in one of the suite's namespaces, with a cluster IP and no
// load balancer address yet.
func wantsAddress(svc *corev1.Service) bool {
	return strings.HasPrefix(svc.Namespace, "gateway-conformance-") &&
		strings.HasPrefix(svc.Name, names.GatewayResourcePrefix) &&
		svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone &&
		len(svc.Status.LoadBalancer.Ingress) == 0
}
