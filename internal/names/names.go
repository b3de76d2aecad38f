// Package names is the one home of the mesh's well-known names: annotations, labels, container and port names,
// the control plane's namespaces, Services and service accounts, default ports and domains, and the rules a name
// must follow. Grep here for any of them. Each constant has one meaning; a name used as a Service and as a
// service account is two constants even when the strings are equal.
//
// It holds facts only: no mesh logic, and no imports beyond the standard library, so that every component (the
// proxy included) can use it.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Namespaces, Services and service accounts of the control plane and the viz extension. The identity of a
// control-plane server is spiffe://<trust domain>/ns/<namespace>/sa/<account>.
const (
	// ControlPlaneNamespace is where the identity, destination, policy and injector servers run by default.
	ControlPlaneNamespace = "sinew"

	// Services in ControlPlaneNamespace, as proxies and the CLI address them.
	IdentityService    = "sinew-identity"
	DestinationService = "sinew-dst"
	PolicyService      = "sinew-policy"
	InjectorService    = "sinew-proxy-injector"

	// Service accounts in ControlPlaneNamespace, as certificates name them.
	IdentityAccount    = "sinew-identity"
	DestinationAccount = "sinew-destination" // the destination and policy servers share it

	// Deployments of the control plane, in ControlPlaneNamespace.
	IdentityDeployment    = "sinew-identity"
	DestinationDeployment = "sinew-destination"
	InjectorDeployment    = "sinew-proxy-injector"

	// Other objects the install creates in ControlPlaneNamespace.
	ConfigMap             = "sinew-config" // the values the control plane was installed with
	IssuerSecret          = "sinew-identity-issuer"
	InjectorTLSSecret     = "sinew-proxy-injector-k8s-tls" //nolint:gosec // a Secret's name, not a credential
	InjectorWebhookConfig = "sinew-proxy-injector-webhook-config"

	// VizNamespace holds the viz extension; VizService serves its API and dashboard, VizDeployment runs it.
	VizNamespace  = "sinew-viz"
	VizService    = "sinew-viz"
	VizDeployment = "sinew-viz"
	// TapAccount is the service account of the viz tap server; proxies let spiffe://<td>/ns/sinew-viz/sa/tap tap.
	TapAccount = "tap"
)

// Domains and the identity token.
const (
	// DefaultTrustDomain is the SPIFFE trust domain of identities unless install says otherwise.
	DefaultTrustDomain = "cluster.local"
	// DefaultClusterDomain is the DNS suffix of Services (<svc>.<ns>.svc.<cluster domain>).
	DefaultClusterDomain = "cluster.local"
	// TokenAudience is the audience the identity service checks a projected ServiceAccount token for.
	TokenAudience = "identity.sinew.dev"
)

// Proxy ports, their container-port names, and the proxy's user.
const (
	ProxyInboundPort  = 4143
	ProxyOutboundPort = 4140
	ProxyAdminPort    = 4191
	ProxyTapPort      = 4190

	ProxyInboundPortName = "sinew-proxy"
	ProxyAdminPortName   = "sinew-admin"
	ProxyTapPortName     = "sinew-tap"

	DefaultProxyUID = 2102
)

// Control-plane ports.
const (
	IdentityPort    = 8080
	DestinationPort = 8086
	PolicyPort      = 8090
	InjectorPort    = 8443
	// DestinationAdminPort is the admin server of the destination deployment (which serves the policy service
	// too): /ready, /metrics and /debug/model, the model with its policyProblems.
	DestinationAdminPort = 9996
)

// DefaultOpaquePorts skip protocol detection unless an opaque-ports annotation replaces the list: protocols where
// the server speaks first (SMTP, SMTP submission, MySQL, Galera, PostgreSQL, Redis, Elasticsearch, Memcached),
// which detection would only stall. The syntax is internal/ports'.
const DefaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"

// Containers, volumes and the downward-API variables of an injected pod.
const (
	// InitContainer installs the pod's traffic capture.
	InitContainer = "sinew-init"
	// ProxyContainer is the proxy, a native sidecar (an init container that keeps running) or the first container.
	ProxyContainer = "sinew-proxy"
	// TokenVolume is the projected ServiceAccount token the proxy proves its identity with.
	TokenVolume = "sinew-identity-token"
	// TokenMountPath is where TokenVolume is mounted in the proxy; the token is the file "token" there.
	TokenMountPath = "/var/run/secrets/sinew.dev/serviceaccount" //nolint:gosec // a path, not a credential
	// TokenPath is the token file the proxy reads (re-read at every renewal).
	TokenPath = TokenMountPath + "/token"
	// TokenExpirationSeconds is how long a projected token lives; the kubelet refreshes it well before that.
	TokenExpirationSeconds = 86400

	// TrustRootsConfigMap holds the PEM trust anchors (key TrustRootsKey) in the control-plane namespace.
	TrustRootsConfigMap = "sinew-identity-trust-roots"
	TrustRootsKey       = "ca-bundle.crt"
	// TrustAnchorsPath is where the charts mount TrustRootsConfigMap in the control plane's and viz's pods.
	TrustAnchorsPath = "/var/run/sinew/identity/trust-roots/" + TrustRootsKey

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
	// DeploymentLabel names the Deployment that owns a meshed pod.
	DeploymentLabel = OwnerLabelPrefix + "deployment"
	// ControlPlaneComponentLabel marks the control plane's own pods; the webhook's objectSelector skips them.
	ControlPlaneComponentLabel = "sinew.dev/control-plane-component"

	// AppProtocolOpaque as a Service port's appProtocol makes that port opaque.
	AppProtocolOpaque = "sinew.dev/opaque"
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
	AnnShutdownDrainDelay     = ConfigPrefix + "shutdown-drain-delay"
	AnnOutboundConnectTimeout = ConfigPrefix + "proxy-outbound-connect-timeout"
	AnnDefaultInboundPolicy   = ConfigPrefix + "default-inbound-policy"
	AnnMTLSMode               = ConfigPrefix + "mtls-mode"
)

// ConfigAnnotations lists every config.sinew.dev/* override, in documentation order.
var ConfigAnnotations = []string{
	AnnSkipInboundPorts, AnnSkipOutboundPorts, AnnSkipSubnets, AnnOpaquePorts, AnnProxyLogLevel, AnnProxyLogFormat,
	AnnProxyCPURequest, AnnProxyCPULimit, AnnProxyMemoryRequest, AnnProxyMemoryLimit, AnnProxyUID, AnnProxyImage,
	AnnProxyVersion, AnnInitImage, AnnImagePullPolicy, AnnProxyAwait, AnnProxyNativeSidecar, AnnShutdownGracePeriod,
	AnnShutdownDrainDelay, AnnOutboundConnectTimeout, AnnDefaultInboundPolicy, AnnMTLSMode,
}

// OwnerKinds are the workload kinds that get a sinew.dev/proxy-<kind> label, lower-cased.
var OwnerKinds = []string{"deployment", "statefulset", "daemonset", "job", "cronjob", "replicaset", "replicationcontroller"}

// Value sets that flags, chart values, annotations and files share.
var (
	// LogLevels are the log levels every sinew component accepts.
	LogLevels = []string{"debug", "info", "warn", "error"}
	// LogFormats are the log formats every sinew component accepts.
	LogFormats = []string{"json", "text"}
	// InboundPolicies are the default inbound policies a port with no Server can have.
	InboundPolicies = []string{PolicyAllUnauthenticated, PolicyAllAuthenticated, PolicyClusterUnauthenticated,
		PolicyClusterAuthenticated, PolicyDeny, PolicyAudit}
)

// The default inbound policies, as the annotation, the install value and the metrics spell them.
const (
	PolicyAllUnauthenticated     = "all-unauthenticated"
	PolicyAllAuthenticated       = "all-authenticated"
	PolicyClusterUnauthenticated = "cluster-unauthenticated"
	PolicyClusterAuthenticated   = "cluster-authenticated"
	PolicyDeny                   = "deny"
	PolicyAudit                  = "audit"
)

// DefaultInboundPolicy is the install's default for ports no Server covers.
const DefaultInboundPolicy = PolicyAllUnauthenticated

// DefaultClusterNetworks are the networks of the cluster-* inbound policies unless the install says otherwise:
// the private and carrier-grade NAT ranges, where pod and service networks live (Linkerd's clusterNetworks).
const DefaultClusterNetworks = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"

// DefaultProbeNetworks are where kubelet probes may come from: anywhere, since the kubelet's address depends on
// the node and the network plugin.
const DefaultProbeNetworks = "0.0.0.0/0,::/0"

var (
	dnsNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// CheckDNSLabel says why s is not an RFC 1123 label (a namespace, service or service-account name), or nil.
func CheckDNSLabel(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty: want a DNS label (lower case letters, digits and '-')")
	case len(s) > 63:
		return fmt.Errorf("%q is longer than 63 characters", s)
	case !IsDNSLabel(s):
		return fmt.Errorf("%q must consist of lower case letters, digits and '-', and start and end with a letter or digit", s)
	}
	return nil
}

// CheckDNSName says why s is not an RFC 1123 subdomain (a trust domain, cluster domain or host name), or nil.
func CheckDNSName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty: want a DNS name like cluster.local")
	case len(s) > 253:
		return fmt.Errorf("%q is longer than 253 characters", s)
	case !dnsNameRE.MatchString(s):
		return fmt.Errorf("%q is not a DNS name: want one like cluster.local", s)
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 {
			return fmt.Errorf("%q has a label longer than 63 characters", s)
		}
	}
	return nil
}

// IsDNSLabel reports whether s is an RFC 1123 label. It allocates nothing: an ingress-mode proxy asks it of
// request host names.
func IsDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// IsDNSName reports whether s is an RFC 1123 subdomain.
func IsDNSName(s string) bool { return CheckDNSName(s) == nil }

// ServiceAddr is the address of a Service's port by its cluster DNS name, fully qualified so that no search
// domain applies: <service>.<namespace>.svc.<cluster domain>.:<port>.
func ServiceAddr(service, namespace, clusterDomain string, port int) string {
	return fmt.Sprintf("%s.%s.svc.%s.:%d", service, namespace, clusterDomain, port)
}

// Outbound defaults on a Service (Linkerd 2.16+'s retry.linkerd.io/…, timeout.linkerd.io/… and
// balancer.linkerd.io/… with our prefix): the control plane puts them on the outbound policy of every target that
// resolves to the Service. See docs/networking/retries-and-timeouts.md.
const (
	AnnRetryHTTP    = "retry.sinew.dev/http"
	AnnRetryGRPC    = "retry.sinew.dev/grpc"
	AnnRetryLimit   = "retry.sinew.dev/limit"
	AnnRetryTimeout = "retry.sinew.dev/timeout"

	AnnTimeoutRequest  = "timeout.sinew.dev/request"
	AnnTimeoutResponse = "timeout.sinew.dev/response"
	AnnTimeoutIdle     = "timeout.sinew.dev/idle"

	AnnFailureAccrual            = "balancer.sinew.dev/failure-accrual"
	AnnFailureAccrualMaxFailures = "balancer.sinew.dev/failure-accrual-consecutive-max-failures"
	AnnFailureAccrualMinPenalty  = "balancer.sinew.dev/failure-accrual-consecutive-min-penalty"
	AnnFailureAccrualMaxPenalty  = "balancer.sinew.dev/failure-accrual-consecutive-max-penalty"
	AnnFailureAccrualJitterRatio = "balancer.sinew.dev/failure-accrual-consecutive-jitter-ratio"
)

// sinew's ingress gateway (Gateway API Gateways of a GatewayClass whose controllerName is GatewayController).
const (
	// GatewayController is the controllerName of sinew's GatewayClasses; `sinew install` creates the
	// GatewayClass named GatewayClass with it.
	GatewayController = "sinew.dev/gateway-controller"
	GatewayClass      = "sinew"
	// GatewayResourcePrefix starts the names of what the control plane creates for a Gateway in its namespace: a
	// ServiceAccount (the gateway's identity), a Deployment of gateway proxies and a Service (GatewayResourceName).
	GatewayResourcePrefix = "sinew-gateway-"
	// GatewayLabel (on the gateway's pods and Service) names the Gateway they serve, as Gateway API
	// implementations label them.
	GatewayLabel = "gateway.networking.k8s.io/gateway-name"
)

// GatewayResourceName is the name of the ServiceAccount, Deployment and Service of the Gateway named gateway (in
// the Gateway's namespace). A name too long for a DNS label is cut and ends in a hash of the whole.
func GatewayResourceName(gateway string) string {
	n := GatewayResourcePrefix + gateway
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(gateway))
	return strings.TrimRight(n[:54], "-") + "-" + hex.EncodeToString(sum[:])[:8]
}

// GatewayIdentityAccount is the service account whose identity may watch the Gateway's configuration.
func GatewayIdentityAccount(gateway string) string { return GatewayResourceName(gateway) }
