package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/internal/version"
)

// installGatewayAPIValue is the sinew-crds chart's value that prints the Gateway API CRDs.
const installGatewayAPIValue = "installGatewayAPI"

// crdValues are the sinew-crds chart's values.
type crdValues struct {
	CommonLabels      map[string]string `json:"commonLabels"`
	InstallGatewayAPI bool              `json:"installGatewayAPI"`
}

// printCRDs prints the CRDs for install --crds and upgrade --crds: sinew's own, and the Gateway API CRDs that the
// cluster lacks or has in an older version (gatewayAPIToPrint). --set installGatewayAPI=true|false decides instead.
func (in *installer) printCRDs(cmd *cobra.Command, f *installFlags) error {
	if err := chartcmd.CheckOutput(f.output); err != nil {
		return err
	}
	vals, err := charts.DefaultValues(charts.CRDs)
	if err != nil {
		return err
	}
	user := map[string]any{}
	if f.values.Given() {
		if err := f.values.MergeInto(in.env.Stdin, user); err != nil {
			return err
		}
		chartcmd.Merge(vals, user)
	}
	var v crdValues
	if err := charts.DecodeValues(vals, &v); err != nil {
		return err
	}
	objs, err := renderCRDsWith(vals, charts.InstallOrder)
	if err != nil {
		return err
	}
	if _, explicit := user[installGatewayAPIValue]; v.InstallGatewayAPI && !explicit {
		objs = in.gatewayAPIToPrint(cmd.Context(), objs, f.ignoreCluster)
	}
	return chartcmd.WriteObjects(in.env.Stdout, objs, f.output)
}

// isGatewayAPICRD says whether o is one of the Gateway API's CRDs.
func isGatewayAPICRD(o charts.Object) bool {
	return o.Kind == "CustomResourceDefinition" && strings.HasSuffix(o.Name, "."+charts.GatewayAPIGroup)
}

// gatewayAPIToPrint drops from objs the Gateway API CRDs the cluster already has at the pinned version or newer, and
// says on standard error what it left alone and why. When the cluster cannot be read (or ignoreCluster), it keeps
// them all: the output is for `kubectl apply`, and a cluster without them cannot use routes at all; a user who
// manages them otherwise says --set installGatewayAPI=false.
func (in *installer) gatewayAPIToPrint(ctx context.Context, objs []charts.Object, ignoreCluster bool) []charts.Object {
	if ignoreCluster {
		return objs
	}
	installed, err := in.installedGatewayAPI(ctx)
	if err != nil {
		fmt.Fprintf(in.env.Stderr, "note: could not read the cluster's CRDs (%v): printing the Gateway API CRDs %s; --set %s=false leaves them out\n",
			err, charts.GatewayAPIVersion, installGatewayAPIValue)
		return objs
	}
	out := objs[:0:0]
	var kept []string
	for _, o := range objs {
		if !isGatewayAPICRD(o) {
			out = append(out, o)
			continue
		}
		have, ok := installed[o.Name]
		if !ok {
			out = append(out, o)
			continue
		}
		switch why := keepInstalledGatewayAPI(have); why {
		case "":
			out = append(out, o) // older: upgrade it
		default:
			kept = append(kept, o.Name+" ("+why+")")
		}
	}
	if len(kept) > 0 {
		printLeftAlone(in.env.Stderr, kept)
	}
	return out
}

func printLeftAlone(w io.Writer, kept []string) {
	sort.Strings(kept)
	fmt.Fprintf(w, "note: Gateway API CRDs left as installed: %s\n", strings.Join(kept, ", "))
}

// keepInstalledGatewayAPI says why an installed Gateway API CRD is left alone, or "" to print (upgrade) it.
func keepInstalledGatewayAPI(have check.GatewayAPICRD) string {
	if have.Version == "" {
		return "no " + charts.GatewayAPIBundleVersionAnnotation + " annotation"
	}
	c, ok := check.CompareVersions(have.Version, charts.GatewayAPIVersion)
	switch {
	case !ok:
		return "unknown version " + have.Version
	case c >= 0:
		return have.Version
	case have.Channel == "experimental":
		// the standard channel would drop the experimental fields and versions its objects may use
		return have.Version + " experimental: upgrade it with the experimental channel yourself"
	}
	return ""
}

// installedGatewayAPI reads the cluster's Gateway API CRDs, by name. It gives up after a few seconds so that an
// unreachable cluster does not hold up printing.
func (in *installer) installedGatewayAPI(ctx context.Context) (map[string]check.GatewayAPICRD, error) {
	cl, err := in.env.KubeClients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cl.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]check.GatewayAPICRD{}
	for _, crd := range check.GatewayAPICRDs(list.Items) {
		out[crd.Name] = crd
	}
	return out, nil
}

func renderCRDsWith(vals map[string]any, order charts.Order) ([]charts.Object, error) {
	c, err := charts.Load(charts.CRDs, version.Version)
	if err != nil {
		return nil, err
	}
	return charts.Render(c, "", vals, order)
}

// sinewCRDs renders sinew's own CRDs, without the Gateway API's: what install requires, check expects and uninstall
// deletes. The Gateway API CRDs may serve others' routes; uninstall leaves them.
func sinewCRDs(order charts.Order) ([]charts.Object, error) {
	vals, err := charts.DefaultValues(charts.CRDs)
	if err != nil {
		return nil, err
	}
	vals[installGatewayAPIValue] = false
	return renderCRDsWith(vals, order)
}
