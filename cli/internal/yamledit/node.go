package yamledit

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Kind of a node.
type Kind int

const (
	Scalar Kind = iota
	Map
	Seq
	Alias
)

// Node is a node of a document with its position in the document's text.
type Node struct {
	Kind Kind
	// Tag is the resolved YAML tag of a scalar (!!str, !!int, !!bool, !!null, !!float …).
	Tag string
	// Value is a scalar's value (decoded).
	Value string
	// Keys and Values are a map's entries, in order; Items a sequence's.
	Keys, Values []*Node
	Items        []*Node

	// Start is the byte offset of the node in the document text: a flow collection's bracket, a block
	// collection's first key or dash, a scalar's first character.
	Start int
	// end is the offset just past the node when known (JSON, and computed lazily for YAML): -1 when not computed.
	end  int
	flow bool
	// style is the scalar style (plain, quoted, literal …) for YAML; quoted for JSON strings.
	style yaml.Style
	// decorated: the node has an anchor or an explicit tag; its text does not start with its content.
	decorated bool
	// inFlow: the node is inside a flow collection (or is one).
	inFlow bool
	y      *yaml.Node
}

// Get returns the value of key in a map, or nil.
func (n *Node) Get(key string) *Node {
	if n == nil || n.Kind != Map {
		return nil
	}
	for i, k := range n.Keys {
		if k.Value == key {
			return n.Values[i]
		}
	}
	return nil
}

// Path follows keys (and decimal indexes into sequences) from n; nil when any step is missing.
func (n *Node) Path(path ...string) *Node {
	for _, p := range path {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case Map:
			n = n.Get(p)
		case Seq:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Items) {
				return nil
			}
			n = n.Items[i]
		default:
			return nil
		}
	}
	return n
}

// Str is a scalar's value ("" for anything else or a null).
func (n *Node) Str() string {
	if n == nil || n.Kind != Scalar || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// IsNull reports a missing node or an explicit null.
func (n *Node) IsNull() bool { return n == nil || n.Kind == Scalar && n.Tag == "!!null" }

// Empty reports a null, an empty map or an empty sequence.
func (n *Node) Empty() bool {
	return n.IsNull() || n.Kind == Map && len(n.Keys) == 0 || n.Kind == Seq && len(n.Items) == 0
}

// Doc is one document that can be edited.
type Doc struct {
	Index, Line int // as in Segment

	text  []byte
	json  bool
	root  *Node
	y     *yaml.Node // YAML: the document node
	lines []int      // offsets of line starts
	nl    string     // newline style

	rewritten bool
}

// Rewritten reports whether an edit had to rewrite the whole document from its tree (its layout defeated
// splicing): the content is right and comments are kept, but indentation and quoting may have changed.
func (d *Doc) Rewritten() bool { return d.rewritten }

// Parse parses a segment. A document that holds nothing (comments, blank lines, a lone "---") has a nil Root.
func Parse(seg Segment) (*Doc, error) {
	d := &Doc{Index: seg.Index, Line: seg.Line}
	if err := d.setText(seg.Text); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Doc) setText(text []byte) error {
	d.text = text
	d.lines = d.lines[:0]
	d.lines = append(d.lines, 0)
	for i, b := range text {
		if b == '\n' && i+1 < len(text) {
			d.lines = append(d.lines, i+1)
		}
	}
	d.nl = "\n"
	if bytes.Contains(text, []byte("\r\n")) {
		d.nl = "\r\n"
	}
	d.json = looksJSON(text)
	d.root, d.y = nil, nil
	if d.json {
		root, err := parseJSON(text)
		if err != nil {
			return d.wrap(err)
		}
		d.root = root
		return nil
	}
	var y yaml.Node
	if err := yaml.Unmarshal(text, &y); err != nil {
		return d.wrap(err)
	}
	if y.Kind != yaml.DocumentNode || len(y.Content) == 0 {
		return nil
	}
	d.y = &y
	content := y.Content[0]
	if content.Kind == yaml.ScalarNode && content.Tag == "!!null" && content.Value == "" {
		return nil // a lone "---"
	}
	d.root = d.fromYAML(content, false)
	return nil
}

// Root is the document's top node, nil for an empty document.
func (d *Doc) Root() *Node { return d.root }

// IsJSON reports whether the document is JSON (its first significant character opens an object or array).
func (d *Doc) IsJSON() bool { return d.json }

// Bytes is the document's current text.
func (d *Doc) Bytes() []byte { return d.text }

func looksJSON(text []byte) bool {
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// wrap turns a parse error into an Error with the stream's line numbers.
func (d *Doc) wrap(err error) error {
	var je *jsonError
	if errors.As(err, &je) {
		line, col := d.pos(je.off)
		return &Error{Doc: d.Index, Line: d.Line + line, Col: col + 1, Msg: je.msg}
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{Doc: d.Index, Line: d.Line + n - 1, Msg: m[2]}
	}
	return &Error{Doc: d.Index, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// pos is the 0-based line and byte column of off.
func (d *Doc) pos(off int) (line, col int) {
	lo, hi := 0, len(d.lines)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if d.lines[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, off - d.lines[lo]
}

// offset converts yaml.v3's 1-based line and (rune) column into a byte offset.
func (d *Doc) offset(line, col int) int {
	if line < 1 || line > len(d.lines) {
		return len(d.text)
	}
	off := d.lines[line-1]
	for c := 1; c < col && off < len(d.text) && d.text[off] != '\n'; c++ {
		_, size := decodeRune(d.text[off:])
		off += size
	}
	return off
}

func decodeRune(b []byte) (rune, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0] < 0x80 {
		return rune(b[0]), 1
	}
	r := []rune(string(b[:min(4, len(b))]))
	if len(r) == 0 {
		return 0, 1
	}
	return r[0], len(string(r[0]))
}

func (d *Doc) fromYAML(y *yaml.Node, inFlow bool) *Node {
	n := &Node{Start: d.offset(y.Line, y.Column), end: -1, y: y, style: y.Style, flow: y.Style&yaml.FlowStyle != 0,
		decorated: y.Anchor != "" || y.Style&yaml.TaggedStyle != 0}
	n.inFlow = inFlow || n.flow
	switch y.Kind {
	case yaml.MappingNode:
		n.Kind = Map
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := d.fromYAML(y.Content[i], n.inFlow), d.fromYAML(y.Content[i+1], n.inFlow)
			n.Keys, n.Values = append(n.Keys, k), append(n.Values, v)
		}
	case yaml.SequenceNode:
		n.Kind = Seq
		for _, c := range y.Content {
			n.Items = append(n.Items, d.fromYAML(c, n.inFlow))
		}
	case yaml.AliasNode:
		n.Kind = Alias
		n.decorated = true
	default:
		n.Kind, n.Tag, n.Value = Scalar, y.ShortTag(), y.Value
	}
	return n
}
