package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/web"
)

func newDemoCmd(env *Env) *cobra.Command {
	var (
		dataDir, appBin, promBin string
		portBase                 int
		noTraffic, noPrometheus  bool
		files                    []string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the emojivoto sample application meshed on this machine (no Kubernetes, no root)",
		Long: `Demo starts a local control plane, the emojivoto sample application (emoji, voting, web) with a
sinew-proxy beside every process and the vote-bot sending votes, then prints where to look. Every port is
on 127.0.0.1 between --port-base and --port-base+49. When a prometheus program is
installed, the demo also runs it (at --port-base+5), scraping every proxy. The viz dashboard and the API the
"sinew viz" commands read are at --port-base+6. Ctrl-C stops everything.

-f adds your own resources, such as authorization policy for the emojivoto namespace (see sinew run --help),
or a Gateway of GatewayClass sinew and its routes: the demo then runs a gateway in front of emojivoto and prints
its URL.`,
		Example: `  sinew demo -f examples/emojivoto/policy/web-only-vote-bot.yaml
  sinew demo -f examples/emojivoto/local/gateway.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if portBase < 1 || portBase+localmesh.DemoPortSpan > 65535 {
				return fmt.Errorf("--port-base %d: must leave room for %d ports below 65536", portBase, localmesh.DemoPortSpan)
			}
			resources, err := localmesh.ResourceFiles(files)
			if err != nil {
				return err
			}
			exe, _ := os.Executable()
			app, err := demoApp(appBin, exe)
			if err != nil {
				return err
			}
			m := localmesh.Demo(portBase, !noTraffic, app)
			opts := localmesh.Options{
				DataDir: dataDir, Progress: env.Stderr, ResourceFiles: resources, StateDir: localmesh.StateDir(env.Lookup),
				Ready: func(r *localmesh.Running) { printDemo(env, portBase, noTraffic, r) },
				Viz:   localmesh.VizOptions{Listen: localmesh.DemoViz(portBase), Assets: web.Assets, StateDir: viz.StateDir(env.Lookup)},
			}
			if !noPrometheus {
				if p, err := findProgram(promBin, "prometheus"); err == nil {
					opts.Prometheus = localmesh.PrometheusOptions{Binary: p, Listen: localmesh.DemoPrometheus(portBase)}
				} else if promBin != "" {
					return err
				} else {
					fmt.Fprintln(env.Stderr, "‼ no prometheus program found (Debian: apt-get install prometheus): viz uses its embedded scraper, which keeps 15 minutes")
				}
			}
			fmt.Fprintln(env.Stderr, "Starting the emojivoto demo...")
			return localmesh.Run(cmd.Context(), m, opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&portBase, "port-base", localmesh.DefaultPortBase, "first of the 50 loopback ports the demo uses")
	f.BoolVar(&noTraffic, "no-traffic", false, "do not start the vote-bot")
	f.StringVar(&dataDir, "data-dir", "", "keep the CA, resources and logs here (default: a temporary directory removed at exit)")
	f.StringVar(&appBin, "emojivoto", "", "the emojivoto program (default: next to sinew, else sinew itself runs the app)")
	f.StringVar(&promBin, "prometheus", "", "the prometheus program that scrapes the proxies for `sinew viz` (default: on $PATH)")
	f.BoolVar(&noPrometheus, "no-prometheus", false, "do not start Prometheus; viz scrapes the proxies itself (15 minutes kept in memory)")
	addResourceFlag(cmd, &files)
	return cmd
}

// demoApp is the command that runs a part of emojivoto: explicit if set, else the emojivoto program next to sinew
// (make build puts it there), else sinew itself with the hidden __emojivoto command (a lone `go install`ed sinew).
// exe is the running sinew.
func demoApp(explicit, exe string) ([]string, error) {
	if explicit != "" {
		return []string{explicit}, nil
	}
	if exe == "" {
		return nil, errors.New("cannot find the sinew program to run the emojivoto app with; give --emojivoto")
	}
	if p := filepath.Join(filepath.Dir(exe), "emojivoto"); isExecutable(p) {
		return []string{p}, nil
	}
	return []string{exe, emojivotoCmd}, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// findProgram returns explicit if set, else name next to the running executable, else name on $PATH.
func findProgram(explicit, name string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", errors.New(name + " program not found next to sinew or on $PATH: build it with `make build` (bin/" + name + ") or pass --" + name)
}

func printDemo(env *Env, base int, noTraffic bool, r *localmesh.Running) {
	url := localmesh.DemoURL(base)
	admin := func(name string) string {
		for _, w := range r.Workloads {
			if w.Name == name {
				return w.ProxyAdmin
			}
		}
		return ""
	}
	w := env.Stdout
	fmt.Fprintf(w, `
The sinew local mesh is up: emojivoto with a proxy beside every process (logs in %s/logs).

  Open the app (served through web's proxy):  %s
  Vote for a normal emoji:                     curl -i '%sapi/vote?choice=:joy:'
  Vote for the doughnut (always fails, 500):   curl -i '%sapi/vote?choice=:doughnut:'
  The leaderboard:                             curl -s '%sapi/leaderboard'

  web's proxy metrics (mTLS to emoji and voting: tls="true", server_id, the doughnut's grpc_status_code="2"):
    curl -s http://%s/metrics | grep '^response_total'
  What web's proxy knows:     curl -s http://%s/debug/config
  The control plane's model:  curl -s http://%s/debug/model
  Who may call web:           sinew diagnostics policy -n emojivoto web 8080
`, r.DataDir, url, url, url, url, admin("web"), admin("web"), r.ControlPlane.Admin)
	if r.VizURL != "" {
		flag := ""
		if base != localmesh.DefaultPortBase {
			flag = " --viz-url " + r.VizURL
		}
		fmt.Fprintf(w, `
  The viz dashboard:                           %s/
  Live requests through web's proxy:           sinew viz tap deploy/web -n emojivoto%s
  The busiest paths, live:                     sinew viz top deploy/web -n emojivoto%s
`, r.VizURL, flag, flag)
		if r.PrometheusURL != "" {
			fmt.Fprintf(w, "  Golden metrics (from Prometheus at %s):\n", r.PrometheusURL)
		} else {
			fmt.Fprintf(w, "  Golden metrics (from viz's embedded scraper):\n")
		}
		fmt.Fprintf(w, `    sinew viz stat deploy -n emojivoto%s
    sinew viz edges deploy -n emojivoto%s
    sinew viz routes deploy/voting -n emojivoto%s
`, flag, flag, flag)
	}
	printGateways(w, r)
	if !noTraffic {
		fmt.Fprintf(w, "  vote-bot votes twice a second; its proxy's metrics: http://%s/metrics\n", admin("vote-bot"))
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything.\n")
}
