// Package yamledit edits Kubernetes manifests the way a careful person would: it changes the few bytes an edit
// needs (a new annotation line, a container inserted into a list) and leaves every other byte of the input as it
// was — comments, key order, quoting, odd indentation, other documents. It reads YAML streams (several documents)
// and JSON, finds nodes with go.yaml.in/yaml/v3 (YAML) or its own position-keeping parser (JSON), and splices text
// at those positions. When a document's shape defeats splicing (anchors, tags, multi-line scalars being replaced),
// the edit falls back to rewriting that one document from its node tree, which keeps comments but not all layout.
//
// It knows nothing about Kubernetes kinds; callers navigate with Node and edit with JSON-Patch-like paths.
package yamledit

import (
	"bytes"
	"fmt"
)

// Segment is one document of a stream: its bytes exactly as in the input (including a leading "---" line when
// there is one), the 1-based document number and the 1-based line it starts on.
type Segment struct {
	Index int
	Line  int
	Text  []byte
}

// Split cuts a YAML stream into documents at its "---" lines. Joining the segments' Text gives the input back
// byte for byte. A stream that is empty or starts with a "---" line has no leading empty segment.
func Split(input []byte) []Segment {
	var segs []Segment
	start, startLine, line := 0, 1, 1
	for off := 0; off < len(input); {
		end := bytes.IndexByte(input[off:], '\n')
		next := len(input)
		if end >= 0 {
			next = off + end + 1
		}
		if isMarker(input[off:next]) && off > start {
			segs = append(segs, Segment{Line: startLine, Text: input[start:off]})
			start, startLine = off, line
		}
		off = next
		line++
	}
	if start < len(input) || len(segs) == 0 && len(input) > 0 {
		segs = append(segs, Segment{Line: startLine, Text: input[start:]})
	}
	for i := range segs {
		segs[i].Index = i + 1
	}
	return segs
}

// isMarker reports whether line (with its newline) is a document start marker: "---" alone or followed by
// whitespace (and perhaps content or a comment).
func isMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// Error is a problem in one document of the input, with the position when it is known.
type Error struct {
	Doc  int // 1-based document number
	Line int // 1-based line in the whole stream; 0 when unknown
	Col  int // 1-based column; 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("document %d, line %d, column %d: %s", e.Doc, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("document %d, line %d: %s", e.Doc, e.Line, e.Msg)
	}
	return fmt.Sprintf("document %d: %s", e.Doc, e.Msg)
}
