package cmd

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// The viz extension's names (docs/architecture/viz.md), as install, uninstall, check and the viz commands use them.
const (
	vizExtNamespace   = names.VizNamespace
	vizExtDeployment  = names.VizDeployment
	vizExtService     = names.VizService
	vizExtServicePort = "http"
	vizExtAPIPort     = "8084"
	// vizSelector selects every object of the extension.
	vizSelector = "sinew.dev/extension=viz"
)

func newInstallCmd(env *cmdenv.Env) *cobra.Command {
	var (
		values        chartcmd.ValueFlags
		ignoreCluster bool
		output        string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the manifests of the viz extension (sinew-viz and a Prometheus) for kubectl apply -f -",
		Long: `Print the manifests of the viz extension, for kubectl apply -f -:

  sinew viz install | kubectl apply -f -
  sinew viz check

The extension runs in the namespace sinew-viz: sinew-viz (the API behind sinew viz stat, edges and tap, and the
dashboard) and a Prometheus that scrapes the proxies, keeping 6 hours of data. To use a Prometheus of your own
instead, give its URL: --set prometheusUrl=http://prometheus.monitoring.svc.cluster.local:9090 (it needs the
sinew-proxy scrape job of docs/observability/viz.md).

install reads the mesh's trust anchors and trust domain from the installed control plane, so the control plane
must be installed first. With --ignore-cluster give them as values (--set-file identityTrustAnchorsPEM=ca.crt).`,
		Example: `  sinew viz install | kubectl apply -f -
  sinew viz install --set prometheusUrl=http://prometheus.monitoring.svc.cluster.local:9090 | kubectl apply -f -
  sinew viz install --set prometheus.image=registry.example/prometheus:v2.53.3 | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chartcmd.CheckOutput(output); err != nil {
				return err
			}
			v, err := vizValues(cmd.Context(), env, &values, ignoreCluster)
			if err != nil {
				return err
			}
			objs, err := renderViz(v, charts.InstallOrder)
			if err != nil {
				return err
			}
			return chartcmd.WriteObjects(env.Stdout, objs, output)
		},
	}
	values.Register(cmd)
	cmd.Flags().BoolVar(&ignoreCluster, "ignore-cluster", false, "do not read the control plane's trust anchors from the cluster (give identityTrustAnchorsPEM)")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// vizValues layers what the installed control plane says (unless ignoreCluster) and then the Helm value flags over
// the chart's defaults, decodes the result strictly and checks it.
func vizValues(ctx context.Context, env *cmdenv.Env, flags *chartcmd.ValueFlags, ignoreCluster bool) (*charts.VizValues, error) {
	vals, err := charts.DefaultValues(charts.Viz)
	if err != nil {
		return nil, err
	}
	v, err := charts.DecodeVizValues(vals)
	if err != nil {
		return nil, err
	}
	if !ignoreCluster {
		if err := vizValuesFromCluster(ctx, env, v); err != nil {
			return nil, err
		}
	}
	if flags.Given() {
		if vals, err = v.Map(); err != nil {
			return nil, err
		}
		if err := flags.MergeInto(env.Stdin, vals); err != nil {
			return nil, err
		}
		if v, err = charts.DecodeVizValues(vals); err != nil {
			return nil, fmt.Errorf("%w (the chart's values are listed in charts/sinew-viz/values.yaml)", err)
		}
	}
	return v, checkVizValues(v)
}

// vizValuesFromCluster fills in what the extension shares with the installed control plane: its trust anchors,
// trust domain, cluster domain and namespace.
func vizValuesFromCluster(ctx context.Context, env *cmdenv.Env, v *charts.VizValues) error {
	cl, err := env.KubeClients()
	if err != nil {
		return fmt.Errorf("%w (use --ignore-cluster with --set-file identityTrustAnchorsPEM=<file> to print the manifests without looking at the cluster)", err)
	}
	ns := env.ControlPlaneNS
	notInstalled := fmt.Sprintf("the sinew control plane is not installed in namespace %s: install it first (`sinew install --crds | kubectl apply -f -`, then `sinew install | kubectl apply -f -`), or give its namespace with -L", ns)
	stored, err := chartcmd.InstalledValues(ctx, cl.Kube, ns)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s", notInstalled)
	case err != nil:
		return err
	}
	cp, err := chartcmd.DecodeInstalled(stored)
	if err != nil {
		return err
	}
	anchors, err := chartcmd.InstalledTrustAnchors(ctx, cl.Kube, ns)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s (the ConfigMap %s/%s is missing)", notInstalled, ns, names.TrustRootsConfigMap)
	case err != nil:
		return err
	}
	anchors = strings.TrimSpace(anchors)
	if !strings.Contains(anchors, "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("the ConfigMap %s/%s holds no PEM certificate under %s: repair the control plane with `sinew upgrade | kubectl apply -f -`", ns, names.TrustRootsConfigMap, names.TrustRootsKey)
	}
	v.IdentityTrustAnchorsPEM = anchors + "\n"
	if cp.Identity.TrustDomain != "" {
		v.TrustDomain = cp.Identity.TrustDomain
	}
	if cp.ClusterDomain != "" {
		v.ClusterDomain = cp.ClusterDomain
	}
	if ns != cmdenv.DefaultNamespace {
		v.ControlPlaneNamespace = ns
	}
	return nil
}

// checkVizValues refuses values that would render a broken extension, naming the value.
func checkVizValues(v *charts.VizValues) error {
	for _, err := range []error{
		chartcmd.IsOneOf("logLevel", v.LogLevel, names.LogLevels...),
		chartcmd.IsOneOf("logFormat", v.LogFormat, names.LogFormats...),
		chartcmd.IsOneOf("image.pullPolicy", v.Image.PullPolicy, chartcmd.PullPolicies...),
		chartcmd.IsOneOf("prometheus.pullPolicy", v.Prometheus.PullPolicy, chartcmd.PullPolicies...),
		chartcmd.IsOneOf("prometheus.discovery", v.Prometheus.Discovery, "kubernetes", "http"),
	} {
		if err != nil {
			return err
		}
	}
	for _, p := range []struct{ path, v string }{{"clusterDomain", v.ClusterDomain}, {"trustDomain", v.TrustDomain}} {
		if p.v != "" && !names.IsDNSName(p.v) {
			return fmt.Errorf("value %s: %q is not a lower-case DNS name", p.path, p.v)
		}
	}
	if u := v.PrometheusURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("value prometheusUrl: %q is not an http:// or https:// URL", u)
	}
	return nil
}

func renderViz(v *charts.VizValues, order charts.Order) ([]charts.Object, error) {
	vals, err := v.Map()
	if err != nil {
		return nil, err
	}
	c, err := charts.Load(charts.Viz, version.Version)
	if err != nil {
		return nil, err
	}
	return charts.Render(c, vizExtNamespace, vals, order)
}

func newUninstallCmd(env *cmdenv.Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Print every object of the viz extension for kubectl delete -f -",
		Long: `Print every object of the viz extension that is in the cluster (they carry the label
sinew.dev/extension=viz), for kubectl delete -f -:

  sinew viz uninstall | kubectl delete -f -

Deleting the namespace sinew-viz deletes what is in it; the cluster roles and bindings are printed on their own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chartcmd.CheckOutput(output); err != nil {
				return err
			}
			objs, err := vizObjectsInCluster(cmd.Context(), env)
			if err != nil {
				return err
			}
			if len(objs) == 0 {
				fmt.Fprintf(env.Stderr, "no object labelled %s in the cluster: the viz extension is not installed\n", vizSelector)
				return nil
			}
			return chartcmd.WriteObjects(env.Stdout, objs, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// vizObjectsInCluster lists the objects labelled sinew.dev/extension=viz, in deletion order: the bindings before
// the roles, the objects in namespaces that stay (a Helm install into a namespace it did not create) before the
// namespaces, which take their contents with them.
func vizObjectsInCluster(ctx context.Context, env *cmdenv.Env) ([]charts.Object, error) {
	cl, err := env.KubeClients()
	if err != nil {
		return nil, err
	}
	kube := cl.Kube
	sel := metav1.ListOptions{LabelSelector: vizSelector}
	nss, err := kube.CoreV1().Namespaces().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	crbs, err := kube.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing cluster role bindings: %w", err)
	}
	crs, err := kube.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing cluster roles: %w", err)
	}
	deps, err := kube.AppsV1().Deployments("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	svcs, err := kube.CoreV1().Services("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	cms, err := kube.CoreV1().ConfigMaps("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing config maps: %w", err)
	}
	sas, err := kube.CoreV1().ServiceAccounts("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing service accounts: %w", err)
	}
	deleted := map[string]bool{}
	for _, n := range nss.Items {
		deleted[n.Name] = true
	}
	var out []charts.Object
	out = append(out, objectRefs("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", crbs.Items, nil)...)
	out = append(out, objectRefs("rbac.authorization.k8s.io/v1", "ClusterRole", crs.Items, nil)...)
	// namespaced objects in namespaces that stay (a Helm install into a namespace it did not create)
	out = append(out, objectRefs("apps/v1", "Deployment", deps.Items, deleted)...)
	out = append(out, objectRefs("v1", "Service", svcs.Items, deleted)...)
	out = append(out, objectRefs("v1", "ConfigMap", cms.Items, deleted)...)
	out = append(out, objectRefs("v1", "ServiceAccount", sas.Items, deleted)...)
	out = append(out, objectRefs("v1", "Namespace", nss.Items, nil)...)
	for i := range out {
		out[i].YAML = chartcmd.IdentifyingYAML(out[i])
	}
	return out, nil
}

// objectRefs names items (of kind) sorted by namespace and name, leaving out those in a namespace of skipNS.
func objectRefs[T any, P interface {
	*T
	metav1.Object
}](apiVersion, kind string, items []T, skipNS map[string]bool) []charts.Object {
	var out []charts.Object
	for i := range items {
		o := P(&items[i])
		if !skipNS[o.GetNamespace()] {
			out = append(out, charts.Object{APIVersion: apiVersion, Kind: kind, Name: o.GetName(), Namespace: o.GetNamespace()})
		}
	}
	slices.SortFunc(out, func(a, b charts.Object) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return out
}
