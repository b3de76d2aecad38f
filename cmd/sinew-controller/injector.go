package main

import (
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/version"
)

func newInjectorCmd(stderr io.Writer) *cobra.Command {
	var (
		cfg        controlplane.InjectorConfig
		lf         daemon.LogFlags
		pullPolicy string
	)
	ic := inject.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "injector",
		Short: "Run the proxy-injector admission webhook: add the sinew proxy to pods that opt in",
		Long: `Run the proxy-injector: a mutating admission webhook (AdmissionReview v1, pods, CREATE) that adds sinew-init
and the sinew-proxy sidecar to pods whose template or namespace says sinew.dev/inject: enabled. The trust anchors come
from the ConfigMap sinew-identity-trust-roots in --control-plane-namespace; the proxy flags are the defaults that
config.sinew.dev/* annotations override. It never blocks a pod: on any failure the pod is created unmodified and an
Event, a log line and proxy_inject_admission_responses_total{result="failed"} say why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ic.ImagePullPolicy = corev1.PullPolicy(pullPolicy)
			ic.CreatedBy = "sinew/proxy-injector " + version.Version
			cfg.Inject = ic
			return runService(cmd, stderr, &lf, true, func(log *slog.Logger, reg *prometheus.Registry) (runner, error) {
				cfg.Logger, cfg.Registerer = log, reg
				return controlplane.NewInjector(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: the pod's in-cluster configuration)")
	f.StringVar(&cfg.Addr, "injector-addr", controlplane.DefaultInjectorAddr, "webhook HTTPS listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", controlplane.DefaultInjectorAdminAddr, "admin HTTP listen address (/ready, /live, /metrics)")
	f.StringVar(&cfg.CertFile, "tls-cert-file", controlplane.DefaultInjectorCertFile, "PEM serving certificate of the webhook (re-read when it changes)")
	f.StringVar(&cfg.KeyFile, "tls-key-file", controlplane.DefaultInjectorKeyFile, "PEM private key of the serving certificate")

	f.StringVar(&ic.ControlPlaneNamespace, "control-plane-namespace", ic.ControlPlaneNamespace, "namespace of the control plane (services and the trust-roots ConfigMap)")
	f.StringVar(&ic.TrustDomain, "trust-domain", ic.TrustDomain, "SPIFFE trust domain of the proxies' identities")
	f.StringVar(&ic.ClusterDomain, "cluster-domain", ic.ClusterDomain, "the cluster's DNS domain (service FQDN suffix)")
	f.StringVar(&ic.Registry, "registry", ic.Registry, "registry of the proxy and init images")
	f.StringVar(&ic.Tag, "image-tag", "", "tag of the proxy and init images (default: this build's version, "+version.Version+")")
	f.StringVar(&ic.ProxyImage, "proxy-image", "", "proxy image name without tag (default <registry>/sinew-proxy)")
	f.StringVar(&ic.ProxyVersion, "proxy-version", "", "proxy image tag (default --image-tag)")
	f.StringVar(&ic.InitImage, "init-image", "", "init image name without tag (default <registry>/sinew-init)")
	f.StringVar(&pullPolicy, "image-pull-policy", string(ic.ImagePullPolicy), "pull policy of the injected containers: Always, IfNotPresent or Never")

	p := &ic.Proxy
	f.Int64Var(&p.UID, "proxy-uid", p.UID, "user ID the proxy runs as (its connections skip capture)")
	f.StringVar(&p.LogLevel, "proxy-log-level", p.LogLevel, "proxy log level: debug, info, warn or error")
	f.StringVar(&p.LogFormat, "proxy-log-format", p.LogFormat, "proxy log format: json or text")
	f.BoolVar(&p.NativeSidecar, "proxy-native-sidecar", p.NativeSidecar, "run the proxy as a native sidecar (an init container with restartPolicy Always)")
	f.BoolVar(&p.Await, "proxy-await", p.Await, "start the app's containers once the proxy is ready (native sidecars)")
	f.StringVar(&p.SkipInboundPorts, "skip-inbound-ports", "", "inbound ports and ranges that reach the app without the proxy")
	f.StringVar(&p.SkipOutboundPorts, "skip-outbound-ports", "", "outbound ports and ranges that bypass the proxy")
	f.StringVar(&p.SkipSubnets, "skip-subnets", "", "outbound networks (CIDRs) that bypass the proxy")
	f.StringVar(&p.OpaquePorts, "opaque-ports", "", "ports the proxy does not detect protocols on (default: the proxy's own list)")
	f.StringVar(&p.CPURequest, "proxy-cpu-request", "", "CPU the proxy requests, e.g. 100m")
	f.StringVar(&p.CPULimit, "proxy-cpu-limit", "", "CPU limit of the proxy")
	f.StringVar(&p.MemoryRequest, "proxy-memory-request", "", "memory the proxy requests, e.g. 20Mi")
	f.StringVar(&p.MemoryLimit, "proxy-memory-limit", "", "memory limit of the proxy")
	f.StringVar(&p.OutboundConnectTimeout, "proxy-outbound-connect-timeout", "", "the proxy's connect timeout, e.g. 1s (default: the proxy's)")
	f.StringVar(&p.ShutdownGracePeriod, "shutdown-grace-period", "", "how long the proxy drains at shutdown, e.g. 2m (default: the proxy's)")
	f.StringVar(&p.DefaultInboundPolicy, "default-inbound-policy", "", "checked like the annotation; the policy service applies it")
	lf.Register(f)
	return cmd
}
