package yamledit

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// treeAdd makes Add's change in the YAML tree and rewrites the document from it.
func (d *Doc) treeAdd(path []string, js []byte) error {
	n := d.y.Content[0]
	for i, seg := range path {
		last := i == len(path)-1
		switch n.Kind {
		case yaml.MappingNode:
			idx := keyIndex(n, seg)
			if last || idx < 0 || isNullNode(n.Content[idx+1]) {
				v, err := yamlFromJSON(nest(path[i+1:], js))
				if err != nil {
					return err
				}
				if idx < 0 {
					n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}, v)
				} else {
					n.Content[idx+1] = v
				}
				return d.encodeTree()
			}
			n = n.Content[idx+1]
		case yaml.SequenceNode:
			if last {
				v, err := yamlFromJSON(js)
				if err != nil {
					return err
				}
				idx := len(n.Content)
				if seg != "-" {
					if idx, err = strconv.Atoi(seg); err != nil || idx < 0 || idx > len(n.Content) {
						return fmt.Errorf("no position %q", seg)
					}
				}
				n.Content = slices.Insert(n.Content, idx, v)
				return d.encodeTree()
			}
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return fmt.Errorf("no item %q", seg)
			}
			n = n.Content[idx]
		default:
			return fmt.Errorf("%s is not a map or a sequence", pointer(path[:i]))
		}
	}
	return nil
}

// treeRemove makes Remove's change in the YAML tree and rewrites the document from it.
func (d *Doc) treeRemove(path []string) error {
	n := d.y.Content[0]
	for i, seg := range path {
		last := i == len(path)-1
		switch n.Kind {
		case yaml.MappingNode:
			idx := keyIndex(n, seg)
			if idx < 0 {
				return nil
			}
			if last {
				n.Content = slices.Delete(n.Content, idx, idx+2)
				return d.encodeTree()
			}
			n = n.Content[idx+1]
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return nil
			}
			if last {
				n.Content = slices.Delete(n.Content, idx, idx+1)
				return d.encodeTree()
			}
			n = n.Content[idx]
		default:
			return nil
		}
	}
	return nil
}

func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func isNullNode(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// encodeTree rewrites the document's text from its YAML tree, keeping a leading "---" line.
func (d *Doc) encodeTree() error {
	var b bytes.Buffer
	if isMarker(d.text) {
		line := d.text[:d.lineEnd(0)]
		if bytes.TrimSpace(line[3:]) == nil || bytes.HasPrefix(bytes.TrimSpace(line[3:]), []byte("#")) {
			b.Write(line)
		} else {
			b.WriteString("---")
		}
		b.WriteString(d.nl)
	}
	enc := yaml.NewEncoder(&b)
	step, compact := d.style()
	enc.SetIndent(step)
	if compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(d.y); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return d.setText(b.Bytes())
}

// style guesses the document's indentation step and whether its block sequences sit at their key's column.
func (d *Doc) style() (step int, compact bool) {
	step, compact = 2, true
	foundStep, foundSeq := false, false
	var walk func(n *Node)
	walk = func(n *Node) {
		if n == nil || foundStep && foundSeq {
			return
		}
		switch n.Kind {
		case Map:
			for i, k := range n.Keys {
				v := n.Values[i]
				kc := d.colOf(k.Start)
				if !foundStep && !n.flow && v.Kind == Map && !v.flow && len(v.Keys) > 0 &&
					d.lineOf(v.Keys[0].Start) > d.lineOf(k.Start) && d.colOf(v.Keys[0].Start) > kc {
					step, foundStep = d.colOf(v.Keys[0].Start)-kc, true
				}
				if !foundSeq && !n.flow && v.Kind == Seq && !v.flow && d.lineOf(v.Start) > d.lineOf(k.Start) {
					compact, foundSeq = d.colOf(v.Start) == kc, true
				}
				walk(v)
			}
		case Seq:
			for _, it := range n.Items {
				walk(it)
			}
		}
	}
	if !d.json {
		walk(d.root)
	}
	return step, compact
}
