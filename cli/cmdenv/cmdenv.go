// Package cmdenv is what every `sinew` command runs against: the injected Env (streams, environment, how to reach
// a cluster) and the few helpers commands of more than one package share (printing check reports). The core
// commands (package cli) and the extensions' commands (viz/cmd) both take an *Env, so tests run any of them
// in-process against their own streams and fake cluster. It must not hold package-level flag variables.
package cmdenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/certs"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// DefaultNamespace is the control plane's namespace.
const DefaultNamespace = names.ControlPlaneNamespace

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

// New returns the environment of the running process.
func New() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Lookup reads the environment variable key ("" when Getenv is nil).
func (e *Env) Lookup(key string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(key)
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

// KubeClients returns the cluster's clients: Kube when set (tests), else built from the kubeconfig.
func (e *Env) KubeClients() (*check.Clients, error) {
	if e.Kube != nil {
		return e.Kube()
	}
	cfg, err := e.Config()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "sinew/" + version.Version
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ext, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &check.Clients{Kube: kube, APIExt: ext}, nil
}

// ErrSilent makes the command exit non-zero without printing anything more: it already told the user why.
var ErrSilent = errors.New("failed")

// RunChecks runs categories against ce and prints the report as a table (as the checks finish) or as JSON; a failed
// check makes the command fail with ErrSilent.
func RunChecks(cmd *cobra.Command, env *Env, ce *check.Env, categories []check.Category, wait time.Duration, output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output %q: want table or json", output)
	}
	opts := check.Options{Wait: wait}
	table := &check.TableWriter{W: env.Stdout}
	if output == "table" {
		opts.Observe = table.Write
	}
	if env.Verbose {
		opts.Retrying = func(c check.Check, err error) {
			fmt.Fprintf(env.Stderr, "waiting for %q: %v\n", c.Description, err)
		}
	}
	rep := check.Run(cmd.Context(), ce, categories, opts)
	if output == "json" {
		if err := check.WriteJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else {
		table.Finish(rep.Success)
	}
	if !rep.Success {
		return ErrSilent
	}
	return nil
}
