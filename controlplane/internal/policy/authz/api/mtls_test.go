package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMTLSAnnotation(t *testing.T) {
	t.Parallel()
	byName := func(name string) (uint16, bool) {
		p, ok := map[string]uint16{"http": 8080, "admin": 9990}[name]
		return p, ok
	}
	rng := func(first, last uint16, m MTLSMode) PortRangeMTLSMode {
		return PortRangeMTLSMode{First: first, Last: last, Mode: m}
	}
	for _, tc := range []struct {
		in   string
		want PortMTLSModes
		errs []string // substrings, one per error
	}{
		{in: "STRICT", want: PortMTLSModes{All: MTLSStrict}},
		{in: " disable ", want: PortMTLSModes{All: MTLSDisable}},
		{in: "8080=STRICT,9090=DISABLE", want: PortMTLSModes{Ports: []PortRangeMTLSMode{rng(8080, 8080, MTLSStrict), rng(9090, 9090, MTLSDisable)}}},
		{in: "STRICT, admin=permissive, 7000-7010=DISABLE,", want: PortMTLSModes{All: MTLSStrict,
			Ports: []PortRangeMTLSMode{rng(9990, 9990, MTLSPermissive), rng(7000, 7010, MTLSDisable)}}},
		// What does not parse is reported; a port with a bad mode gets PERMISSIVE, the rest still applies.
		{in: "8080=STRICT,9090=STRCT", want: PortMTLSModes{Ports: []PortRangeMTLSMode{rng(8080, 8080, MTLSStrict), rng(9090, 9090, MTLSPermissive)}},
			errs: []string{`"9090=STRCT": "STRCT" is not an mTLS mode: want one of STRICT, PERMISSIVE, DISABLE; the port gets PERMISSIVE`}},
		{in: "STRCT,8080=STRICT", want: PortMTLSModes{Ports: []PortRangeMTLSMode{rng(8080, 8080, MTLSStrict)}},
			errs: []string{`"STRCT": "STRCT" is not an mTLS mode: want one of STRICT, PERMISSIVE, DISABLE, or PORT=MODE`}},
		{in: "optional", errs: []string{`"optional" is not an mTLS mode`}},
		{in: "STRICT,DISABLE", want: PortMTLSModes{All: MTLSStrict}, errs: []string{`"DISABLE": a second mode for every port`}},
		{in: "grpc=STRICT", errs: []string{`"grpc": no port by that name`}},
		{in: "0=STRICT", errs: []string{`"0" is not a port between 1 and 65535`}},
		{in: "=STRICT", errs: []string{`"=STRICT": no port before '='`}},
		{in: "9000-9010=STRICT,9005=DISABLE", want: PortMTLSModes{Ports: []PortRangeMTLSMode{rng(9000, 9010, MTLSStrict)}},
			errs: []string{`"9005=DISABLE": overlaps the earlier item for 9000-9010; the earlier one applies`}},
		{in: "http=STRICT,8080=DISABLE", want: PortMTLSModes{Ports: []PortRangeMTLSMode{rng(8080, 8080, MTLSStrict)}}, errs: []string{"overlaps"}},
		{in: "", errs: []string{"empty: want a mode"}},
	} {
		got, errs := ParseMTLSAnnotation(tc.in, byName)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
		if len(errs) != len(tc.errs) {
			t.Errorf("%q: errors %v, want %d", tc.in, errs, len(tc.errs))
			continue
		}
		for i, e := range errs {
			if !strings.Contains(e.Error(), tc.errs[i]) {
				t.Errorf("%q: error %q, want it to contain %q", tc.in, e, tc.errs[i])
			}
		}
	}
	// Without a name resolver, names are errors.
	if _, errs := ParseMTLSAnnotation("http=STRICT", nil); len(errs) != 1 {
		t.Errorf("a name without a resolver: %v", errs)
	}
}

func TestPortMTLSModesFor(t *testing.T) {
	t.Parallel()
	m := PortMTLSModes{All: MTLSStrict, Ports: []PortRangeMTLSMode{{First: 9000, Last: 9010, Mode: MTLSDisable}}}
	for port, want := range map[uint16]MTLSMode{8080: MTLSStrict, 9000: MTLSDisable, 9010: MTLSDisable, 9011: MTLSStrict} {
		if got := m.For(port); got != want {
			t.Errorf("port %d: %q, want %q", port, got, want)
		}
	}
	if got := (PortMTLSModes{}).For(80); got != "" {
		t.Errorf("unset: %q", got)
	}
	if !m.Has(MTLSDisable) || m.Has(MTLSPermissive) || !m.Has(MTLSStrict) {
		t.Error("Has")
	}
}

func TestServerMTLSModeValidation(t *testing.T) {
	t.Parallel()
	srv := func(mode MTLSMode) *Server {
		return &Server{Metadata: Meta{Name: "s"}, Spec: ServerSpec{PodSelector: &LabelSelector{}, Port: Port{Number: 80}, MTLSMode: mode}}
	}
	for _, m := range append(MTLSModes, "") {
		if err := srv(m).Validate(); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	for _, m := range []MTLSMode{"strict", "OPTIONAL"} {
		if err := srv(m).Validate(); err == nil || !strings.Contains(err.Error(), "spec.mtlsMode: must be one of STRICT, PERMISSIVE, DISABLE") {
			t.Errorf("%q: %v", m, err)
		}
	}
}
