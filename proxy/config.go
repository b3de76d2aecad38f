package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
	"github.com/sinewmesh/sinew/proxy/internal/authz"
)

// Mode says how traffic reaches the proxy.
type Mode string

const (
	// ModeTransparent: capture rules redirect the pod's traffic to the inbound and outbound listeners, and the
	// original destination is read from the socket (Kubernetes).
	ModeTransparent Mode = "transparent"
	// ModeExplicit: the application talks to explicit local ports, one per upstream service; inbound ports map to
	// application addresses (local mode, no root).
	ModeExplicit Mode = "explicit"
	// ModeGateway: the proxy is an ingress gateway (a Gateway of GatewayClass sinew): it listens on the Gateway's
	// listener ports for clients outside the mesh and routes their requests by the Gateway's routes.
	ModeGateway Mode = "gateway"
)

// OutboundPort is one explicit outbound listener and the service it stands for.
type OutboundPort struct {
	Listen string `json:"listen"`
	Target string `json:"target"`
}

// InboundPort maps a workload port (what peers ask for) to where the application listens.
type InboundPort struct {
	Port uint16 `json:"port"`
	App  string `json:"app"`
}

// Config is everything the proxy is told at start. Load reads it from SINEW_PROXY_* environment variables.
type Config struct {
	Mode        Mode   `json:"mode"`
	Workload    string `json:"workload"`
	InboundAddr string `json:"inboundListenAddr"`
	// Transparent mode only.
	OutboundAddr string `json:"outboundListenAddr,omitempty"`
	AdminAddr    string `json:"adminListenAddr"`
	TapAddr      string `json:"tapListenAddr"`
	// Identities allowed to tap; Validate fills in the viz tap service's identity when empty.
	TapAuthorizedIDs []string `json:"tapAuthorizedIdentities"`
	// Explicit mode only.
	InboundPorts  []InboundPort  `json:"inboundPorts,omitempty"`
	OutboundPorts []OutboundPort `json:"outboundPorts,omitempty"`
	OpaquePorts   []uint16       `json:"opaquePorts"`
	// Gateway mode only: the Gateway served ("namespace/name"), the address its listener ports bind to, and
	// listener ports bound elsewhere (local mode: port 443 served on 127.0.0.1:18443).
	Gateway        string            `json:"gateway,omitempty"`
	GatewayHost    string            `json:"gatewayListenHost,omitempty"`
	GatewayPortMap map[uint16]uint16 `json:"gatewayPortMap,omitempty"`
	// IngressMode: the proxy of an ingress controller. Outbound HTTP requests go to the Service their authority
	// names (the sinew-dst-override header, else Host) instead of the connection's destination.
	IngressMode bool `json:"ingressMode"`

	IdentityAddr     string `json:"identityAddr"`
	IdentityName     string `json:"identityName"`
	LocalName        string `json:"localName"`
	Token            string `json:"-"`
	TokenFile        string `json:"tokenFile,omitempty"`
	TrustAnchorsPEM  string `json:"-"`
	TrustAnchorsFile string `json:"trustAnchorsFile,omitempty"`
	DestinationAddr  string `json:"destinationAddr"`
	DestinationName  string `json:"destinationName"`
	PolicyAddr       string `json:"policyAddr,omitempty"`
	// DefaultInboundPolicy admits clients to every inbound port when there is no policy service (local mode
	// without one, tests); with a policy service, the control plane decides each port's policy.
	DefaultInboundPolicy string         `json:"defaultInboundPolicy"`
	ClusterNetworks      []netip.Prefix `json:"clusterNetworks"`
	// InboundServerPorts are the ports a Server covered when the proxy injector admitted the pod. Until the
	// policy service answers, these ports admit nobody and the others get DefaultInboundPolicy. nil: unknown, so
	// every port admits nobody until its policy arrives.
	InboundServerPorts []uint16 `json:"inboundServerPorts"`

	LogLevel  slog.Level `json:"logLevel"`
	LogFormat string     `json:"logFormat"`

	DetectTimeout    time.Duration `json:"detectTimeout"`
	ConnectTimeout   time.Duration `json:"connectTimeout"`
	DiscoveryTimeout time.Duration `json:"discoveryTimeout"`
	ShutdownGrace    time.Duration `json:"shutdownGracePeriod"`
	// ShutdownDrainDelay is how long the proxy keeps accepting after the first shutdown signal, reporting not
	// ready, so that clients learn the endpoint is going before its listeners close; 0 closes them at once.
	ShutdownDrainDelay time.Duration `json:"shutdownDrainDelay"`
}

// envVar documents one setting; the table is the single source of names, defaults and parsing.
type envVar struct {
	name, def, help string
	set             func(c *Config, v string) error
}

var envVars = []envVar{
	{"MODE", "transparent", "transparent (Kubernetes, capture rules), explicit (local mode, explicit ports) or gateway (an ingress gateway: GATEWAY's listeners)", func(c *Config, v string) error {
		switch Mode(v) {
		case ModeTransparent, ModeExplicit, ModeGateway:
			c.Mode = Mode(v)
			return nil
		}
		return errors.New("must be transparent, explicit or gateway")
	}},
	{"WORKLOAD", "", "namespace/name of the workload this proxy serves", func(c *Config, v string) error {
		if v != "" {
			if ns, name, ok := strings.Cut(v, "/"); !ok || ns == "" || name == "" {
				return errors.New("must be namespace/name")
			}
		}
		c.Workload = v
		return nil
	}},
	{"INBOUND_LISTEN_ADDR", net.JoinHostPort("0.0.0.0", strconv.Itoa(names.ProxyInboundPort)), "inbound listener (mesh mTLS and captured inbound traffic)", addr(func(c *Config) *string { return &c.InboundAddr })},
	{"OUTBOUND_LISTEN_ADDR", net.JoinHostPort("127.0.0.1", strconv.Itoa(names.ProxyOutboundPort)), "outbound listener for captured traffic (transparent mode)", addr(func(c *Config) *string { return &c.OutboundAddr })},
	{"ADMIN_LISTEN_ADDR", net.JoinHostPort("0.0.0.0", strconv.Itoa(names.ProxyAdminPort)), "admin server: /metrics /ready /live /shutdown /proxy-log-level /debug/config", addr(func(c *Config) *string { return &c.AdminAddr })},
	{"TAP_LISTEN_ADDR", net.JoinHostPort("0.0.0.0", strconv.Itoa(names.ProxyTapPort)), "tap server (gRPC tap.v1.Tap over mesh mTLS): live request events for authorized clients", addr(func(c *Config) *string { return &c.TapAddr })},
	{"TAP_AUTHORIZED_IDENTITIES", "", "comma list of SPIFFE IDs allowed to tap (default: spiffe://<trust-domain>/ns/sinew-viz/sa/tap); others get PERMISSION_DENIED", func(c *Config, v string) error {
		c.TapAuthorizedIDs = nil
		for id := range splitList(v) {
			if _, _, _, err := meshtls.ParseID(id); err != nil {
				return fmt.Errorf("%q: %w", id, err)
			}
			c.TapAuthorizedIDs = append(c.TapAuthorizedIDs, id)
		}
		return nil
	}},
	{"INBOUND_PORTS", "", "explicit mode: port=app-address list, e.g. 8080=127.0.0.1:18080; the first is the default for plaintext clients", func(c *Config, v string) error {
		c.InboundPorts = nil
		for item := range splitList(v) {
			p, app, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("%q: want port=host:port", item)
			}
			port, err := parsePort(p)
			if err != nil {
				return fmt.Errorf("%q: %w", item, err)
			}
			if _, _, err := net.SplitHostPort(app); err != nil {
				return fmt.Errorf("%q: application address: %w", item, err)
			}
			if slices.ContainsFunc(c.InboundPorts, func(ip InboundPort) bool { return ip.Port == port }) {
				return fmt.Errorf("port %d listed twice", port)
			}
			c.InboundPorts = append(c.InboundPorts, InboundPort{Port: port, App: app})
		}
		return nil
	}},
	{"OUTBOUND_PORTS", "", "explicit mode: listen-address=service-authority list, e.g. 127.0.0.1:15001=web-svc.emojivoto.svc.cluster.local:80", func(c *Config, v string) error {
		c.OutboundPorts = nil
		for item := range splitList(v) {
			l, target, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("%q: want listen-address=authority", item)
			}
			if _, _, err := net.SplitHostPort(l); err != nil {
				return fmt.Errorf("%q: listen address: %w", item, err)
			}
			if _, p, err := net.SplitHostPort(target); err != nil {
				return fmt.Errorf("%q: target must be host:port: %w", item, err)
			} else if _, err := parsePort(p); err != nil {
				return fmt.Errorf("%q: target %w", item, err)
			}
			c.OutboundPorts = append(c.OutboundPorts, OutboundPort{Listen: l, Target: target})
		}
		return nil
	}},
	{"OPAQUE_PORTS", names.DefaultOpaquePorts, "ports (and ranges a-b) that skip protocol detection", func(c *Config, v string) error {
		ps, err := portList(v)
		if err != nil {
			return err
		}
		c.OpaquePorts = ps
		return nil
	}},
	{"GATEWAY", "", "gateway mode: namespace/name of the Gateway (GatewayClass sinew) this proxy serves; its listeners, certificates and routes come from the policy service", func(c *Config, v string) error {
		if v != "" {
			if ns, name, ok := strings.Cut(v, "/"); !ok || ns == "" || name == "" {
				return errors.New("must be namespace/name")
			}
		}
		c.Gateway = v
		return nil
	}},
	{"GATEWAY_LISTEN_HOST", "0.0.0.0", "gateway mode: the address the listener ports bind to", func(c *Config, v string) error {
		if net.ParseIP(v) == nil {
			return errors.New("must be an IP address")
		}
		c.GatewayHost = v
		return nil
	}},
	{"GATEWAY_PORT_MAP", "", "gateway mode: listener-port=local-port list for listeners bound to another port, e.g. 443=18443 (local mode, without root)", func(c *Config, v string) error {
		c.GatewayPortMap = nil
		for item := range splitList(v) {
			a, b, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("%q: want listener-port=local-port", item)
			}
			from, err := parsePort(a)
			if err != nil {
				return fmt.Errorf("%q: %w", item, err)
			}
			to, err := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
			if err != nil {
				return fmt.Errorf("%q: local port must be 0-65535", item)
			}
			if c.GatewayPortMap == nil {
				c.GatewayPortMap = map[uint16]uint16{}
			}
			c.GatewayPortMap[from] = uint16(to)
		}
		return nil
	}},
	{"INGRESS_MODE", "false", "true for an ingress controller's proxy: outbound HTTP requests go to the Service named by their sinew-dst-override header, else their Host, rather than to the address the controller connected to; names the mesh does not know still go there", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.IngressMode = b
		return nil
	}},
	{"IDENTITY_SVC_ADDR", "", "identity service address (required)", str(func(c *Config) *string { return &c.IdentityAddr })},
	{"IDENTITY_SVC_NAME", "", "SPIFFE ID the identity service must present (default: spiffe://<trust-domain>/ns/sinew/sa/sinew-identity)", str(func(c *Config) *string { return &c.IdentityName })},
	{"IDENTITY_LOCAL_NAME", "", "this workload's SPIFFE ID (required)", str(func(c *Config) *string { return &c.LocalName })},
	{"IDENTITY_TOKEN", "", "join token proving the identity (or IDENTITY_TOKEN_FILE)", str(func(c *Config) *string { return &c.Token })},
	{"IDENTITY_TOKEN_FILE", "", "file holding the identity token, re-read at every renewal", str(func(c *Config) *string { return &c.TokenFile })},
	{"IDENTITY_TRUST_ANCHORS", "", "PEM trust anchors (or IDENTITY_TRUST_ANCHORS_FILE)", str(func(c *Config) *string { return &c.TrustAnchorsPEM })},
	{"IDENTITY_TRUST_ANCHORS_FILE", "", "file with PEM trust anchors", str(func(c *Config) *string { return &c.TrustAnchorsFile })},
	{"DESTINATION_SVC_ADDR", "", "destination service address (required)", str(func(c *Config) *string { return &c.DestinationAddr })},
	{"DESTINATION_SVC_NAME", "", "SPIFFE ID the destination service must present (default: spiffe://<trust-domain>/ns/sinew/sa/sinew-destination)", str(func(c *Config) *string { return &c.DestinationName })},
	{"POLICY_SVC_ADDR", "", "policy service address: each target's outbound routes, retries, timeouts and failure accrual (it must present DESTINATION_SVC_NAME's identity); empty: every target gets the default policy, with no retries, timeouts or failure accrual", str(func(c *Config) *string { return &c.PolicyAddr })},
	{"DEFAULT_INBOUND_POLICY", names.DefaultInboundPolicy, "who may reach the workload's ports when there is no policy service (all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit); with one, the control plane sends each port's policy, and until it does this applies to ports no Server covers (INBOUND_SERVER_PORTS)", func(c *Config, v string) error {
		if _, err := authz.DefaultPolicy(v, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); err != nil {
			return err
		}
		c.DefaultInboundPolicy = v
		return nil
	}},
	{"INBOUND_SERVER_PORTS", "all", "ports (and ranges a-b) that a Server covers, as the proxy injector saw them, or all, or none: until the policy service first answers, these ports admit nobody and the others get DEFAULT_INBOUND_POLICY", func(c *Config, v string) error {
		switch strings.TrimSpace(v) {
		case "all":
			c.InboundServerPorts = nil
			return nil
		case "none":
			c.InboundServerPorts = []uint16{}
			return nil
		}
		ps, err := portList(v)
		if err != nil {
			return err
		}
		c.InboundServerPorts = ps
		return nil
	}},
	{"CLUSTER_NETWORKS", names.DefaultClusterNetworks, "the cluster's networks (CIDRs, comma-separated), for the cluster-* default inbound policies", func(c *Config, v string) error {
		c.ClusterNetworks = nil
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return err
			}
			c.ClusterNetworks = append(c.ClusterNetworks, p)
		}
		return nil
	}},
	{"LOG_LEVEL", "info", "debug, info, warn or error; changeable at runtime through PUT /proxy-log-level", func(c *Config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"LOG_FORMAT", "json", "json or text", func(c *Config, v string) error {
		if v != "json" && v != "text" {
			return errors.New("must be json or text")
		}
		c.LogFormat = v
		return nil
	}},
	{"DETECT_TIMEOUT", "10s", "how long to wait for a client's first bytes before treating the connection as opaque", dur(func(c *Config) *time.Duration { return &c.DetectTimeout })},
	{"CONNECT_TIMEOUT", "1s", "timeout for connecting to an endpoint or the application", dur(func(c *Config) *time.Duration { return &c.ConnectTimeout })},
	{"DISCOVERY_TIMEOUT", "5s", "how long a first request to a new destination waits for the control plane", dur(func(c *Config) *time.Duration { return &c.DiscoveryTimeout })},
	{"SHUTDOWN_GRACE_PERIOD", "2m", "how long a drain may take before remaining connections are closed", dur(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{"SHUTDOWN_DRAIN_DELAY", "0s", "how long the proxy keeps accepting after SIGTERM, reporting not ready, before it closes its listeners and drains (0s: at once)", durOrZero(func(c *Config) *time.Duration { return &c.ShutdownDrainDelay })},
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func addr(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, p, err := net.SplitHostPort(v); err != nil {
			return err
		} else if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("port %q: not a number 0-65535", p)
		}
		*field(c) = v
		return nil
	}
}

func dur(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (e.g. 500ms, 10s, 2m)")
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		*field(c) = d
		return nil
	}
}

// durOrZero is dur that also takes 0 (off).
func durOrZero(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (e.g. 0s, 500ms, 5s)")
		}
		if d < 0 {
			return errors.New("must not be negative")
		}
		*field(c) = d
		return nil
	}
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: must be 1-65535", s)
	}
	return uint16(n), nil
}

func splitList(v string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" && !yield(item) {
				return
			}
		}
	}
}

const envPrefix = "SINEW_PROXY_"

// Load reads the configuration from environ (os.Environ() form). Every bad value is reported, each with its
// variable name; unknown SINEW_PROXY_* variables are errors, so a typo is not silently ignored.
func Load(environ []string) (Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[strings.TrimPrefix(k, envPrefix)] = v
		}
	}
	var c Config
	var errs []error
	known := map[string]bool{}
	for _, ev := range envVars {
		known[ev.name] = true
		v, ok := env[ev.name]
		if !ok {
			v = ev.def
		}
		if err := ev.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s%s=%q: %w", envPrefix, ev.name, v, err))
		}
	}
	var unknown []string
	for k := range env {
		if !known[k] {
			unknown = append(unknown, envPrefix+k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("%s: unknown setting", k))
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks the settings that depend on each other.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s%s: required", envPrefix, name))
		}
	}
	need(c.IdentityAddr, "IDENTITY_SVC_ADDR")
	need(c.DestinationAddr, "DESTINATION_SVC_ADDR")
	need(c.LocalName, "IDENTITY_LOCAL_NAME")
	if c.LocalName != "" {
		td, _, _, err := meshtls.ParseID(c.LocalName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sIDENTITY_LOCAL_NAME: %w", envPrefix, err))
		} else {
			if c.IdentityName == "" {
				c.IdentityName = meshtls.ID(td, names.ControlPlaneNamespace, names.IdentityAccount)
			}
			if c.DestinationName == "" {
				c.DestinationName = meshtls.ID(td, names.ControlPlaneNamespace, names.DestinationAccount)
			}
			if len(c.TapAuthorizedIDs) == 0 {
				c.TapAuthorizedIDs = []string{meshtls.ID(td, names.VizNamespace, names.TapAccount)}
			}
		}
	}
	if (c.Token == "") == (c.TokenFile == "") {
		errs = append(errs, fmt.Errorf("%sIDENTITY_TOKEN or %sIDENTITY_TOKEN_FILE: set exactly one", envPrefix, envPrefix))
	}
	if (c.TrustAnchorsPEM == "") == (c.TrustAnchorsFile == "") {
		errs = append(errs, fmt.Errorf("%sIDENTITY_TRUST_ANCHORS or %sIDENTITY_TRUST_ANCHORS_FILE: set exactly one", envPrefix, envPrefix))
	}
	switch c.Mode {
	case ModeExplicit:
		if len(c.InboundPorts) == 0 && len(c.OutboundPorts) == 0 {
			errs = append(errs, fmt.Errorf("%sMODE=explicit: set %sINBOUND_PORTS and/or %sOUTBOUND_PORTS", envPrefix, envPrefix, envPrefix))
		}
	case ModeTransparent:
		if len(c.InboundPorts) > 0 || len(c.OutboundPorts) > 0 {
			errs = append(errs, fmt.Errorf("%sINBOUND_PORTS/OUTBOUND_PORTS only apply with %sMODE=explicit", envPrefix, envPrefix))
		}
	case ModeGateway:
		if c.Gateway == "" || c.PolicyAddr == "" {
			errs = append(errs, fmt.Errorf("%sMODE=gateway: set %sGATEWAY and %sPOLICY_SVC_ADDR (the gateway's listeners come from the policy service)", envPrefix, envPrefix, envPrefix))
		}
		if len(c.InboundPorts) > 0 || len(c.OutboundPorts) > 0 || c.IngressMode {
			errs = append(errs, fmt.Errorf("%sINBOUND_PORTS, OUTBOUND_PORTS and INGRESS_MODE do not apply with %sMODE=gateway", envPrefix, envPrefix))
		}
	}
	if c.Mode != ModeGateway && (c.Gateway != "" || len(c.GatewayPortMap) > 0) {
		errs = append(errs, fmt.Errorf("%sGATEWAY and GATEWAY_PORT_MAP only apply with %sMODE=gateway", envPrefix, envPrefix))
	}
	return errors.Join(errs...)
}

// anchorsPEM returns the trust anchors, reading the file if one was given.
func (c *Config) anchorsPEM() ([]byte, error) {
	if c.TrustAnchorsFile == "" {
		return []byte(c.TrustAnchorsPEM), nil
	}
	b, err := os.ReadFile(c.TrustAnchorsFile)
	if err != nil {
		return nil, fmt.Errorf("%sIDENTITY_TRUST_ANCHORS_FILE: %w", envPrefix, err)
	}
	return b, nil
}

// Usage describes every setting, for --help and the docs.
func Usage() string {
	var b strings.Builder
	for _, ev := range envVars {
		def := ev.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(&b, "  %s%s (default %s)\n      %s\n", envPrefix, ev.name, def, ev.help)
	}
	return b.String()
}

// Defaults returns a Config with every documented default applied and nothing else set; callers that build a
// Config in code (tests, `sinew run`) start from it.
func Defaults() Config {
	var c Config
	for _, ev := range envVars {
		if err := ev.set(&c, ev.def); err != nil {
			panic(fmt.Sprintf("default of %s%s: %v", envPrefix, ev.name, err))
		}
	}
	return c
}

// portList expands a list of ports and ranges (a-b); never nil.
func portList(v string) ([]uint16, error) {
	rs, err := ports.Parse(v, nil)
	if err != nil {
		return nil, err
	}
	out := []uint16{}
	for _, r := range rs {
		for p := int(r.From); p <= int(r.To); p++ {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}
