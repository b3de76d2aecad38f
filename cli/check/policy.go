package check

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// Policy checks the policy service (served by the destination deployment): that its Service leads somewhere, that
// it answers, and that the policy resources it reads hold together.
func Policy() Category {
	return Category{ID: "sinew-policy", Checks: []Check{
		{
			ID: "policy-service-endpoints", Description: "policy service has endpoints", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				ok, err := hasReadyEndpoint(ctx, env, names.PolicyService)
				if err != nil || ok {
					return err
				}
				return fmt.Errorf("the Service %s/%s has no ready endpoint: proxies get no authorization policy "+
					"(ports with a Server refuse every client); is the %s pod ready?", env.Namespace, names.PolicyService, names.DestinationDeployment)
			},
		},
		{
			ID: "policy-service-ready", Description: "policy service answers", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				pods, err := destinationPods(ctx, env)
				if err != nil {
					return err
				}
				var bad []string
				for _, p := range pods {
					if _, err := destinationAdmin(ctx, env, p.Name, "/ready"); err != nil {
						bad = append(bad, fmt.Sprintf("%s: %v", p.Name, err))
					}
				}
				if len(bad) > 0 {
					return fmt.Errorf("not serving: %s", strings.Join(bad, "; "))
				}
				return nil
			},
		},
		{
			ID: "policy-resources-consistent", Description: "policy resources refer to what exists", Severity: Warning,
			Run: func(ctx context.Context, env *Env) error {
				pods, err := destinationPods(ctx, env)
				if err != nil {
					return err
				}
				b, err := destinationAdmin(ctx, env, pods[0].Name, "/debug/model")
				if err != nil {
					return err
				}
				var model struct {
					PolicyProblems []string `json:"policyProblems"`
				}
				if err := json.Unmarshal(b, &model); err != nil {
					return fmt.Errorf("the policy service's /debug/model: %w", err)
				}
				if n := len(model.PolicyProblems); n > 0 {
					return fmt.Errorf("%d policy problem(s); what they name admits nobody, answers 500 or is ignored:\n%s", n, strings.Join(model.PolicyProblems, "\n"))
				}
				return nil
			},
		},
	}}
}

// hasReadyEndpoint says whether Service name in the control plane's namespace has a ready endpoint.
func hasReadyEndpoint(ctx context.Context, env *Env, name string) (bool, error) {
	slices, err := env.Kube.DiscoveryV1().EndpointSlices(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
	if err != nil {
		return false, err
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				return true, nil
			}
		}
	}
	return false, nil
}

// destinationPods are the running destination pods, which serve the policy service.
func destinationPods(ctx context.Context, env *Env) ([]corev1.Pod, error) {
	list, err := env.Kube.CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: names.ControlPlaneComponentLabel + "=destination"})
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("no running %s pod serves the policy service", names.DestinationDeployment)
	}
	return pods, nil
}

// destinationAdmin GETs path on a destination pod's admin server through the API server's pod proxy.
func destinationAdmin(ctx context.Context, env *Env, pod, path string) ([]byte, error) {
	res := env.Kube.CoreV1().Pods(env.Namespace).ProxyGet("http", pod, strconv.Itoa(names.DestinationAdminPort), path, nil)
	if res == nil { // a fake client without a proxy reactor
		return nil, fmt.Errorf("cannot reach %s's admin port %d through the API server", pod, names.DestinationAdminPort)
	}
	b, err := res.DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s on its admin port %d: %w", path, names.DestinationAdminPort, err)
	}
	return b, nil
}
