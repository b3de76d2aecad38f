// Package chartcmd is what the commands that render one of sinew's charts for kubectl share, whichever package
// they live in (sinew install and upgrade in package cli, sinew viz install in viz/cmd): Helm's ways of giving
// values, values checked against the chart's values.yaml, the installed control plane's values and trust anchors,
// and the rendered objects printed as a YAML stream or a JSON List. It knows no chart's values by name.
package chartcmd

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
)

// ValueFlags are Helm's ways of giving values: -f/--values, --set, --set-string, --set-file.
type ValueFlags struct {
	files, set, setString, setFile []string
}

// Register adds the flags to cmd.
func (v *ValueFlags) Register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&v.files, "values", "f", nil, "a YAML file of chart values (repeatable; '-' reads standard input)")
	f.StringArrayVar(&v.set, "set", nil, "set chart values: key1=val1,key2=val2 (repeatable)")
	f.StringArrayVar(&v.setString, "set-string", nil, "set chart values as strings: key1=val1,key2=val2 (repeatable)")
	f.StringArrayVar(&v.setFile, "set-file", nil, "set chart values from files: key1=path1,key2=path2 (repeatable)")
}

// Given says whether any of the flags was given.
func (v *ValueFlags) Given() bool {
	return len(v.files)+len(v.set)+len(v.setString)+len(v.setFile) > 0
}

// MergeInto applies the files (stdin for "-"), then --set, --set-string and --set-file, onto vals.
func (v *ValueFlags) MergeInto(stdin io.Reader, vals map[string]any) error {
	for _, name := range v.files {
		var (
			b   []byte
			err error
		)
		if strings.TrimSpace(name) == "-" {
			b, err = io.ReadAll(stdin)
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
		Merge(vals, m)
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

// Merge merges src into dst, maps key by key, anything else replaced.
func Merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				Merge(dm, sm)
				continue
			}
			cp := map[string]any{}
			Merge(cp, sm)
			dst[k] = cp
			continue
		}
		dst[k] = v
	}
}

// SetValue sets a dotted path (identity.issuer.tls.crtPEM) in vals, making the maps on the way.
func SetValue(vals map[string]any, path string, v any) {
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

// Value reads a dotted path; ok is false when a step is missing.
func Value(vals map[string]any, path string) (any, bool) {
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

// String reads a dotted path as text ("" when missing); numbers from YAML (float64) print without an exponent.
func String(vals map[string]any, path string) string {
	v, _ := Value(vals, path)
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

// WithDefaults checks vals against the chart's values.yaml and returns them merged over its defaults. A value the
// chart does not have is an error (a typo in --set would otherwise be ignored); below a default that is an empty
// map or a list (podLabels, nodeSelector, resources...) anything goes. listedIn says where the chart's values are
// documented, for that error ("" : the chart's values.yaml).
func WithDefaults(chart, listedIn string, vals map[string]any) (map[string]any, error) {
	b, err := charts.File(chart, "values.yaml")
	if err != nil {
		return nil, err
	}
	defaults := map[string]any{}
	if err := yaml.Unmarshal(b, &defaults); err != nil {
		return nil, fmt.Errorf("chart %s values.yaml: %w", chart, err)
	}
	if listedIn == "" {
		listedIn = "charts/" + chart + "/values.yaml"
	}
	if err := checkKeys(listedIn, vals, defaults, ""); err != nil {
		return nil, err
	}
	merged := map[string]any{}
	Merge(merged, defaults)
	Merge(merged, vals)
	return merged, nil
}

func checkKeys(listedIn string, vals, defaults map[string]any, prefix string) error {
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		d, ok := defaults[k]
		if !ok {
			return fmt.Errorf("unknown value %s%s (the chart's values are listed in %s)", prefix, k, listedIn)
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
			if err := checkKeys(listedIn, vm, dm, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// PullPolicies are Kubernetes' image pull policies.
var PullPolicies = []string{"Always", "IfNotPresent", "Never"}

// OneOf refuses the value at path unless it is one of allowed.
func OneOf(vals map[string]any, path string, allowed ...string) error {
	if v := String(vals, path); !slices.Contains(allowed, v) {
		return fmt.Errorf("value %s: %q is not one of %s", path, v, strings.Join(allowed, ", "))
	}
	return nil
}
