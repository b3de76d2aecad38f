package yamledit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Add sets the value at path like a JSON Patch "add" (RFC 6902): a new key in a map (an existing key's value is
// replaced), or an item inserted into a sequence before the given index ("-" appends). Unlike JSON Patch, missing
// maps along the path are created, and a null along the path counts as missing. value is anything encoding/json
// encodes. Only the bytes the change needs are written; every other byte stays.
func (d *Doc) Add(path []string, value any) error {
	js, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("add %s: %w", pointer(path), err)
	}
	return d.change(path, func() error { return d.spliceAdd(path, js, 0) }, func() error { return d.treeAdd(path, js) },
		func(v any) (any, error) { return addValue(v, path, js) })
}

// Remove deletes the map key or sequence item at path; a missing key is no change.
func (d *Doc) Remove(path []string) error {
	return d.change(path, func() error { return d.spliceRemove(path) }, func() error { return d.treeRemove(path) },
		func(v any) (any, error) { return removeValue(v, path) })
}

// change runs splice, checks that the document now means exactly what model says it should, and otherwise
// makes the change in the YAML tree and rewrites the document from it (tree).
func (d *Doc) change(path []string, splice, tree func() error, model func(any) (any, error)) error {
	if d.root == nil {
		return &Error{Doc: d.Index, Msg: "the document is empty"}
	}
	if len(path) == 0 {
		return errors.New("empty path")
	}
	before, err := d.value()
	if err != nil {
		return err
	}
	want, err := model(before)
	if err != nil {
		return &Error{Doc: d.Index, Msg: fmt.Sprintf("%s: %v", pointer(path), err)}
	}
	saved := d.text
	if err := safely(splice); err == nil {
		if got, err := d.value(); err == nil && sameValue(got, want) {
			return nil
		}
	}
	// splicing failed or produced something else: restore, then rewrite this document from the wanted value
	if err := d.setText(saved); err != nil {
		return err
	}
	if d.json {
		return &Error{Doc: d.Index, Msg: fmt.Sprintf("%s: could not edit this JSON document", pointer(path))}
	}
	if err := tree(); err != nil {
		_ = d.setText(saved)
		return &Error{Doc: d.Index, Msg: fmt.Sprintf("%s: %v", pointer(path), err)}
	}
	if got, err := d.value(); err != nil || !sameValue(got, want) {
		_ = d.setText(saved)
		return &Error{Doc: d.Index, Msg: fmt.Sprintf("%s: could not edit this document", pointer(path))}
	}
	d.rewritten = true
	return nil
}

// sameValue compares documents' meanings; an empty map or list equals null (removing a block map's last entry
// leaves "key:" behind, which reads as null).
func sameValue(a, b any) bool { return reflect.DeepEqual(emptyToNil(a), emptyToNil(b)) }

func emptyToNil(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = emptyToNil(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = emptyToNil(e)
		}
		return out
	}
	return v
}

// safely runs a splice, turning a panic (a position computed wrong) into an error: the tree fallback then runs.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errLayout, r)
		}
	}()
	return f()
}

func pointer(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// splice applies one text replacement and re-parses.
func (d *Doc) splice(start, end int, text string) error {
	var b bytes.Buffer
	b.Grow(len(d.text) + len(text))
	b.Write(d.text[:start])
	b.WriteString(text)
	b.Write(d.text[end:])
	return d.setText(b.Bytes())
}

// spliceAdd may remove a null or a value of another shape first and then call itself again; tries bounds that.
func (d *Doc) spliceAdd(path []string, js []byte, tries int) error {
	if tries > len(path)+1 {
		return errLayout
	}
	parent := d.root
	for i, seg := range path[:len(path)-1] {
		if parent.decorated {
			return errLayout
		}
		switch parent.Kind {
		case Map:
			child := parent.Get(seg)
			if child == nil {
				return d.insertEntry(parent, seg, nest(path[i+1:], js))
			}
			if child.IsNull() {
				if err := d.spliceRemove(path[:i+1]); err != nil {
					return err
				}
				return d.spliceAdd(path, js, tries+1)
			}
			parent = child
		case Seq:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(parent.Items) {
				return fmt.Errorf("%s: no item %q", pointer(path[:i+1]), seg)
			}
			parent = parent.Items[idx]
		default:
			return fmt.Errorf("%s: not a map or a sequence", pointer(path[:i+1]))
		}
	}
	if parent.decorated {
		return errLayout
	}
	last := path[len(path)-1]
	switch parent.Kind {
	case Map:
		old := parent.Get(last)
		switch {
		case old == nil:
			return d.insertEntry(parent, last, js)
		case old.Kind == Scalar && !old.IsNull() && isScalarJSON(js):
			return d.replaceScalar(old, js)
		default:
			if err := d.spliceRemove(path); err != nil {
				return err
			}
			return d.spliceAdd(path, js, tries+1)
		}
	case Seq:
		idx := len(parent.Items)
		if last != "-" {
			var err error
			if idx, err = strconv.Atoi(last); err != nil || idx < 0 || idx > len(parent.Items) {
				return fmt.Errorf("%s: no position %q", pointer(path), last)
			}
		}
		return d.insertItem(parent, idx, js)
	}
	return fmt.Errorf("%s: not a map or a sequence", pointer(path[:len(path)-1]))
}

// nest wraps js in maps named by path: nest([a b], v) = {"a": {"b": v}}.
func nest(path []string, js []byte) []byte {
	for i := len(path) - 1; i >= 0; i-- {
		js = []byte("{" + jsonString(path[i]) + ":" + string(js) + "}")
	}
	return js
}

func isScalarJSON(js []byte) bool {
	t := bytes.TrimSpace(js)
	return len(t) > 0 && t[0] != '{' && t[0] != '['
}

// prepends are the keys inserted before a map's first key rather than after its last: metadata reads best first.
var prepends = map[string]bool{"metadata": true}

func (d *Doc) insertEntry(m *Node, key string, js []byte) error {
	if m.flow {
		return d.insertFlow(m, prepends[key] && len(m.Keys) > 0, flowString(key, !d.json)+": ", js)
	}
	c := d.colOf(m.Keys[0].Start)
	text, err := d.renderEntry(key, js, c)
	if err != nil {
		return err
	}
	if prepends[key] {
		at := m.Keys[0].Start
		if m.Keys[0].decorated {
			return errLayout
		}
		return d.splice(at, at, text+d.nl+strings.Repeat(" ", c))
	}
	at := d.entryEnd(m, len(m.Keys)-1, c)
	return d.splice(at, at, d.nl+strings.Repeat(" ", c)+text)
}

func (d *Doc) insertItem(s *Node, idx int, js []byte) error {
	if s.flow {
		if idx != 0 && idx != len(s.Items) {
			return errLayout
		}
		return d.insertFlow(s, idx == 0 && len(s.Items) > 0, "", js)
	}
	dash0, err := d.dashPos(s, 0)
	if err != nil {
		return err
	}
	c := d.colOf(dash0)
	text, err := d.renderItem(js, c+2)
	if err != nil {
		return err
	}
	if idx < len(s.Items) {
		at, err := d.dashPos(s, idx)
		if err != nil {
			return err
		}
		return d.splice(at, at, "- "+text+d.nl+strings.Repeat(" ", c))
	}
	at, err := d.itemEnd(s, len(s.Items)-1)
	if err != nil {
		return err
	}
	return d.splice(at, at, d.nl+strings.Repeat(" ", c)+"- "+text)
}

// insertFlow inserts prefix+value into a flow collection, first or last.
func (d *Doc) insertFlow(coll *Node, first bool, prefix string, js []byte) error {
	if coll.decorated {
		return errLayout
	}
	children := coll.Items
	if coll.Kind == Map {
		children = coll.Keys
	}
	if len(children) == 0 {
		return d.splice(coll.Start+1, coll.Start+1, prefix+flowJSON(js, false, !d.json, 0, 0, d.nl))
	}
	firstChild := children[0]
	multiline := d.lineOf(firstChild.Start) > d.lineOf(coll.Start)
	c := d.colOf(firstChild.Start)
	step := c - d.indentOfLine(d.lineOf(coll.Start))
	if step <= 0 {
		step = 2
	}
	entry := prefix + flowJSON(js, multiline, !d.json, c, step, d.nl)
	sep := ", "
	if multiline {
		sep = "," + d.nl + strings.Repeat(" ", c)
	}
	if first {
		return d.splice(firstChild.Start, firstChild.Start, entry+sep)
	}
	lastNode := coll.Values
	if coll.Kind == Seq {
		lastNode = coll.Items
	}
	at, err := d.end(lastNode[len(lastNode)-1])
	if err != nil {
		return err
	}
	return d.splice(at, at, sep+entry)
}

func (d *Doc) indentOfLine(l int) int { indent, _ := d.lineInfo(l); return indent }

func (d *Doc) replaceScalar(old *Node, js []byte) error {
	if old.decorated {
		return errLayout
	}
	end, err := d.end(old)
	if err != nil {
		return err
	}
	return d.splice(old.Start, end, renderScalar(js, old, d.json))
}

func (d *Doc) spliceRemove(path []string) error {
	parent := d.root.Path(path[:len(path)-1]...)
	if parent == nil {
		return nil
	}
	last := path[len(path)-1]
	if parent.decorated {
		return errLayout
	}
	switch parent.Kind {
	case Map:
		for i, k := range parent.Keys {
			if k.Value == last {
				return d.removeChild(parent, i)
			}
		}
		return nil
	case Seq:
		idx, err := strconv.Atoi(last)
		if err != nil || idx < 0 || idx >= len(parent.Items) {
			return nil
		}
		return d.removeChild(parent, idx)
	}
	return nil
}

// removeChild removes a map entry or a sequence item: whole lines in block style, the entry and one comma in flow
// style.
func (d *Doc) removeChild(coll *Node, i int) error {
	if coll.flow {
		return d.removeFlow(coll, i)
	}
	var start, end int
	if coll.Kind == Map {
		k := coll.Keys[i]
		if k.decorated || !d.onlySpacesBefore(k.Start) {
			return errLayout
		}
		start, end = k.Start, d.entryEnd(coll, i, d.colOf(k.Start))
	} else {
		dash, err := d.dashPos(coll, i)
		if err != nil {
			return err
		}
		if !d.onlySpacesBefore(dash) {
			return errLayout
		}
		start = dash
		if end, err = d.itemEnd(coll, i); err != nil {
			return err
		}
	}
	start = d.lineStart(d.lineOf(start))
	// take the line break after the last line; at the end of the text, the one before the first line instead
	switch {
	case end < len(d.text) && d.text[end] == '\r' && end+1 < len(d.text) && d.text[end+1] == '\n':
		end += 2
	case end < len(d.text) && d.text[end] == '\n':
		end++
	case start > 0:
		start--
		if start > 0 && d.text[start-1] == '\r' {
			start--
		}
	}
	return d.splice(start, end, "")
}

func (d *Doc) removeFlow(coll *Node, i int) error {
	starts, ends := coll.Items, coll.Items
	if coll.Kind == Map {
		starts, ends = coll.Keys, coll.Values
	}
	n := len(starts)
	endOf := func(j int) (int, error) { return d.end(ends[j]) }
	switch {
	case n == 1:
		end, err := d.end(coll)
		if err != nil {
			return err
		}
		return d.splice(coll.Start+1, end-1, "")
	case i < n-1:
		return d.splice(starts[i].Start, starts[i+1].Start, "")
	default:
		prevEnd, err := endOf(i - 1)
		if err != nil {
			return err
		}
		e, err := endOf(i)
		if err != nil {
			return err
		}
		return d.splice(prevEnd, e, "")
	}
}
