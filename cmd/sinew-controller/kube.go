package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

func newIdentityCmd(stderr io.Writer) *cobra.Command {
	var (
		cfg controlplane.IdentityConfig
		lf  daemon.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Run the Kubernetes-mode identity service: certify workloads that prove their service account with a projected token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runService(cmd, stderr, &lf, true, func(log *slog.Logger, reg *prometheus.Registry) (runner, error) {
				cfg.Logger, cfg.Registerer = log, reg
				return controlplane.NewIdentity(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: the pod's in-cluster configuration)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", names.DefaultTrustDomain, "SPIFFE trust domain")
	f.StringVar(&cfg.Addr, "identity-addr", controlplane.DefaultKubeIdentityAddr, "identity gRPC (TLS) listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", controlplane.DefaultKubeIdentityAdminAddr, "admin HTTP listen address (/ready, /live, /metrics)")
	f.StringVar(&cfg.TrustAnchorsFile, "identity-trust-anchors-file", names.TrustAnchorsPath, "PEM trust anchors")
	f.StringVar(&cfg.IssuerCertFile, "identity-issuer-certificate-file", controlplane.DefaultIssuerCertPath, "PEM issuer (intermediate CA) certificate")
	f.StringVar(&cfg.IssuerKeyFile, "identity-issuer-key-file", controlplane.DefaultIssuerKeyPath, "PEM issuer private key")
	f.DurationVar(&cfg.CertLifetime, "identity-issuance-lifetime", controlplane.DefaultCertLifetime, "lifetime of workload certificates")
	lf.Register(f)
	return cmd
}

func newDestinationCmd(stderr io.Writer) *cobra.Command {
	var (
		cfg        controlplane.DestinationConfig
		lf         daemon.LogFlags
		pullPolicy string
	)
	cmd := &cobra.Command{
		Use:   "destination",
		Short: "Run the Kubernetes-mode destination and policy services, fed by the cluster's Services, EndpointSlices and Pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.GatewayProxy.ImagePullPolicy = corev1.PullPolicy(pullPolicy)
			return runService(cmd, stderr, &lf, true, func(log *slog.Logger, reg *prometheus.Registry) (runner, error) {
				cfg.Logger, cfg.Registerer = log, reg
				return controlplane.NewDestination(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: the pod's in-cluster configuration)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", names.DefaultTrustDomain, "SPIFFE trust domain")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", names.DefaultClusterDomain, "the cluster's DNS domain (service FQDN suffix)")
	f.StringVar(&cfg.DestinationAddr, "destination-addr", controlplane.DefaultKubeDestinationAddr, "destination gRPC (mTLS) listen address")
	f.StringVar(&cfg.PolicyAddr, "policy-addr", controlplane.DefaultKubePolicyAddr, "policy gRPC (mTLS) listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", controlplane.DefaultKubeDestinationAdminAddr, "admin HTTP listen address (/ready, /live, /metrics, /debug/model)")
	f.StringVar(&cfg.IdentityAddr, "identity-addr", "", "identity service to obtain the serving certificate from (default sinew-identity.sinew.svc.<cluster-domain>.:8080)")
	f.StringVar(&cfg.TrustAnchorsFile, "identity-trust-anchors-file", names.TrustAnchorsPath, "PEM trust anchors")
	f.StringVar(&cfg.TokenFile, "identity-token-file", names.TokenPath, "projected ServiceAccount token (audience "+names.TokenAudience+"), re-read at every renewal")
	f.StringVar(&cfg.Namespace, "namespace", names.ControlPlaneNamespace, "this controller's namespace (its identity is spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)")
	f.StringVar(&cfg.ServiceAccount, "service-account", names.DestinationAccount, "this controller's service account")
	f.StringVar(&cfg.DefaultOpaquePorts, "default-opaque-ports", names.DefaultOpaquePorts, "ports and ranges that are opaque unless an opaque-ports annotation replaces the list (\"none\" for none)")
	f.StringVar(&cfg.DefaultInboundPolicy, "default-inbound-policy", names.DefaultInboundPolicy, "inbound policy of pod ports no Server selects, unless a pod or namespace annotation says otherwise: "+strings.Join(names.InboundPolicies, ", "))
	f.StringVar(&cfg.ClusterNetworks, "cluster-networks", names.DefaultClusterNetworks, "networks of the cluster-* inbound policies, comma-separated")
	f.StringVar(&cfg.ProbeNetworks, "probe-networks", names.DefaultProbeNetworks, "networks kubelet probes come from, comma-separated")
	// The gateway proxies (Gateways of class sinew): the injector's image and proxy flags, by the same names.
	gp := &cfg.GatewayProxy
	f.StringVar(&gp.Registry, "registry", inject.DefaultRegistry, "registry of the gateway proxies' image")
	f.StringVar(&gp.Tag, "image-tag", "", "tag of the gateway proxies' image (default: this build's version, "+version.Version+")")
	f.StringVar(&gp.ProxyImage, "proxy-image", "", "gateway proxy image name without tag (default <registry>/sinew-proxy)")
	f.StringVar(&gp.ProxyVersion, "proxy-version", "", "gateway proxy image tag (default --image-tag)")
	f.StringVar(&pullPolicy, "image-pull-policy", string(inject.DefaultImagePullPolicy), "pull policy of the gateway proxies: Always, IfNotPresent or Never")
	f.Int64Var(&gp.Proxy.UID, "proxy-uid", names.DefaultProxyUID, "user ID the gateway proxies run as")
	f.StringVar(&gp.Proxy.LogLevel, "proxy-log-level", inject.DefaultProxyLogLevel, "gateway proxies' log level: debug, info, warn or error")
	f.StringVar(&gp.Proxy.LogFormat, "proxy-log-format", inject.DefaultProxyLogFormat, "gateway proxies' log format: json or text")
	f.StringVar(&gp.Proxy.CPURequest, "proxy-cpu-request", "", "CPU each gateway proxy requests, e.g. 100m")
	f.StringVar(&gp.Proxy.CPULimit, "proxy-cpu-limit", "", "CPU limit of each gateway proxy")
	f.StringVar(&gp.Proxy.MemoryRequest, "proxy-memory-request", "", "memory each gateway proxy requests, e.g. 20Mi")
	f.StringVar(&gp.Proxy.MemoryLimit, "proxy-memory-limit", "", "memory limit of each gateway proxy")
	f.StringVar(&gp.Proxy.OutboundConnectTimeout, "proxy-outbound-connect-timeout", "", "the gateway proxies' connect timeout, e.g. 1s")
	f.StringVar(&gp.Proxy.ShutdownGracePeriod, "shutdown-grace-period", "", "how long a gateway proxy drains at shutdown, e.g. 2m")
	lf.Register(f)
	return cmd
}
