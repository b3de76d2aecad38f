// Package cli is the `sinew` command line: one file per command, each built from an injected Env so that tests run
// commands in-process against their own streams and cluster. It must not hold package-level flag variables.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/certs"
)

// DefaultNamespace is the control plane's namespace.
const DefaultNamespace = "sinew"

// Env is what every command runs against: its streams, the environment it reads, and how it reaches a cluster.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the process environment (os.Getenv in main; a map in tests).
	Getenv func(string) string

	// Set from the global flags before any command runs.
	KubeConfig     string // --kubeconfig (else $KUBECONFIG, else ~/.kube/config)
	KubeContext    string // --context
	ControlPlaneNS string // -L/--sinew-namespace
	Verbose        bool

	// RESTConfig builds the client configuration; nil means "from KubeConfig/KubeContext". Tests may replace it.
	RESTConfig func() (*rest.Config, error)
	// Kube returns the typed clients of the selected cluster; nil means "built from Config". Tests hand in fakes.
	Kube func() (*check.Clients, error)
	// Now is the clock (nil: time.Now) and Certs makes install's certificates (nil: fresh ECDSA ones); tests fix
	// both so that rendered manifests are reproducible.
	Now   func() time.Time
	Certs certs.Generator
}

// NewEnv returns the environment of the running process.
func NewEnv() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Config returns the REST configuration of the selected cluster.
func (e *Env) Config() (*rest.Config, error) {
	if e.RESTConfig != nil {
		return e.RESTConfig()
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if e.KubeConfig != "" {
		rules.ExplicitPath = e.KubeConfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: e.KubeContext}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	return cfg, nil
}

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
		newVizCmd(env),
		newInstallCmd(env), newUninstallCmd(env), newUpgradeCmd(env), newCheckCmd(env),
		newInjectCmd(env), newUninjectCmd(env),
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
var ErrSilent = silentError{}

type silentError struct{}

func (silentError) Error() string { return "failed" }
