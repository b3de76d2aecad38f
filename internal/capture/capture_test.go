package capture

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
)

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "[]", ""},
		{" 25, 443 ,", "[25 443]", ""},
		{"8000-8090,8080,8091,1-3", "[1-3 8000-8091]", ""},
		{"65535", "[65535]", ""},
		{"0", "", `"0" is not a port`},
		{"65536", "", `"65536" is not a port`},
		{"80-", "", `"" is not a port`},
		{"90-80", "", "range ends before it starts"},
		{"http", "", `"http" is not a port`},
	} {
		got, err := ParsePorts(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePorts(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("ParsePorts(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSubnets(t *testing.T) {
	got, err := ParseSubnets("10.1.2.3/8, fd00::1/8,192.0.2.7,::ffff:10.0.0.0/104")
	if err != nil {
		t.Fatal(err)
	}
	if want := "[10.0.0.0/8 fd00::/8 192.0.2.7/32 10.0.0.0/8]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8"} {
		if _, err := ParseSubnets(bad); err == nil || !strings.Contains(err.Error(), "not a CIDR") {
			t.Errorf("ParseSubnets(%q) error = %v", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	c.OutboundPort = c.InboundPort
	c.ProxyUID = 0
	c.TapPort = 0
	err := c.Validate()
	for _, want := range []string{"must differ", "proxy-uid", "tap-port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestRulesOrderAndRender(t *testing.T) {
	c := DefaultConfig()
	c.SkipInboundPorts, _ = ParsePorts("25,8000-8090")
	c.SkipOutboundPorts, _ = ParsePorts("443,6443")
	c.SkipSubnets = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00::/8")}
	rules := Rules(c)
	// The catch-all redirect must be the last rule of each chain, or it would shadow the exemptions.
	last := map[string]Rule{}
	for _, r := range rules {
		if prev, ok := last[r.Chain]; ok && prev.RedirectTo != 0 {
			t.Fatalf("rule %q follows the redirect in chain %s", r, r.Chain)
		}
		last[r.Chain] = r
	}
	if last[ChainInbound].RedirectTo != 4143 || last[ChainOutbound].RedirectTo != 4140 {
		t.Fatalf("last rules: %v", last)
	}
	golden(t, "render.golden", Render(rules))
}

// TestDstMask checks the netmask a destination rule compiles to (none for a single host: the address compares whole).
func TestDstMask(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"10.0.0.0/8", "ff000000"}, {"10.96.0.0/12", "fff00000"}, {"0.0.0.0/0", "00000000"}, {"10.1.2.3/32", ""},
		{"fd00::/65", "ffffffffffffffff8000000000000000"},
	} {
		got := ""
		for _, e := range (Rule{Dst: netip.MustParsePrefix(tc.prefix)}).exprs() {
			if b, ok := e.(*expr.Bitwise); ok {
				got = fmt.Sprintf("%x", b.Mask)
			}
		}
		if got != tc.want {
			t.Errorf("%s: mask %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}
