package controlplane

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/names"
)

// What the Kubernetes-mode components share: the API-server client. The
// identity service is in identity_kube.go, destination and policy in destination_kube.go, the injector in
// injector.go.

// DefaultIdentityServiceAddr is where the identity service is reached in a cluster with that domain.
func DefaultIdentityServiceAddr(clusterDomain string) string {
	return names.ServiceAddr(names.IdentityService, names.ControlPlaneNamespace, clusterDomain, names.IdentityPort)
}

// KubeClient connects to the API server with kubeconfig, or with the pod's in-cluster configuration when
// kubeconfig is empty.
func KubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// restConfig is the controller's API-server configuration: from kubeconfig, or in-cluster when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := daemon.RESTConfig(kubeconfig, "sinew-controller")
	if err != nil {
		return nil, err
	}
	// Informers need little; TokenReviews, and the injector's namespace and owner GETs, come in bursts when many
	// pods start at once (a rollout, a scale-up).
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// dynamicClientFor is the client for the policy.sinew.dev objects: the given one; none when only a typed client
// was given (tests that bring their own API server); else one from kubeconfig.
func dynamicClientFor(given dynamic.Interface, typed kubernetes.Interface, kubeconfig string) (dynamic.Interface, error) {
	if given != nil || typed != nil {
		return given, nil
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return c, nil
}

func kubeClientFor(given kubernetes.Interface, kubeconfig string) (kubernetes.Interface, error) {
	if given != nil {
		return given, nil
	}
	return KubeClient(kubeconfig)
}
