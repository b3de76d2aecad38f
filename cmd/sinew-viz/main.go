// Command sinew-viz runs viz in Kubernetes: the API the `sinew viz` commands read, the tap fan-out to the proxies
// and the dashboard (docs/architecture/viz.md). It only turns its flags into a viz.Config; package viz composes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/sinewmesh/sinew/internal/daemon"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/tapsvc"
	"github.com/sinewmesh/sinew/viz/web"
)

type config struct {
	listen, adminAddr, prometheusURL, kubeconfig           string
	trustDomain, clusterDomain, identityAddr               string
	trustAnchorsFile, tokenFile, namespace, serviceAccount string
	enforcedHost                                           string
	log                                                    daemon.LogFlags
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCmd(os.Stderr).ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}

func newCmd(stderr io.Writer) *cobra.Command {
	var c config
	cmd := &cobra.Command{
		Use:           "sinew-viz",
		Short:         "Serve viz in Kubernetes: the metrics API, tap and the dashboard",
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), c, stderr) },
	}
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&c.listen, "listen", ":8084", "API and dashboard HTTP listen address")
	f.StringVar(&c.adminAddr, "admin-addr", ":9995", "admin HTTP listen address (/ready, /live, /metrics)")
	f.StringVar(&c.prometheusURL, "prometheus-url", "http://prometheus.sinew-viz.svc.cluster.local:9090", "the Prometheus that scrapes the proxies")
	f.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the pod's in-cluster configuration)")
	f.StringVar(&c.trustDomain, "trust-domain", names.DefaultTrustDomain, "SPIFFE trust domain of the mesh")
	f.StringVar(&c.clusterDomain, "cluster-domain", names.DefaultClusterDomain, "the cluster's DNS domain")
	f.StringVar(&c.identityAddr, "identity-addr", "", "identity service to obtain the tap certificate from (default "+identityAddr("<cluster-domain>")+")")
	f.StringVar(&c.trustAnchorsFile, "identity-trust-anchors-file", names.TrustAnchorsPath, "PEM trust anchors")
	f.StringVar(&c.tokenFile, "identity-token-file", names.TokenPath, "projected ServiceAccount token (audience "+names.TokenAudience+")")
	f.StringVar(&c.namespace, "namespace", names.VizNamespace, "this pod's namespace (the tap identity is spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)")
	f.StringVar(&c.serviceAccount, "service-account", names.TapAccount, "this pod's service account")
	f.StringVar(&c.enforcedHost, "enforced-host", "", "regular expression of Host headers accepted besides localhost and the Service's names")
	c.log.Register(f)
	return cmd
}

// identityAddr is where the identity service of a control plane installed in its default namespace answers.
func identityAddr(clusterDomain string) string {
	return names.ServiceAddr(names.IdentityService, names.ControlPlaneNamespace, clusterDomain, names.IdentityPort)
}

func run(ctx context.Context, c config, stderr io.Writer) error {
	log, err := c.log.Logger(stderr)
	if err != nil {
		return err
	}
	klog.SetSlogLogger(log.With("component", "client-go"))
	var enforced *regexp.Regexp
	if c.enforcedHost != "" {
		if enforced, err = regexp.Compile(c.enforcedHost); err != nil {
			return fmt.Errorf("--enforced-host: %w", err)
		}
	}
	if c.identityAddr == "" {
		c.identityAddr = identityAddr(c.clusterDomain)
	}
	pem, err := os.ReadFile(c.trustAnchorsFile)
	if err != nil {
		return fmt.Errorf("trust anchors: %w", err)
	}
	anchors, err := meshtls.ParseAnchors(pem)
	if err != nil {
		return fmt.Errorf("trust anchors %s: %w", c.trustAnchorsFile, err)
	}
	rc, err := daemon.RESTConfig(c.kubeconfig, "sinew-viz")
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	svc := names.VizService + "." + c.namespace
	v, err := viz.New(viz.Config{
		Mode: viz.ModeKubernetes, Listen: c.listen, AdminAddr: c.adminAddr,
		Tap:          tapsvc.Kubernetes{Client: kube, TrustDomain: c.trustDomain},
		TrustAnchors: anchors,
		Identity: &identityclient.Config{
			Addr:       c.identityAddr,
			ServerName: meshtls.ID(c.trustDomain, names.ControlPlaneNamespace, names.IdentityAccount),
			LocalName:  meshtls.ID(c.trustDomain, c.namespace, c.serviceAccount),
			TokenFile:  c.tokenFile,
		},
		PrometheusURL: c.prometheusURL,
		Assets:        web.Assets,
		AllowedHosts:  []string{svc, svc + ".svc", svc + ".svc." + c.clusterDomain},
		EnforcedHost:  enforced,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	return v.Run(ctx)
}
