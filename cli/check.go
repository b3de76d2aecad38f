package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/internal/version"
)

func newCheckCmd(env *Env) *cobra.Command {
	var (
		pre, proxy bool
		namespace  string
		wait       time.Duration
		output     string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the cluster (--pre), the control plane, or the data plane (--proxy) for problems",
		Long: `Run health checks, grouped by category, and print each one's result:
✔ passed, × failed, ‼ warning (does not fail the run). A failed check prints why and where its fix is explained.
Checks of things that become true on their own (pods starting) are retried until --wait runs out. The exit code is
non-zero when a check failed.

  sinew check --pre            before installing: Kubernetes version, permissions, clocks, NET_ADMIN
  sinew check                  after installing: CRDs, control plane, identity, webhook, versions
  sinew check --proxy [-n NS]  the meshed workloads of NS (default: every application namespace)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pre && proxy {
				return fmt.Errorf("--pre and --proxy check different things: give one")
			}
			crds, err := crdNames()
			if err != nil {
				return err
			}
			ce := &check.Env{
				Clients:            env.KubeClients,
				Namespace:          env.ControlPlaneNS,
				ClientVersion:      version.Version,
				Now:                env.Now,
				ExpectedCRDs:       crds,
				GatewayAPIVersion:  charts.GatewayAPIVersion,
				DataPlaneNamespace: namespace,
			}
			return cmdenv.RunChecks(cmd, env, ce, check.Core(check.What{Pre: pre, Proxy: proxy}), wait, output)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&pre, "pre", false, "only the checks that say whether sinew can be installed")
	f.BoolVar(&proxy, "proxy", false, "check the data plane (meshed pods) instead of the control plane")
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the --proxy checks (default: every application namespace)")
	f.DurationVar(&wait, "wait", 5*time.Minute, "how long checks that can become true (pods starting) may keep failing")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
