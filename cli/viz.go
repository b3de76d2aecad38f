package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// vizFlags are the flags every Prometheus-backed viz command shares.
type vizFlags struct {
	namespace, window, output, prometheusURL string
	allNamespaces                            bool
}

func (v *vizFlags) register(cmd *cobra.Command, env *Env) {
	def := "http://" + localmesh.DemoPrometheus(localmesh.DefaultPortBase)
	if env.Getenv != nil && env.Getenv("SINEW_PROMETHEUS_URL") != "" {
		def = env.Getenv("SINEW_PROMETHEUS_URL")
	}
	f := cmd.Flags()
	f.StringVarP(&v.namespace, "namespace", "n", "default", "namespace of the resources")
	f.BoolVarP(&v.allNamespaces, "all-namespaces", "A", false, "resources of every namespace")
	f.StringVarP(&v.window, "time-window", "t", "1m", "window of the metrics (e.g. 30s, 1m, 10m)")
	f.StringVarP(&v.output, "output", "o", "table", "table, wide or json")
	f.StringVar(&v.prometheusURL, "prometheus-url", def, "the Prometheus that scrapes the proxies ($SINEW_PROMETHEUS_URL; sinew demo runs one at --port-base+5)")
}

func (v *vizFlags) ns() string {
	if v.allNamespaces {
		return ""
	}
	return v.namespace
}

func (v *vizFlags) client() (*metricsapi.Client, time.Duration, error) {
	if err := metricsapi.CheckOutput(v.output); err != nil {
		return nil, 0, err
	}
	window, err := metricsapi.ParseWindow(v.window)
	if err != nil {
		return nil, 0, fmt.Errorf("--time-window: %w", err)
	}
	c, err := metricsapi.NewClient(v.prometheusURL, 10*time.Second)
	if err != nil {
		return nil, 0, fmt.Errorf("--prometheus-url: %w", err)
	}
	return c, window, nil
}

func newVizCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "viz",
		Short: "See the mesh's traffic: golden metrics and who talks to whom",
		Long: `viz reads the proxies' metrics from Prometheus: success rate, requests per second, latency percentiles and
TCP connections per resource (stat), and which resources talk to which, secured by mTLS or not (edges).
In local mode, sinew demo runs the Prometheus these commands read by default.`,
	}
	cmd.AddCommand(newVizStatCmd(env), newVizEdgesCmd(env))
	return cmd
}

func newVizStatCmd(env *Env) *cobra.Command {
	var (
		v        vizFlags
		from, to string
	)
	cmd := &cobra.Command{
		Use:   "stat TYPE[/NAME]",
		Short: "Golden metrics per resource: MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TCP_CONN",
		Long: `stat shows, for each resource of TYPE (deploy, pod, ns, all), the inbound success rate, requests per
second, latency percentiles and open TCP connections over the time window, from the proxies' metrics.
--from and --to restrict it to the traffic from or to another resource (TYPE/NAME, same namespace).`,
		Example: `  sinew viz stat deploy -n emojivoto
  sinew viz stat deploy/web -n emojivoto --to deploy/voting -o wide
  sinew viz stat ns -A -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, window, err := v.client()
			if err != nil {
				return err
			}
			res, err := metricsapi.ParseResource(args[0], v.ns())
			if err != nil {
				return err
			}
			req := metricsapi.StatRequest{Resource: res, Window: window}
			for _, x := range []struct {
				flag, val string
				dst       **metricsapi.Resource
			}{{"--from", from, &req.From}, {"--to", to, &req.To}} {
				if x.val == "" {
					continue
				}
				r, err := metricsapi.ParseResource(x.val, v.ns())
				if err != nil {
					return fmt.Errorf("%s: %w", x.flag, err)
				}
				*x.dst = &r
			}
			if err := req.Validate(); err != nil {
				return err
			}
			rows, err := metricsapi.Stat(cmd.Context(), client, req, time.Time{})
			if err != nil {
				return err
			}
			return metricsapi.WriteStat(env.Stdout, rows, v.output, v.allNamespaces)
		},
	}
	v.register(cmd, env)
	cmd.Flags().StringVar(&from, "from", "", "only traffic from this resource (TYPE/NAME)")
	cmd.Flags().StringVar(&to, "to", "", "only traffic to this resource (TYPE/NAME)")
	return cmd
}

func newVizEdgesCmd(env *Env) *cobra.Command {
	var v vizFlags
	cmd := &cobra.Command{
		Use:   "edges TYPE",
		Short: "Who talks to whom, and whether it is secured by mTLS: SRC DST SRC_NS DST_NS SECURED",
		Example: `  sinew viz edges deploy -n emojivoto
  sinew viz edges deploy -n emojivoto -o wide   # with the client and server identities`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, window, err := v.client()
			if err != nil {
				return err
			}
			res, err := metricsapi.ParseResource(args[0], v.ns())
			if err != nil {
				return err
			}
			if res.Name != "" {
				return fmt.Errorf("edges takes a TYPE, not %q", args[0])
			}
			edges, err := metricsapi.Edges(cmd.Context(), client, res.Kind, v.ns(), window, time.Time{})
			if err != nil {
				return err
			}
			return metricsapi.WriteEdges(env.Stdout, edges, v.output)
		},
	}
	v.register(cmd, env)
	return cmd
}
