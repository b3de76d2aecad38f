package policy

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// PathKind is how a match compares the request's path.
type PathKind uint8

const (
	// PathAny puts no condition on the path (Gateway API's default, the prefix "/").
	PathAny PathKind = iota
	// PathExact matches one path.
	PathExact
	// PathPrefix matches a path and everything under it, element by element: "/foo" matches "/foo" and
	// "/foo/bar", not "/foobar".
	PathPrefix
	// PathRegex matches paths the whole of which the expression matches.
	PathRegex
)

// Match is one way a rule matches a request: every condition set must hold.
type Match struct {
	Path    PathMatch
	Method  string       // "": any method
	Headers []ValueMatch // header names compare case-insensitively
	Query   []ValueMatch // the first value of each named query parameter
}

// PathMatch is the condition a match puts on the request's path, compared as the request sent it (not
// percent-decoded), as Envoy and Linkerd compare it.
type PathMatch struct {
	Kind PathKind
	// Value is the exact path, the prefix (without a trailing "/", but "/" for the root), or the expression.
	Value string
	Regex *regexp.Regexp // PathRegex: Value, anchored at both ends
}

// ValueMatch is the condition a match puts on a header or query parameter: it is present and its value is Value,
// or, when Regex is set, Regex (anchored at both ends) matches it.
type ValueMatch struct {
	Name  string // a header's canonical name (textproto.CanonicalMIMEHeaderKey), or a query parameter's name
	Value string
	Regex *regexp.Regexp
}

// entry is one match of one rule, ranked; a rule without matches has one entry with a nil match.
type entry struct {
	rule  *Rule
	match *Match
}

// Match picks the rule for r by Gateway API precedence across the rules of every route: an exact path over a
// prefix, a longer prefix over a shorter one, then a method, then more header matches, then more query matches;
// a tie keeps route and rule order. A regular expression on the path (whose rank Gateway API leaves to
// implementations) ranks below every prefix but the catch-all "/", which ranks with no path condition at all.
// nil when no rule matches.
func (o *Outbound) Match(r *http.Request) *Rule {
	rule, _ := o.Find(r)
	return rule
}

// Find is Match that also returns which of the rule's matches matched (nil for a rule without matches), for
// filters that depend on it (a rewrite of the matched path prefix).
func (o *Outbound) Find(r *http.Request) (*Rule, *Match) {
	if o == nil {
		return nil, nil
	}
	idx := o.index.Load()
	if idx == nil {
		idx = o.buildIndex()
	}
	entries := *idx
	if len(entries) == 0 {
		return nil, nil
	}
	if entries[0].match == nil {
		// A rule without matches ranks lowest: first, it ties with every rule and comes first in order.
		return entries[0].rule, nil
	}
	path := requestPath(r)
	for i := range entries {
		e := &entries[i]
		if e.match == nil || e.match.matches(r, path) {
			return e.rule, e.match
		}
	}
	return nil, nil
}

// requestPath is r's path as it was sent; "/" when it was sent without one.
func requestPath(r *http.Request) string {
	if r.URL == nil {
		return "/"
	}
	p := r.URL.EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

// buildIndex ranks every rule's matches and stores the result.
func (o *Outbound) buildIndex() *[]entry {
	var entries []entry
	for _, route := range o.Routes {
		for _, rule := range route.Rules {
			if len(rule.Matches) == 0 {
				entries = append(entries, entry{rule: rule})
				continue
			}
			for i := range rule.Matches {
				entries = append(entries, entry{rule: rule, match: &rule.Matches[i]})
			}
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return compareRank(b.match, a.match) })
	o.index.Store(&entries)
	return &entries
}

// Ranks of path conditions, higher first.
const (
	rankAny = iota // no path condition, or the prefix "/"
	rankRegex
	rankPrefix
	rankExact
)

// compareRank orders two matches by precedence: positive when a ranks above b. A nil match is a rule without
// matches, which matches everything.
func compareRank(a, b *Match) int {
	var ma, mb Match
	if a != nil {
		ma = *a
	}
	if b != nil {
		mb = *b
	}
	if c := cmp.Compare(pathRank(ma.Path), pathRank(mb.Path)); c != 0 {
		return c
	}
	if ma.Path.Kind == PathPrefix && mb.Path.Kind == PathPrefix {
		if c := cmp.Compare(len(ma.Path.Value), len(mb.Path.Value)); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(boolRank(ma.Method != ""), boolRank(mb.Method != "")); c != 0 {
		return c
	}
	if c := cmp.Compare(len(ma.Headers), len(mb.Headers)); c != 0 {
		return c
	}
	return cmp.Compare(len(ma.Query), len(mb.Query))
}

func pathRank(p PathMatch) int {
	switch p.Kind {
	case PathExact:
		return rankExact
	case PathPrefix:
		if p.Value == "/" || p.Value == "" {
			return rankAny
		}
		return rankPrefix
	case PathRegex:
		return rankRegex
	default:
		return rankAny
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// matches reports whether r (whose path is path) meets every condition of m.
func (m *Match) matches(r *http.Request, path string) bool {
	if !m.Path.matches(path) {
		return false
	}
	if m.Method != "" && r.Method != m.Method {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matchesHeader(r.Header) {
			return false
		}
	}
	if len(m.Query) > 0 {
		raw := ""
		if r.URL != nil {
			raw = r.URL.RawQuery
		}
		for i := range m.Query {
			v, ok := queryValue(raw, m.Query[i].Name)
			if !ok || !m.Query[i].matchesValue(v) {
				return false
			}
		}
	}
	return true
}

func (p *PathMatch) matches(path string) bool {
	switch p.Kind {
	case PathExact:
		return path == p.Value
	case PathPrefix:
		prefix := strings.TrimSuffix(p.Value, "/") // the root, or a prefix built by hand with its slash
		if !strings.HasPrefix(path, prefix) {
			return false
		}
		return len(path) == len(prefix) || path[len(prefix)] == '/'
	case PathRegex:
		return p.Regex != nil && p.Regex.MatchString(path)
	default:
		return true
	}
}

// matchesHeader reports whether any value of the header named v.Name matches.
func (v *ValueMatch) matchesHeader(h http.Header) bool {
	for _, value := range h[v.Name] {
		if v.matchesValue(value) {
			return true
		}
	}
	return false
}

func (v *ValueMatch) matchesValue(value string) bool {
	if v.Regex != nil {
		return v.Regex.MatchString(value)
	}
	return value == v.Value
}

// queryValue is the first value of the query parameter name in the raw query, decoded; pairs that do not decode
// are skipped, as url.ParseQuery skips them. It allocates only to decode an escaped name or value.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		key, value, _ := strings.Cut(pair, "=")
		if strings.Contains(key, ";") {
			continue
		}
		if key != name {
			if !strings.ContainsAny(key, "%+") {
				continue
			}
			k, err := url.QueryUnescape(key)
			if err != nil || k != name {
				continue
			}
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			continue
		}
		return v, true
	}
	return "", false
}
