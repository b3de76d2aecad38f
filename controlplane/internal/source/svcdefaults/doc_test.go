package svcdefaults

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/names"
)

// TestDocumentedDefaults: the user page names every annotation, and its tables give the code's defaults.
func TestDocumentedDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../../docs/networking/retries-and-timeouts.md")
	if err != nil {
		t.Fatal(err)
	}
	row := func(annotation string) string {
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "| `"+annotation+"` |") {
				return line
			}
		}
		t.Errorf("no table row for %s", annotation)
		return ""
	}
	for ann, def := range map[string]string{
		names.AnnRetryHTTP:                 "`5xx`",
		names.AnnRetryGRPC:                 "none",
		names.AnnRetryLimit:                "`" + strconv.Itoa(DefaultRetryLimit) + "`",
		names.AnnRetryTimeout:              "no per-attempt limit",
		names.AnnTimeoutRequest:            "none",
		names.AnnTimeoutResponse:           "none",
		names.AnnTimeoutIdle:               "none",
		names.AnnFailureAccrual:            "off",
		names.AnnFailureAccrualMaxFailures: "`" + strconv.Itoa(DefaultMaxFailures) + "`",
		names.AnnFailureAccrualMinPenalty:  "`" + strconv.Itoa(int(DefaultMinPenalty/time.Second)) + "s`",
		names.AnnFailureAccrualMaxPenalty:  "`" + strconv.Itoa(int(DefaultMaxPenalty/time.Second)) + "s`",
		names.AnnFailureAccrualJitterRatio: "`" + strconv.FormatFloat(DefaultJitterRatio, 'g', -1, 64) + "`",
	} {
		cells := strings.Split(row(ann), "|")
		if len(cells) < 4 || !strings.Contains(cells[len(cells)-2], def) {
			t.Errorf("%s: the default column should say %s: %q", ann, def, cells)
		}
	}
}
