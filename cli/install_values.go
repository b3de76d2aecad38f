package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
)

// valueFlags are Helm's ways of giving values: -f/--values, --set, --set-string, --set-file.
type valueFlags struct {
	files, set, setString, setFile []string
}

func (v *valueFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&v.files, "values", "f", nil, "a YAML file of chart values (repeatable; '-' reads standard input)")
	f.StringArrayVar(&v.set, "set", nil, "set chart values: key1=val1,key2=val2 (repeatable)")
	f.StringArrayVar(&v.setString, "set-string", nil, "set chart values as strings: key1=val1,key2=val2 (repeatable)")
	f.StringArrayVar(&v.setFile, "set-file", nil, "set chart values from files: key1=path1,key2=path2 (repeatable)")
}

// given says whether any of the flags was given.
func (v *valueFlags) given() bool {
	return len(v.files)+len(v.set)+len(v.setString)+len(v.setFile) > 0
}

// mergeInto applies the files, then --set, --set-string and --set-file, onto vals.
func (v *valueFlags) mergeInto(env *Env, vals map[string]any) error {
	for _, name := range v.files {
		var (
			b   []byte
			err error
		)
		if strings.TrimSpace(name) == "-" {
			b, err = io.ReadAll(env.Stdin)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return fmt.Errorf("--values %s: %w", name, err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("--values %s: not a YAML map of values: %w", name, err)
		}
		mergeValues(vals, m)
	}
	for _, s := range v.set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return fmt.Errorf("--set %q: %w", s, err)
		}
	}
	for _, s := range v.setString {
		if err := strvals.ParseIntoString(s, vals); err != nil {
			return fmt.Errorf("--set-string %q: %w", s, err)
		}
	}
	for _, s := range v.setFile {
		reader := func(rs []rune) (any, error) {
			b, err := os.ReadFile(string(rs))
			if err != nil {
				return nil, err
			}
			return string(b), nil
		}
		if err := strvals.ParseIntoFile(s, vals, reader); err != nil {
			return fmt.Errorf("--set-file %q: %w", s, err)
		}
	}
	return nil
}

// mergeValues merges src into dst, maps key by key, anything else replaced.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
			cp := map[string]any{}
			mergeValues(cp, sm)
			dst[k] = cp
			continue
		}
		dst[k] = v
	}
}

// setValue sets a dotted path (identity.issuer.tls.crtPEM) in vals, making the maps on the way.
func setValue(vals map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := vals
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// getValue reads a dotted path; ok is false when a step is missing.
func getValue(vals map[string]any, path string) (any, bool) {
	var cur any = vals
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// getString reads a dotted path as text ("" when missing); numbers from YAML (float64) print without an exponent.
func getString(vals map[string]any, path string) string {
	v, _ := getValue(vals, path)
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// chartDefaults are a chart's values.yaml.
func chartDefaults(name string) (map[string]any, error) { return charts.DefaultValues(name) }

// withDefaults checks vals against the chart's values.yaml (checkKeys) and returns them merged over its defaults.
func withDefaults(chart string, vals map[string]any) (map[string]any, error) {
	defaults, err := chartDefaults(chart)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(chart, vals, defaults, ""); err != nil {
		return nil, err
	}
	merged := map[string]any{}
	mergeValues(merged, defaults)
	mergeValues(merged, vals)
	return merged, nil
}

// valuesListedIn says where a chart's values are documented, for checkKeys' error.
func valuesListedIn(chart string) string {
	file := "charts/" + chart + "/values.yaml"
	if chart == charts.ControlPlane {
		return "docs/reference/cli.md and " + file
	}
	return file
}

// checkKeys refuses values the chart does not have: a typo in --set would otherwise be ignored. Below a default
// that is an empty map or a list (podLabels, nodeSelector, controllerResources...) anything goes.
func checkKeys(chart string, vals, defaults map[string]any, prefix string) error {
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		d, ok := defaults[k]
		if !ok {
			return fmt.Errorf("unknown value %s%s (the chart's values are listed in %s)", prefix, k, valuesListedIn(chart))
		}
		dm, dIsMap := d.(map[string]any)
		vm, vIsMap := vals[k].(map[string]any)
		if dIsMap && len(dm) > 0 {
			if !vIsMap {
				if vals[k] == nil {
					continue
				}
				return fmt.Errorf("value %s%s: must be a map (of %s)", prefix, k, strings.Join(slices.Sorted(maps.Keys(dm)), ", "))
			}
			if err := checkKeys(chart, vm, dm, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

var pullPolicies = []string{"Always", "IfNotPresent", "Never"}

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
		isOneOf("defaultInboundPolicy", v.DefaultInboundPolicy, names.InboundPolicies...),
		isOneOf("image.pullPolicy", v.Image.PullPolicy, pullPolicies...),
		isOneOf("proxy.logLevel", v.Proxy.LogLevel, names.LogLevels...),
		isOneOf("proxy.logFormat", v.Proxy.LogFormat, names.LogFormats...),
		isOneOf("controllerLogLevel", v.ControllerLogLevel, names.LogLevels...),
		isOneOf("controllerLogFormat", v.ControllerLogFormat, names.LogFormats...),
		isOneOf("proxyInjector.failurePolicy", v.ProxyInjector.FailurePolicy, "Ignore", "Fail"),
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

// isOneOf refuses the value v at path unless it is one of allowed.
func isOneOf(path, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("value %s: %q is not one of %s", path, v, strings.Join(allowed, ", "))
	}
	return nil
}

// oneOf refuses the value at path unless it is one of allowed.
func oneOf(vals map[string]any, path string, allowed ...string) error {
	if v := getString(vals, path); !slices.Contains(allowed, v) {
		return fmt.Errorf("value %s: %q is not one of %s", path, v, strings.Join(allowed, ", "))
	}
	return nil
}
