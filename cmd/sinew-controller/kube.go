package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/names"
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
		cfg controlplane.DestinationConfig
		lf  daemon.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "destination",
		Short: "Run the Kubernetes-mode destination and policy services, fed by the cluster's Services, EndpointSlices and Pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	lf.Register(f)
	return cmd
}
