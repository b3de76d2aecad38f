package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/web"
)

func newRunCmd(env *Env) *cobra.Command {
	var (
		dataDir, vizAddr string
		files            []string
	)
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run local processes meshed, each beside its own proxy, from a LocalMesh file (no Kubernetes, no root)",
		Long: `Run starts a local control plane, a sinew-proxy beside every workload of FILE and the workloads'
processes, waits until all are ready, and keeps them running until Ctrl-C. If a process or proxy dies, it says
which and why and stops the rest. See docs/getting-started/local-mesh.md for the file format;
examples/emojivoto/local/emojivoto.yaml is a complete example.

-f adds your own control-plane resources, the documents you would kubectl apply (Server, ServerAuthorization,
AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication, HTTPRoute, GRPCRoute…), selecting FILE's
workloads by their labels. A Gateway of GatewayClass sinew among them gets a gateway proxy on 127.0.0.1 (ports
below 1024 move to 18000+port: 80 is served on 18080), with its listeners, routes and certificates (Secrets of
type kubernetes.io/tls in the files).
The control plane checks them before any proxy starts; an edit applies without a restart, and a broken edit is
reported with its file and line while the last good version stays in force.`,
		Example: `  sinew run examples/emojivoto/local/emojivoto.yaml
  sinew run examples/emojivoto/local/emojivoto.yaml -f examples/emojivoto/policy/web-only-vote-bot.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := localmesh.Load(args[0])
			if err != nil {
				return err
			}
			resources, err := localmesh.ResourceFiles(files)
			if err != nil {
				return err
			}
			return localmesh.Run(cmd.Context(), m, localmesh.Options{
				DataDir: dataDir, Progress: env.Stderr, ResourceFiles: resources, StateDir: localmesh.StateDir(env.Lookup),
				Ready: func(r *localmesh.Running) { printRunning(env.Stdout, m, r) },
				Viz:   localmesh.VizOptions{Listen: vizAddr, Assets: web.Assets, StateDir: viz.StateDir(env.Lookup)},
			})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep the CA, resources and logs here (default: a temporary directory removed at exit)")
	addResourceFlag(cmd, &files)
	cmd.Flags().StringVar(&vizAddr, "viz-addr", localmesh.DemoViz(localmesh.DefaultPortBase), "serve the viz dashboard and API here, with an embedded scraper for the metrics (\"\": no viz)")
	return cmd
}

func printRunning(w io.Writer, m *localmesh.Mesh, r *localmesh.Running) {
	fmt.Fprintf(w, "\n%s is up; logs are in %s/logs.\n\n", m.Metadata.Name, r.DataDir)
	fmt.Fprintf(w, "  %-12s %-8s %-22s %s\n", "WORKLOAD", "PID", "PROXY METRICS", "SERVES")
	for i, wl := range r.Workloads {
		var serves []string
		spec := m.Spec.Workloads[i]
		for _, p := range spec.Ports {
			serves = append(serves, fmt.Sprintf("%d at %s", p.Port, spec.Proxy.Inbound))
		}
		fmt.Fprintf(w, "  %-12s %-8d http://%s/metrics  %s\n", wl.Name, wl.PID, wl.ProxyAdmin, strings.Join(serves, ", "))
	}
	printGateways(w, r)
	fmt.Fprintf(w, "\n  The control plane's model: curl -s http://%s/debug/model\n", r.ControlPlane.Admin)
	if r.VizURL != "" {
		fmt.Fprintf(w, "  The viz dashboard: %s/ (sinew viz stat deploy -n %s --viz-url %s)\n", r.VizURL, m.Spec.Namespace, r.VizURL)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything.\n")
}

// printGateways lists the gateways a run started, with the URL of each listener port.
func printGateways(w io.Writer, r *localmesh.Running) {
	for _, g := range r.Gateways {
		fmt.Fprintf(w, "\n  Gateway %s/%s (workload %s):\n", g.Namespace, g.Name, g.ResourceName())
		for _, p := range g.Ports {
			fmt.Fprintf(w, "    listener port %-5d %s\n", p, g.URL(p))
		}
	}
}

// addResourceFlag adds -f, the user's own control-plane resources, to a command that runs a local mesh.
func addResourceFlag(cmd *cobra.Command, files *[]string) {
	cmd.Flags().StringArrayVarP(files, "filename", "f", nil,
		"resources to apply to the local mesh and reload when they change: a YAML file of kubectl apply documents (policy.sinew.dev kinds) or a directory of them; repeatable")
}
