package inject

import (
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"

	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probe timings of the proxy.
const (
	LivenessInitialDelaySeconds  = 10
	ReadinessInitialDelaySeconds = 2
	// StartupPeriodSeconds × StartupFailureThreshold bounds how long the app waits for the proxy (native sidecar).
	StartupPeriodSeconds    = 1
	StartupFailureThreshold = 120
)

// PlainSidecarDrainDelay is how long a proxy injected as a plain container keeps accepting after SIGTERM
// (SINEW_PROXY_SHUTDOWN_DRAIN_DELAY) unless config.sinew.dev/shutdown-drain-delay says otherwise. Such a proxy gets
// SIGTERM with the app, while clients still send to the pod and while the app finishes requests that call out
// through it. A native sidecar gets SIGTERM only after the app has exited, so it has no delay by default.
// charts/sinew-control-plane/templates/_proxy.tpl uses the same value.
const PlainSidecarDrainDelay = "5s"

// LocalIdentity is the proxy's SPIFFE ID with downward-API references for the namespace and service account.
func LocalIdentity(trustDomain string) string {
	return fmt.Sprintf("spiffe://%s/ns/$(%s)/sa/$(%s)", trustDomain, names.EnvPodNamespace, names.EnvPodAccount)
}

func initContainer(cfg Config, s *settings) corev1.Container {
	return corev1.Container{
		Name:  names.InitContainer,
		Image: imageRef(s.initImage, cfg.InitVersion),
		Args: []string{
			"--inbound-port=" + strconv.Itoa(names.ProxyInboundPort),
			"--outbound-port=" + strconv.Itoa(names.ProxyOutboundPort),
			"--proxy-uid=" + strconv.FormatInt(s.uid, 10),
			"--skip-inbound-ports=" + ports.Format(s.skipIn),
			"--skip-outbound-ports=" + ports.Format(s.skipOut),
			"--skip-subnets=" + formatSubnets(s.skipSubnets),
		},
		// the same resources as the proxy, so namespaces with quotas or LimitRanges accept the pod
		Resources:                s.resources(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		ImagePullPolicy:          s.pullPolicy,
		SecurityContext: &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
			RunAsUser:                new(int64(0)),
			RunAsNonRoot:             new(false),
			ReadOnlyRootFilesystem:   new(true),
			AllowPrivilegeEscalation: new(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func proxyContainer(cfg Config, s *settings) corev1.Container {
	env := []corev1.EnvVar{
		fieldEnv(names.EnvPodName, "metadata.name"),
		fieldEnv(names.EnvPodNamespace, "metadata.namespace"),
		fieldEnv(names.EnvPodAccount, "spec.serviceAccountName"),
		{Name: "SINEW_PROXY_MODE", Value: "transparent"},
		{Name: "SINEW_PROXY_WORKLOAD", Value: fmt.Sprintf("$(%s)/$(%s)", names.EnvPodNamespace, names.EnvPodName)},
		{Name: "SINEW_PROXY_LOG_LEVEL", Value: s.logLevel},
		{Name: "SINEW_PROXY_LOG_FORMAT", Value: s.logFormat},
	}
	opt := func(name, v string) {
		if v != "" {
			env = append(env, corev1.EnvVar{Name: name, Value: v})
		}
	}
	if s.ingress {
		opt("SINEW_PROXY_INGRESS_MODE", "true")
	}
	opt("SINEW_PROXY_OPAQUE_PORTS", s.opaquePorts)
	opt("SINEW_PROXY_CONNECT_TIMEOUT", s.connectTimeout)
	opt("SINEW_PROXY_SHUTDOWN_GRACE_PERIOD", s.shutdownGrace)
	drain := s.drainDelay
	if drain == "" && !s.native {
		drain = PlainSidecarDrainDelay
	}
	opt("SINEW_PROXY_SHUTDOWN_DRAIN_DELAY", drain)
	ns, cd := cfg.ControlPlaneNamespace, cfg.ClusterDomain
	env = append(env,
		corev1.EnvVar{Name: "SINEW_PROXY_IDENTITY_LOCAL_NAME", Value: LocalIdentity(cfg.TrustDomain)},
		corev1.EnvVar{Name: "SINEW_PROXY_IDENTITY_TOKEN_FILE", Value: names.TokenPath},
		corev1.EnvVar{Name: "SINEW_PROXY_IDENTITY_TRUST_ANCHORS", Value: cfg.TrustAnchorsPEM},
		corev1.EnvVar{Name: "SINEW_PROXY_IDENTITY_SVC_ADDR", Value: names.ServiceAddr(names.IdentityService, ns, cd, names.IdentityPort)},
	)
	if ns != names.ControlPlaneNamespace {
		// the proxy's default names assume the control plane in "sinew"
		opt("SINEW_PROXY_IDENTITY_SVC_NAME", spiffeID(cfg.TrustDomain, ns, names.IdentityAccount))
	}
	opt("SINEW_PROXY_DESTINATION_SVC_ADDR", names.ServiceAddr(names.DestinationService, ns, cd, names.DestinationPort))
	if ns != names.ControlPlaneNamespace {
		opt("SINEW_PROXY_DESTINATION_SVC_NAME", spiffeID(cfg.TrustDomain, ns, names.DestinationAccount))
	}
	opt("SINEW_PROXY_POLICY_SVC_ADDR", names.ServiceAddr(names.PolicyService, ns, cd, names.PolicyPort))
	// What the proxy applies until the policy service first answers (the policy service applies the same).
	opt("SINEW_PROXY_DEFAULT_INBOUND_POLICY", s.inboundPolicy)
	opt("SINEW_PROXY_INBOUND_SERVER_PORTS", s.serverPorts)

	c := corev1.Container{
		Name:  names.ProxyContainer,
		Image: imageRef(s.proxyImage, s.proxyVer),
		Ports: []corev1.ContainerPort{
			{Name: names.ProxyInboundPortName, ContainerPort: names.ProxyInboundPort, Protocol: corev1.ProtocolTCP},
			{Name: names.ProxyAdminPortName, ContainerPort: names.ProxyAdminPort, Protocol: corev1.ProtocolTCP},
			{Name: names.ProxyTapPortName, ContainerPort: names.ProxyTapPort, Protocol: corev1.ProtocolTCP},
		},
		Env:          env,
		Resources:    s.resources(),
		VolumeMounts: []corev1.VolumeMount{{Name: names.TokenVolume, MountPath: names.TokenMountPath, ReadOnly: true}},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        adminGet("/live"),
			InitialDelaySeconds: LivenessInitialDelaySeconds,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        adminGet("/ready"),
			InitialDelaySeconds: ReadinessInitialDelaySeconds,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		ImagePullPolicy:          s.pullPolicy,
		SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			RunAsUser:                new(s.uid),
			RunAsNonRoot:             new(true),
			ReadOnlyRootFilesystem:   new(true),
			AllowPrivilegeEscalation: new(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if s.native {
		c.RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
		if s.await {
			// the kubelet starts the next container only once this probe passes: the app starts with a ready proxy
			c.StartupProbe = &corev1.Probe{
				ProbeHandler:     adminGet("/ready"),
				PeriodSeconds:    StartupPeriodSeconds,
				FailureThreshold: StartupFailureThreshold,
			}
		}
	}
	return c
}

func spiffeID(td, ns, sa string) string { return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa) }

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}

func adminGet(path string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(names.ProxyAdminPort)}}
}

func (s *settings) resources() corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	put := func(m *corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity) {
		if q == nil {
			return
		}
		if *m == nil {
			*m = corev1.ResourceList{}
		}
		(*m)[name] = q.DeepCopy()
	}
	put(&r.Requests, corev1.ResourceCPU, s.cpuReq)
	put(&r.Requests, corev1.ResourceMemory, s.memReq)
	put(&r.Limits, corev1.ResourceCPU, s.cpuLim)
	put(&r.Limits, corev1.ResourceMemory, s.memLim)
	return r
}

func tokenVolume() corev1.Volume {
	return corev1.Volume{
		Name: names.TokenVolume,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          names.TokenAudience,
				ExpirationSeconds: new(int64(names.TokenExpirationSeconds)),
				Path:              "token",
			}}},
		}},
	}
}
