package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/internal/version"
)

// unavailable is the server version when no control plane can be found.
const unavailable = "unavailable"

func newVersionCmd(env *Env) *cobra.Command {
	var client, short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server versions",
		Long: `Print the CLI's version and the installed control plane's (from its deployments'
app.kubernetes.io/version label; "unavailable" when none is installed or the cluster cannot be reached).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				fmt.Fprintln(env.Stdout, version.Version)
			} else {
				fmt.Fprintln(env.Stdout, "Client version: "+version.Version)
			}
			if client {
				return nil
			}
			server := unavailable
			if cl, err := env.KubeClients(); err == nil {
				ce := &check.Env{Kube: cl.Kube, Namespace: env.ControlPlaneNS}
				v, err := check.ControlPlaneVersion(cmd.Context(), ce)
				switch {
				case err != nil && env.Verbose:
					fmt.Fprintln(env.Stderr, "server version:", err)
				case err == nil && v != "":
					server = v
				}
			} else if env.Verbose {
				fmt.Fprintln(env.Stderr, "server version:", err)
			}
			if short {
				fmt.Fprintln(env.Stdout, server)
			} else {
				fmt.Fprintln(env.Stdout, "Server version: "+server)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&client, "client", false, "print the client version only")
	cmd.Flags().BoolVar(&short, "short", false, "print the version numbers only")
	return cmd
}
