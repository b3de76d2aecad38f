package yamledit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// JSON is the document as compact JSON, keys in document order.
func (d *Doc) JSON() ([]byte, error) {
	if d.root == nil {
		return nil, nil
	}
	if d.json {
		return bytes.TrimSpace(d.text), nil
	}
	var b bytes.Buffer
	if err := (&jsonWriter{b: &b, limit: jsonLimit(len(d.text))}).write(d.y.Content[0], 0); err != nil {
		return nil, &Error{Doc: d.Index, Msg: err.Error()}
	}
	return b.Bytes(), nil
}

// jsonLimit bounds the JSON form of a document of n bytes: without aliases it is a few times its size; aliases
// that refer to aliases can make it exponentially larger (a "billion laughs" document), which is refused.
func jsonLimit(n int) int { return 10*n + 1<<20 }

var errAliasBomb = errors.New("the document expands to far more than its size through aliases (excessive aliasing)")

// Decode decodes the subtree at n (from this document) into v through JSON.
func (d *Doc) Decode(n *Node, v any) error {
	var js []byte
	if d.json {
		e, err := d.end(n)
		if err != nil {
			return err
		}
		js = d.text[n.Start:e]
	} else {
		var b bytes.Buffer
		if err := (&jsonWriter{b: &b, limit: jsonLimit(len(d.text))}).write(n.y, 0); err != nil {
			return err
		}
		js = b.Bytes()
	}
	return json.Unmarshal(js, v)
}

// YAML is the document as YAML: its own text for a YAML document, a block-style rendering of a JSON one.
func (d *Doc) YAML() ([]byte, error) {
	if d.root == nil || !d.json {
		return d.text, nil
	}
	n := jsonToYAML(d.root, d.text)
	restyle(n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	_ = enc.Close()
	return b.Bytes(), nil
}

// value is the document's meaning as Go values (json.Number for numbers), to compare before and after edits.
func (d *Doc) value() (any, error) {
	js, err := d.JSON()
	if err != nil {
		return nil, err
	}
	return decodeNumbers(js)
}

func decodeNumbers(js []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

const maxDepth = 1000

// jsonWriter writes a YAML tree as JSON, up to limit bytes.
type jsonWriter struct {
	b     *bytes.Buffer
	limit int
}

func (w *jsonWriter) write(n *yaml.Node, depth int) error { return yamlToJSON(w, n, depth) }

func yamlToJSON(w *jsonWriter, n *yaml.Node, depth int) error {
	b := w.b
	if depth > maxDepth {
		return errors.New("nested too deeply (or an alias refers to itself)")
	}
	if b.Len() > w.limit {
		return errAliasBomb
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			b.WriteString("null")
			return nil
		}
		return yamlToJSON(w, n.Content[0], depth+1)
	case yaml.AliasNode:
		return yamlToJSON(w, n.Alias, depth+1)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k := n.Content[i]
			for k.Kind == yaml.AliasNode {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a map key that is not a string", k.Line)
			}
			b.WriteString(jsonString(k.Value))
			b.WriteByte(':')
			if err := yamlToJSON(w, n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := yamlToJSON(w, c, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			b.WriteString(strconv.FormatBool(v))
		case "!!int":
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			out, _ := json.Marshal(v)
			b.Write(out)
		case "!!float":
			var v float64
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			if math.IsInf(v, 0) || math.IsNaN(v) {
				return fmt.Errorf("line %d: %s has no JSON form", n.Line, n.Value)
			}
			out, _ := json.Marshal(v)
			b.Write(out)
		default:
			b.WriteString(jsonString(n.Value))
		}
	default:
		return fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
	return nil
}

// addValue is Add's meaning on Go values.
func addValue(doc any, path []string, js []byte) (any, error) {
	v, err := decodeNumbers(js)
	if err != nil {
		return nil, err
	}
	var set func(cur any, i int) (any, error)
	set = func(cur any, i int) (any, error) {
		seg := path[i]
		last := i == len(path)-1
		switch c := cur.(type) {
		case nil:
			m := map[string]any{}
			return set(m, i)
		case map[string]any:
			if last {
				c[seg] = v
				return c, nil
			}
			child, err := set(c[seg], i+1)
			if err != nil {
				return nil, err
			}
			c[seg] = child
			return c, nil
		case []any:
			if last {
				idx := len(c)
				if seg != "-" {
					if idx, err = strconv.Atoi(seg); err != nil || idx < 0 || idx > len(c) {
						return nil, fmt.Errorf("no position %q", seg)
					}
				}
				return slices.Insert(c, idx, v), nil
			}
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(c) {
				return nil, fmt.Errorf("no item %q", seg)
			}
			child, err := set(c[idx], i+1)
			if err != nil {
				return nil, err
			}
			c[idx] = child
			return c, nil
		}
		return nil, fmt.Errorf("%q is below a scalar", strings.Join(path[:i+1], "/"))
	}
	return set(doc, 0)
}

// removeValue is Remove's meaning on Go values.
func removeValue(doc any, path []string) (any, error) {
	parent := doc
	for _, seg := range path[:len(path)-1] {
		switch c := parent.(type) {
		case map[string]any:
			parent = c[seg]
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(c) {
				return doc, nil
			}
			parent = c[idx]
		default:
			return doc, nil
		}
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		delete(c, last)
	case []any:
		idx, err := strconv.Atoi(last)
		if err != nil || idx < 0 || idx >= len(c) {
			return doc, nil
		}
		// replace the slice in its parent
		return addOrReplace(doc, path[:len(path)-1], slices.Delete(slices.Clone(c), idx, idx+1)), nil
	}
	return doc, nil
}

// addOrReplace sets the value at an existing path.
func addOrReplace(doc any, path []string, v any) any {
	if len(path) == 0 {
		return v
	}
	switch c := doc.(type) {
	case map[string]any:
		c[path[0]] = addOrReplace(c[path[0]], path[1:], v)
		return c
	case []any:
		idx, _ := strconv.Atoi(path[0])
		c[idx] = addOrReplace(c[idx], path[1:], v)
		return c
	}
	return doc
}
