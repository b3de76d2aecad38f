package inject

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// Owner is the workload a pod belongs to, e.g. {Kind: "Deployment", Name: "web"}.
type Owner struct {
	Kind string
	Name string
}

// labelKey is sinew.dev/proxy-<kind> for the kinds that get one.
func (o Owner) labelKey() (string, bool) {
	k := strings.ToLower(o.Kind)
	if o.Name == "" || !slices.Contains(names.OwnerKinds, k) {
		return "", false
	}
	return names.OwnerLabelPrefix + k, true
}

// OwnerOf derives a pod's workload from its controller owner reference, without asking the API server: a
// ReplicaSet whose name is "<deployment>-<pod-template-hash>" belongs to that Deployment; other owners (Job,
// StatefulSet, DaemonSet, ReplicationController, a bare ReplicaSet …) are the workload themselves.
func OwnerOf(pod *corev1.Pod) Owner {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			if hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && d != "" {
					return Owner{Kind: "Deployment", Name: d}
				}
			}
		}
		return Owner{Kind: ref.Kind, Name: ref.Name}
	}
	return Owner{}
}
