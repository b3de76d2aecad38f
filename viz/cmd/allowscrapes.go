package cmd

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/internal/names"
)

// The objects allow-scrapes prints, in every namespace it is run for.
const (
	policyAPIVersion    = "policy.sinew.dev/v1alpha1"
	policyGroup         = "policy.sinew.dev"
	adminServer         = "proxy-admin"
	tapServer           = "proxy-tap"
	prometheusNetworks  = "viz-prometheus"
	prometheusScrape    = "viz-prometheus-scrape"
	tapAuthentication   = "viz-tap"
	tapAuthorization    = "viz-tap"
	allowScrapesComment = "# sinew viz allow-scrapes"
)

func newAllowScrapesCmd(env *cmdenv.Env) *cobra.Command {
	var (
		namespace, output, networks string
	)
	cmd := &cobra.Command{
		Use:   "allow-scrapes -n NAMESPACE",
		Short: "Print the policy that lets viz scrape and tap the proxies of a namespace whose default policy denies",
		Long: `allow-scrapes prints, for kubectl apply -f -, the policy.sinew.dev objects that let the viz extension reach
the proxies of NAMESPACE when its default inbound policy is deny (or any policy that would shut viz out):

- Server proxy-admin: every pod's proxy admin port (` + names.ProxyAdminPortName + `), HTTP/1; AuthorizationPolicy
  viz-prometheus-scrape admits the NetworkAuthentication viz-prometheus (--prometheus-networks, by default the
  install's cluster networks). Viz's Prometheus is not meshed: it is known by its address, not by an identity.
- Server proxy-tap: every pod's proxy tap port (` + names.ProxyTapPortName + `), gRPC; AuthorizationPolicy viz-tap admits
  the MeshTLSAuthentication viz-tap, the tap server's identity (service account ` + names.TapAccount + ` in ` + names.VizNamespace + `).

The proxy serves these two ports itself, outside the traffic it captures, and does not apply Server policy to
them yet: the tap port admits only the tap server's identity on its own, and the admin port answers anyone who
reaches it. The objects state the same access as policy, so that it holds once the proxy applies it there (as
Linkerd's does). The kubelet probes the admin port from the node's address: if your nodes are outside
--prometheus-networks, add their networks.`,
		Example: `  sinew viz allow-scrapes -n emojivoto | kubectl apply -f -
  sinew viz allow-scrapes -n emojivoto --prometheus-networks 10.244.0.0/16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chartcmd.CheckOutput(output); err != nil {
				return err
			}
			objs, err := allowScrapes(namespace, networks)
			if err != nil {
				return err
			}
			return chartcmd.WriteObjects(env.Stdout, objs, output)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "the namespace whose proxies viz should reach (required)")
	cmd.Flags().StringVar(&networks, "prometheus-networks", names.DefaultClusterNetworks, "networks (CIDR, comma-separated) Prometheus scrapes from")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	_ = cmd.MarkFlagRequired("namespace")
	return cmd
}

// allowScrapes builds the objects for namespace ns; networks is a comma-separated list of CIDRs (or addresses).
func allowScrapes(ns, networks string) ([]charts.Object, error) {
	if err := names.CheckDNSLabel(ns); err != nil {
		return nil, fmt.Errorf("--namespace: %w", err)
	}
	var cidrs []string
	for _, n := range strings.Split(networks, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				return nil, fmt.Errorf("--prometheus-networks: %q is not a network in CIDR notation nor an address", n)
			}
		}
		cidrs = append(cidrs, n)
	}
	if len(cidrs) == 0 {
		return nil, fmt.Errorf("--prometheus-networks: give at least one network")
	}
	meta := func(name string) string {
		return fmt.Sprintf(`metadata:
  name: %s
  namespace: %s
  labels:
    sinew.dev/extension: viz
    app.kubernetes.io/part-of: sinew-viz
`, name, ns)
	}
	obj := func(kind, name, comment, spec string) charts.Object {
		return charts.Object{APIVersion: policyAPIVersion, Kind: kind, Name: name, Namespace: ns,
			YAML: fmt.Sprintf("%s: %s\napiVersion: %s\nkind: %s\n%sspec:\n%s", allowScrapesComment, comment, policyAPIVersion, kind, meta(name), spec)}
	}
	var nets strings.Builder
	for _, c := range cidrs {
		fmt.Fprintf(&nets, "  - cidr: %q\n", c)
	}
	return []charts.Object{
		obj("Server", adminServer, "the proxies' admin port (metrics, probes)", fmt.Sprintf(`  podSelector: {}
  port: %s
  proxyProtocol: HTTP/1
`, names.ProxyAdminPortName)),
		obj("NetworkAuthentication", prometheusNetworks, "where viz's Prometheus (not meshed) scrapes from",
			"  networks:\n"+nets.String()),
		obj("AuthorizationPolicy", prometheusScrape, "Prometheus may scrape the admin port", fmt.Sprintf(`  targetRef:
    group: %s
    kind: Server
    name: %s
  requiredAuthenticationRefs:
  - group: %s
    kind: NetworkAuthentication
    name: %s
`, policyGroup, adminServer, policyGroup, prometheusNetworks)),
		obj("Server", tapServer, "the proxies' tap port", fmt.Sprintf(`  podSelector: {}
  port: %s
  proxyProtocol: gRPC
`, names.ProxyTapPortName)),
		obj("MeshTLSAuthentication", tapAuthentication, "the viz tap server's mesh identity", fmt.Sprintf(`  identityRefs:
  - kind: ServiceAccount
    name: %s
    namespace: %s
`, names.TapAccount, names.VizNamespace)),
		obj("AuthorizationPolicy", tapAuthorization, "only the viz tap server may tap", fmt.Sprintf(`  targetRef:
    group: %s
    kind: Server
    name: %s
  requiredAuthenticationRefs:
  - group: %s
    kind: MeshTLSAuthentication
    name: %s
`, policyGroup, tapServer, policyGroup, tapAuthentication)),
	}, nil
}
