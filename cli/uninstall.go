package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/internal/names"
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

Deleting the CRDs deletes every sinew policy object with them. Uninstall refuses while Gateways of the
GatewayClass sinew remain (their gateway proxies would stay behind, without a control plane): delete those
Gateways first, and their Deployments, Services and ServiceAccounts go with them. It refuses as well while pods
outside the control plane still have a sinew proxy (they would lose their identity and discovery); remove the
proxies first. --force prints the objects anyway. The GatewayClass sinew is printed when the cluster has the
Gateway API's CRDs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chartcmd.CheckOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			ns := env.ControlPlaneNS
			vals := map[string]any{}
			// Unknown (the cluster cannot be read): printed, for kubectl to delete if it is there.
			apis := []string{charts.GatewayClassAPIVersion}
			cl, err := env.KubeClients()
			if err == nil {
				var gws []string
				if gws, err = sinewGateways(cmd, cl); err == nil && len(gws) > 0 && !force {
					return fmt.Errorf("%d Gateways of the GatewayClass %s remain (%s): delete them first (their proxies, Services and ServiceAccounts go with them), or pass --force",
						len(gws), names.GatewayClass, check.ClipList(gws, 5))
				}
				var pods []string
				if err == nil {
					pods, err = meshedPodsOutside(cmd, cl, ns)
				}
				if err == nil && len(pods) > 0 && !force {
					return fmt.Errorf("%d pods outside the control plane have a sinew proxy (%s): remove their proxies first (redeploy them without sinew.dev/inject), or pass --force", len(pods), check.ClipList(pods, 5))
				}
				if stored, verr := chartcmd.InstalledValues(ctx, cl.Kube, ns); verr == nil {
					vals = stored // names do not depend on most values; defaults do
				}
				if _, cerr := cl.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, gatewayClassCRD, metav1.GetOptions{}); apierrors.IsNotFound(cerr) {
					apis = nil
				}
			}
			if err != nil && !force {
				return fmt.Errorf("cannot look for meshed pods: %w (pass --force to print the objects anyway)", err)
			}
			objs, err := uninstallObjects(ns, vals, apis)
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
// configuration first, the namespace and CRDs last. apiVersions are the optional APIs the cluster serves
// (servedAPIs).
func uninstallObjects(ns string, stored map[string]any, apiVersions []string) ([]charts.Object, error) {
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
	cp, err := renderControlPlane(ns, v, charts.UninstallOrder, apiVersions)
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

// sinewGateways lists the Gateways the gateway controller runs proxies for ("namespace/name"), by the
// Deployments it made for them: named for the Gateway, labelled with its name and controlled by it.
func sinewGateways(cmd *cobra.Command, cl *check.Clients) ([]string, error) {
	deps, err := cl.Kube.AppsV1().Deployments("").List(cmd.Context(), metav1.ListOptions{LabelSelector: names.GatewayLabel})
	if err != nil {
		return nil, fmt.Errorf("listing the gateways' Deployments: %w", err)
	}
	var out []string
	for _, d := range deps.Items {
		gw := d.Labels[names.GatewayLabel]
		ref := metav1.GetControllerOfNoCopy(&d)
		if gw == "" || d.Name != names.GatewayResourceName(gw) || ref == nil || ref.Kind != "Gateway" || ref.Name != gw ||
			!strings.HasPrefix(d.Annotations[names.CreatedByAnnotation], "sinew/gateway-controller") {
			continue
		}
		out = append(out, d.Namespace+"/"+gw)
	}
	sort.Strings(out)
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
