package charts

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestControlPlaneValuesMatchValuesYAML decodes values.yaml (and values-ha.yaml) strictly into ControlPlaneValues
// and back: a value the type lacks fails the decode, a field values.yaml lacks shows up in the round trip.
func TestControlPlaneValuesMatchValuesYAML(t *testing.T) {
	for _, file := range []string{"values.yaml", "values-ha.yaml"} {
		t.Run(file, func(t *testing.T) {
			defaults, err := DefaultValues(ControlPlane)
			if err != nil {
				t.Fatal(err)
			}
			b, err := File(ControlPlane, file)
			if err != nil {
				t.Fatal(err)
			}
			// strict YAML first: a duplicate or unknown key in the file itself
			var direct ControlPlaneValues
			if err := yaml.UnmarshalStrict(b, &direct); err != nil {
				t.Fatalf("%s does not fit ControlPlaneValues: %v", file, err)
			}
			m := map[string]any{}
			if err := yaml.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			merged := mergeForTest(defaults, m)
			v, err := DecodeControlPlaneValues(merged)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			back, err := v.Map()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, merged) {
				gb, _ := yaml.Marshal(back)
				wb, _ := yaml.Marshal(merged)
				t.Fatalf("ControlPlaneValues round trip differs from %s (a field the file lacks, or omitempty):\ngot:\n%s\nwant:\n%s", file, gb, wb)
			}
		})
	}
}

// TestVizValuesMatchValuesYAML: the same for the sinew-viz chart and VizValues.
func TestVizValuesMatchValuesYAML(t *testing.T) {
	b, err := File(Viz, "values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var direct VizValues
	if err := yaml.UnmarshalStrict(b, &direct); err != nil {
		t.Fatalf("values.yaml does not fit VizValues: %v", err)
	}
	defaults, err := DefaultValues(Viz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeVizValues(defaults)
	if err != nil {
		t.Fatal(err)
	}
	back, err := v.Map()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, defaults) {
		gb, _ := yaml.Marshal(back)
		wb, _ := yaml.Marshal(defaults)
		t.Fatalf("VizValues round trip differs from values.yaml (a field the file lacks, or omitempty):\ngot:\n%s\nwant:\n%s", gb, wb)
	}
}

func mergeForTest(dst, src map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = mergeForTest(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func TestDecodeValuesNamesTheValue(t *testing.T) {
	cases := map[string]struct {
		vals map[string]any
		want string
	}{
		"unknown":         {map[string]any{"proxy": map[string]any{"logLvl": "debug"}}, "unknown value proxy.logLvl"},
		"map replaced":    {map[string]any{"proxy": 1}, "value proxy: must be a map (of await, connectTimeout,"},
		"string for int":  {map[string]any{"proxy": map[string]any{"uid": "abc"}}, "value proxy.uid: text is not a whole number"},
		"string for bool": {map[string]any{"proxy": map[string]any{"await": "false"}}, "value proxy.await: text is not true or false"},
		"number label":    {map[string]any{"podLabels": map[string]any{"version": 1}}, "value podLabels.version: 1 is not text"},
		"fraction":        {map[string]any{"controllerReplicas": 1.5}, "value controllerReplicas: a number 1.5 is not a whole number"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeControlPlaneValues(c.vals)
			var ve *ValueError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want a *ValueError containing %q", err, c.want)
			}
		})
	}
	// free-form values take anything
	if _, err := DecodeControlPlaneValues(map[string]any{"controllerResources": map[string]any{"limits": map[string]any{"cpu": 1}},
		"tolerations": []any{map[string]any{"key": "k"}}, "nodeSelector": map[string]any{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
}
