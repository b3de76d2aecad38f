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
	"strings"

	"github.com/sinewmesh/sinew/internal/ports"
)

// Defaults from docs/architecture/kubernetes.md.
const (
	DefaultInboundPort  = 4143
	DefaultOutboundPort = 4140
	DefaultProxyUID     = 2102
	DefaultAdminPort    = 4191
	DefaultTapPort      = 4190
)

// Config is what sinew-init is told about the pod.
type Config struct {
	InboundPort  uint16 // the proxy's inbound listener: inbound TCP is redirected here
	OutboundPort uint16 // the proxy's outbound listener: outbound TCP is redirected here
	ProxyUID     uint32 // the proxy's own connections (this UID) are never captured
	AdminPort    uint16 // always skipped inbound
	TapPort      uint16 // always skipped inbound

	SkipInboundPorts  []ports.Range  // inbound connections to these ports reach the app directly
	SkipOutboundPorts []ports.Range  // outbound connections to these ports bypass the proxy
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
	for i, r := range append(append([]ports.Range(nil), c.SkipInboundPorts...), c.SkipOutboundPorts...) {
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

// ParsePorts parses a comma-separated list of ports and inclusive ranges ("25,443,8000-8090") with the port-list
// parser every sinew component shares (internal/ports). Blank entries are ignored; the result is sorted and merged.
func ParsePorts(s string) ([]ports.Range, error) {
	rs, err := ports.Parse(s, nil)
	if err != nil {
		return nil, err
	}
	return ports.Merge(rs), nil
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
