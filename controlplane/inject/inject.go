// Package inject is the proxy injection: given a pod (or a workload's pod template), its namespace's and its
// workload's annotations and the cluster-wide Config, it returns the pod with the sinew-init init container, the
// sinew-proxy sidecar, the identity-token volume and the sinew.dev labels and annotations — or why it is left alone.
// The proxy-injector webhook and `sinew inject --manual` both call Inject, so a pod comes out the same either way;
// the chart renders the control plane's own sidecars to match (docs/architecture/kubernetes.md, "The injected pod").
//
// The package is pure: it reads no files, talks to no API server and keeps no state. Its output is deterministic
// (fixed orders everywhere), so golden files and the chart comparison are stable.
package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
)

// Input is one pod to consider.
type Input struct {
	// Pod is the pod, or a pod built from a workload's template (its metadata and spec). It is not modified.
	Pod *corev1.Pod
	// Namespace is the pod's namespace when Pod.Namespace is empty (admission requests often leave it so); empty
	// when unknown (a manifest without one), in which case no sinew.dev/workload-ns label is added.
	Namespace string
	// NamespaceAnnotations and WorkloadAnnotations are the less specific override levels (the pod template's own
	// annotations win over both).
	NamespaceAnnotations map[string]string
	WorkloadAnnotations  map[string]string
	// Owner names the workload for the sinew.dev/proxy-<kind> label (OwnerOf derives it from a pod's owner
	// references); zero for a bare pod.
	Owner Owner
	// Manual injects without the opt-in annotation (as `sinew inject --manual` does); an explicit
	// sinew.dev/inject: disabled on the pod still wins.
	Manual bool
	// Ingress gives the pod an ingress controller's proxy (routing by the requests' authority), as
	// sinew.dev/inject: ingress does; for `sinew inject --manual --ingress`, which sets no annotation.
	Ingress bool
	// ServerPorts are the ports of the Servers (policy.sinew.dev) that select the pod, as numbers or names of the
	// pod's container ports; ServersKnown says they were read (the webhook's Server cache had synced). The proxy
	// is told these ports: until the control plane first answers, they admit nobody and the pod's other ports
	// get its default inbound policy. Unknown, every port admits nobody until then.
	ServerPorts  []intstr.IntOrString
	ServersKnown bool
	// AllowOtherMesh injects a pod that has another service mesh's sidecar (`sinew inject --manual --force`);
	// without it such a pod is skipped (SkipOtherMesh).
	AllowOtherMesh bool
}

// SkipReason says why a pod was left alone.
type SkipReason string

const (
	SkipNotEnabled      SkipReason = "not-enabled"      // neither the pod nor its namespace opted in
	SkipDisabled        SkipReason = "disabled"         // sinew.dev/inject: disabled on the pod (or namespace)
	SkipHostNetwork     SkipReason = "host-network"     // the pod shares the node's network namespace
	SkipAlreadyInjected SkipReason = "already-injected" // the pod has a sinew-proxy or sinew-init container
	SkipOtherMesh       SkipReason = "other-mesh"       // the pod has another mesh's sidecar (OtherMesh)
)

// Result is the outcome of Inject.
type Result struct {
	// Skipped is empty when the pod was injected; otherwise Detail explains it to a person.
	Skipped SkipReason
	Detail  string
	// Pod is the injected pod (a modified deep copy of Input.Pod); nil when skipped.
	Pod *corev1.Pod
	// Patch turns Input.Pod into Pod: JSON Patch (RFC 6902) "add" operations, in order, with paths relative to the
	// pod. Parents that Input.Pod lacked entirely (no labels map, say) are added whole.
	Patch []PatchOp
}

// PatchOp is one JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// ErrInvalidConfig wraps every configuration error (bad Config or bad annotation values): retrying does not help,
// the configuration must change. IsInvalidConfig tests for it.
var ErrInvalidConfig = errors.New("invalid injection configuration")

// IsInvalidConfig reports whether err comes from a bad Config or annotation value.
func IsInvalidConfig(err error) bool { return errors.Is(err, ErrInvalidConfig) }

type configError struct{ err error }

func (e configError) Error() string       { return e.err.Error() }
func (e configError) Unwrap() []error     { return []error{ErrInvalidConfig, e.err} }
func invalid(err error) error             { return configError{err} }
func skip(r SkipReason, d string) *Result { return &Result{Skipped: r, Detail: d} }

// Enabled reports the effective sinew.dev/inject value of a pod in a namespace ("" when neither says), and whether
// it is one Inject accepts. The pod's own value wins over the namespace's.
func Enabled(podAnnotations, nsAnnotations map[string]string) (value string, err error) {
	v, ok := podAnnotations[names.InjectAnnotation]
	where := LevelPod
	if !ok {
		v, ok = nsAnnotations[names.InjectAnnotation]
		where = LevelNamespace
	}
	if !ok {
		return "", nil
	}
	switch v {
	case names.InjectEnabled, names.InjectIngress, names.InjectDisabled:
		return v, nil
	}
	return v, &AnnotationError{Annotation: names.InjectAnnotation, Value: v, Level: where, Err: errors.New("want enabled, ingress or disabled")}
}

// Inject decides whether in.Pod gets a proxy and, if so, returns it injected. Errors are configuration errors
// (IsInvalidConfig): a bad Config, or a bad config.sinew.dev/* value, each naming the annotation and its level.
func Inject(in Input, cfg Config) (*Result, error) {
	if in.Pod == nil {
		return nil, errors.New("inject: no pod")
	}
	pod := in.Pod
	mode, err := Enabled(pod.Annotations, in.NamespaceAnnotations)
	if err != nil {
		return nil, invalid(err)
	}
	switch {
	case mode == names.InjectDisabled:
		return skip(SkipDisabled, fmt.Sprintf("%s: %s", names.InjectAnnotation, names.InjectDisabled)), nil
	case mode == "" && !in.Manual:
		return skip(SkipNotEnabled, fmt.Sprintf("no %s: %s on the pod or its namespace", names.InjectAnnotation, names.InjectEnabled)), nil
	case pod.Spec.HostNetwork:
		return skip(SkipHostNetwork, "hostNetwork: true"), nil
	case hasInjectedContainer(&pod.Spec):
		return skip(SkipAlreadyInjected, "already injected"), nil
	}
	if why := OtherMesh(containerNames(&pod.Spec)); why != "" && !in.AllowOtherMesh {
		return skip(SkipOtherMesh, why), nil
	}

	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, invalid(err)
	}
	s, err := cfg.defaultSettings()
	if err != nil {
		return nil, invalid(err)
	}
	err = errors.Join(
		s.override(LevelNamespace, in.NamespaceAnnotations, pod),
		s.override(LevelWorkload, in.WorkloadAnnotations, pod),
		s.override(LevelPod, pod.Annotations, pod),
		s.check(LevelPod),
	)
	if err != nil {
		return nil, invalid(err)
	}

	s.ingress = mode == names.InjectIngress || in.Ingress
	if in.ServersKnown {
		s.serverPorts = serverPorts(in.ServerPorts, pod)
	}

	ns := pod.Namespace
	if ns == "" {
		ns = in.Namespace
	}
	r := &Result{Pod: pod.DeepCopy()}
	b := &patcher{pod: r.Pod}

	initC := initContainer(cfg, &s)
	proxyC := proxyContainer(cfg, &s)
	if s.native {
		// [sinew-init, sinew-proxy, the pod's own init containers…]: the pod's init containers already run meshed
		prepend(b, "/spec/initContainers", &b.pod.Spec.InitContainers, initC, proxyC)
	} else {
		// the pod's own init containers run before capture (they would have no proxy to talk to), then sinew-init;
		// the proxy is the first container
		appendTo(b, "/spec/initContainers", &b.pod.Spec.InitContainers, initC)
		prepend(b, "/spec/containers", &b.pod.Spec.Containers, proxyC)
	}
	appendTo(b, "/spec/volumes", &b.pod.Spec.Volumes, tokenVolume())

	b.addLabels(addedLabels(cfg, ns, in.Owner))
	b.addAnnotations(map[string]string{
		names.ProxyVersionAnnotation:  s.proxyVer,
		names.CreatedByAnnotation:     cfg.CreatedBy,
		names.TrustRootHashAnnotation: TrustRootHash(cfg.TrustAnchorsPEM),
	})
	r.Patch = b.ops
	return r, nil
}

// serverPorts is the proxy's SINEW_PROXY_INBOUND_SERVER_PORTS: the Servers' ports with names resolved against
// the pod's container ports (a name the pod lacks covers no port), or "none".
func serverPorts(list []intstr.IntOrString, pod *corev1.Pod) string {
	byName := containerPort(pod)
	var rs []ports.Range
	for _, p := range list {
		n, ok := uint16(0), false
		if p.Type == intstr.String {
			n, ok = byName(p.StrVal)
		} else if p.IntVal > 0 && p.IntVal <= 65535 {
			n, ok = uint16(p.IntVal), true
		}
		if ok {
			rs = append(rs, ports.Range{From: n, To: n})
		}
	}
	if len(rs) == 0 {
		return "none"
	}
	return ports.Format(ports.Merge(rs))
}

func hasInjectedContainer(spec *corev1.PodSpec) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if IsInjectedContainer(c.Name) {
				return true
			}
		}
	}
	return false
}

// TrustRootHash is the sinew.dev/trust-root-sha256 value: the hex SHA-256 of the PEM trust anchors as given.
func TrustRootHash(pem string) string {
	h := sha256.Sum256([]byte(pem))
	return hex.EncodeToString(h[:])
}

func addedLabels(cfg Config, ns string, owner Owner) map[string]string {
	l := map[string]string{names.ControlPlaneNSLabel: cfg.ControlPlaneNamespace}
	if ns != "" {
		l[names.WorkloadNSLabel] = ns
	}
	if k, ok := owner.labelKey(); ok {
		l[k] = owner.Name
	}
	return l
}

// patcher applies changes to pod and records the JSON Patch that makes them.
type patcher struct {
	pod *corev1.Pod
	ops []PatchOp
}

func (b *patcher) add(path string, v any) {
	b.ops = append(b.ops, PatchOp{Op: "add", Path: path, Value: v})
}

// prepend puts items at the start of the pod's list at path (creating the list when it is empty), in the pod and
// in the patch, in the order given.
func prepend[T any](b *patcher, path string, list *[]T, items ...T) {
	if len(*list) == 0 {
		b.add(path, items)
	} else {
		for i := len(items) - 1; i >= 0; i-- {
			b.add(path+"/0", items[i])
		}
	}
	*list = append(append([]T(nil), items...), *list...)
}

// appendTo puts item at the end of the pod's list at path (creating the list when it is empty).
func appendTo[T any](b *patcher, path string, list *[]T, item T) {
	if len(*list) == 0 {
		b.add(path, []T{item})
	} else {
		b.add(path+"/-", item)
	}
	*list = append(*list, item)
}

func (b *patcher) addLabels(m map[string]string) {
	b.pod.Labels = b.addMap("/metadata/labels", b.pod.Labels, m)
}

func (b *patcher) addAnnotations(m map[string]string) {
	b.pod.Annotations = b.addMap("/metadata/annotations", b.pod.Annotations, m)
}

func (b *patcher) addMap(path string, have, add map[string]string) map[string]string {
	if len(have) == 0 {
		b.add(path, add)
		return maps.Clone(add)
	}
	out := maps.Clone(have)
	for _, k := range sortedKeys(add) {
		b.add(path+"/"+escapePointer(k), add[k])
		out[k] = add[k]
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// escapePointer escapes a JSON Pointer reference token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
