package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The glyphs of the table output.
const (
	GlyphOK      = "✔"
	GlyphFailed  = "×"
	GlyphWarning = "‼"
)

// TableWriter prints results as they come: a heading per category, a line per check, the error and hint under
// a failed one, and Finish prints the summary line.
type TableWriter struct {
	W       io.Writer
	lastCat string
	started bool
}

// Write prints one result.
func (t *TableWriter) Write(r Result) {
	if r.Category != t.lastCat || !t.started {
		if t.started {
			fmt.Fprintln(t.W)
		}
		fmt.Fprintln(t.W, r.Category)
		fmt.Fprintln(t.W, strings.Repeat("-", len(r.Category)))
		t.lastCat, t.started = r.Category, true
	}
	switch r.Status {
	case OK:
		fmt.Fprintf(t.W, "%s %s\n", GlyphOK, r.Description)
	case Skipped:
		fmt.Fprintf(t.W, "- %s (skipped: an earlier check failed)\n", r.Description)
	default:
		g := GlyphFailed
		if r.Status == Warned {
			g = GlyphWarning
		}
		fmt.Fprintf(t.W, "%s %s\n", g, r.Description)
		for _, l := range strings.Split(strings.TrimRight(r.Error, "\n"), "\n") {
			fmt.Fprintf(t.W, "    %s\n", l)
		}
		fmt.Fprintf(t.W, "    see %s for hints\n", r.Hint)
	}
}

// Finish prints the summary line.
func (t *TableWriter) Finish(success bool) {
	if t.started {
		fmt.Fprintln(t.W)
	}
	g := GlyphOK
	if !success {
		g = GlyphFailed
	}
	fmt.Fprintf(t.W, "Status check results are %s\n", g)
}

// WriteTable prints a whole report as a table.
func WriteTable(w io.Writer, rep Report) {
	t := &TableWriter{W: w}
	for _, r := range rep.Results {
		t.Write(r)
	}
	t.Finish(rep.Success)
}

type jsonCategory struct {
	Name   string   `json:"categoryName"`
	Checks []Result `json:"checks"`
}

type jsonReport struct {
	Success    bool           `json:"success"`
	Categories []jsonCategory `json:"categories"`
}

// WriteJSON prints a report as one JSON object: {"success", "categories": [{"categoryName", "checks": [...]}]}.
func WriteJSON(w io.Writer, rep Report) error {
	out := jsonReport{Success: rep.Success, Categories: []jsonCategory{}}
	for _, r := range rep.Results {
		if n := len(out.Categories); n == 0 || out.Categories[n-1].Name != r.Category {
			out.Categories = append(out.Categories, jsonCategory{Name: r.Category})
		}
		c := &out.Categories[len(out.Categories)-1]
		c.Checks = append(c.Checks, r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
