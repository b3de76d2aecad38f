package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/internal/manifests"
	"github.com/sinewmesh/sinew/cli/internal/yamledit"
	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// templatePaths says where each workload kind keeps its pod template ("" path: the object is the pod).
var templatePaths = map[string][]string{
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
	"Pod":                   {},
}

// injectFlags are `sinew inject`'s flags; proxy flags become config.sinew.dev/* annotations, or with --manual
// the values written into the sidecar.
type injectFlags struct {
	manual, ingress, ignoreCluster, force bool
	output, anchorsFile                   string

	registry, imageTag, proxyImage, proxyVersion, initImage, pullPolicy string

	proxyUID                                  int64
	logLevel, logFormat                       string
	nativeSidecar, await                      bool
	skipIn, skipOut, skipSubnets, opaquePorts string
	cpuReq, cpuLim, memReq, memLim            string
	connectTimeout, shutdownGrace, inboundPol string
}

func newInjectCmd(env *Env) *cobra.Command {
	f := &injectFlags{}
	cmd := &cobra.Command{
		Use:   "inject FILE|DIR|URL|- ...",
		Short: "Add the sinew proxy to Kubernetes manifests",
		Long: `Add the sinew proxy to the workloads in Kubernetes manifests and print them.

By default inject adds the annotation sinew.dev/inject: enabled to the pod template of every Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob, to every Pod and to every Namespace; the
proxy injector then adds the proxy when the pods are created. Proxy flags become config.sinew.dev/* annotations.
With --manual it writes the sidecar itself (the injector's exact output), reading the trust anchors and the install's
settings from the cluster (or --identity-trust-anchors-file).

Input: files, directories (recursively: *.yaml, *.yml, *.json), http(s) URLs or - for stdin; YAML streams, Lists
and JSON. Everything but the edits stays byte for byte: comments, key order, quoting, other documents. What was
done goes to stderr; nothing is printed when any input is bad.

A pod can be in one mesh only: a workload whose pods already have another mesh's sidecar (Istio's istio-proxy or
istio-init, Linkerd's linkerd-proxy, Kuma's kuma-sidecar) is refused, naming the container; the proxy injector
leaves such pods alone too. --manual --force injects them anyway.`,
		Example: `  # mesh the emojivoto deployments through the webhook
  kubectl get -n emojivoto deploy -o yaml | sinew inject - | kubectl apply -f -

  # write the proxy into the manifests themselves
  sinew inject --manual deployment.yml > deployment-meshed.yml

  # a namespace whose pods are all meshed, with debug logs
  kubectl get ns emojivoto -o yaml | sinew inject --proxy-log-level debug - | kubectl apply -f -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInject(cmd.Context(), env, f, cmd.Flags(), args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.manual, "manual", false, "write the proxy sidecar into the manifests instead of the annotation")
	fl.BoolVar(&f.ingress, "ingress", false, "annotate with sinew.dev/inject: ingress (for ingress controllers)")
	fl.StringVarP(&f.output, "output", "o", "", "output format: yaml or json (default: as the input)")
	fl.StringVar(&f.anchorsFile, "identity-trust-anchors-file", "", "--manual: PEM trust anchors (default: from the cluster's ConfigMap sinew-identity-trust-roots)")
	fl.BoolVar(&f.force, "force", false, "--manual: inject pods that already have another service mesh's sidecar (istio-proxy, linkerd-proxy...)")
	fl.BoolVar(&f.ignoreCluster, "ignore-cluster", false, "--manual: do not read the installed control plane's settings (needs --identity-trust-anchors-file)")
	fl.StringVar(&f.registry, "registry", "", "registry of the proxy and init images")
	fl.StringVar(&f.imageTag, "image-tag", "", "tag of the proxy image (--manual: of both images)")
	fl.StringVar(&f.proxyImage, "proxy-image", "", "proxy image name without tag")
	fl.StringVar(&f.proxyVersion, "proxy-version", "", "proxy image tag")
	fl.StringVar(&f.initImage, "init-image", "", "init image name without tag")
	fl.StringVar(&f.pullPolicy, "image-pull-policy", "", "pull policy of the proxy and init images: Always, IfNotPresent or Never")
	fl.Int64Var(&f.proxyUID, "proxy-uid", names.DefaultProxyUID, "user ID the proxy runs as")
	fl.StringVar(&f.logLevel, "proxy-log-level", "", "proxy log level: debug, info, warn or error")
	fl.StringVar(&f.logFormat, "proxy-log-format", "", "proxy log format: json or text")
	fl.BoolVar(&f.nativeSidecar, "native-sidecar", true, "run the proxy as a native sidecar (Kubernetes 1.29+)")
	fl.BoolVar(&f.await, "proxy-await", true, "start the application once the proxy is ready (native sidecars)")
	fl.StringVar(&f.skipIn, "skip-inbound-ports", "", "inbound ports and ranges that skip the proxy, e.g. 25,8000-8090")
	fl.StringVar(&f.skipOut, "skip-outbound-ports", "", "outbound ports and ranges that skip the proxy, e.g. 3306")
	fl.StringVar(&f.skipSubnets, "skip-subnets", "", "outbound networks that skip the proxy, e.g. 10.0.0.0/8")
	fl.StringVar(&f.opaquePorts, "opaque-ports", "", "ports the proxy does not detect protocols on")
	fl.StringVar(&f.cpuReq, "proxy-cpu-request", "", "CPU the proxy requests, e.g. 100m")
	fl.StringVar(&f.cpuLim, "proxy-cpu-limit", "", "CPU limit of the proxy")
	fl.StringVar(&f.memReq, "proxy-memory-request", "", "memory the proxy requests, e.g. 20Mi")
	fl.StringVar(&f.memLim, "proxy-memory-limit", "", "memory limit of the proxy")
	fl.StringVar(&f.connectTimeout, "proxy-outbound-connect-timeout", "", "the proxy's connect timeout, e.g. 1s")
	fl.StringVar(&f.shutdownGrace, "shutdown-grace-period", "", "how long the proxy drains at shutdown, e.g. 2m")
	fl.StringVar(&f.inboundPol, "default-inbound-policy", "", "inbound policy of ports no Server covers")
	return cmd
}

// flagAnnotations maps the proxy flags to the annotations they set (in annotation mode) and reads their values.
func (f *injectFlags) flagAnnotations() []struct{ flag, annotation, value string } {
	return []struct{ flag, annotation, value string }{
		{"skip-inbound-ports", names.AnnSkipInboundPorts, f.skipIn},
		{"skip-outbound-ports", names.AnnSkipOutboundPorts, f.skipOut},
		{"skip-subnets", names.AnnSkipSubnets, f.skipSubnets},
		{"opaque-ports", names.AnnOpaquePorts, f.opaquePorts},
		{"proxy-log-level", names.AnnProxyLogLevel, f.logLevel},
		{"proxy-log-format", names.AnnProxyLogFormat, f.logFormat},
		{"proxy-cpu-request", names.AnnProxyCPURequest, f.cpuReq},
		{"proxy-cpu-limit", names.AnnProxyCPULimit, f.cpuLim},
		{"proxy-memory-request", names.AnnProxyMemoryRequest, f.memReq},
		{"proxy-memory-limit", names.AnnProxyMemoryLimit, f.memLim},
		{"proxy-uid", names.AnnProxyUID, strconv.FormatInt(f.proxyUID, 10)},
		{"proxy-image", names.AnnProxyImage, f.proxyImage},
		{"proxy-version", names.AnnProxyVersion, f.proxyVersion},
		{"init-image", names.AnnInitImage, f.initImage},
		{"image-pull-policy", names.AnnImagePullPolicy, f.pullPolicy},
		{"proxy-await", names.AnnProxyAwait, map[bool]string{true: "enabled", false: "disabled"}[f.await]},
		{"native-sidecar", names.AnnProxyNativeSidecar, strconv.FormatBool(f.nativeSidecar)},
		{"shutdown-grace-period", names.AnnShutdownGracePeriod, f.shutdownGrace},
		{"proxy-outbound-connect-timeout", names.AnnOutboundConnectTimeout, f.connectTimeout},
		{"default-inbound-policy", names.AnnDefaultInboundPolicy, f.inboundPol},
	}
}

// overrides returns the annotations the changed flags set, in documentation order, after checking each value.
func (f *injectFlags) overrides(flags *pflag.FlagSet) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, fa := range f.flagAnnotations() {
		if !flags.Changed(fa.flag) {
			continue
		}
		if err := inject.CheckAnnotation(fa.annotation, fa.value); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: %w", fa.flag, fa.value, err))
			continue
		}
		out[fa.annotation] = strings.TrimSpace(fa.value)
	}
	// --registry and --image-tag have no annotation of their own: they become image names and the proxy's tag
	if flags.Changed("registry") {
		reg := strings.TrimSuffix(f.registry, "/")
		if !flags.Changed("proxy-image") {
			out[names.AnnProxyImage] = reg + "/" + inject.DefaultProxyImageName
		}
		if !flags.Changed("init-image") {
			out[names.AnnInitImage] = reg + "/" + inject.DefaultInitImageName
		}
	}
	if flags.Changed("image-tag") && !flags.Changed("proxy-version") {
		if err := inject.CheckAnnotation(names.AnnProxyVersion, f.imageTag); err != nil {
			errs = append(errs, fmt.Errorf("--image-tag %q: %w", f.imageTag, err))
		}
		out[names.AnnProxyVersion] = f.imageTag
	}
	for _, k := range []string{names.AnnProxyImage, names.AnnInitImage} {
		if v, ok := out[k]; ok {
			if err := inject.CheckAnnotation(k, v); err != nil {
				errs = append(errs, fmt.Errorf("--registry %q: %w", f.registry, err))
			}
		}
	}
	return out, errors.Join(errs...)
}

func runInject(ctx context.Context, env *Env, f *injectFlags, flags *pflag.FlagSet, args []string) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	if f.force && !f.manual {
		return errors.New("--force needs --manual: the proxy injector never injects a pod that has another service mesh's sidecar")
	}
	overrides, err := f.overrides(flags)
	if err != nil {
		return err
	}
	srcs, err := manifests.Read(ctx, args, env.Stdin, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	var fn manifests.Func
	if f.manual {
		cfg, err := f.manualConfig(ctx, env, flags)
		if err != nil {
			return err
		}
		fn = func(o *manifests.Object) (string, error) { return injectManual(o, cfg, f.force, f.ingress) }
	} else {
		value := names.InjectEnabled
		if f.ingress {
			value = names.InjectIngress
		}
		fn = func(o *manifests.Object) (string, error) { return annotate(o, value, overrides) }
	}
	return writeManifests(env, srcs, f.output, fn)
}

// checkOutput validates an --output flag of inject or uninject.
func checkOutput(output string) error {
	if output == manifests.AsInput {
		return nil
	}
	return chartcmd.CheckOutput(output)
}

// writeManifests applies fn to every object of srcs, writes the result to stdout and the summary to stderr.
func writeManifests(env *Env, srcs []manifests.Source, output string, fn manifests.Func) error {
	out, summary, err := manifests.Process(srcs, output, fn)
	if err != nil {
		return err
	}
	if _, err := env.Stdout.Write(out); err != nil {
		return err
	}
	printSummary(env.Stderr, summary)
	return nil
}

// printSummary prints what happened to each object, as Linkerd does: a blank line, then one line each.
func printSummary(w io.Writer, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
}

// annotate sets sinew.dev/inject (and the flags' overrides) on a namespace or a workload's pod template.
func annotate(o *manifests.Object, value string, overrides map[string]string) (string, error) {
	var base []string
	if o.Kind == "Namespace" {
		if o.Get("metadata", "annotations", names.InjectAnnotation).Str() == names.InjectDisabled {
			return "skipped (" + names.InjectAnnotation + ": " + names.InjectDisabled + ")", nil
		}
	} else {
		tp, ok := templatePaths[o.Kind]
		if !ok {
			return "skipped", nil
		}
		if why := injectSkip(o, tp); why != "" {
			return "skipped (" + why + ")", nil
		}
		// the webhook would leave such a pod alone (with a warning): say so now
		if why := inject.OtherMesh(containerNames(o, tp)); why != "" {
			return "", fmt.Errorf("%s %s; use --manual --force to inject anyway", podNoun(o), why)
		}
		base = tp
	}
	ann := func(k string) []string {
		return append(append(append([]string(nil), base...), "metadata", "annotations"), k)
	}
	set := func(k, v string) error {
		if n := o.Get(ann(k)...); n != nil && n.Kind == yamledit.Scalar && n.Str() == v {
			return nil
		}
		return o.Add(ann(k), v)
	}
	if err := set(names.InjectAnnotation, value); err != nil {
		return "", err
	}
	for _, k := range names.ConfigAnnotations {
		if v, ok := overrides[k]; ok {
			if err := set(k, v); err != nil {
				return "", err
			}
		}
	}
	return "injected", nil
}

// injectSkip says why a workload's pods cannot be meshed ("" when they can).
func injectSkip(o *manifests.Object, tp []string) string {
	at := func(rel ...string) *yamledit.Node { return o.Get(append(append([]string(nil), tp...), rel...)...) }
	if t := at(); t == nil || t.Kind != yamledit.Map {
		return "no pod template"
	}
	if strings.EqualFold(at("spec", "hostNetwork").Str(), "true") {
		return "hostNetwork: true"
	}
	for _, list := range []string{"initContainers", "containers"} {
		if s := at("spec", list); s != nil && s.Kind == yamledit.Seq {
			for _, c := range s.Items {
				if inject.IsInjectedContainer(c.Get("name").Str()) {
					return "already injected"
				}
			}
		}
	}
	if at("metadata", "annotations", names.InjectAnnotation).Str() == names.InjectDisabled {
		return names.InjectAnnotation + ": " + names.InjectDisabled
	}
	return ""
}

// containerNames are the names of the init containers and containers of the pod template at tp.
func containerNames(o *manifests.Object, tp []string) []string {
	var out []string
	for _, list := range []string{"initContainers", "containers"} {
		if s := o.Get(append(append([]string(nil), tp...), "spec", list)...); s != nil && s.Kind == yamledit.Seq {
			for _, c := range s.Items {
				out = append(out, c.Get("name").Str())
			}
		}
	}
	return out
}

// podNoun is what messages call the object's pod: "pod" for a Pod, else "pod template".
func podNoun(o *manifests.Object) string {
	if o.Kind == "Pod" {
		return "pod"
	}
	return "pod template"
}

// injectManual writes what the proxy injector would add into a workload's pod template; force injects a pod that
// has another mesh's sidecar.
func injectManual(o *manifests.Object, cfg inject.Config, force, ingress bool) (string, error) {
	if o.Kind == "Namespace" {
		value := names.InjectEnabled
		if ingress {
			value = names.InjectIngress
		}
		return annotate(o, value, nil)
	}
	tp, ok := templatePaths[o.Kind]
	if !ok {
		return "skipped", nil
	}
	if t := o.Get(tp...); t == nil || t.Kind != yamledit.Map {
		return "skipped (no pod template)", nil
	}
	var pod corev1.Pod
	in := inject.Input{Pod: &pod, Manual: true, Ingress: ingress, AllowOtherMesh: force, Namespace: o.Get("metadata", "namespace").Str()}
	if o.Kind == "Pod" {
		if err := o.Decode(nil, &pod); err != nil {
			return "", fmt.Errorf("not a valid Pod: %w", err)
		}
		in.Owner = inject.OwnerOf(&pod)
	} else {
		var t corev1.PodTemplateSpec
		if err := o.Decode(tp, &t); err != nil {
			return "", fmt.Errorf("%s: not a valid pod template: %w", strings.Join(tp, "."), err)
		}
		pod.ObjectMeta, pod.Spec = t.ObjectMeta, t.Spec
		var meta metav1.ObjectMeta
		if err := o.Decode([]string{"metadata"}, &meta); err == nil {
			in.WorkloadAnnotations = meta.Annotations
		}
		in.Owner = inject.Owner{Kind: o.Kind, Name: o.Name}
	}
	res, err := inject.Inject(in, cfg)
	if err != nil {
		return "", err
	}
	if res.Skipped == inject.SkipOtherMesh {
		return "", fmt.Errorf("%s %s; use --force to inject anyway", podNoun(o), res.Detail)
	}
	if res.Skipped != "" {
		return "skipped (" + res.Detail + ")", nil
	}
	for _, op := range res.Patch {
		path := append(append([]string(nil), tp...), splitPointer(op.Path)...)
		if err := o.Add(path, op.Value); err != nil {
			return "", err
		}
	}
	return "injected", nil
}

// splitPointer splits a JSON Pointer into unescaped reference tokens.
func splitPointer(p string) []string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
	}
	return parts
}

// manualConfig is the injector's configuration for --manual: the installed control plane's settings (its
// ConfigMaps), the trust anchors from the cluster or a file, then the flags.
func (f *injectFlags) manualConfig(ctx context.Context, env *Env, flags *pflag.FlagSet) (inject.Config, error) {
	cfg := inject.DefaultConfig()
	cfg.ControlPlaneNamespace = env.ControlPlaneNS
	if cfg.ControlPlaneNamespace == "" {
		cfg.ControlPlaneNamespace = DefaultNamespace
	}
	cfg.CreatedBy = "sinew/cli " + version.Version
	var clusterErr error
	if !f.ignoreCluster {
		vals, anchors, err := installedSettings(ctx, env, cfg.ControlPlaneNamespace)
		if err != nil {
			clusterErr = err
		} else {
			applyValues(&cfg, vals)
			cfg.TrustAnchorsPEM = anchors
		}
	}
	if f.anchorsFile != "" {
		b, err := os.ReadFile(f.anchorsFile)
		if err != nil {
			return cfg, fmt.Errorf("--identity-trust-anchors-file: %w", err)
		}
		cfg.TrustAnchorsPEM = string(b)
		if clusterErr != nil {
			fmt.Fprintf(env.Stderr, "warning: using the default proxy settings: %v\n", clusterErr)
		}
	}
	if cfg.TrustAnchorsPEM == "" {
		why := "--ignore-cluster is set"
		if clusterErr != nil {
			why = clusterErr.Error()
		}
		return cfg, fmt.Errorf("--manual needs the control plane's trust anchors: give --identity-trust-anchors-file, or a cluster where sinew is installed (%s)", why)
	}
	// the flags win over the installed settings
	str := func(name string, dst *string, v string) {
		if flags.Changed(name) {
			*dst = v
		}
	}
	str("registry", &cfg.Registry, f.registry)
	if flags.Changed("registry") {
		cfg.ProxyImage, cfg.InitImage = "", ""
	}
	if flags.Changed("image-tag") {
		cfg.Tag, cfg.ProxyVersion, cfg.InitVersion = f.imageTag, "", ""
	}
	str("proxy-image", &cfg.ProxyImage, f.proxyImage)
	str("proxy-version", &cfg.ProxyVersion, f.proxyVersion)
	str("init-image", &cfg.InitImage, f.initImage)
	if flags.Changed("image-pull-policy") {
		cfg.ImagePullPolicy = corev1.PullPolicy(f.pullPolicy)
	}
	p := &cfg.Proxy
	if flags.Changed("proxy-uid") {
		p.UID = f.proxyUID
	}
	str("proxy-log-level", &p.LogLevel, f.logLevel)
	str("proxy-log-format", &p.LogFormat, f.logFormat)
	if flags.Changed("native-sidecar") {
		p.NativeSidecar = f.nativeSidecar
	}
	if flags.Changed("proxy-await") {
		p.Await = f.await
	}
	str("skip-inbound-ports", &p.SkipInboundPorts, f.skipIn)
	str("skip-outbound-ports", &p.SkipOutboundPorts, f.skipOut)
	str("skip-subnets", &p.SkipSubnets, f.skipSubnets)
	str("opaque-ports", &p.OpaquePorts, f.opaquePorts)
	str("proxy-cpu-request", &p.CPURequest, f.cpuReq)
	str("proxy-cpu-limit", &p.CPULimit, f.cpuLim)
	str("proxy-memory-request", &p.MemoryRequest, f.memReq)
	str("proxy-memory-limit", &p.MemoryLimit, f.memLim)
	str("proxy-outbound-connect-timeout", &p.OutboundConnectTimeout, f.connectTimeout)
	str("shutdown-grace-period", &p.ShutdownGracePeriod, f.shutdownGrace)
	str("default-inbound-policy", &p.DefaultInboundPolicy, f.inboundPol)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("--manual: %w", err)
	}
	return cfg, nil
}

// installedSettings reads the install's values (ConfigMap sinew-config) and the trust anchors.
func installedSettings(ctx context.Context, env *Env, ns string) (*charts.ControlPlaneValues, string, error) {
	cl, err := env.KubeClients()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	anchors, err := chartcmd.InstalledTrustAnchors(ctx, cl.Kube, ns)
	if err != nil {
		return nil, "", err
	}
	if anchors == "" {
		return nil, "", fmt.Errorf("ConfigMap %s/%s has no key %s", ns, names.TrustRootsConfigMap, names.TrustRootsKey)
	}
	stored, err := chartcmd.InstalledValues(ctx, cl.Kube, ns)
	if err != nil {
		return nil, "", err
	}
	v, err := chartcmd.DecodeInstalled(stored)
	if err != nil {
		return nil, "", err
	}
	return v, anchors, nil
}

// applyValues sets what the chart gives the proxy injector as flags (charts/sinew-control-plane, proxy-injector).
func applyValues(c *inject.Config, v *charts.ControlPlaneValues) {
	set := func(dst *string, s string) {
		if s != "" {
			*dst = s
		}
	}
	set(&c.ClusterDomain, v.ClusterDomain)
	c.TrustDomain = c.ClusterDomain
	set(&c.TrustDomain, v.Identity.TrustDomain)
	set(&c.Registry, v.Image.Registry)
	c.Registry = strings.TrimSuffix(c.Registry, "/")
	set(&c.Tag, v.Image.Tag)
	set(&c.ProxyVersion, v.Proxy.Image.Version)
	if s := v.Image.PullPolicy; s != "" {
		c.ImagePullPolicy = corev1.PullPolicy(s)
	}
	p := &c.Proxy
	if v.Proxy.UID != 0 {
		p.UID = v.Proxy.UID
	}
	set(&p.LogLevel, v.Proxy.LogLevel)
	set(&p.LogFormat, v.Proxy.LogFormat)
	p.NativeSidecar = v.Proxy.NativeSidecar
	p.Await = v.Proxy.Await
	set(&p.SkipInboundPorts, v.ProxyInit.SkipInboundPorts)
	set(&p.SkipOutboundPorts, v.ProxyInit.SkipOutboundPorts)
	set(&p.SkipSubnets, v.ProxyInit.SkipSubnets)
	set(&p.OpaquePorts, v.Proxy.OpaquePorts)
	set(&p.CPURequest, v.Proxy.Resources.CPU.Request)
	set(&p.CPULimit, v.Proxy.Resources.CPU.Limit)
	set(&p.MemoryRequest, v.Proxy.Resources.Memory.Request)
	set(&p.MemoryLimit, v.Proxy.Resources.Memory.Limit)
	set(&p.OutboundConnectTimeout, v.Proxy.ConnectTimeout)
	set(&p.ShutdownGracePeriod, v.Proxy.ShutdownGracePeriod)
	set(&p.DefaultInboundPolicy, v.DefaultInboundPolicy)
}
