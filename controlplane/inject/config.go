package inject

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// Defaults of Config, from docs/architecture/kubernetes.md.
const (
	DefaultRegistry        = "ghcr.io/sinewmesh"
	DefaultProxyImageName  = "sinew-proxy"
	DefaultInitImageName   = "sinew-init"
	DefaultImagePullPolicy = corev1.PullIfNotPresent
	DefaultProxyLogLevel   = "info"
	DefaultProxyLogFormat  = "json"
)

// Config is what every injection in a cluster shares: where the control plane is, whom to trust, which images to
// run, and the proxy defaults that config.sinew.dev/* annotations override. The webhook builds it from its flags and
// the trust-roots ConfigMap; `sinew inject --manual` from its flags and the installed control plane.
type Config struct {
	// ControlPlaneNamespace is where the identity, destination and policy services run (default "sinew").
	ControlPlaneNamespace string
	// TrustDomain of SPIFFE identities (default "cluster.local"); ClusterDomain of service names (default
	// "cluster.local").
	TrustDomain, ClusterDomain string
	// TrustAnchorsPEM are the PEM trust anchors the proxy verifies the control plane and its peers with. Required.
	TrustAnchorsPEM string

	// Images are <Registry>/<name>:<Tag> unless overridden. Registry defaults to "ghcr.io/sinewmesh", Tag to this
	// build's version.
	Registry, Tag string
	// ProxyImage and InitImage are full image names without a tag (default <Registry>/sinew-proxy and
	// <Registry>/sinew-init); a name that already carries a tag or digest is used as it is.
	ProxyImage, InitImage string
	// ProxyVersion and InitVersion are the images' tags (default Tag).
	ProxyVersion, InitVersion string
	// ImagePullPolicy of both containers (default IfNotPresent).
	ImagePullPolicy corev1.PullPolicy

	// CreatedBy is recorded in the sinew.dev/created-by annotation, e.g. "sinew/proxy-injector 0.4.0".
	CreatedBy string

	// Proxy holds the defaults that config.sinew.dev/* annotations override.
	Proxy ProxyDefaults
}

// ProxyDefaults are the cluster-wide values of the per-pod knobs. Lists, quantities and durations use the same
// syntax as the annotations; an empty string means "not set" (the proxy's or Kubernetes's own default).
type ProxyDefaults struct {
	UID                    int64  // default 2102
	LogLevel               string // debug, info, warn or error (default info)
	LogFormat              string // json or text (default json)
	NativeSidecar          bool   // run the proxy as a native sidecar (default true)
	Await                  bool   // the app starts once the proxy is ready; native sidecars only (default true)
	SkipInboundPorts       string // ports and ranges that reach the app without the proxy, e.g. "25,8000-8090"
	SkipOutboundPorts      string // outbound ports that bypass the proxy, e.g. "443,6443"
	SkipSubnets            string // outbound networks that bypass the proxy, e.g. "10.0.0.0/8"
	OpaquePorts            string // ports the proxy does not detect protocols on (empty: the proxy's default list)
	CPURequest, CPULimit   string // Kubernetes quantities, e.g. "100m"
	MemoryRequest          string // e.g. "20Mi"
	MemoryLimit            string // e.g. "250Mi"
	OutboundConnectTimeout string // Go duration, e.g. "1s"
	ShutdownGracePeriod    string // Go duration, e.g. "2m"
	DefaultInboundPolicy   string // all-unauthenticated, …; read by the policy service, checked here
}

// DefaultConfig returns the documented defaults (trust anchors still to be filled in).
func DefaultConfig() Config {
	return Config{
		ControlPlaneNamespace: names.ControlPlaneNamespace,
		TrustDomain:           names.DefaultTrustDomain,
		ClusterDomain:         names.DefaultClusterDomain,
		Registry:              DefaultRegistry,
		Tag:                   version.Version,
		ImagePullPolicy:       DefaultImagePullPolicy,
		Proxy: ProxyDefaults{
			UID: names.DefaultProxyUID, LogLevel: DefaultProxyLogLevel, LogFormat: DefaultProxyLogFormat,
			NativeSidecar: true, Await: true,
		},
	}
}

// withDefaults fills what the caller left empty (so a zero Config works as DefaultConfig plus trust anchors).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.ControlPlaneNamespace, d.ControlPlaneNamespace)
	set(&c.TrustDomain, d.TrustDomain)
	set(&c.ClusterDomain, d.ClusterDomain)
	set(&c.Registry, d.Registry)
	set(&c.Tag, d.Tag)
	c.Registry = strings.TrimSuffix(c.Registry, "/")
	set(&c.ProxyImage, c.Registry+"/"+DefaultProxyImageName)
	set(&c.InitImage, c.Registry+"/"+DefaultInitImageName)
	set(&c.ProxyVersion, c.Tag)
	set(&c.InitVersion, c.Tag)
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = d.ImagePullPolicy
	}
	set(&c.CreatedBy, "sinew "+version.Version)
	if c.Proxy.UID == 0 {
		c.Proxy.UID = names.DefaultProxyUID
	}
	set(&c.Proxy.LogLevel, DefaultProxyLogLevel)
	set(&c.Proxy.LogFormat, DefaultProxyLogFormat)
	return c
}

var (
	imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Validate checks the configuration after defaults, naming each bad field; the proxy defaults are checked with the
// same rules as the annotations that override them.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !names.IsDNSLabel(c.ControlPlaneNamespace) {
		errs = append(errs, fmt.Errorf("control-plane namespace %q: not a namespace name", c.ControlPlaneNamespace))
	}
	if !names.IsDNSName(c.TrustDomain) {
		errs = append(errs, fmt.Errorf("trust domain %q: want a DNS name like cluster.local", c.TrustDomain))
	}
	if !names.IsDNSName(c.ClusterDomain) {
		errs = append(errs, fmt.Errorf("cluster domain %q: want a DNS name like cluster.local", c.ClusterDomain))
	}
	if strings.TrimSpace(c.TrustAnchorsPEM) == "" {
		errs = append(errs, errors.New("trust anchors: none given"))
	} else if err := checkPEM(c.TrustAnchorsPEM); err != nil {
		errs = append(errs, fmt.Errorf("trust anchors: %w", err))
	}
	for _, im := range []struct{ what, v string }{{"proxy image", c.ProxyImage}, {"init image", c.InitImage}} {
		if err := checkImageName(im.v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", im.what, im.v, err))
		}
	}
	for _, t := range []struct{ what, v string }{{"image tag", c.Tag}, {"proxy version", c.ProxyVersion}, {"init version", c.InitVersion}} {
		if !imageTag.MatchString(t.v) {
			errs = append(errs, fmt.Errorf("%s %q: not an image tag", t.what, t.v))
		}
	}
	if err := checkPullPolicy(string(c.ImagePullPolicy)); err != nil {
		errs = append(errs, fmt.Errorf("image pull policy: %w", err))
	}
	if _, err := c.defaultSettings(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
