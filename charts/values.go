package charts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Values as Go types. A chart's values.yaml is decoded strictly into its type in a test, so the two cannot drift;
// the CLI sets fields of the type (a renamed value fails to compile) and merges Helm's --set and -f overrides as
// maps, then decodes the result strictly (a misspelt or mistyped override is an error naming the value).

// ErrUnknownValue is wrapped by DecodeValues' error for a key the type does not have.
var ErrUnknownValue = errors.New("unknown value")

// ValueError is a value that does not fit its type; Path is the dotted path of the value (proxy.logLevel).
type ValueError struct {
	Path string
	Err  error
}

func (e *ValueError) Error() string {
	if errors.Is(e.Err, ErrUnknownValue) {
		return "unknown value " + e.Path
	}
	return "value " + e.Path + ": " + e.Err.Error()
}

func (e *ValueError) Unwrap() error { return e.Err }

// DefaultValues are a chart's values.yaml as a map.
func DefaultValues(chart string) (map[string]any, error) {
	b, err := File(chart, "values.yaml")
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("chart %s values.yaml: %w", chart, err)
	}
	return m, nil
}

// DecodeValues decodes vals into out, a pointer to a values struct, strictly: a key the struct does not have, a
// map where the struct has a value (or the reverse) and a value of the wrong type are errors (*ValueError).
// Below a field of type map[string]any or []any anything goes (labels, resources, tolerations).
func DecodeValues(vals map[string]any, out any) error {
	if err := checkFields(reflect.TypeOf(out).Elem(), vals, ""); err != nil {
		return err
	}
	return decode(vals, out, true)
}

// DecodeValuesIgnoringUnknown decodes vals into out like DecodeValues but skips keys the struct does not have: for
// the values an installed control plane stored, which an older or newer CLI may have written.
func DecodeValuesIgnoringUnknown(vals map[string]any, out any) error {
	return decode(vals, out, false)
}

func decode(vals map[string]any, out any, strict bool) error {
	b, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &ValueError{Path: te.Field, Err: fmt.Errorf("%s is not %s", describeJSON(te.Value), describeType(te.Type))}
		}
		return err
	}
	return nil
}

// ValuesMap is v (a values struct) as the map Helm renders.
func ValuesMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkFields refuses keys t does not have, with their dotted paths.
func checkFields(t reflect.Type, vals map[string]any, prefix string) error {
	fields := jsonFields(t)
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		ft, ok := fields[k]
		if !ok {
			return &ValueError{Path: prefix + k, Err: ErrUnknownValue}
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.String {
			// labels and the like: JSON's error would not say which key
			m, _ := vals[k].(map[string]any)
			for _, mk := range slices.Sorted(maps.Keys(m)) {
				if _, ok := m[mk].(string); !ok && m[mk] != nil {
					return &ValueError{Path: prefix + k + "." + mk, Err: fmt.Errorf("%v is not %s", m[mk], describeType(ft.Elem()))}
				}
			}
			continue
		}
		if ft.Kind() != reflect.Struct {
			continue
		}
		sub, isMap := vals[k].(map[string]any)
		if !isMap {
			if vals[k] == nil {
				continue
			}
			return &ValueError{Path: prefix + k, Err: fmt.Errorf("must be a map (of %s)", strings.Join(slices.Sorted(maps.Keys(jsonFields(ft))), ", "))}
		}
		if err := checkFields(ft, sub, prefix+k+"."); err != nil {
			return err
		}
	}
	return nil
}

// jsonFields are a struct's fields by JSON name.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func describeJSON(v string) string {
	switch v {
	case "object":
		return "a map"
	case "array":
		return "a list"
	case "string":
		return "text"
	case "bool":
		return "true/false"
	}
	if strings.HasPrefix(v, "number") {
		return "a " + v
	}
	return v
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text (quote it, or use --set-string)"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Map, reflect.Struct:
		return "a map"
	case reflect.Slice:
		return "a list"
	}
	return "a " + t.String()
}
