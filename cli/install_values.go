package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
)

// valuesListedIn says where a chart's values are documented, for errors about unknown values.
func valuesListedIn(chart string) string {
	file := "charts/" + chart + "/values.yaml"
	if chart == charts.ControlPlane {
		return "docs/reference/cli.md and " + file
	}
	return file
}

// controlPlaneValues decodes complete control-plane values (merged over the chart's defaults) strictly; an unknown
// value's error says where the values are listed.
func controlPlaneValues(vals map[string]any) (*charts.ControlPlaneValues, error) {
	v, err := charts.DecodeControlPlaneValues(vals)
	if errors.Is(err, charts.ErrUnknownValue) {
		return nil, fmt.Errorf("%w (the chart's values are listed in %s)", err, valuesListedIn(charts.ControlPlane))
	}
	return v, err
}

// validateValues checks the control-plane values that the templates would otherwise render into broken objects;
// each error names the value.
func validateValues(v *charts.ControlPlaneValues) error {
	checks := []error{
		chartcmd.IsOneOf("defaultInboundPolicy", v.DefaultInboundPolicy, names.InboundPolicies...),
		chartcmd.IsOneOf("image.pullPolicy", v.Image.PullPolicy, chartcmd.PullPolicies...),
		chartcmd.IsOneOf("proxy.logLevel", v.Proxy.LogLevel, names.LogLevels...),
		chartcmd.IsOneOf("proxy.logFormat", v.Proxy.LogFormat, names.LogFormats...),
		chartcmd.IsOneOf("controllerLogLevel", v.ControllerLogLevel, names.LogLevels...),
		chartcmd.IsOneOf("controllerLogFormat", v.ControllerLogFormat, names.LogFormats...),
		chartcmd.IsOneOf("proxyInjector.failurePolicy", v.ProxyInjector.FailurePolicy, "Ignore", "Fail"),
	}
	for _, p := range []struct{ path, v string }{
		{"proxyInit.skipInboundPorts", v.ProxyInit.SkipInboundPorts},
		{"proxyInit.skipOutboundPorts", v.ProxyInit.SkipOutboundPorts},
		{"proxyInit.kubeAPIServerPorts", v.ProxyInit.KubeAPIServerPorts},
		{"proxy.opaquePorts", v.Proxy.OpaquePorts},
	} {
		if p.v != "" {
			// as sinew-init and the controllers will read it
			if _, err := ports.Parse(p.v, nil); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %w", p.path, err))
			}
		}
	}
	for _, p := range []struct{ path, v string }{{"clusterNetworks", v.ClusterNetworks}, {"probeNetworks", v.ProbeNetworks}} {
		// as the destination controller will read it: networks in CIDR notation or addresses, comma-separated
		for _, n := range strings.Split(p.v, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if _, err := netip.ParsePrefix(n); err != nil {
				if _, err := netip.ParseAddr(n); err != nil {
					checks = append(checks, fmt.Errorf("value %s: %q is not a network in CIDR notation (10.0.0.0/8, fd00::/8)", p.path, n))
				}
			}
		}
	}
	for _, p := range []struct{ path, v string }{{"clusterDomain", v.ClusterDomain}, {"identity.trustDomain", v.Identity.TrustDomain}} {
		if p.v != "" && !names.IsDNSName(p.v) {
			checks = append(checks, fmt.Errorf("value %s: %q is not a lower-case DNS name", p.path, p.v))
		}
	}
	if v.ClusterDomain == "" {
		checks = append(checks, fmt.Errorf("value clusterDomain: must not be empty"))
	}
	if d := v.Identity.Issuer.IssuanceLifetime; d != "" {
		if l, err := time.ParseDuration(d); err != nil || l < time.Minute {
			checks = append(checks, fmt.Errorf("value identity.issuer.issuanceLifetime: %q is not a duration of at least 1m", d))
		}
	}
	for _, p := range []struct{ path, v string }{{"proxy.connectTimeout", v.Proxy.ConnectTimeout}, {"proxy.shutdownGracePeriod", v.Proxy.ShutdownGracePeriod}} {
		if p.v != "" {
			if _, err := time.ParseDuration(p.v); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %q is not a duration (like 1s or 2m)", p.path, p.v))
			}
		}
	}
	res := v.Proxy.Resources
	for _, p := range []struct{ path, v string }{
		{"proxy.resources.cpu.request", res.CPU.Request}, {"proxy.resources.cpu.limit", res.CPU.Limit},
		{"proxy.resources.memory.request", res.Memory.Request}, {"proxy.resources.memory.limit", res.Memory.Limit},
	} {
		if p.v != "" {
			if _, err := resource.ParseQuantity(p.v); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %q is not a quantity (like 100m or 64Mi)", p.path, p.v))
			}
		}
	}
	if v.ControllerReplicas < 1 {
		checks = append(checks, fmt.Errorf("value controllerReplicas: %d is not a whole number of at least 1", v.ControllerReplicas))
	}
	for _, p := range []struct {
		path string
		v    int64
	}{{"proxy.uid", v.Proxy.UID}, {"controllerUID", v.ControllerUID}} {
		if p.v < 1 {
			checks = append(checks, fmt.Errorf("value %s: %d is not a user ID above 0", p.path, p.v))
		}
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}
