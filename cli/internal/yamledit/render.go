package yamledit

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// yamlFromJSON turns a JSON value into a yaml.v3 node in block style, quoting strings that a YAML 1.1 reader
// (kubectl's) would take for something else.
func yamlFromJSON(js []byte) (*yaml.Node, error) {
	j, err := parseJSON(js)
	if err != nil {
		return nil, err
	}
	n := jsonToYAML(j, js)
	restyle(n)
	return n, nil
}

// jsonToYAML converts a parsed JSON value (src is its text) into yaml.v3 nodes, keeping key order.
func jsonToYAML(j *Node, src []byte) *yaml.Node {
	switch j.Kind {
	case Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i, k := range j.Keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value}, jsonToYAML(j.Values[i], src))
		}
		return n
	case Seq:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, it := range j.Items {
			n.Content = append(n.Content, jsonToYAML(it, src))
		}
		return n
	}
	if j.Tag == "!!str" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: j.Value}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: j.Tag, Value: string(src[j.Start:j.end])}
}

func restyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		switch {
		case strings.Contains(n.Value, "\n") && !strings.ContainsAny(n.Value, "\t\r") && !hasTrailingSpace(n.Value):
			n.Style = yaml.LiteralStyle
		case needsQuotes(n.Value):
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		restyle(c)
	}
}

func hasTrailingSpace(s string) bool {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasSuffix(line, " ") {
			return true
		}
	}
	return false
}

var (
	yaml11Bool   = regexp.MustCompile(`^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|true|True|TRUE|false|False|FALSE)$`)
	yaml11Number = regexp.MustCompile(`^[-+]?(\.?[0-9]|0b|0x|0o)|^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$`)
)

// needsQuotes reports strings that YAML 1.1 or 1.2 would read as a non-string when written plain (yaml.v3 quotes
// the 1.2 ones itself; kubectl reads YAML 1.1, where "yes", "on" and "1_000" are not strings).
func needsQuotes(s string) bool {
	if yaml11Bool.MatchString(s) {
		return true
	}
	if yaml11Number.MatchString(s) && strings.ContainsAny(s, "_:") {
		return true
	}
	return false
}

// encodeBlock renders n as block YAML with the document's indentation; the result has no final newline.
func (d *Doc) encodeBlock(n *yaml.Node) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	step, compact := d.style()
	enc.SetIndent(step)
	if compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(n); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// indentLines prefixes every line but the first with pad.
func (d *Doc) indentLines(s string, pad int) string {
	lines := strings.Split(s, "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" {
			lines[i] = strings.Repeat(" ", pad) + lines[i]
		}
	}
	return strings.Join(lines, d.nl)
}

// renderEntry renders "key: value" for a block map whose keys are at column c.
func (d *Doc) renderEntry(key string, js []byte, c int) (string, error) {
	v, err := yamlFromJSON(js)
	if err != nil {
		return "", err
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	restyle(k)
	s, err := d.encodeBlock(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, v}})
	if err != nil {
		return "", err
	}
	return d.indentLines(s, c), nil
}

// renderItem renders a sequence item's value (what follows "- ") with continuation lines at column c.
func (d *Doc) renderItem(js []byte, c int) (string, error) {
	v, err := yamlFromJSON(js)
	if err != nil {
		return "", err
	}
	s, err := d.encodeBlock(v)
	if err != nil {
		return "", err
	}
	return d.indentLines(s, c), nil
}

// renderScalar renders a scalar value in the style of the node it replaces.
func renderScalar(js []byte, old *Node, jsonDoc bool) string {
	var s string
	if json.Unmarshal(js, &s) != nil {
		return string(js) // a number, boolean or null: the same text in YAML and JSON
	}
	if jsonDoc || old.style&yaml.DoubleQuotedStyle != 0 {
		return jsonString(s)
	}
	if old.style&yaml.SingleQuotedStyle != 0 && !strings.Contains(s, "\n") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	restyle(n)
	if n.Style == yaml.LiteralStyle {
		return jsonString(s) // replacing a one-line value: keep it on one line
	}
	out, err := yaml.Marshal(n)
	if err != nil || bytes.Count(out, []byte("\n")) > 1 {
		return jsonString(s)
	}
	if old.inFlow && bytes.ContainsAny(out, ",[]{}") {
		return jsonString(s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// flowJSON renders a JSON value for a flow context, keeping its key order: on one line with ", " and ": "
// separators, or (pretty) across lines with continuation lines at column c and step spaces per level.
// With plain set (a YAML document), strings that need no quotes in a flow collection are written without them.
func flowJSON(js []byte, pretty, plain bool, c, step int, nl string) string {
	n, err := parseJSON(js)
	if err != nil {
		return string(js)
	}
	var b bytes.Buffer
	writeJSON(&b, js, n, pretty, plain, c, step, nl)
	return b.String()
}

var plainFlow = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./-]*$`)

// flowString writes s for a flow collection: plain when allowed and unambiguous, else JSON-quoted.
func flowString(s string, plain bool) string {
	if plain && plainFlow.MatchString(s) && !yaml11Bool.MatchString(s) && !strings.EqualFold(s, "null") {
		return s
	}
	return jsonString(s)
}

func writeJSON(b *bytes.Buffer, src []byte, n *Node, pretty, plain bool, c, step int, nl string) {
	pad := func(n int) string { return nl + strings.Repeat(" ", n) }
	opening, closing, count := byte('['), byte(']'), len(n.Items)
	if n.Kind == Map {
		opening, closing, count = '{', '}', len(n.Keys)
	}
	switch {
	case n.Kind == Scalar && n.Tag == "!!str":
		b.WriteString(flowString(n.Value, plain))
		return
	case n.Kind == Scalar:
		b.Write(src[n.Start:n.end])
		return
	case count == 0:
		b.WriteByte(opening)
		b.WriteByte(closing)
		return
	}
	b.WriteByte(opening)
	for i := range count {
		if i > 0 {
			b.WriteByte(',')
			if !pretty {
				b.WriteByte(' ')
			}
		}
		if pretty {
			b.WriteString(pad(c + step))
		}
		var v *Node
		if n.Kind == Map {
			b.WriteString(flowString(n.Keys[i].Value, plain))
			b.WriteString(": ")
			v = n.Values[i]
		} else {
			v = n.Items[i]
		}
		writeJSON(b, src, v, pretty, plain, c+step, step, nl)
	}
	if pretty {
		b.WriteString(pad(c))
	}
	b.WriteByte(closing)
}
