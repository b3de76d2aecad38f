// Package gateway is a gateway proxy's view of its Gateway: the listeners the control plane programmed, grouped
// by port, their certificates, and the routes of each host name, translated once from each WatchGateway answer
// into what the request path reads without further work. It serves nothing itself: the proxy opens a listener
// per port and the forwarder's gateway side asks Port and Listener which routes a request gets.
package gateway

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Config is the translated configuration of one Gateway. It is immutable once built.
type Config struct {
	// Exists is false until the control plane knows the Gateway (and while it does not): nothing is served.
	Exists bool
	Labels map[string]string
	// Ports are the listener ports, each with the listeners that share it.
	Ports map[uint16]*Port
}

// Port is one port the gateway listens on and the listeners that share it.
type Port struct {
	Number uint16
	TLS    bool
	// Listeners, the most specific host name first: exact names, then wildcards by length, then any host.
	Listeners []*Listener
}

// Listener is one listener of the Gateway.
type Listener struct {
	Name     string
	Hostname string // "": any host
	Certs    []*tls.Certificate
	// Hosts are the host names its routes serve, the most specific first; a request gets the routes of the first
	// host that matches it (Gateway API: the most specific host name match wins, then rule precedence).
	Hosts []*Host
}

// Host is one host name of a listener's routes (a Gateway API "virtual host") and the routes that serve it.
type Host struct {
	Name   string // "": any host
	Policy *policy.Outbound
}

// Translate turns a WatchGateway answer into a Config. What the proxy cannot use is left out and reported: a
// listener with an unknown protocol, an HTTPS listener without a usable certificate, a listener whose port or
// protocol clashes with an earlier one, routes' parts as policy.Translate reports them.
func Translate(gc *policyv1.GatewayConfig) (*Config, []error) {
	c := &Config{Exists: gc.GetExists(), Labels: gc.GetLabels(), Ports: map[uint16]*Port{}}
	var problems []error
	for i, pl := range gc.GetListeners() {
		field := fmt.Sprintf("listeners[%d] (%s)", i, pl.GetName())
		l, tlsOn, errs := translateListener(field, pl, c.Labels)
		problems = append(problems, errs...)
		if l == nil {
			continue
		}
		n := pl.GetPort()
		if n == 0 || n > 65535 {
			problems = append(problems, fmt.Errorf("%s: port %d", field, n))
			continue
		}
		p := c.Ports[uint16(n)]
		if p == nil {
			p = &Port{Number: uint16(n), TLS: tlsOn}
			c.Ports[uint16(n)] = p
		}
		if p.TLS != tlsOn {
			problems = append(problems, fmt.Errorf("%s: port %d already serves the other protocol", field, n))
			continue
		}
		if slices.ContainsFunc(p.Listeners, func(o *Listener) bool { return o.Hostname == l.Hostname }) {
			problems = append(problems, fmt.Errorf("%s: port %d already has a listener for host %q", field, n, l.Hostname))
			continue
		}
		p.Listeners = append(p.Listeners, l)
	}
	for _, p := range c.Ports {
		slices.SortStableFunc(p.Listeners, func(a, b *Listener) int { return compareHostnames(a.Hostname, b.Hostname) })
	}
	return c, problems
}

func translateListener(field string, pl *policyv1.GatewayListener, labels map[string]string) (*Listener, bool, []error) {
	var problems []error
	l := &Listener{Name: pl.GetName(), Hostname: strings.ToLower(pl.GetHostname())}
	var tlsOn bool
	switch pl.GetProtocol() {
	case policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTP:
	case policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTPS:
		tlsOn = true
		for j, pc := range pl.GetCertificates() {
			cert, err := parseCertificate(pc)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s.certificates[%d] (%s): %w", field, j, pc.GetName(), err))
				continue
			}
			l.Certs = append(l.Certs, cert)
		}
		if len(l.Certs) == 0 {
			return nil, false, append(problems, fmt.Errorf("%s: HTTPS without a usable certificate", field))
		}
	default:
		return nil, false, append(problems, fmt.Errorf("%s: protocol %v", field, pl.GetProtocol()))
	}
	// Group the routes by the host names they serve; a route without host names serves the listener's.
	byHost := map[string][]*policyv1.HttpRoute{}
	var hosts []string
	for _, r := range pl.GetRoutes() {
		names := r.GetHostnames()
		if len(names) == 0 {
			names = []string{l.Hostname}
		}
		for _, h := range names {
			h = strings.ToLower(h)
			if _, ok := byHost[h]; !ok {
				hosts = append(hosts, h)
			}
			byHost[h] = append(byHost[h], r)
		}
	}
	slices.SortStableFunc(hosts, compareHostnames)
	for _, h := range hosts {
		o, errs := policy.Translate("", &policyv1.OutboundPolicy{Routes: byHost[h], Labels: labels})
		for _, err := range errs {
			problems = append(problems, fmt.Errorf("%s host %q: %w", field, h, err))
		}
		l.Hosts = append(l.Hosts, &Host{Name: h, Policy: o})
	}
	return l, tlsOn, problems
}

func parseCertificate(pc *policyv1.Certificate) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(pc.GetChainPem(), pc.GetKeyPem())
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// compareHostnames orders host names most specific first: exact names (longer first), then wildcards (longer
// suffix first), then "" (any host). Equal specificity keeps the order given.
func compareHostnames(a, b string) int {
	rank := func(h string) int {
		switch {
		case h == "":
			return 2
		case strings.HasPrefix(h, "*."):
			return 1
		}
		return 0
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return cmp.Compare(ra, rb)
	}
	return cmp.Compare(len(b), len(a))
}

// HostMatches reports whether host (lower case, without a port) is one that pattern serves: "" serves every host,
// "*.example.com" every host that ends in ".example.com" (one or more labels before it), anything else only
// itself.
func HostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	return pattern == host
}

// RequestHost is the host name of a request's authority: lower case, without a port or a final dot.
func RequestHost(authority string) string {
	h := authority
	if host, _, err := net.SplitHostPort(authority); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Listener is the listener of p that serves host: the most specific match. nil when none does.
func (p *Port) Listener(host string) *Listener {
	for _, l := range p.Listeners {
		if HostMatches(l.Hostname, host) {
			return l
		}
	}
	return nil
}

// Host is the routes of l that serve host: the most specific host name that matches. nil when none does.
func (l *Listener) Host(host string) *Host {
	for _, h := range l.Hosts {
		if HostMatches(h.Name, host) {
			return h
		}
	}
	return nil
}

// ErrNoCertificate: an HTTPS port without a listener for the client's server name, and none for any name.
var ErrNoCertificate = errors.New("no listener serves this server name")

// Certificate chooses the certificate for a TLS client of p by its server name (SNI): among the certificates of
// the listener that serves the name, the first that names it exactly, else the first whose wildcard covers it,
// else that listener's first. A client without SNI gets the least specific listener (the one for any host when
// there is one).
func (p *Port) Certificate(serverName string) (*tls.Certificate, error) {
	host := RequestHost(serverName)
	var l *Listener
	if host == "" {
		if len(p.Listeners) == 0 {
			return nil, ErrNoCertificate
		}
		l = p.Listeners[len(p.Listeners)-1]
	} else if l = p.Listener(host); l == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCertificate, host)
	}
	if host != "" {
		for _, c := range l.Certs { // a certificate for exactly this name first, then one whose wildcard covers it
			if slices.Contains(c.Leaf.DNSNames, host) {
				return c, nil
			}
		}
		for _, c := range l.Certs {
			if c.Leaf.VerifyHostname(host) == nil {
				return c, nil
			}
		}
	}
	return l.Certs[0], nil
}
