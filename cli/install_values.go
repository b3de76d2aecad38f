package cli

import (
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
func chartDefaults(name string) (map[string]any, error) {
	b, err := charts.File(name, "values.yaml")
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("chart %s values.yaml: %w", name, err)
	}
	return m, nil
}

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

// validateValues checks the merged control-plane values that the templates would otherwise render into broken
// objects; each error names the value.
func validateValues(vals map[string]any) error {
	checks := []error{
		oneOf(vals, "defaultInboundPolicy", names.InboundPolicies...),
		oneOf(vals, "image.pullPolicy", pullPolicies...),
		oneOf(vals, "proxy.logLevel", names.LogLevels...),
		oneOf(vals, "proxy.logFormat", names.LogFormats...),
		oneOf(vals, "controllerLogLevel", names.LogLevels...),
		oneOf(vals, "controllerLogFormat", names.LogFormats...),
		oneOf(vals, "proxyInjector.failurePolicy", "Ignore", "Fail"),
	}
	for _, p := range []string{"proxyInit.skipInboundPorts", "proxyInit.skipOutboundPorts", "proxyInit.kubeAPIServerPorts", "proxy.opaquePorts"} {
		if v := getString(vals, p); v != "" {
			// as sinew-init and the controllers will read it
			if _, err := ports.Parse(v, nil); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %w", p, err))
			}
		}
	}
	for _, p := range []string{"clusterDomain", "identity.trustDomain"} {
		if v := getString(vals, p); v != "" && !names.IsDNSName(v) {
			checks = append(checks, fmt.Errorf("value %s: %q is not a lower-case DNS name", p, v))
		}
	}
	if getString(vals, "clusterDomain") == "" {
		checks = append(checks, fmt.Errorf("value clusterDomain: must not be empty"))
	}
	if d := getString(vals, "identity.issuer.issuanceLifetime"); d != "" {
		if v, err := time.ParseDuration(d); err != nil || v < time.Minute {
			checks = append(checks, fmt.Errorf("value identity.issuer.issuanceLifetime: %q is not a duration of at least 1m", d))
		}
	}
	for _, p := range []string{"proxy.connectTimeout", "proxy.shutdownGracePeriod"} {
		if d := getString(vals, p); d != "" {
			if _, err := time.ParseDuration(d); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %q is not a duration (like 1s or 2m)", p, d))
			}
		}
	}
	for _, p := range []string{"proxy.resources.cpu.request", "proxy.resources.cpu.limit", "proxy.resources.memory.request", "proxy.resources.memory.limit"} {
		if q := getString(vals, p); q != "" {
			if _, err := resource.ParseQuantity(q); err != nil {
				checks = append(checks, fmt.Errorf("value %s: %q is not a quantity (like 100m or 64Mi)", p, q))
			}
		}
	}
	if r, ok := getValue(vals, "controllerReplicas"); ok {
		if n, err := strconv.Atoi(fmt.Sprint(r)); err != nil || n < 1 {
			checks = append(checks, fmt.Errorf("value controllerReplicas: %v is not a whole number of at least 1", r))
		}
	}
	for _, p := range []string{"proxy.uid", "controllerUID"} {
		if r, ok := getValue(vals, p); ok {
			if n, err := strconv.Atoi(fmt.Sprint(r)); err != nil || n < 1 {
				checks = append(checks, fmt.Errorf("value %s: %v is not a user ID above 0", p, r))
			}
		}
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
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
