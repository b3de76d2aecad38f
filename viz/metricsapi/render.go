package metricsapi

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sinewmesh/sinew/internal/meshtls"
)

// Output formats.
const (
	OutputTable = "table"
	OutputWide  = "wide"
	OutputJSON  = "json"
)

// CheckOutput rejects an unknown -o value.
func CheckOutput(o string) error {
	switch o {
	case OutputTable, OutputWide, OutputJSON:
		return nil
	}
	return fmt.Errorf("unknown output format %q (want table, wide or json)", o)
}

// WriteStat renders stat rows. allNamespaces adds the NAMESPACE column, as -A does.
func WriteStat(w io.Writer, rows []StatRow, output string, allNamespaces bool) error {
	if err := CheckOutput(output); err != nil {
		return err
	}
	if output == OutputJSON {
		return writeJSON(w, rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No traffic found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := []string{"NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN"}
	if allNamespaces {
		head = append([]string{"NAMESPACE"}, head...)
	}
	if output == OutputWide {
		head = append(head, "READ_BYTES/SEC", "WRITE_BYTES/SEC")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cols := []string{r.Name, meshed(r), percent(r.SuccessRate), rps(r.RPS), ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99), count(r.TCPConns)}
		if allNamespaces {
			cols = append([]string{r.Namespace}, cols...)
		}
		if output == OutputWide {
			cols = append(cols, bytesPerSec(r.ReadBps), bytesPerSec(r.WriteBps))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// WriteEdges renders edges; wide adds the identities.
func WriteEdges(w io.Writer, edges []Edge, output string) error {
	if err := CheckOutput(output); err != nil {
		return err
	}
	if output == OutputJSON {
		return writeJSON(w, edges)
	}
	if len(edges) == 0 {
		_, err := fmt.Fprintln(w, "No edges found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "SRC\tDST\tSRC_NS\tDST_NS\tSECURED"
	if output == OutputWide {
		head += "\tCLIENT_ID\tSERVER_ID"
	}
	fmt.Fprintln(tw, head)
	for _, e := range edges {
		secured := "√"
		if !e.Secured {
			secured = e.NoTLSReason
			if secured == "" {
				secured = "no_tls"
			}
		}
		line := strings.Join([]string{e.Src, e.Dst, e.SrcNamespace, e.DstNamespace, secured}, "\t")
		if output == OutputWide {
			line += "\t" + shortID(e.ClientID) + "\t" + shortID(e.ServerID)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// WriteRoutes renders route rows: ROUTE AUTHORITY SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99, as Linkerd's
// `viz routes`. Wide shows the same columns: Linkerd's effective and actual columns (before and after retries)
// would need the proxies to count requests before their retries. Backend rows (a Service's routes) show
// ROUTE BACKEND SHARE instead of ROUTE AUTHORITY: each backend's part of its route's responses; rows of several
// Services start with SERVICE (name.namespace).
func WriteRoutes(w io.Writer, rows []RouteRow, output string) error {
	if err := CheckOutput(output); err != nil {
		return err
	}
	if output == OutputJSON {
		if rows == nil {
			rows = []RouteRow{}
		}
		return writeJSON(w, rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No traffic found.")
		return err
	}
	backends := slices.ContainsFunc(rows, func(r RouteRow) bool { return r.Backend != "" })
	// Rows of several Services (a client's routes, --to svc) say whose routes they are.
	services := slices.ContainsFunc(rows, func(r RouteRow) bool {
		return r.Parent != rows[0].Parent || r.ParentNamespace != rows[0].ParentNamespace
	})
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	if backends {
		head := "ROUTE\tBACKEND\tSHARE\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99"
		if services {
			head = "SERVICE\t" + head
		}
		fmt.Fprintln(tw, head)
	} else {
		fmt.Fprintln(tw, "ROUTE\tAUTHORITY\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99")
	}
	for _, r := range rows {
		cols := []string{r.Route, dash(r.Authority)}
		if backends {
			cols = []string{r.RouteName(), dash(r.Backend), share(r.Share)}
			if services {
				cols = append([]string{r.Parent + "." + r.ParentNamespace}, cols...)
			}
		}
		cols = append(cols, percent(r.SuccessRate), rps(r.RPS), ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// share shows a fraction as a percentage.
func share(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

// WriteAuthz renders authorization rows: ROUTE SERVER AUTHORIZATION UNAUTHORIZED SUCCESS RPS LATENCY_P50
// LATENCY_P95 LATENCY_P99, as Linkerd's `viz authz`; wide adds the opaque (TCP) connections each row admitted or
// refused per second.
func WriteAuthz(w io.Writer, rows []AuthzRow, output string) error {
	if err := CheckOutput(output); err != nil {
		return err
	}
	if output == OutputJSON {
		if rows == nil {
			rows = []AuthzRow{}
		}
		return writeJSON(w, rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No traffic found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "ROUTE\tSERVER\tAUTHORIZATION\tUNAUTHORIZED\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99"
	if output == OutputWide {
		head += "\tTCP_ALLOWED\tTCP_DENIED"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		cols := []string{r.Route, r.Server(), r.Authorization(), rps(r.UnauthorizedRPS), percent(r.SuccessRate), rps(r.RPS),
			ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99)}
		if output == OutputWide {
			cols = append(cols, connsPerSec(r.TCPAllowed), connsPerSec(r.TCPDenied))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// shortID shows spiffe://td/ns/N/sa/S as S.N, as Linkerd shows identities in tables.
func shortID(id string) string {
	if id == "" {
		return "-"
	}
	if _, ns, sa, err := meshtls.ParseID(id); err == nil {
		return sa + "." + ns
	}
	return id
}

func meshed(r StatRow) string {
	if r.MeshedPods == nil && r.TotalPods == nil {
		return "-"
	}
	m, t := 0, 0
	if r.MeshedPods != nil {
		m = *r.MeshedPods
	}
	if r.TotalPods != nil {
		t = *r.TotalPods
	}
	return fmt.Sprintf("%d/%d", m, t)
}

func percent(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", *v*100)
}

func rps(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1frps", *v)
}

func ms(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%dms", int64(math.Round(*v)))
}

func count(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%d", int64(math.Round(*v)))
}

func bytesPerSec(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fB/s", *v)
}

func connsPerSec(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fconn/s", *v)
}
