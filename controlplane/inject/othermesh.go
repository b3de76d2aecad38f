package inject

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// otherMeshContainers are the containers other service meshes add to a pod, sidecars first (a pod with both
// istio-init and istio-proxy is reported by its sidecar). A pod with one of them is in that mesh: a second proxy
// would capture the same traffic, and the two sets of iptables rules would fight.
var otherMeshContainers = []struct{ name, what string }{
	{"istio-proxy", "Istio's sidecar"},
	{"linkerd-proxy", "Linkerd's sidecar"},
	{"kuma-sidecar", "Kuma's sidecar"},
	{"istio-init", "Istio's init container"},
	{"istio-validation", "Istio CNI's validation container"},
	{"linkerd-init", "Linkerd's init container"},
	{"linkerd-network-validator", "Linkerd CNI's validation container"},
	{"kuma-init", "Kuma's init container"},
}

// OtherMesh says why a pod whose containers and init containers have these names is in another service mesh —
// "already has istio-proxy (Istio's sidecar): a pod can be in one mesh only" — or "" when it is not. Inject skips
// such pods (SkipOtherMesh) unless Input.AllowOtherMesh; `sinew inject` checks annotated manifests with it.
func OtherMesh(containerNames []string) string {
	for _, c := range otherMeshContainers {
		if slices.Contains(containerNames, c.name) {
			return fmt.Sprintf("already has %s (%s): a pod can be in one mesh only", c.name, c.what)
		}
	}
	return ""
}

func containerNames(pod *corev1.PodSpec) []string {
	var out []string
	for _, c := range pod.InitContainers {
		out = append(out, c.Name)
	}
	for _, c := range pod.Containers {
		out = append(out, c.Name)
	}
	return out
}
