package chartcmd

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/internal/names"
)

// What upgrade, inject --manual, viz install and uninstall read of an installed control plane. A missing ConfigMap
// gives an error for which apierrors.IsNotFound holds, so that each command can say what to do about it.

// InstalledValues are the install's Helm values, from the ConfigMap sinew-config.
func InstalledValues(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]any, error) {
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, names.ConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", ns, names.ConfigMap, err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["values"]), &vals); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s key values: not YAML values: %w", ns, names.ConfigMap, err)
	}
	return vals, nil
}

// InstalledTrustAnchors is the mesh's trust anchors as stored (the caller checks them), from the ConfigMap
// sinew-identity-trust-roots.
func InstalledTrustAnchors(ctx context.Context, kube kubernetes.Interface, ns string) (string, error) {
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, names.TrustRootsConfigMap, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading ConfigMap %s/%s: %w", ns, names.TrustRootsConfigMap, err)
	}
	return cm.Data[names.TrustRootsKey], nil
}

// DecodeInstalled decodes installed control-plane values (InstalledValues) over the chart's defaults, skipping
// keys this CLI's chart does not have (an older or newer CLI may have written them).
func DecodeInstalled(stored map[string]any) (*charts.ControlPlaneValues, error) {
	vals, err := charts.DefaultValues(charts.ControlPlane)
	if err != nil {
		return nil, err
	}
	Merge(vals, stored)
	var v charts.ControlPlaneValues
	if err := charts.DecodeValuesIgnoringUnknown(vals, &v); err != nil {
		return nil, fmt.Errorf("ConfigMap %s key values: %w", names.ConfigMap, err)
	}
	return &v, nil
}
