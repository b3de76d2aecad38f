// Package capture programs a pod's traffic capture: nftables rules that send the pod's inbound TCP to the proxy's
// inbound port and its outbound TCP (except the proxy's own) to the proxy's outbound port. It talks to the kernel
// through netlink (github.com/google/nftables), so the sinew-init image needs no nft or iptables binary.
//
// The rules are computed by a pure function (Rules) from a validated Config, rendered for people by Render and
// installed by Apply, which replaces the whole `inet sinew` table in one atomic transaction (running it twice
// leaves one copy). It knows nothing about Kubernetes; the injector decides the flags.
package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Defaults from docs/architecture/kubernetes.md.
const (
	DefaultInboundPort  = 4143
	DefaultOutboundPort = 4140
	DefaultProxyUID     = 2102
	DefaultAdminPort    = 4191
	DefaultTapPort      = 4190
)

// PortRange is an inclusive range of TCP ports; a single port has From == To.
type PortRange struct {
	From, To uint16
}

func (r PortRange) String() string {
	if r.From == r.To {
		return strconv.Itoa(int(r.From))
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.From <= p && p <= r.To }

// Config is what sinew-init is told about the pod.
type Config struct {
	InboundPort  uint16 // the proxy's inbound listener: inbound TCP is redirected here
	OutboundPort uint16 // the proxy's outbound listener: outbound TCP is redirected here
	ProxyUID     uint32 // the proxy's own connections (this UID) are never captured
	AdminPort    uint16 // always skipped inbound
	TapPort      uint16 // always skipped inbound

	SkipInboundPorts  []PortRange    // inbound connections to these ports reach the app directly
	SkipOutboundPorts []PortRange    // outbound connections to these ports bypass the proxy
	SkipSubnets       []netip.Prefix // outbound connections to these networks bypass the proxy
}

// DefaultConfig returns the documented defaults with nothing skipped beyond the proxy's own ports.
func DefaultConfig() Config {
	return Config{
		InboundPort: DefaultInboundPort, OutboundPort: DefaultOutboundPort, ProxyUID: DefaultProxyUID,
		AdminPort: DefaultAdminPort, TapPort: DefaultTapPort,
	}
}

// Validate reports every problem, naming the field.
func (c Config) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    uint16
	}{{"inbound-port", c.InboundPort}, {"outbound-port", c.OutboundPort}, {"admin-port", c.AdminPort}, {"tap-port", c.TapPort}} {
		if p.v == 0 {
			errs = append(errs, fmt.Errorf("%s: must be a port between 1 and 65535", p.name))
		}
	}
	if c.InboundPort != 0 && c.InboundPort == c.OutboundPort {
		errs = append(errs, fmt.Errorf("inbound-port and outbound-port are both %d: they must differ", c.InboundPort))
	}
	if c.ProxyUID == 0 {
		errs = append(errs, errors.New("proxy-uid: must not be 0 (root's own connections would escape capture)"))
	}
	for i, r := range append(append([]PortRange(nil), c.SkipInboundPorts...), c.SkipOutboundPorts...) {
		if r.From == 0 || r.From > r.To {
			errs = append(errs, fmt.Errorf("skip port range #%d %q: want 1 <= from <= to <= 65535", i+1, r))
		}
	}
	for _, p := range c.SkipSubnets {
		if !p.IsValid() {
			errs = append(errs, errors.New("skip-subnets: invalid prefix"))
		}
	}
	return errors.Join(errs...)
}

// ParsePorts parses a comma-separated list of ports and inclusive ranges ("25,443,8000-8090"). Blank entries are
// ignored; the result is sorted and merged.
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(f, "-")
		from, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("%q: %w (want a port like 443 or a range like 8000-8090)", f, err)
		}
		to := from
		if isRange {
			if to, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("%q: %w (want a port like 443 or a range like 8000-8090)", f, err)
			}
			if to < from {
				return nil, fmt.Errorf("%q: range ends before it starts", f)
			}
		}
		out = append(out, PortRange{From: from, To: to})
	}
	return mergePorts(out), nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port between 1 and 65535", strings.TrimSpace(s))
	}
	return uint16(n), nil
}

func mergePorts(in []PortRange) []PortRange {
	if len(in) == 0 {
		return nil
	}
	sort.Slice(in, func(i, j int) bool { return in[i].From < in[j].From })
	out := []PortRange{in[0]}
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

// ParseSubnets parses a comma-separated list of CIDRs ("10.0.0.0/8,fd00::/8"); a bare address means that one host.
// Host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8).
func ParseSubnets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or fd00::/8", f)
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or fd00::/8", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
