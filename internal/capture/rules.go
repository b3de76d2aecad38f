package capture

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sinewmesh/sinew/internal/ports"
)

// TableName is the nftables table (family inet: IPv4 and IPv6) that holds every rule sinew-init writes.
const TableName = "sinew"

// Chains of the table. Both are NAT base chains at the destination-NAT priority.
const (
	ChainInbound  = "inbound"  // hook prerouting: connections arriving at the pod
	ChainOutbound = "outbound" // hook output: connections the pod's processes open
)

// Rule is one nftables rule of the capture. Every rule matches TCP only. The zero value of a match field means
// "any"; RedirectTo == 0 means the rule returns (the connection is not captured).
type Rule struct {
	Chain      string
	UID        *uint32      // meta skuid
	Dst        netip.Prefix // ip daddr / ip6 daddr
	Ports      ports.Range  // tcp dport
	RedirectTo uint16       // redirect to :port
	Comment    string
}

func (r Rule) String() string {
	var b strings.Builder
	switch {
	case r.Ports != ports.Range{}:
		fmt.Fprintf(&b, "tcp dport %s ", r.Ports)
	default:
		b.WriteString("meta l4proto tcp ")
	}
	if r.UID != nil {
		fmt.Fprintf(&b, "meta skuid %d ", *r.UID)
	}
	if r.Dst.IsValid() {
		fam := "ip"
		if r.Dst.Addr().Is6() {
			fam = "ip6"
		}
		if r.Dst.IsSingleIP() {
			fmt.Fprintf(&b, "%s daddr %s ", fam, r.Dst.Addr())
		} else {
			fmt.Fprintf(&b, "%s daddr %s ", fam, r.Dst)
		}
	}
	if r.RedirectTo != 0 {
		fmt.Fprintf(&b, "redirect to :%d", r.RedirectTo)
	} else {
		b.WriteString("return")
	}
	if r.Comment != "" {
		fmt.Fprintf(&b, " comment %q", r.Comment)
	}
	return b.String()
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Rules computes the capture for c, in order, inbound chain first. c must be valid.
func Rules(c Config) []Rule {
	var rs []Rule
	in := func(r Rule) { r.Chain = ChainInbound; rs = append(rs, r) }
	out := func(r Rule) { r.Chain = ChainOutbound; rs = append(rs, r) }

	in(Rule{Ports: single(c.InboundPort), Comment: "proxy inbound port"})
	in(Rule{Ports: single(c.AdminPort), Comment: "proxy admin port"})
	in(Rule{Ports: single(c.TapPort), Comment: "proxy tap port"})
	for _, p := range c.SkipInboundPorts {
		in(Rule{Ports: p, Comment: "skip-inbound-ports"})
	}
	in(Rule{RedirectTo: c.InboundPort, Comment: "inbound to the proxy"})

	uid := c.ProxyUID
	out(Rule{UID: &uid, Comment: "the proxy's own connections"})
	for _, p := range loopback {
		out(Rule{Dst: p, Comment: "loopback"})
	}
	for _, p := range c.SkipSubnets {
		out(Rule{Dst: p, Comment: "skip-subnets"})
	}
	for _, p := range c.SkipOutboundPorts {
		out(Rule{Ports: p, Comment: "skip-outbound-ports"})
	}
	out(Rule{RedirectTo: c.OutboundPort, Comment: "outbound to the proxy"})
	return rs
}

func single(p uint16) ports.Range { return ports.Range{From: p, To: p} }

// Render prints rules the way `nft list table inet sinew` would show them.
func Render(rules []Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	// the priorities as nft prints them (it names -100 "dstnat" only on the prerouting hook)
	for i, ch := range []struct{ name, hook, prio string }{{ChainInbound, "prerouting", "dstnat"}, {ChainOutbound, "output", "-100"}} {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook %s priority %s; policy accept;\n", ch.name, ch.hook, ch.prio)
		for _, r := range rules {
			if r.Chain == ch.name {
				fmt.Fprintf(&b, "\t\t%s\n", r)
			}
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}
