package check

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// InjectDocs is where a pod without a proxy is told to look.
const InjectDocs = "https://github.com/sinewmesh/sinew/blob/main/docs/getting-started/inject.md"

// injectHint says how to mesh pods.
const injectHint = "inject them: `kubectl get deploy -n <ns> -o yaml | sinew inject - | kubectl apply -f -`, or annotate the namespace sinew.dev/inject=enabled and restart the pods"

// DataPlane checks the meshed workloads: every pod in scope has a proxy, the proxies are ready, and they run the
// control plane's version.
func DataPlane() Category {
	return Category{ID: "sinew-data-plane", Checks: []Check{
		{
			ID: "dp-pods-injected", Description: "data plane pods have a sinew proxy", Severity: Error, Hint: InjectDocs,
			Run: func(ctx context.Context, env *Env) error {
				pods, scope, err := dataPlanePods(ctx, env)
				if err != nil {
					return err
				}
				if len(pods) == 0 {
					return fmt.Errorf("found no running pods in %s", scope)
				}
				var missing []string
				for _, p := range pods {
					if !HasProxy(&p) {
						missing = append(missing, p.Namespace+"/"+p.Name)
					}
				}
				if len(missing) > 0 {
					return fmt.Errorf("%d of %d pods in %s have no %s container: %s\n%s",
						len(missing), len(pods), scope, names.ProxyContainer, ClipList(missing, 10), injectHint)
				}
				return nil
			},
		},
		{
			ID: "dp-proxies-ready", Description: "data plane proxies are ready", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				pods, scope, err := dataPlanePods(ctx, env)
				if err != nil {
					return err
				}
				var bad []string
				meshed := 0
				for _, p := range pods {
					if !HasProxy(&p) {
						continue
					}
					meshed++
					if st, ok := proxyStatus(&p); !ok || !st.Ready {
						bad = append(bad, p.Namespace+"/"+p.Name)
					}
				}
				if meshed == 0 {
					// nothing to be ready: saying ✔ would tell a user whose mesh is empty that all is well
					return NoRetry(fmt.Errorf("found no meshed pods (with a %s container) in %s: there are no proxies to check\n%s",
						names.ProxyContainer, scope, injectHint))
				}
				if len(bad) > 0 {
					return fmt.Errorf("proxies not ready: %s", ClipList(bad, 10))
				}
				return nil
			},
		},
		{
			ID: "dp-proxy-version", Description: "data plane proxies run the control plane's version", Severity: Warning,
			Run: func(ctx context.Context, env *Env) error {
				want, err := ControlPlaneVersion(ctx, env)
				if err != nil {
					return err
				}
				if want == "" {
					return ErrSkip
				}
				pods, _, err := dataPlanePods(ctx, env)
				if err != nil {
					return err
				}
				var old []string
				for _, p := range pods {
					if !HasProxy(&p) {
						continue
					}
					if v := proxyVersion(&p); v != want {
						old = append(old, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, v))
					}
				}
				if len(old) > 0 {
					return fmt.Errorf("the control plane runs %s; these proxies do not: %s; restart their workloads (kubectl rollout restart) to update them", want, ClipList(old, 10))
				}
				return nil
			},
		},
	}}
}

// dataPlanePods lists the pods the data-plane checks look at: running or pending pods of DataPlaneNamespace (or of
// every namespace but the control plane's, the system ones and those the webhook skips), without host-network
// pods and pods that opted out with sinew.dev/inject: disabled.
func dataPlanePods(ctx context.Context, env *Env) ([]corev1.Pod, string, error) {
	scope := "namespace " + env.DataPlaneNamespace
	skipNS := map[string]bool{}
	if env.DataPlaneNamespace == "" {
		scope = "all namespaces"
		nss, err := env.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, "", err
		}
		for _, ns := range nss.Items {
			if systemNamespace(ns.Name) || ns.Name == env.Namespace || ns.Labels["config.sinew.dev/admission-webhooks"] == "disabled" {
				skipNS[ns.Name] = true
			}
		}
	}
	list, err := env.Kube.CoreV1().Pods(env.DataPlaneNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if skipNS[p.Namespace] || p.DeletionTimestamp != nil || p.Spec.HostNetwork || p.Annotations["sinew.dev/inject"] == "disabled" {
			continue
		}
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out, scope, nil
}

// ClipList joins the first n of s and says how many more there are.
func ClipList(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:n], ", "), len(s)-n)
}
