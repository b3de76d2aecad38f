package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/certs"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// installFlags are the flags install and upgrade share. Each named flag sets one chart value, and only when given,
// so that upgrade keeps what the install chose.
type installFlags struct {
	ha                   bool
	controllerReplicas   int
	registry             string
	imageTag             string
	imagePullPolicy      string
	trustDomain          string
	clusterDomain        string
	issuanceLifetime     time.Duration
	proxyLogLevel        string
	defaultInboundPolicy string
	skipInboundPorts     string
	skipOutboundPorts    string
	proxyCPURequest      string
	proxyCPULimit        string
	proxyMemoryRequest   string
	proxyMemoryLimit     string
	nativeSidecar        bool
	anchorsFile          string
	issuerCertFile       string
	issuerKeyFile        string
	ignoreCluster        bool
	output               string
	values               chartcmd.ValueFlags
}

func (f *installFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.ha, "ha", false, "high availability: 3 replicas of each controller, anti-affinity, disruption budgets, resource requests")
	fl.IntVar(&f.controllerReplicas, "controller-replicas", 1, "replicas of each controller")
	fl.StringVar(&f.registry, "registry", "ghcr.io/sinewmesh", "registry of the images")
	fl.StringVar(&f.imageTag, "image-tag", version.Version, "tag of the images")
	fl.StringVar(&f.imagePullPolicy, "image-pull-policy", "IfNotPresent", "pull policy of the images: Always, IfNotPresent or Never")
	fl.StringVar(&f.trustDomain, "identity-trust-domain", "", "trust domain of workload identities (default: the cluster domain)")
	fl.StringVar(&f.clusterDomain, "cluster-domain", names.DefaultClusterDomain, "the cluster's DNS domain")
	fl.DurationVar(&f.issuanceLifetime, "identity-issuance-lifetime", 24*time.Hour, "lifetime of the workload certificates identity issues")
	fl.StringVar(&f.proxyLogLevel, "proxy-log-level", "info", "log level of the proxies: debug, info, warn or error")
	fl.StringVar(&f.defaultInboundPolicy, "default-inbound-policy", names.DefaultInboundPolicy, "inbound policy of ports no Server covers: "+strings.Join(names.InboundPolicies, ", "))
	fl.StringVar(&f.skipInboundPorts, "skip-inbound-ports", "", "ports and ranges that reach every meshed app without its proxy (e.g. 25,8000-8090)")
	fl.StringVar(&f.skipOutboundPorts, "skip-outbound-ports", "", "destination ports that bypass every meshed pod's proxy")
	fl.StringVar(&f.proxyCPURequest, "proxy-cpu-request", "", "CPU request of each proxy (e.g. 100m)")
	fl.StringVar(&f.proxyCPULimit, "proxy-cpu-limit", "", "CPU limit of each proxy")
	fl.StringVar(&f.proxyMemoryRequest, "proxy-memory-request", "", "memory request of each proxy (e.g. 20Mi)")
	fl.StringVar(&f.proxyMemoryLimit, "proxy-memory-limit", "", "memory limit of each proxy")
	fl.BoolVar(&f.nativeSidecar, "native-sidecar", true, "run proxies as native sidecars (init containers with restartPolicy Always)")
	fl.StringVar(&f.anchorsFile, "identity-trust-anchors-file", "", "PEM trust anchors (generated if absent; give with the two issuer files)")
	fl.StringVar(&f.issuerCertFile, "identity-issuer-certificate-file", "", "PEM issuer certificate, an intermediate CA under the trust anchors (generated if absent)")
	fl.StringVar(&f.issuerKeyFile, "identity-issuer-key-file", "", "PEM private key of the issuer (generated if absent)")
	fl.BoolVar(&f.ignoreCluster, "ignore-cluster", false, "do not look at the cluster before printing")
	fl.StringVarP(&f.output, "output", "o", "yaml", "output format: yaml or json")
	f.values.Register(cmd)
}

// applyFlags sets the values of the named flags the user gave.
func (f *installFlags) applyFlags(cmd *cobra.Command, v *charts.ControlPlaneValues) error {
	changed := cmd.Flags().Changed
	str := []struct {
		flag string
		dst  *string
		val  string
	}{
		{"registry", &v.Image.Registry, f.registry},
		{"image-tag", &v.Image.Tag, f.imageTag},
		{"image-pull-policy", &v.Image.PullPolicy, f.imagePullPolicy},
		{"identity-trust-domain", &v.Identity.TrustDomain, f.trustDomain},
		{"cluster-domain", &v.ClusterDomain, f.clusterDomain},
		{"proxy-log-level", &v.Proxy.LogLevel, f.proxyLogLevel},
		{"default-inbound-policy", &v.DefaultInboundPolicy, f.defaultInboundPolicy},
		{"skip-inbound-ports", &v.ProxyInit.SkipInboundPorts, f.skipInboundPorts},
		{"skip-outbound-ports", &v.ProxyInit.SkipOutboundPorts, f.skipOutboundPorts},
		{"proxy-cpu-request", &v.Proxy.Resources.CPU.Request, f.proxyCPURequest},
		{"proxy-cpu-limit", &v.Proxy.Resources.CPU.Limit, f.proxyCPULimit},
		{"proxy-memory-request", &v.Proxy.Resources.Memory.Request, f.proxyMemoryRequest},
		{"proxy-memory-limit", &v.Proxy.Resources.Memory.Limit, f.proxyMemoryLimit},
	}
	for _, s := range str {
		if changed(s.flag) {
			*s.dst = s.val
		}
	}
	if changed("controller-replicas") {
		if f.controllerReplicas < 1 {
			return fmt.Errorf("--controller-replicas %d: must be at least 1", f.controllerReplicas)
		}
		v.ControllerReplicas = f.controllerReplicas
	}
	if changed("identity-issuance-lifetime") {
		if f.issuanceLifetime < time.Minute {
			return fmt.Errorf("--identity-issuance-lifetime %s: must be at least 1m", f.issuanceLifetime)
		}
		v.Identity.Issuer.IssuanceLifetime = f.issuanceLifetime.String()
	}
	if changed("native-sidecar") {
		v.Proxy.NativeSidecar = f.nativeSidecar
	}
	return chartcmd.CheckOutput(f.output)
}

// identityFiles reads the three identity files, all or none.
func (f *installFlags) identityFiles() (*certs.Identity, error) {
	given := 0
	for _, n := range []string{f.anchorsFile, f.issuerCertFile, f.issuerKeyFile} {
		if n != "" {
			given++
		}
	}
	if given == 0 {
		return nil, nil
	}
	if given != 3 {
		return nil, errors.New("give all three of --identity-trust-anchors-file, --identity-issuer-certificate-file and --identity-issuer-key-file, or none (to generate them)")
	}
	read := func(flag, name string) ([]byte, error) {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		return b, nil
	}
	var (
		id  certs.Identity
		err error
	)
	if id.TrustAnchorsPEM, err = read("identity-trust-anchors-file", f.anchorsFile); err != nil {
		return nil, err
	}
	if id.IssuerCertPEM, err = read("identity-issuer-certificate-file", f.issuerCertFile); err != nil {
		return nil, err
	}
	if id.IssuerKeyPEM, err = read("identity-issuer-key-file", f.issuerKeyFile); err != nil {
		return nil, err
	}
	return &id, nil
}

// installer renders the charts; tests replace the certificate generator and the clock.
type installer struct {
	env   *Env
	certs certs.Generator
	now   func() time.Time
}

func newInstaller(env *Env) *installer {
	now := time.Now
	if env.Now != nil {
		now = env.Now
	}
	g := env.Certs
	if g == nil {
		g = certs.NewGenerator(now, certs.DefaultLifetime, controlplane.GenerateCA)
	}
	return &installer{env: env, certs: g, now: now}
}

func newInstallCmd(env *Env) *cobra.Command {
	var (
		f    installFlags
		crds bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the manifests that install sinew: the CRDs (--crds) or the control plane",
		Long: `Print the manifests that install sinew, for kubectl apply -f -.

First the CRDs, then the control plane:

  sinew install --crds | kubectl apply -f -
  sinew install | kubectl apply -f -
  sinew check

The mesh's trust anchor and issuer (ECDSA P-256, valid 365 days) and the proxy injector's webhook certificate are
generated unless you bring your own anchors and issuer with the --identity-* file flags. Before printing, install
looks at the cluster (unless --ignore-cluster): the CRDs must be there and no control plane may be installed yet.

--crds also prints the Gateway API standard CRDs (HTTPRoute, GRPCRoute, …) at the version this CLI was built with,
` + charts.GatewayAPIVersion + `, each one the cluster lacks or has in an older version; one the cluster has at that
version or newer is left alone. When the cluster cannot be read (or with --ignore-cluster) all are printed.
--set installGatewayAPI=false never prints them (something else manages them); --set installGatewayAPI=true
always does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst := newInstaller(env)
			if crds {
				return inst.printCRDs(cmd, &f)
			}
			return inst.install(cmd, &f)
		},
	}
	cmd.Flags().BoolVar(&crds, "crds", false, "print the CRDs (install them first): sinew's, and the Gateway API's where the cluster lacks them or has an older version (--set installGatewayAPI=false: never)")
	f.register(cmd)
	return cmd
}

// crdNames are the names of the CRDs this CLI installs.
func crdNames() ([]string, error) {
	objs, err := sinewCRDs(charts.InstallOrder)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.Name)
	}
	return names, nil
}

func (in *installer) install(cmd *cobra.Command, f *installFlags) error {
	ctx := cmd.Context()
	if !f.ignoreCluster {
		if err := in.preflight(ctx); err != nil {
			return err
		}
	}
	v, err := in.mergeFlags(cmd, f, nil)
	if err != nil {
		return err
	}
	return in.printControlPlane(v, f, nil)
}

// printControlPlane fills in the certificates (fillCertificates) and prints the control plane's manifests.
func (in *installer) printControlPlane(v *charts.ControlPlaneValues, f *installFlags, existing *existingCerts) error {
	given, err := f.identityFiles()
	if err != nil {
		return err
	}
	if err := in.fillCertificates(v, given, certs.Sources{
		TrustAnchors: f.anchorsFile, IssuerCert: f.issuerCertFile, IssuerKey: f.issuerKeyFile,
	}, existing); err != nil {
		return err
	}
	objs, err := renderControlPlane(in.env.ControlPlaneNS, v, charts.InstallOrder, in.servedAPIs(f.ignoreCluster))
	if err != nil {
		return err
	}
	return chartcmd.WriteObjects(in.env.Stdout, objs, f.output)
}

// servedAPIs are the optional APIs the chart renders objects of, as RenderFor announces them: the Gateway API's
// GatewayClass when the cluster has its CRD (sinew's GatewayClass), or when the cluster is not read
// (--ignore-cluster: `sinew install --crds` prints the Gateway API's CRDs then). A cluster that cannot be read
// gets it too, with a note.
func (in *installer) servedAPIs(ignoreCluster bool) []string {
	if ignoreCluster {
		return []string{charts.GatewayClassAPIVersion}
	}
	// printControlPlane runs after the cluster was read (preflight, or upgrade's reading of the installed
	// values); installedGatewayAPI bounds this read to a few seconds.
	installed, err := in.installedGatewayAPI(context.Background())
	if err != nil {
		fmt.Fprintf(in.env.Stderr, "note: could not read the cluster's CRDs (%v): printing the GatewayClass %s; --set gatewayClass.create=false leaves it out\n",
			err, names.GatewayClass)
		return []string{charts.GatewayClassAPIVersion}
	}
	if _, ok := installed[gatewayClassCRD]; ok {
		return []string{charts.GatewayClassAPIVersion}
	}
	return nil
}

// gatewayClassCRD is the name of the Gateway API's GatewayClass CRD.
const gatewayClassCRD = "gatewayclasses." + charts.GatewayAPIGroup

// mergeFlags layers base (the installed values, for upgrade), --ha, the named flags and then the Helm value flags
// over the chart's defaults, decodes the result strictly and checks it.
func (in *installer) mergeFlags(cmd *cobra.Command, f *installFlags, base map[string]any) (*charts.ControlPlaneValues, error) {
	vals, err := charts.DefaultValues(charts.ControlPlane)
	if err != nil {
		return nil, err
	}
	chartcmd.Merge(vals, base)
	if f.ha {
		b, err := charts.File(charts.ControlPlane, "values-ha.yaml")
		if err != nil {
			return nil, err
		}
		ha := map[string]any{}
		if err := yaml.Unmarshal(b, &ha); err != nil {
			return nil, fmt.Errorf("values-ha.yaml: %w", err)
		}
		chartcmd.Merge(vals, ha)
	}
	v, err := controlPlaneValues(vals)
	if err != nil {
		return nil, err
	}
	if err := f.applyFlags(cmd, v); err != nil {
		return nil, err
	}
	if f.values.Given() {
		if vals, err = v.Map(); err != nil {
			return nil, err
		}
		if err := f.values.MergeInto(in.env.Stdin, vals); err != nil {
			return nil, err
		}
		if v, err = controlPlaneValues(vals); err != nil {
			return nil, err
		}
	}
	return v, validateValues(v)
}

// fillCertificates puts the identity and webhook certificates into v: those given as files (checked), else those
// already in v (from --set-file or -f, checked), else existing ones (upgrade), else newly generated ones.
func (in *installer) fillCertificates(v *charts.ControlPlaneValues, given *certs.Identity, src certs.Sources, existing *existingCerts) error {
	now := in.now()
	inVals := certs.Identity{
		TrustAnchorsPEM: []byte(v.Identity.TrustAnchorsPEM),
		IssuerCertPEM:   []byte(v.Identity.Issuer.TLS.CrtPEM),
		IssuerKeyPEM:    []byte(v.Identity.Issuer.TLS.KeyPEM),
	}
	var id certs.Identity
	switch {
	case given != nil:
		if _, err := certs.CheckIdentity(*given, src, now); err != nil {
			return err
		}
		id = *given
	case len(inVals.TrustAnchorsPEM) > 0 || len(inVals.IssuerCertPEM) > 0 || len(inVals.IssuerKeyPEM) > 0:
		if _, err := certs.CheckIdentity(inVals, certs.Sources{
			TrustAnchors: "(value identity.trustAnchorsPEM)", IssuerCert: "(value identity.issuer.tls.crtPEM)", IssuerKey: "(value identity.issuer.tls.keyPEM)",
		}, now); err != nil {
			return err
		}
		id = inVals
	case existing != nil:
		id = existing.identity
	default:
		td := v.Identity.TrustDomain
		if td == "" {
			td = v.ClusterDomain
		}
		if td == "" {
			td = names.DefaultTrustDomain
		}
		var err error
		if id, err = in.certs.Identity(td); err != nil {
			return fmt.Errorf("generating the identity certificates: %w", err)
		}
	}
	v.Identity.TrustAnchorsPEM = pemText(id.TrustAnchorsPEM)
	v.Identity.Issuer.TLS = charts.TLS{CrtPEM: pemText(id.IssuerCertPEM), KeyPEM: pemText(id.IssuerKeyPEM)}

	names := []string{check.WebhookDNSName(in.env.ControlPlaneNS)}
	wv := certs.Webhook{
		CAPEM:   []byte(v.ProxyInjector.CABundle),
		CertPEM: []byte(v.ProxyInjector.TLS.CrtPEM),
		KeyPEM:  []byte(v.ProxyInjector.TLS.KeyPEM),
	}
	var wh certs.Webhook
	switch {
	case len(wv.CAPEM) > 0 || len(wv.CertPEM) > 0 || len(wv.KeyPEM) > 0:
		if _, err := certs.CheckWebhook(wv, names, now); err != nil {
			return fmt.Errorf("values proxyInjector.caBundle/tls: %w", err)
		}
		wh = wv
	case existing != nil && existing.webhookUsable:
		wh = existing.webhook
	default:
		var err error
		if wh, err = in.certs.Webhook(names); err != nil {
			return fmt.Errorf("generating the webhook certificate: %w", err)
		}
	}
	v.ProxyInjector.CABundle = pemText(wh.CAPEM)
	v.ProxyInjector.TLS = charts.TLS{CrtPEM: pemText(wh.CertPEM), KeyPEM: pemText(wh.KeyPEM)}
	return nil
}

// pemText normalizes PEM to end in exactly one newline, so that the same certificates render the same manifests
// (and the same trust-root checksum) whether they came from a file, a value or the cluster.
func pemText(b []byte) string { return strings.TrimSpace(string(b)) + "\n" }

// renderControlPlane renders the control plane chart for a cluster that serves apiVersions besides Kubernetes'
// own (servedAPIs).
func renderControlPlane(ns string, v *charts.ControlPlaneValues, order charts.Order, apiVersions []string) ([]charts.Object, error) {
	c, err := charts.Load(charts.ControlPlane, version.Version)
	if err != nil {
		return nil, err
	}
	vals, err := v.Map()
	if err != nil {
		return nil, err
	}
	return charts.RenderFor(c, ns, vals, order, apiVersions)
}

// preflight refuses to install without the CRDs or over an existing control plane.
func (in *installer) preflight(ctx context.Context) error {
	cl, err := in.env.KubeClients()
	if err != nil {
		return fmt.Errorf("%w (use --ignore-cluster to print the manifests without looking at the cluster)", err)
	}
	crds, err := crdNames()
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range crds {
		if _, err := cl.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, n)
				continue
			}
			return fmt.Errorf("reading the cluster's CRDs: %w (use --ignore-cluster to print the manifests without looking at the cluster)", err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the sinew CRDs are not installed (missing %s): run `sinew install --crds | kubectl apply -f -` first", strings.Join(missing, ", "))
	}
	_, err = cl.Kube.CoreV1().ConfigMaps(in.env.ControlPlaneNS).Get(ctx, names.ConfigMap, metav1.GetOptions{})
	switch {
	case err == nil:
		return fmt.Errorf("a sinew control plane is already installed in namespace %s: change it with `sinew upgrade | kubectl apply -f -`", in.env.ControlPlaneNS)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("looking for an installed control plane: %w", err)
	}
	return nil
}
