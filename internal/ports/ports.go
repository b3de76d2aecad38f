// Package ports reads and writes the port lists sinew takes everywhere (annotations, chart values, sinew-init
// flags): comma-separated ports and inclusive ranges, like "25,443,8000-8090", and where a pod is known, the names
// of its container ports. One parser, so every place accepts and refuses the same lists with the same words.
package ports

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Range is an inclusive range of TCP ports; a single port has From == To.
type Range struct{ From, To uint16 }

func (r Range) String() string {
	if r.From == r.To {
		return strconv.Itoa(int(r.From))
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Contains reports whether p is in the range.
func (r Range) Contains(p uint16) bool { return r.From <= p && p <= r.To }

// Parse reads a list in the order written; empty items are ignored. byName resolves port names (nil: a name is an
// error). A dash makes a range only after a digit, since port names ("http-alt") have dashes too.
func Parse(list string, byName func(string) (uint16, bool)) ([]Range, error) {
	var out []Range
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if lo, hi, isRange := strings.Cut(item, "-"); isRange && startsWithDigit(lo) {
			from, err := port(lo)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			to, err := port(hi)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			if to < from {
				return nil, fmt.Errorf("%q: the range ends before it starts", item)
			}
			out = append(out, Range{from, to})
			continue
		}
		if startsWithDigit(item) {
			p, err := port(item)
			if err != nil {
				return nil, err
			}
			out = append(out, Range{p, p})
			continue
		}
		if byName == nil {
			return nil, fmt.Errorf("%q is not a port: want a port like 443 or a range like 8000-8090", item)
		}
		p, ok := byName(item)
		if !ok {
			return nil, fmt.Errorf("%q: no port by that name (want a port like 443, a range like 8000-8090 or the name of a container port)", item)
		}
		out = append(out, Range{p, p})
	}
	return out, nil
}

func startsWithDigit(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

func port(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port between 1 and 65535", s)
	}
	return uint16(n), nil
}

// Merge sorts ranges and joins those that overlap or touch, in place; nil for none.
func Merge(in []Range) []Range {
	if len(in) == 0 {
		return nil
	}
	slices.SortFunc(in, func(a, b Range) int { return int(a.From) - int(b.From) })
	out := in[:1]
	for _, r := range in[1:] {
		last := &out[len(out)-1]
		if uint32(r.From) <= uint32(last.To)+1 {
			last.To = max(last.To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Format writes ranges back as a list ("25,8000-8090").
func Format(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
