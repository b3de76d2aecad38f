package yamledit

import (
	"encoding/json"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// jsonError is a JSON syntax error at a byte offset.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// parseJSON parses one JSON value (surrounded by whitespace only) keeping every node's start and end offsets.
func parseJSON(text []byte) (*Node, error) {
	p := &jsonParser{b: text}
	p.ws()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i < len(p.b) {
		return nil, &jsonError{p.i, "text after the JSON value (one JSON document per input)"}
	}
	return n, nil
}

type jsonParser struct {
	b []byte
	i int
}

const maxJSONDepth = 1000

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) errf(format string, a ...any) error {
	return &jsonError{p.i, fmt.Sprintf(format, a...)}
}

func (p *jsonParser) value(depth int) (*Node, error) {
	if depth > maxJSONDepth {
		return nil, p.errf("nested too deeply")
	}
	if p.i >= len(p.b) {
		return nil, p.errf("unexpected end of input")
	}
	start := p.i
	switch p.b[p.i] {
	case '{':
		n := &Node{Kind: Map, Start: start, flow: true, inFlow: true}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			n.end = p.i
			return n, nil
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.errf("want a quoted key")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.errf("want ':' after the key %q", k.Value)
			}
			p.i++
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.Keys, n.Values = append(n.Keys, k), append(n.Values, v)
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				n.end = p.i
				return n, nil
			}
			return nil, p.errf("want ',' or '}' in an object")
		}
	case '[':
		n := &Node{Kind: Seq, Start: start, flow: true, inFlow: true}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			n.end = p.i
			return n, nil
		}
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.Items = append(n.Items, v)
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				n.end = p.i
				return n, nil
			}
			return nil, p.errf("want ',' or ']' in an array")
		}
	case '"':
		return p.str()
	default:
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				goto done
			}
			p.i++
		}
	done:
		raw := p.b[start:p.i]
		var v any
		if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
			p.i = start
			return nil, p.errf("invalid value %q", truncate(string(raw), 20))
		}
		n := &Node{Kind: Scalar, Start: start, end: p.i, Value: string(raw), flow: true, inFlow: true}
		switch v.(type) {
		case nil:
			n.Tag = "!!null"
		case bool:
			n.Tag = "!!bool"
		default:
			n.Tag = "!!float"
			if _, err := json.Number(raw).Int64(); err == nil {
				n.Tag = "!!int"
			}
		}
		return n, nil
	}
}

func (p *jsonParser) str() (*Node, error) {
	start := p.i
	p.i++ // opening quote
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				p.i = start
				return nil, p.errf("invalid string: %v", err)
			}
			return &Node{Kind: Scalar, Tag: "!!str", Value: s, Start: start, end: p.i, flow: true, inFlow: true, style: yaml.DoubleQuotedStyle}, nil
		case '\n':
			return nil, p.errf("newline in a string")
		}
		p.i++
	}
	p.i = start
	return nil, p.errf("unterminated string")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
