package cmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/viz/internal/tapfmt"
	"github.com/sinewmesh/sinew/viz/server"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// tapFlags are the filters tap and top share (Linkerd's).
type tapFlags struct {
	namespace, to, toNamespace, method, path, authority, scheme, vizURL string
	maxRPS                                                              float64
	limit                                                               uint32
}

func (t *tapFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&t.namespace, "namespace", "n", "default", "namespace of the resource")
	f.StringVar(&t.to, "to", "", "only requests to this resource (TYPE/NAME)")
	f.StringVar(&t.toNamespace, "to-namespace", "", "namespace of the --to resource (default: --namespace)")
	f.StringVar(&t.method, "method", "", "only requests with this HTTP method")
	f.StringVar(&t.path, "path", "", "only requests whose path starts with this prefix")
	f.StringVar(&t.authority, "authority", "", "only requests with this :authority")
	f.StringVar(&t.scheme, "scheme", "", "only requests with this scheme")
	f.Float64Var(&t.maxRPS, "max-rps", tapsvc.MaxRPS, "most requests per second to tap, across all the resource's pods")
	f.Uint32Var(&t.limit, "limit", 0, "stop after this many requests (0: until interrupted)")
	registerVizURL(f, &t.vizURL)
}

// values checks the filters as the server will and spells them as /api/tap parameters.
func (t *tapFlags) values(resource string) (url.Values, error) {
	q := url.Values{"resource": {resource}, "namespace": {t.namespace}}
	for k, v := range map[string]string{"to": t.to, "toNamespace": t.toNamespace, "method": t.method, "path": t.path,
		"authority": t.authority, "scheme": t.scheme} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("maxRps", strconv.FormatFloat(t.maxRPS, 'g', -1, 64))
	if t.limit > 0 {
		q.Set("limit", strconv.FormatUint(uint64(t.limit), 10))
	}
	if _, err := server.TapRequest(q); err != nil {
		return nil, err
	}
	return q, nil
}

// stream runs the tap and hands each event to fn; a proxy that fails is reported on stderr.
func (t *tapFlags) stream(ctx context.Context, env *cmdenv.Env, resource string, fn func(server.TapEvent) error) error {
	q, err := t.values(resource)
	if err != nil {
		return err
	}
	conn, err := connectViz(ctx, env, t.vizURL)
	if err != nil {
		return err
	}
	defer conn.close()
	err = conn.client.Tap(ctx, q, func(ev server.TapEvent) error {
		if ev.Err != "" && ev.Proxy == "" {
			return errors.New(ev.Err) // the whole tap ended
		}
		if ev.Err != "" {
			fmt.Fprintf(env.Stderr, "tap of %s failed: %s\n", ev.Proxy, ev.Err)
			return nil
		}
		return fn(ev)
	})
	if ctx.Err() != nil {
		return nil // interrupted: the normal end of a tap
	}
	return err
}

func newTapCmd(env *cmdenv.Env) *cobra.Command {
	var (
		t      tapFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "tap TYPE/NAME",
		Short: "Watch live requests through the proxies of a resource",
		Long: `tap streams the requests that go through the proxies of a resource (deploy/NAME, pod/NAME, ns/NAME), in
and out, as they happen: one "req" line when a request starts, "rsp" when its response starts and "end" when it
ends, with tls=true when the hop is mutual TLS. Filters narrow it down; at most --max-rps requests per second are
shown. Ctrl-C stops it.`,
		Example: `  sinew viz tap deploy/web -n emojivoto
  sinew viz tap deploy/web -n emojivoto --to deploy/voting --path /emojivoto.v1.VotingService/VoteDoughnut
  sinew viz tap deploy/vote-bot -n emojivoto -o json | jq .`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wide := false
			switch output {
			case "", "table":
			case "wide":
				wide = true
			case "json":
			default:
				return fmt.Errorf("--output %q: want wide or json", output)
			}
			return t.stream(cmd.Context(), env, args[0], func(ev server.TapEvent) error {
				if output == "json" {
					return writeTapJSON(env.Stdout, ev)
				}
				_, err := fmt.Fprintln(env.Stdout, tapfmt.Line(ev.Event, tapfmt.Options{Wide: wide, Stream: strconv.Itoa(ev.Index)}))
				return err
			})
		},
	}
	t.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "wide (with the source's and destination's labels) or json (one object per line)")
	return cmd
}

func writeTapJSON(w io.Writer, ev server.TapEvent) error {
	b, err := protojson.Marshal(ev.Event)
	if err != nil {
		return err
	}
	line, err := json.Marshal(server.TapLine{Proxy: ev.Proxy, Index: ev.Index, Event: b})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

// topRow is one line of top's table.
type topRow struct {
	source, destination, method, path string
	count, successes                  int
	best, worst, last                 time.Duration
	seen                              bool // a latency was recorded
}

// topTable aggregates tap events per source, destination, method and path, as `viz top` shows them.
type topTable struct {
	rows     map[[4]string]*topRow
	requests map[[2]string]*topRequest // proxy index and request id → what its end needs
}

type topRequest struct {
	row    *topRow
	status uint32
}

func newTopTable() *topTable {
	return &topTable{rows: map[[4]string]*topRow{}, requests: map[[2]string]*topRequest{}}
}

// add takes one event; it returns true when the table changed.
func (t *topTable) add(ev server.TapEvent) bool {
	e := ev.Event
	key := func(id uint64) [2]string { return [2]string{strconv.Itoa(ev.Index), strconv.FormatUint(id, 10)} }
	switch x := e.GetEvent().(type) {
	case *tapv1.TapEvent_RequestInit_:
		r := x.RequestInit
		// A source without a workload (a kubelet probe, a client outside the mesh) is named by its address without
		// the port, which is ephemeral: one row per client, as Linkerd's top shows it, not one per connection.
		k := [4]string{peerName(hostOnly(e.GetSource()), e.GetSourceLabels()), peerName(e.GetDestination(), e.GetDestinationLabels()), r.GetMethod(), r.GetPath()}
		row, ok := t.rows[k]
		if !ok {
			row = &topRow{source: k[0], destination: k[1], method: k[2], path: k[3]}
			t.rows[k] = row
		}
		t.requests[key(r.GetId())] = &topRequest{row: row}
		return false
	case *tapv1.TapEvent_ResponseInit_:
		req := t.requests[key(x.ResponseInit.GetId())]
		if req == nil {
			return false
		}
		req.status = x.ResponseInit.GetHttpStatus()
		lat := x.ResponseInit.GetSinceRequestInit().AsDuration()
		row := req.row
		if !row.seen || lat < row.best {
			row.best = lat
		}
		if !row.seen || lat > row.worst {
			row.worst = lat
		}
		row.last, row.seen = lat, true
		return false
	case *tapv1.TapEvent_ResponseEnd_:
		k := key(x.ResponseEnd.GetId())
		req := t.requests[k]
		if req == nil {
			return false
		}
		delete(t.requests, k)
		req.row.count++
		end := x.ResponseEnd
		if end.GetResetError() == "" && req.status < 500 && req.status != 0 && (end.GrpcStatus == nil || codes.Code(end.GetGrpcStatus()) == codes.OK) {
			req.row.successes++
		}
		return true
	}
	return false
}

// peerName names a side of a request by its workload when known, else its address.
func peerName(addr string, labels map[string]string) string {
	for _, k := range []string{"deployment", "pod"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	if sa := labels["serviceaccount"]; sa != "" {
		return "sa/" + sa
	}
	if addr == "" {
		return "-"
	}
	return addr
}

// hostOnly drops the port from host:port ([::1]:5000 gives ::1); anything else is returned as it is.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (t *topTable) write(w io.Writer, hideSources bool) {
	rows := make([]*topRow, 0, len(t.rows))
	for _, r := range t.rows {
		if r.count > 0 {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *topRow) int {
		return cmp.Or(b.count-a.count, strings.Compare(a.path, b.path), strings.Compare(a.source, b.source), strings.Compare(a.destination, b.destination))
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"SOURCE", "DESTINATION", "METHOD", "PATH", "COUNT", "BEST", "WORST", "LAST", "SUCCESS RATE"}
	if hideSources {
		head = head[1:]
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cells := []string{r.source, r.destination, r.method, r.path, strconv.Itoa(r.count), latency(r.best, r.seen), latency(r.worst, r.seen),
			latency(r.last, r.seen), fmt.Sprintf("%.2f%%", 100*float64(r.successes)/float64(r.count))}
		if hideSources {
			cells = cells[1:]
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

func latency(d time.Duration, seen bool) string {
	if !seen {
		return "-"
	}
	if d < time.Millisecond {
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newTopCmd(env *cmdenv.Env) *cobra.Command {
	var (
		t           tapFlags
		hideSources bool
	)
	cmd := &cobra.Command{
		Use:   "top TYPE/NAME",
		Short: "Live table of the requests through a resource's proxies, busiest first",
		Long: `top taps the proxies of a resource like tap and shows, per source, destination, method and path, how many
requests ended, the best, worst and last latency, and the success rate, busiest first. In a terminal the table
redraws every second until Ctrl-C; otherwise it is printed once when the tap ends (use --limit).`,
		Example: `  sinew viz top deploy/web -n emojivoto
  sinew viz top deploy/voting -n emojivoto --hide-sources
  sinew viz top deploy/web -n emojivoto --limit 50 > top.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			table := newTopTable()
			live := isTerminal(env.Stdout)
			redraw := time.NewTicker(time.Second)
			defer redraw.Stop()
			dirty := false
			draw := func() {
				if live {
					fmt.Fprint(env.Stdout, "\x1b[H\x1b[2J") // home, clear
				}
				table.write(env.Stdout, hideSources)
				dirty = false
			}
			err := t.stream(cmd.Context(), env, args[0], func(ev server.TapEvent) error {
				if table.add(ev) {
					dirty = true
				}
				if live && dirty {
					select {
					case <-redraw.C:
						draw()
					default:
					}
				}
				return nil
			})
			if !live || dirty {
				draw()
			}
			return err
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&hideSources, "hide-sources", false, "hide the SOURCE column")
	return cmd
}

func newDashboardCmd(env *cmdenv.Env) *cobra.Command {
	var (
		port          int
		address, show string
		vizURL        string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Open the viz dashboard in a browser (a port-forward in Kubernetes, direct in local mode)",
		Long: `dashboard opens the viz web dashboard. With a local mesh (sinew demo) it is served directly; in Kubernetes
it port-forwards --address:--port to sinew-viz and keeps the forward open until Ctrl-C.`,
		Example: `  sinew viz dashboard
  sinew viz dashboard --show url --port 50751`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if show != "sinew" && show != "url" {
				return fmt.Errorf("--show %q: want sinew (open a browser) or url (print the URL only)", show)
			}
			ctx := cmd.Context()
			conn, err := directViz(ctx, env, vizURL)
			if err != nil {
				return err
			}
			if conn != nil {
				defer conn.close()
				return openDashboard(env, conn.client.URL()+"/", show, false)
			}
			f, err := forwardViz(ctx, env, address, port)
			if err != nil {
				return fmt.Errorf("cannot reach viz: %s, and in Kubernetes: %w", noLocalMesh(env), err)
			}
			defer func() { _ = f.Close() }()
			if err := openDashboard(env, fmt.Sprintf("http://%s:%d/", hostForURL(address), f.Local), show, true); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case err := <-f.Done():
				if err == nil {
					return nil
				}
				return fmt.Errorf("the port-forward to sinew-viz ended: %w", err)
			}
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 50750, "local port of the port-forward (0: any free port)")
	f.StringVar(&address, "address", "127.0.0.1", "local address of the port-forward")
	f.StringVar(&show, "show", "sinew", "sinew: open the dashboard in a browser; url: only print its URL")
	registerVizURL(f, &vizURL)
	return cmd
}

func hostForURL(address string) string {
	if strings.Contains(address, ":") {
		return "[" + address + "]"
	}
	return address
}

func openDashboard(env *cmdenv.Env, u, show string, forwarding bool) error {
	fmt.Fprintf(env.Stdout, "sinew dashboard available at:\n%s\n", u)
	if show == "sinew" {
		if opener, err := exec.LookPath("xdg-open"); err == nil {
			c := exec.Command(opener, u)
			if err := c.Start(); err == nil {
				go func() { _ = c.Wait() }()
				fmt.Fprintln(env.Stderr, "Opening it in your browser...")
			}
		} else {
			fmt.Fprintln(env.Stderr, "No browser opener (xdg-open) found: open the URL yourself.")
		}
	}
	if forwarding {
		fmt.Fprintln(env.Stderr, "Press Ctrl-C to stop the port-forward.")
	}
	return nil
}
