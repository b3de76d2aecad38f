// Package charts holds sinew's Helm charts, embedded so that the CLI renders exactly the charts it was built with,
// and renders them with Helm's engine into objects in the order `kubectl apply -f -` needs, and gives their values
// Go types (values.go). It knows nothing of certificates or clusters: callers give it complete values.
package charts

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

//go:embed all:sinew-crds all:sinew-control-plane all:sinew-viz
var files embed.FS

// The charts' names (and their directories).
const (
	CRDs         = "sinew-crds"
	ControlPlane = "sinew-control-plane"
	Viz          = "sinew-viz"
)

// GatewayAPIVersion is the Gateway API bundle the sinew-crds chart installs (value installGatewayAPI): the version of
// sigs.k8s.io/gateway-api in go.mod, whose standard CRDs the build copies into sinew-crds/gateway-api/
// (hack/gatewayapi). A test keeps the three in step.
const GatewayAPIVersion = "v1.6.3"

// GatewayAPIGroup is the Gateway API's API group; its CRDs are named <plural>.<group>.
const GatewayAPIGroup = "gateway.networking.k8s.io"

// GatewayAPIBundleVersionAnnotation holds a Gateway API CRD's bundle version (e.g. v1.6.3), and
// GatewayAPIChannelAnnotation its channel (standard or experimental).
const (
	GatewayAPIBundleVersionAnnotation = "gateway.networking.k8s.io/bundle-version"
	GatewayAPIChannelAnnotation       = "gateway.networking.k8s.io/channel"
)

// ReleaseService is .Release.Service when the CLI renders a chart (Helm itself uses "Helm"); templates tell the two
// apart by it, for instance in the sinew.dev/created-by annotation.
const ReleaseService = "sinew"

// Load reads an embedded chart. appVersion, when not empty, replaces the chart's appVersion, which is the default
// image tag: the CLI passes its own version so that it installs the images it was built with.
func Load(name, appVersion string) (*chart.Chart, error) {
	var bufs []*loader.BufferedFile
	err := fs.WalkDir(files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		bufs = append(bufs, &loader.BufferedFile{Name: strings.TrimPrefix(p, name+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	if len(bufs) == 0 {
		return nil, fmt.Errorf("chart %s: not embedded", name)
	}
	c, err := loader.LoadFiles(bufs)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	if appVersion != "" {
		c.Metadata.AppVersion = appVersion
	}
	return c, nil
}

// File returns one file of an embedded chart, e.g. File(ControlPlane, "values-ha.yaml").
func File(chartName, name string) ([]byte, error) {
	b, err := files.ReadFile(path.Join(chartName, name))
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", chartName, err)
	}
	return b, nil
}

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// YAML is the object as the template rendered it (one document, no separator).
	YAML string
}

// Ref is "kind/name" or "kind/namespace/name", for messages and tests.
func (o Object) Ref() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Order is the order objects are printed in.
type Order int

const (
	// InstallOrder puts what others depend on first: the namespace, accounts, secrets and config, CRDs, RBAC,
	// services, workloads, and the webhook configuration last.
	InstallOrder Order = iota
	// UninstallOrder is the reverse: the webhook first (so no pod creation waits on a webhook being deleted), the
	// namespace and CRDs last.
	UninstallOrder
)

// Render renders c with values (merged over the chart's defaults) as a release in namespace, and returns the
// objects in the given order. Template failures (a `required` value missing, say) come back as errors that quote
// the template's message.
func Render(c *chart.Chart, namespace string, values map[string]any, order Order) ([]Object, error) {
	return RenderFor(c, namespace, values, order, nil)
}

// GatewayClassAPIVersion is how a cluster that serves the Gateway API's GatewayClasses is announced to RenderFor.
const GatewayClassAPIVersion = GatewayAPIGroup + "/v1/GatewayClass"

// RenderFor is Render for a cluster that serves apiVersions ("group/version" or "group/version/Kind") besides
// Kubernetes' own, as Helm's --api-versions: templates ask .Capabilities.APIVersions.Has.
func RenderFor(c *chart.Chart, namespace string, values map[string]any, order Order, apiVersions []string) ([]Object, error) {
	opts := chartutil.ReleaseOptions{Name: c.Name(), Namespace: namespace, Revision: 1, IsInstall: true}
	caps := chartutil.DefaultCapabilities.Copy()
	// a new slice: Copy shares the defaults' backing array
	caps.APIVersions = slices.Concat(caps.APIVersions, chartutil.VersionSet(apiVersions))
	rv, err := chartutil.ToRenderValues(c, values, opts, caps)
	if err != nil {
		return nil, fmt.Errorf("chart %s: values: %w", c.Name(), err)
	}
	top := rv.AsMap()
	if rel, ok := top["Release"].(map[string]any); ok {
		rel["Service"] = ReleaseService
	}
	out, err := engine.Render(c, rv)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %s", c.Name(), cleanError(err))
	}
	ord := releaseutil.InstallOrder
	if order == UninstallOrder {
		ord = releaseutil.UninstallOrder
	}
	// NOTES.txt and partials are not manifests
	for name := range out {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(out, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(out, nil, ord)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Name(), err)
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("chart %s: hooks are not supported (%s)", c.Name(), hooks[0].Name)
	}
	objs := make([]Object, 0, len(manifests))
	for _, m := range manifests {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m.Content), &meta); err != nil {
			return nil, fmt.Errorf("chart %s: %s renders invalid YAML: %w\n%s", c.Name(), m.Name, err, m.Content)
		}
		if meta.Kind == "" || meta.Metadata.Name == "" {
			return nil, fmt.Errorf("chart %s: %s renders an object without kind or name:\n%s", c.Name(), m.Name, m.Content)
		}
		objs = append(objs, Object{
			APIVersion: meta.APIVersion, Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace,
			YAML: strings.TrimSpace(m.Content) + "\n",
		})
	}
	return objs, nil
}

// cleanError keeps the message a template's `required` or `fail` gave, without the engine's position prefix.
func cleanError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error calling required: "); i >= 0 {
		return msg[i+len("error calling required: "):]
	}
	if i := strings.LastIndex(msg, "error calling fail: "); i >= 0 {
		return msg[i+len("error calling fail: "):]
	}
	// a template's fail: "execution error at (chart/templates/x.yaml:10:4): message"
	if rest, ok := strings.CutPrefix(msg, "execution error at ("); ok {
		if _, m, ok := strings.Cut(rest, "): "); ok {
			return m
		}
	}
	return msg
}
