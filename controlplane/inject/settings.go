package inject

import (
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"

	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// settings are the per-pod values after the defaults and every annotation level are applied.
type settings struct {
	uid                   int64
	logLevel, logFormat   string
	native, await         bool
	skipIn, skipOut       []ports.Range
	skipSubnets           []netip.Prefix
	opaquePorts           string // canonical list; "" = the proxy's default
	cpuReq, cpuLim        *resource.Quantity
	memReq, memLim        *resource.Quantity
	connectTimeout        string
	shutdownGrace         string
	drainDelay            string // "" = by sidecar kind (proxyContainer)
	proxyImage, proxyVer  string
	initImage             string
	pullPolicy            corev1.PullPolicy
	inboundPolicy, mtlsMd string
	serverPorts           string // SINEW_PROXY_INBOUND_SERVER_PORTS; "" = unknown (the proxy's default, all)
	ingress               bool   // sinew.dev/inject: ingress: the proxy routes by the requests' authority
}

// knob is one config.sinew.dev/<name> override: how to check a value and apply it.
type knob struct {
	annotation string
	apply      func(s *settings, v string, byName portNamer) error
}

var knobs = []knob{
	{names.AnnSkipInboundPorts, func(s *settings, v string, _ portNamer) (err error) { s.skipIn, err = parsePorts(v, nil); return }},
	{names.AnnSkipOutboundPorts, func(s *settings, v string, _ portNamer) (err error) { s.skipOut, err = parsePorts(v, nil); return }},
	{names.AnnSkipSubnets, func(s *settings, v string, _ portNamer) (err error) { s.skipSubnets, err = parseSubnets(v); return }},
	{names.AnnOpaquePorts, func(s *settings, v string, byName portNamer) error {
		ranges, err := parsePorts(v, byName)
		if err != nil {
			return err
		}
		s.opaquePorts = ports.Format(ranges)
		return nil
	}},
	{names.AnnProxyLogLevel, func(s *settings, v string, _ portNamer) error {
		l := strings.ToLower(strings.TrimSpace(v))
		if !slices.Contains(names.LogLevels, l) {
			return errors.New("want debug, info, warn or error")
		}
		s.logLevel = l
		return nil
	}},
	{names.AnnProxyLogFormat, func(s *settings, v string, _ portNamer) error {
		return oneOf(&s.logFormat, v, names.LogFormats...)
	}},
	{names.AnnProxyCPURequest, quantity(func(s *settings) **resource.Quantity { return &s.cpuReq })},
	{names.AnnProxyCPULimit, quantity(func(s *settings) **resource.Quantity { return &s.cpuLim })},
	{names.AnnProxyMemoryRequest, quantity(func(s *settings) **resource.Quantity { return &s.memReq })},
	{names.AnnProxyMemoryLimit, quantity(func(s *settings) **resource.Quantity { return &s.memLim })},
	{names.AnnProxyUID, func(s *settings, v string, _ portNamer) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 || n > 1<<31-1 {
			return errors.New("want a user ID between 1 and 2147483647 (not 0: root's connections would escape capture)")
		}
		s.uid = n
		return nil
	}},
	{names.AnnProxyImage, image(func(s *settings) *string { return &s.proxyImage })},
	{names.AnnProxyVersion, func(s *settings, v string, _ portNamer) error {
		if !imageTag.MatchString(strings.TrimSpace(v)) {
			return errors.New("not an image tag")
		}
		s.proxyVer = strings.TrimSpace(v)
		return nil
	}},
	{names.AnnInitImage, image(func(s *settings) *string { return &s.initImage })},
	{names.AnnImagePullPolicy, func(s *settings, v string, _ portNamer) error {
		if err := checkPullPolicy(strings.TrimSpace(v)); err != nil {
			return err
		}
		s.pullPolicy = corev1.PullPolicy(strings.TrimSpace(v))
		return nil
	}},
	{names.AnnProxyAwait, boolean(func(s *settings) *bool { return &s.await }, "enabled", "disabled")},
	{names.AnnProxyNativeSidecar, boolean(func(s *settings) *bool { return &s.native }, "true", "false")},
	{names.AnnShutdownGracePeriod, duration(func(s *settings) *string { return &s.shutdownGrace })},
	{names.AnnShutdownDrainDelay, func(s *settings, v string, _ portNamer) error {
		v = strings.TrimSpace(v)
		if d, err := time.ParseDuration(v); err != nil || d < 0 {
			return errors.New("not a duration of 0 or more (e.g. 0s, 5s)")
		}
		s.drainDelay = v
		return nil
	}},
	{names.AnnOutboundConnectTimeout, duration(func(s *settings) *string { return &s.connectTimeout })},
	{names.AnnDefaultInboundPolicy, func(s *settings, v string, _ portNamer) error {
		return oneOf(&s.inboundPolicy, v, names.InboundPolicies...)
	}},
	{names.AnnMTLSMode, func(s *settings, v string, byName portNamer) error {
		// Checked with the policy service's own parser, so a value injected is one it applies.
		if _, errs := authzapi.ParseMTLSAnnotation(v, byName); len(errs) > 0 {
			return errors.Join(errs...)
		}
		s.mtlsMd = strings.TrimSpace(v)
		return nil
	}},
}

func oneOf(dst *string, v string, allowed ...string) error {
	v = strings.TrimSpace(v)
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("want %s", orList(allowed))
	}
	*dst = v
	return nil
}

func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// boolean reads yes or no into the field.
func boolean(field func(*settings) *bool, yes, no string) func(*settings, string, portNamer) error {
	return func(s *settings, v string, _ portNamer) error {
		var w string
		if err := oneOf(&w, v, yes, no); err != nil {
			return err
		}
		*field(s) = w == yes
		return nil
	}
}

func image(field func(*settings) *string) func(*settings, string, portNamer) error {
	return func(s *settings, v string, _ portNamer) error {
		if err := checkImageName(v); err != nil {
			return err
		}
		*field(s) = strings.TrimSpace(v)
		return nil
	}
}

func quantity(field func(*settings) **resource.Quantity) func(*settings, string, portNamer) error {
	return func(s *settings, v string, _ portNamer) error {
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1Gi)")
		}
		if q.Sign() <= 0 {
			return errors.New("must be more than zero")
		}
		*field(s) = &q
		return nil
	}
}

func duration(field func(*settings) *string) func(*settings, string, portNamer) error {
	return func(s *settings, v string, _ portNamer) error {
		v = strings.TrimSpace(v)
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (e.g. 500ms, 10s, 2m)")
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		*field(s) = v
		return nil
	}
}

// Level names where an annotation was found, for error messages.
type Level string

const (
	LevelDefault   Level = "the injector's defaults"
	LevelNamespace Level = "the namespace"
	LevelWorkload  Level = "the workload"
	LevelPod       Level = "the pod template"
)

// AnnotationError is a bad override value; Annotation and Level say which and where.
type AnnotationError struct {
	Annotation string
	Value      string
	Level      Level
	Err        error
}

func (e *AnnotationError) Error() string {
	if e.Level == LevelDefault {
		return fmt.Sprintf("default for %s %q: %v", e.Annotation, e.Value, e.Err)
	}
	return fmt.Sprintf("annotation %s=%q on %s: %v", e.Annotation, e.Value, e.Level, e.Err)
}

func (e *AnnotationError) Unwrap() error { return e.Err }

// defaultSettings turns Config's proxy defaults into settings with the annotations' own checks.
func (c Config) defaultSettings() (settings, error) {
	c = c.withDefaults()
	s := settings{
		proxyImage: c.ProxyImage, proxyVer: c.ProxyVersion, initImage: c.InitImage, pullPolicy: c.ImagePullPolicy,
		native: c.Proxy.NativeSidecar, await: c.Proxy.Await,
	}
	p := c.Proxy
	defaults := map[string]string{
		names.AnnProxyUID: strconv.FormatInt(p.UID, 10), names.AnnProxyLogLevel: p.LogLevel, names.AnnProxyLogFormat: p.LogFormat,
		names.AnnSkipInboundPorts: p.SkipInboundPorts, names.AnnSkipOutboundPorts: p.SkipOutboundPorts, names.AnnSkipSubnets: p.SkipSubnets,
		names.AnnOpaquePorts: p.OpaquePorts, names.AnnProxyCPURequest: p.CPURequest, names.AnnProxyCPULimit: p.CPULimit,
		names.AnnProxyMemoryRequest: p.MemoryRequest, names.AnnProxyMemoryLimit: p.MemoryLimit,
		names.AnnOutboundConnectTimeout: p.OutboundConnectTimeout, names.AnnShutdownGracePeriod: p.ShutdownGracePeriod,
		names.AnnDefaultInboundPolicy: p.DefaultInboundPolicy,
	}
	var errs []error
	for _, k := range knobs {
		v, ok := defaults[k.annotation]
		if !ok || v == "" {
			continue
		}
		if err := k.apply(&s, v, nil); err != nil {
			errs = append(errs, &AnnotationError{Annotation: k.annotation, Value: v, Level: LevelDefault, Err: err})
		}
	}
	if err := s.check(LevelDefault); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// override applies one level's config.sinew.dev/* annotations. Unknown config.sinew.dev keys are left alone: other
// components (the policy service, say) read their own.
func (s *settings) override(level Level, annotations map[string]string, pod *corev1.Pod) error {
	var errs []error
	for _, k := range knobs {
		v, ok := annotations[k.annotation]
		if !ok {
			continue
		}
		if err := k.apply(s, v, containerPort(pod)); err != nil {
			errs = append(errs, &AnnotationError{Annotation: k.annotation, Value: v, Level: level, Err: err})
		}
	}
	return errors.Join(errs...)
}

// check reports values that contradict each other once every level is applied.
func (s *settings) check(level Level) error {
	var errs []error
	if s.cpuReq != nil && s.cpuLim != nil && s.cpuReq.Cmp(*s.cpuLim) > 0 {
		errs = append(errs, &AnnotationError{Annotation: names.AnnProxyCPURequest, Value: s.cpuReq.String(), Level: level,
			Err: fmt.Errorf("more than %s (%s)", names.AnnProxyCPULimit, s.cpuLim.String())})
	}
	if s.memReq != nil && s.memLim != nil && s.memReq.Cmp(*s.memLim) > 0 {
		errs = append(errs, &AnnotationError{Annotation: names.AnnProxyMemoryRequest, Value: s.memReq.String(), Level: level,
			Err: fmt.Errorf("more than %s (%s)", names.AnnProxyMemoryLimit, s.memLim.String())})
	}
	return errors.Join(errs...)
}

// portNamer resolves a port name to its number; nil: names are not accepted.
type portNamer = func(string) (uint16, bool)

// parsePorts reads a port list (internal/ports) into sorted, merged ranges.
func parsePorts(v string, byName portNamer) ([]ports.Range, error) {
	rs, err := ports.Parse(v, byName)
	return ports.Merge(rs), err
}

// containerPort resolves the names of the pod's container ports (init containers included); nil without a pod.
func containerPort(pod *corev1.Pod) portNamer {
	if pod == nil {
		return nil
	}
	return func(name string) (uint16, bool) {
		for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for _, c := range cs {
				for _, p := range c.Ports {
					if p.Name == name && p.ContainerPort > 0 && p.ContainerPort <= 65535 {
						return uint16(p.ContainerPort), true
					}
				}
			}
		}
		return 0, false
	}
}

// parseSubnets reads "10.0.0.0/8,fd00::/8"; a bare address is that one host. Host bits are cleared.
func parseSubnets(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or fd00::/8", item)
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or fd00::/8", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}

func formatSubnets(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func checkPullPolicy(v string) error {
	switch corev1.PullPolicy(v) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		return nil
	}
	return errors.New("want Always, IfNotPresent or Never")
}

func checkImageName(v string) error {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return errors.New("empty image name")
	case strings.ContainsAny(v, " \t\n\r"):
		return errors.New("an image name has no spaces")
	case strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || strings.HasSuffix(v, ":") || strings.HasSuffix(v, "@"):
		return errors.New("not an image name like ghcr.io/sinewmesh/sinew-proxy")
	}
	return nil
}

// imageRef joins an image name and a tag, unless the name already carries a tag or a digest.
func imageRef(name, tag string) string {
	last := name[strings.LastIndex(name, "/")+1:]
	if strings.Contains(name, "@") || strings.Contains(last, ":") {
		return name
	}
	return name + ":" + tag
}

func checkPEM(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n+1, b.Type)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return errors.New("text after the last PEM certificate")
	}
	return nil
}

// CheckAnnotation checks one config.sinew.dev/* value the way Inject reads it (for `sinew inject`, which writes
// them). Container-port names in opaque-ports and mtls-mode are accepted when they look like port names: the pod is not known.
func CheckAnnotation(annotation, value string) error {
	for _, k := range knobs {
		if k.annotation != annotation {
			continue
		}
		var s settings
		// The pod is not known: accept anything that looks like a container port's name, each name its own
		// (made-up) port, so that two names never read as the same port (mtls-mode refuses overlaps).
		seen := map[string]uint16{}
		anyName := func(name string) (uint16, bool) {
			if _, ok := seen[name]; !ok {
				seen[name] = uint16(65535 - len(seen))
			}
			return seen[name], portName.MatchString(name)
		}
		return k.apply(&s, value, anyName)
	}
	return fmt.Errorf("%s is not an annotation the injector reads", annotation)
}

// portName is a container port's name (IANA service name: up to 15 lower-case letters, digits and dashes).
var portName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)
