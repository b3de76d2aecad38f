package inject

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// The gateway's pods (docs/architecture/decisions/0006-ingress-gateway.md): one sinew-proxy container in gateway
// mode, built from the same Config and the same container as an injected sidecar, so that a gateway proxy gets the
// same image, identity, control-plane addresses and log settings. It is not a sidecar: there is no sinew-init and
// no application container, and the proxy binds the listeners' ports itself.

// GatewayDefaultInboundPolicy is the default inbound policy of a gateway's listener ports: it faces clients from
// outside the mesh. A Server that selects the gateway's pods and port replaces it, as anywhere.
const GatewayDefaultInboundPolicy = names.PolicyAllUnauthenticated

// GatewayProxyMode is SINEW_PROXY_MODE of a gateway proxy.
const GatewayProxyMode = "gateway"

// GatewayReservedPorts are the proxy's own ports, which no listener can have (the pod spec leaves such a listener
// port out).
var GatewayReservedPorts = []int32{names.ProxyInboundPort, names.ProxyOutboundPort, names.ProxyAdminPort, names.ProxyTapPort}

// GatewayInput is one Gateway whose proxies are to run.
type GatewayInput struct {
	// Namespace and Name of the Gateway.
	Namespace, Name string
	// Ports are its listeners' ports; each becomes a container port once (reserved ones are left out).
	Ports []int32
	// Labels and Annotations are the Gateway's spec.infrastructure ones, which the Gateway API says go on what is
	// created for it: they are put on the pods (sinew's own labels win). config.sinew.dev/* annotations among them
	// override the Config's proxy defaults as they would on a workload (not the ports knobs, which name no
	// container port here).
	Labels, Annotations map[string]string
}

// GatewayPortName is the container (and Service) port name of a listener port.
func GatewayPortName(port int32) string { return "gw-" + strconv.Itoa(int(port)) }

// GatewayPodLabels are the labels every pod of the Gateway carries; the Deployment selects its pods by the first.
func GatewayPodLabels(cfg Config, namespace, gateway string) map[string]string {
	cfg = cfg.withDefaults()
	return map[string]string{
		names.GatewayLabel:        gateway,
		names.DeploymentLabel:     names.GatewayResourceName(gateway),
		names.ControlPlaneNSLabel: cfg.ControlPlaneNamespace,
		names.WorkloadNSLabel:     namespace,
	}
}

// GatewayPodTemplate builds the pod template of the Deployment that runs the Gateway's proxies: service account
// names.GatewayResourceName, the projected identity token, a non-root proxy that may bind ports below 1024 (the
// net.ipv4.ip_unprivileged_port_start sysctl), ready once its /ready says so, and sinew.dev/inject: disabled so that
// the injector leaves it alone. Errors are configuration errors (IsInvalidConfig). It is pure.
func GatewayPodTemplate(in GatewayInput, cfg Config) (corev1.PodTemplateSpec, error) {
	if !names.IsDNSLabel(in.Namespace) || in.Name == "" {
		return corev1.PodTemplateSpec{}, fmt.Errorf("gateway %q/%q: needs a namespace and a name", in.Namespace, in.Name)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return corev1.PodTemplateSpec{}, invalid(err)
	}
	s, err := cfg.defaultSettings()
	if err != nil {
		return corev1.PodTemplateSpec{}, invalid(err)
	}
	s.inboundPolicy = GatewayDefaultInboundPolicy
	if err := errors.Join(s.override(LevelWorkload, in.Annotations, nil), s.check(LevelWorkload)); err != nil {
		return corev1.PodTemplateSpec{}, invalid(err)
	}
	// A plain container: it gets SIGTERM while the Service may still send it connections, so it keeps accepting
	// for the drain delay (PlainSidecarDrainDelay unless an annotation says otherwise).
	s.native, s.await = false, false

	c := proxyContainer(cfg, &s)
	c.Env = gatewayEnv(c.Env, in.Namespace+"/"+in.Name)
	// A gateway proxy has no mesh inbound listener: clients, meshed or not, reach its listeners directly.
	c.Ports = slices.DeleteFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == names.ProxyInboundPortName })
	for _, p := range listenerPorts(in.Ports) {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: GatewayPortName(p), ContainerPort: p, Protocol: corev1.ProtocolTCP})
	}

	labels := maps.Clone(in.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, GatewayPodLabels(cfg, in.Namespace, in.Name))
	annotations := maps.Clone(in.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	maps.Copy(annotations, map[string]string{
		names.InjectAnnotation:        names.InjectDisabled,
		names.ProxyVersionAnnotation:  s.proxyVer,
		names.CreatedByAnnotation:     cfg.CreatedBy,
		names.TrustRootHashAnnotation: TrustRootHash(cfg.TrustAnchorsPEM),
		// The policy service reads the default inbound policy of the gateway's ports from here, as for any pod.
		names.AnnDefaultInboundPolicy: s.inboundPolicy,
	})

	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: names.GatewayResourceName(in.Name),
			// The proxy proves its identity with the projected token below; it never talks to the API server.
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{c},
			Volumes:                      []corev1.Volume{tokenVolume()},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				// A safe sysctl (namespaced to the pod's network): listeners on 80 and 443 need no capability.
				Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
			},
		},
	}, nil
}

// gatewayEnv turns a sidecar's environment into a gateway proxy's: SINEW_PROXY_MODE=gateway, followed by
// SINEW_PROXY_GATEWAY=<namespace>/<name>; the rest (identity, control plane, logs) stays as injected.
func gatewayEnv(env []corev1.EnvVar, gateway string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+1)
	for _, e := range env {
		switch e.Name {
		case "SINEW_PROXY_MODE":
			out = append(out, corev1.EnvVar{Name: e.Name, Value: GatewayProxyMode},
				corev1.EnvVar{Name: "SINEW_PROXY_GATEWAY", Value: gateway})
		case "SINEW_PROXY_INGRESS_MODE":
			// not a gateway's
		default:
			out = append(out, e)
		}
	}
	return out
}

// listenerPorts are the distinct valid listener ports, sorted, without the proxy's own.
func listenerPorts(ps []int32) []int32 {
	var out []int32
	for _, p := range ps {
		if p <= 0 || p > 65535 || slices.Contains(GatewayReservedPorts, p) || slices.Contains(out, p) {
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
