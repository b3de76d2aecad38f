package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// LabelSelector is a Kubernetes label selector. An empty selector selects everything.
type LabelSelector struct {
	MatchLabels      map[string]string  `json:"matchLabels,omitempty"`
	MatchExpressions []LabelRequirement `json:"matchExpressions,omitempty"`
}

// LabelRequirement is one matchExpressions entry.
type LabelRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Selector operators.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
)

// Matches reports whether labels satisfy every part of the selector. A nil selector matches nothing.
func (s *LabelSelector) Matches(labels map[string]string) bool {
	if s == nil {
		return false
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case OpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		default: // Validate rejects these; an unknown operator matches nothing rather than everything
			return false
		}
	}
	return true
}

func (s *LabelSelector) validate(field string) []error {
	var errs []error
	for i, r := range s.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		if r.Key == "" {
			errs = append(errs, fmt.Errorf("%s.key: required", f))
		}
		switch r.Operator {
		case OpIn, OpNotIn:
			if len(r.Values) == 0 {
				errs = append(errs, fmt.Errorf("%s.values: operator %s needs values", f, r.Operator))
			}
		case OpExists, OpDoesNotExist:
			if len(r.Values) != 0 {
				errs = append(errs, fmt.Errorf("%s.values: operator %s takes none", f, r.Operator))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.operator: must be In, NotIn, Exists or DoesNotExist, got %q", f, r.Operator))
		}
	}
	return errs
}

// UnmarshalJSON reads a number, a numeric string (as a number) or a name.
func (p *Port) UnmarshalJSON(b []byte) error {
	*p = Port{}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.Atoi(s); err == nil {
			p.Number = n
			return nil
		}
		p.Name = s
		return nil
	}
	if err := json.Unmarshal(b, &p.Number); err != nil {
		return fmt.Errorf("port: want a number or a name, got %s", b)
	}
	return nil
}

// MarshalJSON writes the number or the name.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

func (p Port) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(p.Number)
}
