package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/check"
)

func newUninstallCmd(env *Env) *cobra.Command {
	var (
		force  bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Print every object of sinew (control plane, webhook, cluster roles, CRDs) for kubectl delete -f -",
		Long: `Print every object sinew installed, for kubectl delete -f -:

  sinew uninstall | kubectl delete -f -

Deleting the CRDs deletes every sinew policy object with them. Uninstall refuses while pods outside the control
plane still have a sinew proxy (they would lose their identity and discovery); remove the proxies first, or pass
--force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chartcmd.CheckOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			ns := env.ControlPlaneNS
			vals := map[string]any{}
			cl, err := env.KubeClients()
			if err == nil {
				var pods []string
				pods, err = meshedPodsOutside(cmd, cl, ns)
				if err == nil && len(pods) > 0 && !force {
					return fmt.Errorf("%d pods outside the control plane have a sinew proxy (%s): remove their proxies first (redeploy them without sinew.dev/inject), or pass --force", len(pods), check.ClipList(pods, 5))
				}
				if stored, verr := chartcmd.InstalledValues(ctx, cl.Kube, ns); verr == nil {
					vals = stored // names do not depend on most values; defaults do
				}
			}
			if err != nil && !force {
				return fmt.Errorf("cannot look for meshed pods: %w (pass --force to print the objects anyway)", err)
			}
			objs, err := uninstallObjects(ns, vals)
			if err != nil {
				return err
			}
			return chartcmd.WriteObjects(env.Stdout, objs, output)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "uninstall even when meshed pods remain outside the control plane")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// uninstallObjects renders both charts and keeps only what identifies each object, in deletion order: the webhook
// configuration first, the namespace and CRDs last.
func uninstallObjects(ns string, stored map[string]any) ([]charts.Object, error) {
	v, err := chartcmd.DecodeInstalled(stored)
	if err != nil {
		return nil, err
	}
	// the names of the objects do not depend on the certificates, which are not stored
	v.Identity.TrustAnchorsPEM = "unused"
	v.Identity.Issuer.TLS = charts.TLS{CrtPEM: "unused", KeyPEM: "unused"}
	v.ProxyInjector.CABundle = "unused"
	v.ProxyInjector.TLS = charts.TLS{CrtPEM: "unused", KeyPEM: "unused"}
	v.InstallNamespace = true
	cp, err := renderControlPlane(ns, v, charts.UninstallOrder)
	if err != nil {
		return nil, err
	}
	crds, err := sinewCRDs(charts.UninstallOrder)
	if err != nil {
		return nil, err
	}
	// delete the custom resources' definitions after the control plane that watches them, before the namespace
	// the webhook first: pods created meanwhile must not wait on an injector that is going away
	var all, rest, nsObj []charts.Object
	for _, o := range cp {
		switch o.Kind {
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			all = append(all, o)
		case "Namespace":
			nsObj = append(nsObj, o)
		default:
			rest = append(rest, o)
		}
	}
	all = append(append(append(all, rest...), crds...), nsObj...)
	out := make([]charts.Object, 0, len(all))
	for _, o := range all {
		o.YAML = chartcmd.IdentifyingYAML(o)
		out = append(out, o)
	}
	return out, nil
}

// meshedPodsOutside lists pods with a sinew proxy in namespaces other than the control plane's.
func meshedPodsOutside(cmd *cobra.Command, cl *check.Clients, ns string) ([]string, error) {
	pods, err := cl.Kube.CoreV1().Pods("").List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Namespace == ns {
			continue
		}
		if check.HasProxy(&p) {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
