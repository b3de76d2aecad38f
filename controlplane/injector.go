package controlplane

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/sinewmesh/sinew/controlplane/internal/injector"
)

// Proxy-injector defaults (docs/architecture/kubernetes.md).
const (
	DefaultInjectorAddr      = injector.DefaultAddr
	DefaultInjectorAdminAddr = injector.DefaultAdminAddr
	DefaultInjectorCertFile  = injector.DefaultCertFile
	DefaultInjectorKeyFile   = injector.DefaultKeyFile
)

// InjectorConfig configures the proxy-injector webhook (package controlplane/internal/injector). Client,
// Metadata and Dynamic are built from Kubeconfig (or the pod's in-cluster configuration) when nil.
type InjectorConfig struct {
	injector.Config
	Kubeconfig string
}

// Injector is the proxy-injector webhook.
type Injector = injector.Server

// NewInjector builds the proxy injector and binds its listeners; Run serves.
func NewInjector(cfg InjectorConfig) (*Injector, error) {
	if cfg.Client == nil || cfg.Metadata == nil || cfg.Dynamic == nil {
		rc, err := restConfig(cfg.Kubeconfig)
		if err != nil {
			return nil, err
		}
		if cfg.Client == nil {
			if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("kubernetes client: %w", err)
			}
		}
		if cfg.Metadata == nil {
			if cfg.Metadata, err = metadata.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("kubernetes metadata client: %w", err)
			}
		}
		if cfg.Dynamic == nil {
			if cfg.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
			}
		}
	}
	return injector.New(cfg.Config)
}
