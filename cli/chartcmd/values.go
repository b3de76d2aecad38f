// Package chartcmd is what the commands that render one of sinew's charts for kubectl share, whichever package
// they live in (sinew install and upgrade in package cli, sinew viz install in viz/cmd): Helm's ways of giving
// values, values checked against the chart's values.yaml, the installed control plane's values and trust anchors,
// and the rendered objects printed as a YAML stream or a JSON List. It knows no chart's values by name.
package chartcmd

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
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

// PullPolicies are Kubernetes' image pull policies.
var PullPolicies = []string{"Always", "IfNotPresent", "Never"}

// IsOneOf refuses v, the value at path, unless it is one of allowed.
func IsOneOf(path, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("value %s: %q is not one of %s", path, v, strings.Join(allowed, ", "))
	}
	return nil
}
