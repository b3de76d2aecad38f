package charts

// ControlPlaneValues are the values of the sinew-control-plane chart (its values.yaml documents each).
// TestControlPlaneValuesMatchValuesYAML keeps the two in step.
type ControlPlaneValues struct {
	InstallNamespace     bool   `json:"installNamespace"`
	ClusterDomain        string `json:"clusterDomain"`
	ClusterNetworks      string `json:"clusterNetworks"`
	DefaultInboundPolicy string `json:"defaultInboundPolicy"`
	ProbeNetworks        string `json:"probeNetworks"`
	Image                Image  `json:"image"`
	ImagePullSecrets     []any  `json:"imagePullSecrets"`

	Identity      Identity      `json:"identity"`
	ProxyInjector ProxyInjector `json:"proxyInjector"`
	GatewayClass  GatewayClass  `json:"gatewayClass"`

	ControllerReplicas        int               `json:"controllerReplicas"`
	ControllerLogLevel        string            `json:"controllerLogLevel"`
	ControllerLogFormat       string            `json:"controllerLogFormat"`
	ControllerUID             int64             `json:"controllerUID"`
	ControllerResources       map[string]any    `json:"controllerResources"`
	EnablePodAntiAffinity     bool              `json:"enablePodAntiAffinity"`
	EnablePodDisruptionBudget bool              `json:"enablePodDisruptionBudget"`
	PodLabels                 map[string]string `json:"podLabels"`
	PodAnnotations            map[string]string `json:"podAnnotations"`
	NodeSelector              map[string]string `json:"nodeSelector"`
	Tolerations               []any             `json:"tolerations"`
	PriorityClassName         string            `json:"priorityClassName"`

	Proxy           Proxy     `json:"proxy"`
	ProxyInit       ProxyInit `json:"proxyInit"`
	ControllerImage ImageName `json:"controllerImage"`
}

// Image is where every image comes from: <registry>/<name>:<tag>.
type Image struct {
	Registry   string `json:"registry"`
	Tag        string `json:"tag"`
	PullPolicy string `json:"pullPolicy"`
}

// ImageName is one image's name, and its tag when it differs from image.tag.
type ImageName struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Identity is the mesh's trust domain, trust anchors and issuer.
type Identity struct {
	TrustDomain     string `json:"trustDomain"`
	TrustAnchorsPEM string `json:"trustAnchorsPEM"`
	Issuer          Issuer `json:"issuer"`
}

// Issuer is the identity service's intermediate CA.
type Issuer struct {
	IssuanceLifetime string `json:"issuanceLifetime"`
	TLS              TLS    `json:"tls"`
}

// TLS is a certificate and its key, PEM.
type TLS struct {
	CrtPEM string `json:"crtPEM"`
	KeyPEM string `json:"keyPEM"`
}

// ProxyInjector is the proxy injector's webhook.
type ProxyInjector struct {
	TLS               TLS            `json:"tls"`
	CABundle          string         `json:"caBundle"`
	FailurePolicy     string         `json:"failurePolicy"`
	TimeoutSeconds    int            `json:"timeoutSeconds"`
	NamespaceSelector map[string]any `json:"namespaceSelector"`
	ObjectSelector    map[string]any `json:"objectSelector"`
}

// GatewayClass is sinew's GatewayClass, for its ingress gateway.
type GatewayClass struct {
	// Create renders the GatewayClass sinew where the cluster serves GatewayClasses.
	Create bool `json:"create"`
}

// Proxy are the defaults of every injected proxy.
type Proxy struct {
	Image               ImageName      `json:"image"`
	UID                 int64          `json:"uid"`
	LogLevel            string         `json:"logLevel"`
	LogFormat           string         `json:"logFormat"`
	NativeSidecar       bool           `json:"nativeSidecar"`
	Await               bool           `json:"await"`
	Ports               ProxyPorts     `json:"ports"`
	OpaquePorts         string         `json:"opaquePorts"`
	ConnectTimeout      string         `json:"connectTimeout"`
	ShutdownGracePeriod string         `json:"shutdownGracePeriod"`
	Resources           ProxyResources `json:"resources"`
}

// ProxyPorts are the proxy's listening ports.
type ProxyPorts struct {
	Inbound  int `json:"inbound"`
	Outbound int `json:"outbound"`
	Admin    int `json:"admin"`
	Tap      int `json:"tap"`
}

// ProxyResources are the proxy container's requests and limits; empty means none.
type ProxyResources struct {
	CPU    Bounds `json:"cpu"`
	Memory Bounds `json:"memory"`
}

// Bounds are a request and a limit (Kubernetes quantities).
type Bounds struct {
	Request string `json:"request"`
	Limit   string `json:"limit"`
}

// ProxyInit is the init container that installs the pod's traffic capture.
type ProxyInit struct {
	Image              ImageName `json:"image"`
	SkipInboundPorts   string    `json:"skipInboundPorts"`
	SkipOutboundPorts  string    `json:"skipOutboundPorts"`
	SkipSubnets        string    `json:"skipSubnets"`
	KubeAPIServerPorts string    `json:"kubeAPIServerPorts"`
}

// DecodeControlPlaneValues decodes vals strictly (DecodeValues); vals must be complete (merged over
// DefaultValues(ControlPlane)), or what is missing is zero.
func DecodeControlPlaneValues(vals map[string]any) (*ControlPlaneValues, error) {
	var v ControlPlaneValues
	if err := DecodeValues(vals, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Map is v as the map Helm renders.
func (v *ControlPlaneValues) Map() (map[string]any, error) { return ValuesMap(v) }
