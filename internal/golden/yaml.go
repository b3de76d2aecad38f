package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// CheckYAML compares a YAML stream with the file at path document by document, semantically (same documents in the
// same order; key order and quoting do not matter); with -update it writes got there instead.
func CheckYAML(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	g, w := YAMLDocs(t, got), YAMLDocs(t, string(want))
	if len(g) != len(w) {
		t.Fatalf("%s: %d documents, golden has %d (go test -update rewrites it)", path, len(g), len(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			gb, _ := yaml.Marshal(g[i])
			wb, _ := yaml.Marshal(w[i])
			t.Fatalf("%s: document %d differs (go test -update rewrites it):\n%s", path, i+1, LineDiff(string(wb), string(gb)))
		}
	}
}

// YAMLDocs decodes each document of a YAML stream.
func YAMLDocs(t testing.TB, stream string) []any {
	t.Helper()
	var out []any
	for _, d := range SplitYAML(stream) {
		var v any
		if err := yaml.Unmarshal([]byte(d), &v); err != nil {
			t.Fatalf("invalid YAML document: %v\n%s", err, d)
		}
		out = append(out, v)
	}
	return out
}

// SplitYAML splits a YAML stream on its "---" lines, keeping each document's text (and final newline) intact.
func SplitYAML(stream string) []string {
	var out []string
	for _, d := range strings.Split("\n"+stream, "\n---\n") {
		if strings.TrimSpace(d) != "" {
			out = append(out, strings.TrimPrefix(d, "\n")+"\n")
		}
	}
	return out
}

// LineDiff shows the lines of want and got that differ, in order.
func LineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, w, g)
		}
	}
	return b.String()
}
