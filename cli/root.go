// Package cli is the `sinew` command line: one file per command, each built from an injected Env so that tests run
// commands in-process against their own streams and cluster. It must not hold package-level flag variables.
package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/cmdenv"
	vizcmd "github.com/sinewmesh/sinew/viz/cmd"
)

// DefaultNamespace is the control plane's namespace.
const DefaultNamespace = cmdenv.DefaultNamespace

// Env is what every command runs against (package cmdenv, shared with the extensions' commands).
type Env = cmdenv.Env

// NewEnv returns the environment of the running process.
func NewEnv() *Env { return cmdenv.New() }

// NewRoot builds the `sinew` command tree over env.
func NewRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "sinew",
		Short: "sinew is a service mesh for Kubernetes, and for processes on one machine",
		Long: `sinew gives every connection between your workloads mutual TLS, golden metrics and live tap,
without changes to the applications.

Kubernetes:  sinew install --crds | kubectl apply -f -  &&  sinew install | kubectl apply -f -  &&  sinew check
One machine: sinew demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	ns := DefaultNamespace
	if env.Getenv != nil && env.Getenv("SINEW_NAMESPACE") != "" {
		ns = env.Getenv("SINEW_NAMESPACE")
	}
	pf := root.PersistentFlags()
	pf.StringVar(&env.KubeConfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	pf.StringVar(&env.KubeContext, "context", "", "name of the kubeconfig context to use")
	pf.StringVarP(&env.ControlPlaneNS, "sinew-namespace", "L", ns, "namespace of the sinew control plane ($SINEW_NAMESPACE)")
	pf.BoolVar(&env.Verbose, "verbose", false, "print more about what the command does")

	root.AddCommand(
		newVersionCmd(env),
		newDemoCmd(env),
		newRunCmd(env),
		newEmojivotoCmd(env),
		vizcmd.NewCmd(env),
		newInstallCmd(env), newUninstallCmd(env), newUpgradeCmd(env), newCheckCmd(env),
		newInjectCmd(env), newUninjectCmd(env), newDiagnosticsCmd(env),
	)
	return root
}

// Main runs the CLI with args and returns the process exit code. Errors are printed once, prefixed with the
// command, and a command that already reported its failure (check, say) returns ErrSilent.
func Main(ctx context.Context, env *Env, args []string) int {
	root := NewRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if err != ErrSilent {
			fmt.Fprintln(env.Stderr, "Error:", err)
		}
		return 1
	}
	return 0
}

// ErrSilent makes the command exit non-zero without printing anything more: it already told the user why.
var ErrSilent = cmdenv.ErrSilent
