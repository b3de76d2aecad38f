package check

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// The glyphs of the table output.
const (
	GlyphOK      = "✔"
	GlyphFailed  = "×"
	GlyphWarning = "‼"
	GlyphWaiting = "…"
)

// TableWriter prints results as they come: a heading per category, a line per check, the error and hint under
// a failed one, and Finish prints the summary line. While a retried check waits it shows what it waits for: on a
// terminal one line rewritten in place, else a line each time the reason changes.
type TableWriter struct {
	W io.Writer
	// Terminal rewrites the waiting line in place, clipped to Width columns (0: not clipped); both are set when W
	// is a terminal.
	Terminal bool
	Width    int

	lastCat  string
	started  bool
	detected bool
	waiting  string // the waiting line shown last
	inPlace  bool   // a waiting line without its newline is on the screen
}

// Write prints one result (a Waiting one as the waiting line).
func (t *TableWriter) Write(r Result) {
	if !t.detected {
		t.detected = true
		if f, ok := t.W.(*os.File); ok && os.Getenv("TERM") != "dumb" {
			if w, ok := terminalWidth(f); ok {
				t.Terminal, t.Width = true, w
			}
		}
	}
	if t.inPlace {
		fmt.Fprint(t.W, "\r\033[K") // what comes next replaces the waiting line
		t.inPlace = false
	}
	if r.Category != t.lastCat || !t.started {
		if t.started {
			fmt.Fprintln(t.W)
		}
		fmt.Fprintln(t.W, r.Category)
		fmt.Fprintln(t.W, strings.Repeat("-", len(r.Category)))
		t.lastCat, t.started = r.Category, true
	}
	if r.Status == Waiting {
		t.wait(r)
		return
	}
	t.waiting = ""
	switch r.Status {
	case OK:
		fmt.Fprintf(t.W, "%s %s\n", GlyphOK, r.Description)
		if r.Detail != "" {
			fmt.Fprintf(t.W, "    %s\n", r.Detail)
		}
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

// wait shows what a retried check waits for: "… waiting: control plane pods are ready: not ready: …".
func (t *TableWriter) wait(r Result) {
	line := fmt.Sprintf("%s waiting: %s: %s", GlyphWaiting, r.Description, strings.Join(strings.Fields(r.Error), " "))
	if !t.Terminal {
		if line != t.waiting {
			fmt.Fprintln(t.W, line)
		}
		t.waiting = line
		return
	}
	// one screen line, or the carriage return would not get back to its start
	if w := t.Width; w > 2 && utf8.RuneCountInString(line) >= w {
		line = string([]rune(line)[:w-2]) + GlyphWaiting
	}
	fmt.Fprint(t.W, line)
	t.waiting, t.inPlace = line, true
}

// Finish prints the summary line.
func (t *TableWriter) Finish(success bool) {
	if t.inPlace {
		fmt.Fprint(t.W, "\r\033[K")
		t.inPlace = false
	}
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
