// Package cmd is the `sinew viz` command line: stat, edges, routes, authz, tap, top and dashboard read the viz API
// (local mesh or sinew-viz in a cluster, docs/architecture/viz.md); install, uninstall and check manage the extension
// in a cluster, and allow-scrapes prints the policy that lets it reach proxies in a namespace that denies by default. Package cli registers NewCmd under sinew; every command is built from the injected cmdenv.Env, so tests
// run them in-process. It must not import package cli (which imports it) nor hold package-level flag variables.
package cmd

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/server"
)

// vizFlags are the flags every metrics-backed viz command shares.
type vizFlags struct {
	namespace, window, output, prometheusURL, vizURL string
	allNamespaces                                    bool
}

func (v *vizFlags) register(cmd *cobra.Command, env *cmdenv.Env) {
	f := cmd.Flags()
	f.StringVarP(&v.namespace, "namespace", "n", "default", "namespace of the resources")
	f.BoolVarP(&v.allNamespaces, "all-namespaces", "A", false, "resources of every namespace")
	f.StringVarP(&v.window, "time-window", "t", "1m", "window of the metrics (e.g. 30s, 1m, 10m)")
	f.StringVarP(&v.output, "output", "o", "table", "table, wide or json")
	registerVizURL(f, &v.vizURL)
	f.StringVar(&v.prometheusURL, "prometheus-url", env.Lookup("SINEW_PROMETHEUS_URL"), "ask this Prometheus directly instead of viz ($SINEW_PROMETHEUS_URL)")
}

func registerVizURL(f *pflag.FlagSet, dst *string) {
	f.StringVar(dst, "viz-url", "", "the viz API ($SINEW_VIZ_URL; default: a running local mesh's (sinew demo, sinew run), else sinew-viz in the cluster through a port-forward)")
}

func (v *vizFlags) ns() string {
	if v.allNamespaces {
		return ""
	}
	return v.namespace
}

// ask answers a metrics command: from the Prometheus of --prometheus-url with direct, else from the viz API with
// api, given the shared parameters plus extra (empty values left out).
func ask[T any](ctx context.Context, env *cmdenv.Env, v *vizFlags, extra map[string]string,
	direct func(*metricsapi.Client) ([]T, error), api func(*server.Client, context.Context, url.Values) ([]T, error)) ([]T, error) {
	if err := metricsapi.CheckOutput(v.output); err != nil {
		return nil, err
	}
	if v.prometheusURL != "" {
		c, err := metricsapi.NewClient(v.prometheusURL, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("--prometheus-url: %w", err)
		}
		return direct(c)
	}
	conn, err := connectViz(ctx, env, v.vizURL)
	if err != nil {
		return nil, err
	}
	defer conn.close()
	vals := v.values()
	for k, x := range extra {
		if x != "" {
			vals.Set(k, x)
		}
	}
	return api(conn.client, ctx, vals)
}

// resourceAndWindow reads a command's TYPE[/NAME] argument and --time-window.
func (v *vizFlags) resourceAndWindow(arg string) (metricsapi.Resource, time.Duration, error) {
	res, err := metricsapi.ParseResource(arg, v.ns())
	if err != nil {
		return res, 0, err
	}
	w, err := metricsapi.ParseWindow(v.window)
	if err != nil {
		return res, 0, fmt.Errorf("--time-window: %w", err)
	}
	return res, w, nil
}

// optionalResource reads a TYPE/NAME flag such as --to; nil when it is not given.
func (v *vizFlags) optionalResource(flag, val string) (*metricsapi.Resource, error) {
	if val == "" {
		return nil, nil
	}
	r, err := metricsapi.ParseResource(val, v.ns())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return &r, nil
}

// values are the API parameters every metrics endpoint shares.
func (v *vizFlags) values() url.Values {
	q := url.Values{"window": {v.window}}
	if v.allNamespaces {
		q.Set("allNamespaces", "true")
	} else {
		q.Set("namespace", v.namespace)
	}
	return q
}

// NewCmd is `sinew viz` and its subcommands.
func NewCmd(env *cmdenv.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "viz",
		Short: "See the mesh's traffic: golden metrics, who talks to whom, live requests, the dashboard",
		Long: `viz shows what goes through the proxies: success rate, requests per second, latency percentiles and TCP
connections per resource (stat), per route (routes), which resources talk to which and whether mTLS secures it
(edges), what inbound authorization admitted and denied (authz), live requests (tap, top), and a web dashboard
with all of it (dashboard).

The commands read the viz API: with a local mesh (sinew demo) it runs beside the mesh; in Kubernetes it is the
sinew-viz extension (sinew viz install | kubectl apply -f -), reached through a port-forward.`,
		// cobra gives a command with subcommands but no Run of its own, such as this one, its help for any
		// argument, and fails on the subcommands' flags before that (`sinew viz authz deploy/web -n emojivoto`:
		// "unknown shorthand flag"). So viz takes its arguments raw and says what is wrong with them itself.
		DisableFlagParsing:         true,
		SuggestionsMinimumDistance: 2,
		RunE:                       func(cmd *cobra.Command, args []string) error { return runVizRoot(cmd, args) },
	}
	cmd.AddCommand(newStatCmd(env), newEdgesCmd(env), newRoutesCmd(env), newAuthzCmd(env), newTapCmd(env), newTopCmd(env),
		newDashboardCmd(env), newAllowScrapesCmd(env), newInstallCmd(env), newUninstallCmd(env), newCheckCmd(env))
	return cmd
}

// runVizRoot is `sinew viz ARGS` when ARGS name no subcommand: its help for no argument, help or --help (and
// `help SUBCOMMAND`: that one's help); else an error that names the unknown command, whatever flags follow it, or
// the unknown flag when there is no command.
func runVizRoot(cmd *cobra.Command, args []string) error {
	fs := pflag.NewFlagSet(cmd.CommandPath(), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.AddFlagSet(cmd.Flags())
	fs.AddFlagSet(cmd.InheritedFlags())
	if fs.Lookup("help") == nil {
		fs.BoolP("help", "h", false, "help for viz")
	}
	fs.ParseErrorsAllowlist.UnknownFlags = true
	if err := fs.Parse(args); err != nil {
		return err
	}
	words := fs.Args()
	switch {
	case len(words) > 0 && words[0] == "help":
		if sub, _, err := cmd.Find(words[1:]); err == nil {
			return sub.Help()
		}
		return cmd.Help()
	case len(words) > 0:
		return unknownCommand(cmd, words[0])
	}
	fs.ParseErrorsAllowlist.UnknownFlags = false
	if err := fs.Parse(args); err != nil {
		return err
	}
	return cmd.Help()
}

// unknownCommand is cobra's error for an unknown subcommand of the root, for a command below it.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return fmt.Errorf("%s\nRun '%s --help' for usage", msg, cmd.CommandPath())
}

func newStatCmd(env *cmdenv.Env) *cobra.Command {
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
			res, window, err := v.resourceAndWindow(args[0])
			if err != nil {
				return err
			}
			req := metricsapi.StatRequest{Resource: res, Window: window}
			if req.From, err = v.optionalResource("--from", from); err != nil {
				return err
			}
			if req.To, err = v.optionalResource("--to", to); err != nil {
				return err
			}
			if err := req.Validate(); err != nil {
				return err
			}
			rows, err := ask(cmd.Context(), env, &v, map[string]string{"resource": args[0], "from": from, "to": to},
				func(c *metricsapi.Client) ([]metricsapi.StatRow, error) {
					return metricsapi.Stat(cmd.Context(), c, req, time.Time{})
				},
				(*server.Client).Stat)
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

func newEdgesCmd(env *cmdenv.Env) *cobra.Command {
	var v vizFlags
	cmd := &cobra.Command{
		Use:   "edges TYPE",
		Short: "Who talks to whom, and whether it is secured by mTLS: SRC DST SRC_NS DST_NS SECURED",
		Example: `  sinew viz edges deploy -n emojivoto
  sinew viz edges deploy -n emojivoto -o wide   # with the client and server identities`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, window, err := v.resourceAndWindow(args[0])
			if err != nil {
				return err
			}
			if res.Name != "" {
				return fmt.Errorf("edges takes a TYPE, not %q", args[0])
			}
			edges, err := ask(cmd.Context(), env, &v, map[string]string{"kind": args[0]},
				func(c *metricsapi.Client) ([]metricsapi.Edge, error) {
					return metricsapi.Edges(cmd.Context(), c, res.Kind, v.ns(), window, time.Time{})
				},
				(*server.Client).Edges)
			if err != nil {
				return err
			}
			return metricsapi.WriteEdges(env.Stdout, edges, v.output)
		},
	}
	v.register(cmd, env)
	return cmd
}

func newRoutesCmd(env *cmdenv.Env) *cobra.Command {
	var (
		v  vizFlags
		to string
	)
	cmd := &cobra.Command{
		Use:   "routes TYPE/NAME",
		Short: "Golden metrics per route: ROUTE AUTHORITY (or BACKEND SHARE) SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99",
		Long: `routes shows the success rate, requests per second and latency percentiles of each route a resource
serves (its inbound traffic), or with --to, of each route it calls on that resource. A route is the gRPC method
(/package.Service/Method) or the request path; each proxy labels at most 100 of them, the rest count as [other].

For a Service (svc/NAME), routes shows its HTTPRoutes and GRPCRoutes as its clients' proxies applied them: one
row per route and backend, with the backend's SHARE of the route's responses (how a weighted split really
divides traffic) and its golden metrics. Requests no route matched are under [DEFAULT]. With a client and
--to svc/NAME, only that client's requests count.`,
		Example: `  sinew viz routes deploy/voting -n emojivoto
  sinew viz routes deploy/web -n emojivoto --to deploy/voting -o json
  sinew viz routes svc/web -n shop
  sinew viz routes deploy/cli -n shop --to svc/web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, window, err := v.resourceAndWindow(args[0])
			if err != nil {
				return err
			}
			req := metricsapi.RoutesRequest{Resource: res, Window: window}
			if req.To, err = v.optionalResource("--to", to); err != nil {
				return err
			}
			if err := req.Validate(); err != nil {
				return err
			}
			rows, err := ask(cmd.Context(), env, &v, map[string]string{"resource": args[0], "to": to},
				func(c *metricsapi.Client) ([]metricsapi.RouteRow, error) {
					return metricsapi.Routes(cmd.Context(), c, req, time.Time{})
				},
				(*server.Client).Routes)
			if err != nil {
				return err
			}
			return metricsapi.WriteRoutes(env.Stdout, rows, v.output)
		},
	}
	v.register(cmd, env)
	cmd.Flags().StringVar(&to, "to", "", "the routes the resource calls on this resource (TYPE/NAME)")
	return cmd
}

func newAuthzCmd(env *cmdenv.Env) *cobra.Command {
	var v vizFlags
	cmd := &cobra.Command{
		Use:   "authz TYPE/NAME",
		Short: "Authorization decisions per server: ROUTE SERVER AUTHORIZATION UNAUTHORIZED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99",
		Long: `authz shows, for a resource (deploy/NAME, po/NAME or ns/NAME), what the inbound authorization policy of its
proxies decided over the time window: a row for each server (a Server resource's name, or default:<policy> for
ports under a default inbound policy) and authorization that admitted requests (RPS), and a row with an empty
AUTHORIZATION for the requests each server denied with 403 (UNAUTHORIZED).

The proxies' response metrics carry no server or authorization label, so SUCCESS and the latencies of a row are
those of every response at the application ports (per pod) where its server decided: the same for every row of
one server, and the kubelet's probes included. ROUTE is the HTTPRoute a request was on when the Server has
routes; otherwise "default", or "probe" for the kubelet's probes (authorization default/probe). -o wide adds the
opaque (TCP) connections admitted and refused per second.`,
		Example: `  sinew viz authz deploy/web -n emojivoto
  sinew viz authz po/web-5f8b9c-x2x7q -n emojivoto -t 10m -o wide
  sinew viz authz ns/emojivoto -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, window, err := v.resourceAndWindow(args[0])
			if err != nil {
				return err
			}
			req := metricsapi.AuthzRequest{Resource: res, Window: window}
			if err := req.Validate(); err != nil {
				return err
			}
			rows, err := ask(cmd.Context(), env, &v, map[string]string{"resource": args[0]},
				func(c *metricsapi.Client) ([]metricsapi.AuthzRow, error) {
					return metricsapi.Authz(cmd.Context(), c, req, time.Time{})
				},
				(*server.Client).Authz)
			if err != nil {
				return err
			}
			return metricsapi.WriteAuthz(env.Stdout, rows, v.output)
		},
	}
	v.register(cmd, env)
	return cmd
}
