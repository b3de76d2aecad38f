package check

// What selects the core categories.
type What struct {
	Pre   bool // only the pre-install checks
	Proxy bool // the data-plane checks instead of the control plane's
}

// Core returns the categories `sinew check` runs.
func Core(w What) []Category {
	switch {
	case w.Pre:
		return []Category{KubernetesAPI(), Pre()}
	case w.Proxy:
		return []Category{KubernetesAPI(), CRDs(), ControlPlane(), DataPlane()}
	default:
		return []Category{KubernetesAPI(), CRDs(), ControlPlane(), Identity(), Webhook(), Policy(), Version()}
	}
}
