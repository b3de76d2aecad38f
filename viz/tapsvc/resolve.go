package tapsvc

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// Static resolves from a fixed list of proxies: the local mesh, whose workloads are known when it starts.
type Static []Target

// Targets returns the proxies of r, sorted by name.
func (s Static) Targets(_ context.Context, r metricsapi.Resource) ([]Target, error) {
	var out []Target
	for _, t := range s {
		if selects(r, t) {
			out = append(out, t)
		}
	}
	sortTargets(out)
	return out, nil
}

// PeerIndex indexes every workload of the mesh.
func (s Static) PeerIndex(context.Context) (*PeerIndex, error) { return NewPeerIndex(s), nil }

func selects(r metricsapi.Resource, t Target) bool {
	if r.Namespace != "" && t.Namespace != r.Namespace {
		return false
	}
	switch r.Kind {
	case metricsapi.KindDeployment:
		return r.Name == "" || t.Deployment == r.Name
	case metricsapi.KindPod:
		return r.Name == "" || t.Pod == r.Name
	case metricsapi.KindNamespace:
		return r.Name == "" || t.Namespace == r.Name
	}
	return false
}

func sortTargets(ts []Target) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name() < ts[j].Name() })
}

// Kubernetes resolves from the cluster's pods: running, injected pods (those with the injector's
// sinew.dev/proxy-* labels) that have an IP, tapped on their tap container port.
type Kubernetes struct {
	Client      kubernetes.Interface
	TrustDomain string
}

// Targets lists the pods of r with one API call.
func (k Kubernetes) Targets(ctx context.Context, r metricsapi.Resource) ([]Target, error) {
	sel := labels.Set{}
	opts := metav1.ListOptions{}
	switch r.Kind {
	case metricsapi.KindDeployment:
		if r.Name != "" {
			sel[names.DeploymentLabel] = r.Name
		}
	case metricsapi.KindPod:
		if r.Name != "" {
			opts.FieldSelector = "metadata.name=" + r.Name
		}
	}
	if len(sel) > 0 {
		opts.LabelSelector = sel.String()
	}
	out, err := k.targets(ctx, r.Namespace, opts)
	if err != nil {
		return nil, err
	}
	sortTargets(out)
	return out, nil
}

// PeerIndex indexes every meshed pod of the cluster (one API call per tap).
func (k Kubernetes) PeerIndex(ctx context.Context) (*PeerIndex, error) {
	ts, err := k.targets(ctx, "", metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return NewPeerIndex(ts), nil
}

// targets lists the pods of namespace ns ("" for all) that opts selects and keeps the tappable ones.
func (k Kubernetes) targets(ctx context.Context, ns string, opts metav1.ListOptions) ([]Target, error) {
	pods, err := k.Client.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []Target
	for i := range pods.Items {
		if t, ok := k.target(&pods.Items[i]); ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// running tells whether p is a running pod with an IP to reach it on.
func running(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil
}

func (k Kubernetes) target(p *corev1.Pod) (Target, bool) {
	if !running(p) {
		return Target{}, false
	}
	port, meshed := 0, false
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name != names.ProxyContainer {
				continue
			}
			meshed, port = true, names.ProxyTapPort
			for _, cp := range c.Ports {
				if cp.Name == names.ProxyTapPortName {
					port = int(cp.ContainerPort)
				}
			}
		}
	}
	if !meshed {
		return Target{}, false
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return Target{
		Namespace: p.Namespace, Pod: p.Name, Deployment: p.Labels[names.DeploymentLabel],
		Addr:     net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)),
		Identity: meshtls.ID(k.TrustDomain, p.Namespace, sa),
	}, true
}

// ScrapeTargets lists every running meshed pod's admin address and the workload it serves, for a Prometheus that
// cannot discover pods itself.
func (k Kubernetes) ScrapeTargets(ctx context.Context) ([]metricsapi.ScrapeTarget, error) {
	pods, err := k.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []metricsapi.ScrapeTarget
	for i := range pods.Items {
		p := &pods.Items[i]
		if !running(p) {
			continue
		}
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range cs {
				for _, cp := range c.Ports {
					if cp.Name == names.ProxyAdminPortName {
						out = append(out, metricsapi.ScrapeTarget{
							Address:   net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(cp.ContainerPort))),
							Namespace: p.Namespace, Pod: p.Name, Deployment: p.Labels[names.DeploymentLabel],
						})
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Pod < out[j].Namespace+"/"+out[j].Pod })
	return out, nil
}
