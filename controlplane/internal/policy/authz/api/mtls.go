package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sinewmesh/sinew/internal/ports"
)

// MTLSMode is how a workload port takes its meshed clients: STRICT (mTLS only; plaintext clients are refused),
// PERMISSIVE (mTLS from meshed clients, plaintext from the others; the default) or DISABLE (no mTLS: meshed clients
// send plaintext too). A Server's spec.mtlsMode sets it for its port, the config.sinew.dev/mtls-mode annotation
// for a workload's ports.
type MTLSMode string

// The mTLS modes.
const (
	MTLSStrict     MTLSMode = "STRICT"
	MTLSPermissive MTLSMode = "PERMISSIVE"
	MTLSDisable    MTLSMode = "DISABLE"
)

// MTLSModes are the values of Server spec.mtlsMode and of the annotation.
var MTLSModes = []MTLSMode{MTLSStrict, MTLSPermissive, MTLSDisable}

// DefaultMTLSMode is the mode of a port that neither a Server nor the annotation sets.
const DefaultMTLSMode = MTLSPermissive

func modeList() string {
	s := make([]string, len(MTLSModes))
	for i, m := range MTLSModes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// ParseMTLSMode reads one mode, in any case ("strict" is STRICT).
func ParseMTLSMode(s string) (MTLSMode, error) {
	m := MTLSMode(strings.ToUpper(strings.TrimSpace(s)))
	if !slices.Contains(MTLSModes, m) {
		return "", fmt.Errorf("%q is not an mTLS mode: want one of %s", strings.TrimSpace(s), modeList())
	}
	return m, nil
}

// PortMTLSModes are a workload's mTLS modes by port, as config.sinew.dev/mtls-mode gives them. The zero value sets
// nothing (every port has the default mode).
type PortMTLSModes struct {
	// All is the mode of the ports Ports does not list; "" is unset.
	All MTLSMode `json:"all,omitempty"`
	// Ports are per-port modes, ranges that do not overlap.
	Ports []PortRangeMTLSMode `json:"ports,omitempty"`
}

// PortRangeMTLSMode is the mode of the ports First-Last (inclusive).
type PortRangeMTLSMode struct {
	First uint16   `json:"first"`
	Last  uint16   `json:"last"`
	Mode  MTLSMode `json:"mode"`
}

// IsZero reports whether the annotation sets nothing.
func (m PortMTLSModes) IsZero() bool { return m.All == "" && len(m.Ports) == 0 }

// For is the mode the annotation gives port p; "" when it says nothing about it.
func (m PortMTLSModes) For(p uint16) MTLSMode {
	for _, r := range m.Ports {
		if r.First <= p && p <= r.Last {
			return r.Mode
		}
	}
	return m.All
}

// Has reports whether any port gets mode.
func (m PortMTLSModes) Has(mode MTLSMode) bool {
	if m.All == mode {
		return true
	}
	for _, r := range m.Ports {
		if r.Mode == mode {
			return true
		}
	}
	return false
}

// ParseMTLSAnnotation reads the value of config.sinew.dev/mtls-mode: comma-separated items, each either a mode
// for every port ("STRICT"; at most one such item) or PORT=MODE, where PORT is a port number, an inclusive range
// ("8000-8090") or a port name that byName resolves (nil: names are errors). Modes are STRICT, PERMISSIVE and
// DISABLE, in any case. Examples: "STRICT", "8080=STRICT,9090=DISABLE", "STRICT,9090=PERMISSIVE".
//
// It reads what it can: an item with a bad mode but a good port sets that port to the default mode (PERMISSIVE)
// explicitly, so that it neither takes the mode for every port nor is silently left out; a bad mode for every port
// is left unset, which is the default too; an item whose port does not parse contributes nothing. Every problem is
// an error naming the item; callers name the annotation. The default rather than STRICT: a typo must not cut a workload off
// from its plaintext clients, and the error says loudly that the port is not what was asked. (Local mode refuses a
// file with any error, so there a typo changes nothing at all.)
func ParseMTLSAnnotation(value string, byName func(string) (uint16, bool)) (PortMTLSModes, []error) {
	var (
		out   PortMTLSModes
		errs  []error
		seenA bool
	)
	fail := func(item string, err error) {
		errs = append(errs, fmt.Errorf("%q: %w", item, err))
	}
	if strings.TrimSpace(value) == "" {
		return out, []error{fmt.Errorf("empty: want a mode (%s) or PORT=MODE items, e.g. 8080=STRICT,9090=DISABLE", modeList())}
	}
	for item := range strings.SplitSeq(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, modeText, perPort := strings.Cut(item, "=")
		mode, modeErr := ParseMTLSMode(modeText)
		if !perPort {
			mode, modeErr = ParseMTLSMode(item)
			switch {
			case seenA:
				fail(item, errors.New("a second mode for every port: give one, and PORT=MODE for the others"))
			case modeErr != nil:
				fail(item, fmt.Errorf("%w, or PORT=MODE", modeErr))
			default:
				out.All = mode
			}
			seenA = true
			continue
		}
		if strings.TrimSpace(key) == "" {
			fail(item, errors.New("no port before '='"))
			continue
		}
		rs, err := ports.Parse(key, byName)
		if err != nil {
			fail(item, err)
			continue
		}
		if len(rs) != 1 {
			fail(item, errors.New("no port before '='"))
			continue
		}
		if modeErr != nil {
			fail(item, fmt.Errorf("%w; the port gets %s", modeErr, DefaultMTLSMode))
			mode = DefaultMTLSMode
		}
		r := PortRangeMTLSMode{First: rs[0].From, Last: rs[0].To, Mode: mode}
		if i := slices.IndexFunc(out.Ports, func(o PortRangeMTLSMode) bool { return o.First <= r.Last && r.First <= o.Last }); i >= 0 {
			fail(item, fmt.Errorf("overlaps the earlier item for %s; the earlier one applies", rangeText(out.Ports[i])))
			continue
		}
		out.Ports = append(out.Ports, r)
	}
	return out, errs
}

func rangeText(r PortRangeMTLSMode) string {
	return ports.Range{From: r.First, To: r.Last}.String()
}
