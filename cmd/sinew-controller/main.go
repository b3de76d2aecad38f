// Command sinew-controller runs sinew's control plane. `local` runs it against a directory of YAML resources;
// `token` issues a join token for a local workload's proxy; `identity` and `destination` are the Kubernetes-mode
// services (one deployment each). The wiring lives in package controlplane.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/names"
)

func main() {
	ctx, stop := signalContext(os.Stderr)
	defer stop()
	cmd := newRootCmd(os.Stdout, os.Stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sinew-controller:", err)
		os.Exit(1)
	}
}

// signalContext is cancelled by the first SIGINT/SIGTERM (graceful stop); a second one exits at once.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		if _, ok := <-ch; ok {
			fmt.Fprintln(stderr, "sinew-controller: second signal, stopping now")
			os.Exit(130)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "sinew-controller",
		Short:         "The sinew control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newLocalCmd(stderr), newTokenCmd(stdout), newIdentityCmd(stderr), newDestinationCmd(stderr), newInjectorCmd(stderr))
	return root
}

// runner is a built control-plane service.
type runner interface{ Run(context.Context) error }

// runService builds a service with the logger of the flags and a fresh registry, then runs it until the command's
// context ends. Kubernetes-mode services also send client-go's own logs through the logger.
func runService(cmd *cobra.Command, stderr io.Writer, lf *daemon.LogFlags, kube bool, build func(*slog.Logger, *prometheus.Registry) (runner, error)) error {
	log, err := lf.Logger(stderr)
	if err != nil {
		return err
	}
	if kube {
		klog.SetSlogLogger(log.With("component", "client-go"))
	}
	s, err := build(log, newRegistry())
	if err != nil {
		return err
	}
	return s.Run(cmd.Context())
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newLocalCmd(stderr io.Writer) *cobra.Command {
	var (
		cfg controlplane.Config
		lf  daemon.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run identity, destination and policy against a directory of YAML resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runService(cmd, stderr, &lf, false, func(log *slog.Logger, reg *prometheus.Registry) (runner, error) {
				cfg.Logger, cfg.Registerer = log, reg
				return controlplane.New(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for generated CA material and the join-token key (required)")
	f.StringVar(&cfg.ResourceDir, "resource-dir", "", "directory of YAML resources, watched for changes (required)")
	f.StringVar(&cfg.IdentityAddr, "identity-addr", controlplane.DefaultIdentityAddr, "identity gRPC listen address")
	f.StringVar(&cfg.DestinationAddr, "destination-addr", controlplane.DefaultDestinationAddr, "destination gRPC listen address")
	f.StringVar(&cfg.PolicyAddr, "policy-addr", controlplane.DefaultPolicyAddr, "policy gRPC listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", controlplane.DefaultAdminAddr, "admin HTTP listen address (/ready, /live, /metrics, /debug/model)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", names.DefaultTrustDomain, "SPIFFE trust domain")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", names.DefaultClusterDomain, "service FQDN suffix")
	f.StringVar(&cfg.TrustAnchorsFile, "identity-trust-anchors-file", "", "PEM trust anchors (with the two issuer flags; else generated into --data-dir)")
	f.StringVar(&cfg.IssuerCertFile, "identity-issuer-certificate-file", "", "PEM issuer (intermediate CA) certificate")
	f.StringVar(&cfg.IssuerKeyFile, "identity-issuer-key-file", "", "PEM issuer private key")
	f.DurationVar(&cfg.CertLifetime, "identity-issuance-lifetime", controlplane.DefaultCertLifetime, "lifetime of workload certificates")
	f.StringVar(&cfg.DefaultInboundPolicy, "default-inbound-policy", names.DefaultInboundPolicy, "inbound policy of workload ports no Server selects, unless a Workload's annotation says otherwise: "+strings.Join(names.InboundPolicies, ", "))
	f.StringVar(&cfg.ClusterNetworks, "cluster-networks", controlplane.DefaultLocalClusterNetworks, "networks of the cluster-* inbound policies, comma-separated")
	f.StringVar(&cfg.ProbeNetworks, "probe-networks", names.DefaultProbeNetworks, "networks HTTP probes come from, comma-separated")
	lf.Register(f)
	_ = cmd.MarkFlagRequired("data-dir")
	_ = cmd.MarkFlagRequired("resource-dir")
	return cmd
}

func newTokenCmd(stdout io.Writer) *cobra.Command {
	var dataDir, namespace, workload string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a join token that lets a local workload's proxy obtain its certificate",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tok, err := controlplane.IssueJoinTokenFromDataDir(dataDir, namespace, workload)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the control plane's data directory (required)")
	f.StringVar(&namespace, "namespace", "", "the workload's namespace (required)")
	f.StringVar(&workload, "workload", "", "the workload's name (required)")
	for _, n := range []string{"data-dir", "namespace", "workload"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}
