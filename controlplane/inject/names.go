package inject

// Names that the injected pod, the chart's partial for the control plane's own sidecars, the destination service
// (which recognises meshed pods) and the CLI agree on. docs/architecture/kubernetes.md is the contract; a test keeps
// docs/reference/injection.md in step with these.
const (
	// InitContainerName is the init container that installs the pod's traffic capture.
	InitContainerName = "sinew-init"
	// ProxyContainerName is the proxy, a native sidecar (an init container that keeps running) or the first container.
	ProxyContainerName = "sinew-proxy"
	// TokenVolumeName is the projected ServiceAccount token the proxy proves its identity with.
	TokenVolumeName = "sinew-identity-token"
	// TokenMountPath is where TokenVolumeName is mounted in the proxy; the token is the file "token" there.
	TokenMountPath = "/var/run/secrets/sinew.dev/serviceaccount"
	// TokenPath is the token file the proxy reads (re-read at every renewal).
	TokenPath = TokenMountPath + "/token"
	// TokenAudience is the audience the identity service checks the token for (a TokenReview).
	TokenAudience = "identity.sinew.dev"
	// TokenExpirationSeconds is how long a projected token lives; the kubelet refreshes it well before that.
	TokenExpirationSeconds = 86400

	// Proxy ports and their container-port names.
	InboundPort      = 4143
	OutboundPort     = 4140
	AdminPort        = 4191
	TapPort          = 4190
	InboundPortName  = "sinew-proxy"
	AdminPortName    = "sinew-admin"
	TapPortName      = "sinew-tap"
	DefaultProxyUID  = 2102
	IdentityGRPCPort = 8080
	DestinationPort  = 8086
	PolicyPort       = 8090

	// Control-plane service names (in the control-plane namespace) and service-account names.
	IdentityServiceName    = "sinew-identity"
	DestinationServiceName = "sinew-dst"
	PolicyServiceName      = "sinew-policy"
	IdentityAccountName    = "sinew-identity"
	DestinationAccountName = "sinew-destination"

	// TrustRootsConfigMap holds the PEM trust anchors (key TrustRootsKey) in the control-plane namespace.
	TrustRootsConfigMap = "sinew-identity-trust-roots"
	TrustRootsKey       = "ca-bundle.crt"

	// Downward-API variables the proxy's SINEW_PROXY_* settings refer to. They do not start with SINEW_PROXY_
	// because the proxy rejects SINEW_PROXY_* variables it does not know.
	EnvPodName      = "_pod_name"
	EnvPodNamespace = "_pod_ns"
	EnvPodAccount   = "_pod_sa"
)

// Annotations and labels.
const (
	// InjectAnnotation opts a pod template or a namespace in (or out): enabled, ingress or disabled.
	InjectAnnotation = "sinew.dev/inject"
	InjectEnabled    = "enabled"
	InjectIngress    = "ingress"
	InjectDisabled   = "disabled"

	// ConfigPrefix starts every per-namespace, per-workload or per-pod override (ConfigAnnotations).
	ConfigPrefix = "config.sinew.dev/"

	// Annotations the injector adds.
	ProxyVersionAnnotation  = "sinew.dev/proxy-version"
	CreatedByAnnotation     = "sinew.dev/created-by"
	TrustRootHashAnnotation = "sinew.dev/trust-root-sha256"

	// Labels the injector adds.
	ControlPlaneNSLabel = "sinew.dev/control-plane-ns"
	WorkloadNSLabel     = "sinew.dev/workload-ns"
	// OwnerLabelPrefix + lower-case kind (OwnerKinds) names the pod's owning workload, e.g. sinew.dev/proxy-deployment.
	OwnerLabelPrefix = "sinew.dev/proxy-"
	// ControlPlaneComponentLabel marks the control plane's own pods; the webhook's objectSelector skips them.
	ControlPlaneComponentLabel = "sinew.dev/control-plane-component"
)

// The config.sinew.dev/<knob> annotations, in the order the reference documents them.
const (
	AnnSkipInboundPorts       = ConfigPrefix + "skip-inbound-ports"
	AnnSkipOutboundPorts      = ConfigPrefix + "skip-outbound-ports"
	AnnSkipSubnets            = ConfigPrefix + "skip-subnets"
	AnnOpaquePorts            = ConfigPrefix + "opaque-ports"
	AnnProxyLogLevel          = ConfigPrefix + "proxy-log-level"
	AnnProxyLogFormat         = ConfigPrefix + "proxy-log-format"
	AnnProxyCPURequest        = ConfigPrefix + "proxy-cpu-request"
	AnnProxyCPULimit          = ConfigPrefix + "proxy-cpu-limit"
	AnnProxyMemoryRequest     = ConfigPrefix + "proxy-memory-request"
	AnnProxyMemoryLimit       = ConfigPrefix + "proxy-memory-limit"
	AnnProxyUID               = ConfigPrefix + "proxy-uid"
	AnnProxyImage             = ConfigPrefix + "proxy-image"
	AnnProxyVersion           = ConfigPrefix + "proxy-version"
	AnnInitImage              = ConfigPrefix + "init-image"
	AnnImagePullPolicy        = ConfigPrefix + "image-pull-policy"
	AnnProxyAwait             = ConfigPrefix + "proxy-await"
	AnnProxyNativeSidecar     = ConfigPrefix + "proxy-native-sidecar"
	AnnShutdownGracePeriod    = ConfigPrefix + "shutdown-grace-period"
	AnnOutboundConnectTimeout = ConfigPrefix + "proxy-outbound-connect-timeout"
	AnnDefaultInboundPolicy   = ConfigPrefix + "default-inbound-policy"
	AnnMTLSMode               = ConfigPrefix + "mtls-mode"
)

// ConfigAnnotations lists every override the injector reads, in documentation order.
var ConfigAnnotations = []string{
	AnnSkipInboundPorts, AnnSkipOutboundPorts, AnnSkipSubnets, AnnOpaquePorts, AnnProxyLogLevel, AnnProxyLogFormat,
	AnnProxyCPURequest, AnnProxyCPULimit, AnnProxyMemoryRequest, AnnProxyMemoryLimit, AnnProxyUID, AnnProxyImage,
	AnnProxyVersion, AnnInitImage, AnnImagePullPolicy, AnnProxyAwait, AnnProxyNativeSidecar, AnnShutdownGracePeriod,
	AnnOutboundConnectTimeout, AnnDefaultInboundPolicy, AnnMTLSMode,
}

// OwnerKinds are the workload kinds that get a sinew.dev/proxy-<kind> label, lower-cased.
var OwnerKinds = []string{"deployment", "statefulset", "daemonset", "job", "cronjob", "replicaset", "replicationcontroller"}

// InjectedAnnotations are the annotations Inject adds (uninject removes them).
var InjectedAnnotations = []string{ProxyVersionAnnotation, CreatedByAnnotation, TrustRootHashAnnotation}

// IsInjectedLabel reports whether key is a label Inject adds (uninject removes them).
func IsInjectedLabel(key string) bool {
	if key == ControlPlaneNSLabel || key == WorkloadNSLabel {
		return true
	}
	for _, k := range OwnerKinds {
		if key == OwnerLabelPrefix+k {
			return true
		}
	}
	return false
}

// IsInjectedContainer reports whether name is a container Inject adds.
func IsInjectedContainer(name string) bool {
	return name == InitContainerName || name == ProxyContainerName
}
