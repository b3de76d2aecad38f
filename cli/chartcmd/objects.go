package chartcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
)

// CheckOutput validates the --output of a command that prints objects with WriteObjects.
func CheckOutput(output string) error {
	if output != "yaml" && output != "json" {
		return fmt.Errorf("--output %q: want yaml or json", output)
	}
	return nil
}

// WriteObjects prints objects as a YAML stream, or as one JSON List.
func WriteObjects(w io.Writer, objs []charts.Object, output string) error {
	if output == "json" {
		items := make([]json.RawMessage, 0, len(objs))
		for _, o := range objs {
			j, err := yaml.YAMLToJSON([]byte(o.YAML))
			if err != nil {
				return fmt.Errorf("%s: %w", o.Ref(), err)
			}
			items = append(items, j)
		}
		b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err = w.Write(out.Bytes())
		return err
	}
	var b strings.Builder
	for _, o := range objs {
		b.WriteString("---\n")
		b.WriteString(o.YAML)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// IdentifyingYAML is the part of an object kubectl delete needs.
func IdentifyingYAML(o charts.Object) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", o.APIVersion, o.Kind, o.Name)
	if o.Namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", o.Namespace)
	}
	return b.String()
}
