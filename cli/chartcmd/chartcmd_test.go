package chartcmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/charts"
)

func TestValueFlagsMergeInOrder(t *testing.T) {
	var v ValueFlags
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	v.Register(cmd)
	if v.Given() {
		t.Error("Given before any flag")
	}
	cmd.SetArgs([]string{"-f", "-", "--set", "a.b=2,c=x", "--set-string", "d=3"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{"a": map[string]any{"keep": true}}
	if err := v.MergeInto(strings.NewReader("a:\n  b: 1\ne: from-file\n"), vals); err != nil {
		t.Fatal(err)
	}
	a, _ := vals["a"].(map[string]any)
	if !v.Given() || fmt.Sprint(a["b"]) != "2" || a["keep"] != true || vals["e"] != "from-file" || vals["d"] != "3" {
		t.Errorf("merged %v", vals)
	}
}

func TestIsOneOf(t *testing.T) {
	if err := IsOneOf("logLevel", "debug", "info", "debug"); err != nil {
		t.Error(err)
	}
	if err := IsOneOf("logLevel", "debug", "info"); err == nil || !strings.Contains(err.Error(), `value logLevel: "debug" is not one of info`) {
		t.Errorf("IsOneOf: %v", err)
	}
}

func TestWriteObjects(t *testing.T) {
	objs := []charts.Object{{APIVersion: "v1", Kind: "Namespace", Name: "a"}, {APIVersion: "v1", Kind: "ConfigMap", Name: "b", Namespace: "a"}}
	for i := range objs {
		objs[i].YAML = IdentifyingYAML(objs[i])
	}
	var y, j strings.Builder
	if err := WriteObjects(&y, objs, "yaml"); err != nil {
		t.Fatal(err)
	}
	if want := "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: a\n"; y.String() != want {
		t.Errorf("yaml:\n%s\nwant:\n%s", y.String(), want)
	}
	if err := WriteObjects(&j, objs, "json"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.String(), "{\n  \"apiVersion\": \"v1\",\n  \"items\": [") || !strings.Contains(j.String(), `"namespace": "a"`) {
		t.Errorf("json:\n%s", j.String())
	}
	if err := CheckOutput("toml"); err == nil {
		t.Error("CheckOutput took toml")
	}
}
