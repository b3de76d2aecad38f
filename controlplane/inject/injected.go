package inject

import "github.com/sinewmesh/sinew/internal/names"

// InjectedAnnotations are the annotations Inject adds (uninject removes them).
var InjectedAnnotations = []string{names.ProxyVersionAnnotation, names.CreatedByAnnotation, names.TrustRootHashAnnotation}

// IsInjectedLabel reports whether key is a label Inject adds (uninject removes them).
func IsInjectedLabel(key string) bool {
	if key == names.ControlPlaneNSLabel || key == names.WorkloadNSLabel {
		return true
	}
	for _, k := range names.OwnerKinds {
		if key == names.OwnerLabelPrefix+k {
			return true
		}
	}
	return false
}

// IsInjectedContainer reports whether name is a container Inject adds.
func IsInjectedContainer(name string) bool {
	return name == names.InitContainer || name == names.ProxyContainer
}
