package cli

import (
	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/internal/version"
)

func newVersionCmd(env *Env) *cobra.Command {
	var client, short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(cmd, env, client, short)
		},
	}
	cmd.Flags().BoolVar(&client, "client", false, "print the client version only")
	cmd.Flags().BoolVar(&short, "short", false, "print the version numbers only")
	return cmd
}

// runVersion prints the client version; the server version is added by the install work (it reads the installed
// control plane's version from the cluster).
func runVersion(_ *cobra.Command, env *Env, client, short bool) error {
	if short {
		_, err := env.Stdout.Write([]byte(version.Version + "\n"))
		return err
	}
	_, err := env.Stdout.Write([]byte("Client version: " + version.Version + "\n"))
	_ = client
	return err
}
