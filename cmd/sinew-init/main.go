// Command sinew-init is the init container of a meshed pod: it installs the nftables rules that send the pod's
// inbound TCP to the proxy's inbound port and its outbound TCP (except the proxy's own) to the proxy's outbound
// port, prints them, and exits. See docs/architecture/kubernetes.md and internal/capture.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sinewmesh/sinew/internal/capture"
	"github.com/sinewmesh/sinew/internal/version"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sinew-init:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sinew-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := capture.DefaultConfig()
	inbound := fs.Uint("inbound-port", uint(d.InboundPort), "the proxy's inbound port: inbound TCP is redirected there")
	outbound := fs.Uint("outbound-port", uint(d.OutboundPort), "the proxy's outbound port: outbound TCP is redirected there")
	uid := fs.Uint("proxy-uid", uint(d.ProxyUID), "connections of this UID (the proxy's) are never redirected")
	admin := fs.Uint("admin-port", uint(d.AdminPort), "the proxy's admin port (never redirected inbound)")
	tap := fs.Uint("tap-port", uint(d.TapPort), "the proxy's tap port (never redirected inbound)")
	skipIn := fs.String("skip-inbound-ports", "", "inbound ports that reach the app directly, e.g. 25,8000-8090")
	skipOut := fs.String("skip-outbound-ports", "", "outbound ports that bypass the proxy, e.g. 443,6443")
	skipNets := fs.String("skip-subnets", "", "outbound destinations that bypass the proxy, e.g. 10.0.0.0/8,fd00::/8")
	dryRun := fs.Bool("dry-run", false, "print the rules and change nothing")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all settings are flags)", fs.Args())
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return nil
	}
	var errs []error
	port := func(name string, v uint) uint16 {
		if v == 0 || v > 65535 {
			errs = append(errs, fmt.Errorf("--%s %d: want a port between 1 and 65535", name, v))
			return 0
		}
		return uint16(v)
	}
	c := capture.Config{
		InboundPort: port("inbound-port", *inbound), OutboundPort: port("outbound-port", *outbound),
		AdminPort: port("admin-port", *admin), TapPort: port("tap-port", *tap),
	}
	if *uid > 1<<32-1 {
		errs = append(errs, fmt.Errorf("--proxy-uid %d: out of range", *uid))
	}
	c.ProxyUID = uint32(*uid)
	var err error
	if c.SkipInboundPorts, err = capture.ParsePorts(*skipIn); err != nil {
		errs = append(errs, fmt.Errorf("--skip-inbound-ports: %w", err))
	}
	if c.SkipOutboundPorts, err = capture.ParsePorts(*skipOut); err != nil {
		errs = append(errs, fmt.Errorf("--skip-outbound-ports: %w", err))
	}
	if c.SkipSubnets, err = capture.ParseSubnets(*skipNets); err != nil {
		errs = append(errs, fmt.Errorf("--skip-subnets: %w", err))
	}
	if len(errs) == 0 {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprint(stdout, capture.Render(capture.Rules(c)))
		return nil
	}
	rules, err := capture.Apply(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sinew-init %s: installed\n%s", version.Version, capture.Render(rules))
	return nil
}
