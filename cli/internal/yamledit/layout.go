package yamledit

import (
	"errors"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// errLayout: the text around a node is shaped in a way splicing does not handle; the caller falls back to
// rewriting the document from its tree.
var errLayout = errors.New("layout not supported for splicing")

// lineOf is the 0-based line of off.
func (d *Doc) lineOf(off int) int { l, _ := d.pos(off); return l }

// colOf is the byte column of off in its line.
func (d *Doc) colOf(off int) int { _, c := d.pos(off); return c }

// lineStart and lineEnd bound line l's text (lineEnd excludes the newline).
func (d *Doc) lineStart(l int) int { return d.lines[l] }

func (d *Doc) lineEnd(l int) int {
	end := len(d.text)
	if l+1 < len(d.lines) {
		end = d.lines[l+1] - 1 // the '\n'
	} else if end > 0 && d.text[end-1] == '\n' {
		end--
	}
	if end > d.lines[l] && d.text[end-1] == '\r' {
		end--
	}
	return end
}

// lineInfo says how far line l is indented and whether it holds content (not blank, not only a comment).
func (d *Doc) lineInfo(l int) (indent int, content bool) {
	s, e := d.lineStart(l), d.lineEnd(l)
	i := s
	for i < e && d.text[i] == ' ' {
		i++
	}
	if i == e || d.text[i] == '#' {
		return i - s, false
	}
	if d.text[i] == '\t' {
		// a tab before content: treat as content at this indentation (YAML forbids tabs for indentation)
		return i - s, true
	}
	return i - s, true
}

// onlySpacesBefore reports whether nothing but spaces precedes off on its line.
func (d *Doc) onlySpacesBefore(off int) bool {
	for i := d.lineStart(d.lineOf(off)); i < off; i++ {
		if d.text[i] != ' ' {
			return false
		}
	}
	return true
}

// extend returns the end of the last content line that belongs to a block entry or item starting on line l at
// column c: later lines indented more than c, or (dashAtC) sequence items at column c. Trailing blank and comment
// lines are not included.
func (d *Doc) extend(l, c int, dashAtC bool) int {
	last := l
	for j := l + 1; j < len(d.lines); j++ {
		indent, content := d.lineInfo(j)
		if !content {
			continue
		}
		if indent > c || dashAtC && indent == c && d.text[d.lineStart(j)+indent] == '-' {
			last = j
			continue
		}
		break
	}
	return d.lineEnd(last)
}

// end returns the offset just past n: a flow collection's closing bracket, a single-line scalar's last character,
// a block collection's last content line.
func (d *Doc) end(n *Node) (int, error) {
	if n.end >= 0 {
		return n.end, nil
	}
	if n.decorated || n.Kind == Alias {
		return 0, errLayout
	}
	switch {
	case n.flow && (n.Kind == Map || n.Kind == Seq):
		e, err := d.matchBracket(n.Start)
		if err != nil {
			return 0, err
		}
		n.end = e
	case n.Kind == Scalar:
		e, err := d.scalarEnd(n)
		if err != nil {
			return 0, err
		}
		n.end = e
	case n.Kind == Map:
		c := d.colOf(n.Keys[0].Start)
		last := len(n.Keys) - 1
		n.end = d.entryEnd(n, last, c)
	case n.Kind == Seq:
		n.end = d.extend(d.lineOf(n.Start), d.colOf(n.Start), true)
	}
	return n.end, nil
}

// entryEnd is the end of block map m's entry i (keys at column c).
func (d *Doc) entryEnd(m *Node, i, c int) int {
	v := m.Values[i]
	dashAtC := v.Kind == Seq && !v.flow && d.colOf(v.Start) == c
	return d.extend(d.lineOf(m.Keys[i].Start), c, dashAtC)
}

// itemEnd is the end of block sequence s's item i.
func (d *Doc) itemEnd(s *Node, i int) (int, error) {
	dash, err := d.dashPos(s, i)
	if err != nil {
		return 0, err
	}
	return d.extend(d.lineOf(dash), d.colOf(dash), false), nil
}

// dashPos finds the "-" of block sequence s's item i.
func (d *Doc) dashPos(s *Node, i int) (int, error) {
	if i == 0 && d.text[s.Start] == '-' {
		return s.Start, nil
	}
	item := s.Items[i]
	if item.decorated {
		return 0, errLayout
	}
	for j := item.Start - 1; j >= 0; j-- {
		switch d.text[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case '-':
			return j, nil
		}
		return 0, errLayout
	}
	return 0, errLayout
}

// matchBracket returns the offset just past the bracket that closes the one at open, skipping quoted strings and
// comments.
func (d *Doc) matchBracket(open int) (int, error) {
	t := d.text
	if open >= len(t) || t[open] != '{' && t[open] != '[' {
		return 0, errLayout
	}
	depth := 0
	for i := open; i < len(t); i++ {
		switch t[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case '"':
			for i++; i < len(t) && t[i] != '"'; i++ {
				if t[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(t); i++ {
				if t[i] == '\'' {
					if i+1 < len(t) && t[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
		case '#':
			if i > 0 && (t[i-1] == ' ' || t[i-1] == '\t' || t[i-1] == '\n') {
				for i < len(t) && t[i] != '\n' {
					i++
				}
			}
		}
	}
	return 0, errLayout
}

// scalarEnd finds the end of a scalar written on one line; anything else is left to the tree fallback.
func (d *Doc) scalarEnd(n *Node) (int, error) {
	t := d.text
	l := d.lineOf(n.Start)
	le := d.lineEnd(l)
	switch {
	case n.style&yaml.DoubleQuotedStyle != 0:
		for i := n.Start + 1; i < le; i++ {
			switch t[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
		return 0, errLayout
	case n.style&yaml.SingleQuotedStyle != 0:
		for i := n.Start + 1; i < le; i++ {
			if t[i] == '\'' {
				if i+1 < le && t[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
		return 0, errLayout
	case n.style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return 0, errLayout
	}
	if n.Tag == "!!null" && n.Value == "" {
		return n.Start, nil // an empty value: nothing is written
	}
	e := n.Start
	for e < le {
		c := t[e]
		if c == '#' && e > n.Start && (t[e-1] == ' ' || t[e-1] == '\t') {
			break
		}
		if n.inFlow && (c == ',' || c == ']' || c == '}') {
			break
		}
		e++
	}
	for e > n.Start && (t[e-1] == ' ' || t[e-1] == '\t') {
		e--
	}
	if strings.TrimSpace(string(t[n.Start:e])) != n.Value {
		return 0, errLayout // a multi-line plain scalar, or something we misread
	}
	return e, nil
}
