package tap

import (
	"errors"
	"fmt"
	"strings"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
)

// maxMatchDepth bounds how deeply a client may nest All/Any/Not.
const maxMatchDepth = 16

// validate rejects matches that say nothing (an unset oneof, nil included) or nest absurdly deep. A request without
// a match (nil at the top) is valid and matches every request; the server does not validate it.
func validate(m *tapv1.Match, depth int) error {
	if depth > maxMatchDepth {
		return fmt.Errorf("match nested deeper than %d", maxMatchDepth)
	}
	switch x := m.GetMatch().(type) {
	case *tapv1.Match_All_:
		for _, c := range x.All.GetMatches() {
			if err := validate(c, depth+1); err != nil {
				return err
			}
		}
	case *tapv1.Match_Any_:
		for _, c := range x.Any.GetMatches() {
			if err := validate(c, depth+1); err != nil {
				return err
			}
		}
	case *tapv1.Match_Not:
		if x.Not == nil {
			return errors.New("not: empty match")
		}
		return validate(x.Not, depth+1)
	case *tapv1.Match_Http_:
		if x.Http.GetMatch() == nil {
			return errors.New("http: set one of scheme, method, authority, path_prefix")
		}
	case *tapv1.Match_Source, *tapv1.Match_Destination:
	default:
		return errors.New("empty match: set one of all, any, not, http, source, destination")
	}
	return nil
}

// matches evaluates m against a request. nil matches everything; All of nothing is true, Any of nothing false.
// HTTP scheme, method and authority compare case-insensitively; path_prefix is a plain byte prefix of the path
// (without the query). Labels match when every given label has exactly the given value.
func matches(m *tapv1.Match, r *Meta) bool {
	if m == nil {
		return true
	}
	switch x := m.GetMatch().(type) {
	case *tapv1.Match_All_:
		for _, c := range x.All.GetMatches() {
			if !matches(c, r) {
				return false
			}
		}
		return true
	case *tapv1.Match_Any_:
		for _, c := range x.Any.GetMatches() {
			if matches(c, r) {
				return true
			}
		}
		return false
	case *tapv1.Match_Not:
		return !matches(x.Not, r)
	case *tapv1.Match_Http_:
		switch h := x.Http.GetMatch().(type) {
		case *tapv1.Match_Http_Scheme:
			return strings.EqualFold(h.Scheme, r.Scheme)
		case *tapv1.Match_Http_Method:
			return strings.EqualFold(h.Method, r.Method)
		case *tapv1.Match_Http_Authority:
			return strings.EqualFold(h.Authority, r.Authority)
		case *tapv1.Match_Http_PathPrefix:
			return strings.HasPrefix(r.Path, h.PathPrefix)
		}
	case *tapv1.Match_Source:
		return labelsMatch(x.Source.GetLabels(), r.SourceLabels)
	case *tapv1.Match_Destination:
		return labelsMatch(x.Destination.GetLabels(), r.DestinationLabels)
	}
	return false
}

func labelsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (t *tapper) match(r *Meta) bool { return matches(t.m, r) }
