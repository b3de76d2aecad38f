package check

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// Components are the control plane's deployments, by their component label.
var Components = []struct{ Component, Deployment string }{
	{"identity", names.IdentityDeployment},
	{"destination", names.DestinationDeployment},
	{"proxy-injector", names.InjectorDeployment},
}

// ControlPlane checks that the control plane is there and its pods (and their proxies) run.
func ControlPlane() Category {
	return Category{ID: "sinew-control-plane", Checks: []Check{
		{
			ID: "cp-ns-exists", Description: "control plane namespace exists", Severity: Fatal,
			Run: func(ctx context.Context, env *Env) error {
				_, err := env.Kube.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("the namespace %q does not exist: install the control plane with `sinew install | kubectl apply -f -`", env.Namespace)
				}
				return err
			},
		},
		{
			ID: "cp-config-exists", Description: "control plane configuration exists", Severity: Fatal,
			Run: func(ctx context.Context, env *Env) error {
				_, err := env.Kube.CoreV1().ConfigMaps(env.Namespace).Get(ctx, names.ConfigMap, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("the ConfigMap %s/%s does not exist: the install is incomplete; re-run `sinew install | kubectl apply -f -`", env.Namespace, names.ConfigMap)
				}
				return err
			},
		},
		{
			ID: "cp-pods-running", Description: "control plane pods are running", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				return eachComponent(ctx, env, func(comp string, pods []corev1.Pod) string {
					for _, p := range pods {
						if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
							return ""
						}
					}
					return fmt.Sprintf("no running %s pod (%s)", comp, podPhases(pods))
				})
			},
		},
		{
			ID: "cp-pods-ready", Description: "control plane pods are ready", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				return eachComponent(ctx, env, func(comp string, pods []corev1.Pod) string {
					var notReady []string
					for _, p := range pods {
						if p.DeletionTimestamp != nil {
							continue
						}
						if !PodReady(&p) {
							notReady = append(notReady, p.Name+" "+NotReadyReason(&p))
						}
					}
					if len(notReady) > 0 {
						return "not ready: " + strings.Join(notReady, ", ")
					}
					return ""
				})
			},
		},
		{
			ID: "cp-proxies-ready", Description: "control plane proxies are ready", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				return eachComponent(ctx, env, func(comp string, pods []corev1.Pod) string {
					var bad []string
					for _, p := range pods {
						if p.DeletionTimestamp != nil {
							continue
						}
						switch st, ok := proxyStatus(&p); {
						case !ok && !HasProxy(&p):
							bad = append(bad, p.Name+" has no "+names.ProxyContainer+" container")
						case !ok || !st.Ready:
							bad = append(bad, p.Name+"'s proxy is not ready")
						}
					}
					if len(bad) > 0 {
						return strings.Join(bad, ", ")
					}
					return ""
				})
			},
		},
	}}
}

// eachComponent lists each component's pods and joins what f says is wrong with them.
func eachComponent(ctx context.Context, env *Env, f func(component string, pods []corev1.Pod) string) error {
	var problems []string
	for _, c := range Components {
		pods, err := env.Kube.CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: names.ControlPlaneComponentLabel + "=" + c.Component})
		if err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			problems = append(problems, fmt.Sprintf("no %s pod (deployment %s)", c.Component, c.Deployment))
			continue
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		if msg := f(c.Component, pods.Items); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

func podPhases(pods []corev1.Pod) string {
	var s []string
	for _, p := range pods {
		s = append(s, p.Name+": "+string(p.Status.Phase))
	}
	return strings.Join(s, ", ")
}

// PodReady tells whether a pod runs and its Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// NotReadyReason says why a pod is not ready: the first container that waits, with the kubelet's reason
// (ImagePullBackOff, CrashLoopBackOff, ContainerCreating, ...), after the phase when the pod is not Running
// ("(Pending, container prometheus: ImagePullBackOff)"); else the phase, or the first container that is not ready.
func NotReadyReason(p *corev1.Pod) string {
	phase := ""
	if p.Status.Phase != corev1.PodRunning {
		phase = string(p.Status.Phase)
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			reason := w.Reason
			if reason == "" {
				reason = "waiting"
			}
			if phase != "" {
				return fmt.Sprintf("(%s, container %s: %s)", phase, cs.Name, reason)
			}
			return fmt.Sprintf("(container %s: %s)", cs.Name, reason)
		}
		if phase == "" && !cs.Ready && cs.State.Terminated == nil {
			return fmt.Sprintf("(container %s not ready)", cs.Name)
		}
	}
	if phase != "" {
		return "(" + phase + ")"
	}
	return ""
}

// HasProxy says whether the pod has a sinew proxy container (a native sidecar or a plain one).
func HasProxy(p *corev1.Pod) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == names.ProxyContainer {
			return true
		}
	}
	for _, c := range p.Spec.Containers {
		if c.Name == names.ProxyContainer {
			return true
		}
	}
	return false
}

// proxyStatus returns the proxy container's status.
func proxyStatus(p *corev1.Pod) (corev1.ContainerStatus, bool) {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == names.ProxyContainer {
			return cs, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// proxyVersion is the version of the pod's proxy: its annotation, else its image tag.
func proxyVersion(p *corev1.Pod) string {
	if v := p.Annotations[names.ProxyVersionAnnotation]; v != "" {
		return v
	}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == names.ProxyContainer {
			if i := strings.LastIndex(c.Image, ":"); i >= 0 && !strings.Contains(c.Image[i:], "/") {
				return c.Image[i+1:]
			}
		}
	}
	return ""
}
