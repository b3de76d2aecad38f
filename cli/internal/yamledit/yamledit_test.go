package yamledit

import (
	"bytes"
	"strings"
	"testing"
)

func TestSplitKeepsEveryByte(t *testing.T) {
	for _, in := range []string{
		"", "a: 1\n", "---\na: 1\n", "a: 1\n---\nb: 2\n", "a: 1\n---\n", "# c\n---\n---\nx: y", "a: 1\n--- # two\nb: 2\n",
		"a: |\n  ---\n  x\n", "a: 1\r\n---\r\nb: 2\r\n", "----\nnot a marker\n", "--- {a: 1}\n--- [1]\n",
	} {
		segs := Split([]byte(in))
		var b bytes.Buffer
		for i, s := range segs {
			if s.Index != i+1 {
				t.Errorf("%q: segment %d has index %d", in, i, s.Index)
			}
			b.Write(s.Text)
		}
		if b.String() != in {
			t.Errorf("%q: joined segments give %q", in, b.String())
		}
	}
	segs := Split([]byte("a: 1\n# comment\n---\nb: 2\n\n---\nc: 3\n"))
	if len(segs) != 3 || segs[1].Line != 3 || segs[2].Line != 6 {
		t.Errorf("segments %+v", segs)
	}
}

func parse(t *testing.T, in string) *Doc {
	t.Helper()
	d, err := Parse(Segment{Index: 1, Line: 1, Text: []byte(in)})
	if err != nil {
		t.Fatalf("parse %q: %v", in, err)
	}
	return d
}

func p(s string) []string { return strings.Split(s, "/") }

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name, in, path string
		value          any
		want           string
	}{
		{"append to block map", "metadata:\n  labels:\n    app: web # the app\n  name: web\n", "metadata/labels/tier", "front",
			"metadata:\n  labels:\n    app: web # the app\n    tier: front\n  name: web\n"},
		{"new map created after the last key", "metadata:\n  name: web\nspec: {}\n", "metadata/annotations/sinew.dev~1inject", "enabled",
			"metadata:\n  name: web\n  annotations:\n    sinew.dev~1inject: enabled\nspec: {}\n"},
		{"metadata goes first", "spec:\n  template:\n    spec:\n      containers: []\n", "spec/template/metadata/annotations/a", "b",
			"spec:\n  template:\n    metadata:\n      annotations:\n        a: b\n    spec:\n      containers: []\n"},
		{"odd indentation kept", "spec:\n    template:\n        metadata:\n            labels:\n                app: x\n", "spec/template/metadata/annotations/k", "v",
			"spec:\n    template:\n        metadata:\n            labels:\n                app: x\n            annotations:\n                k: v\n"},
		{"replace a scalar keeps quotes", "a: \"old\" # c\nb: 1\n", "a", "new", "a: \"new\" # c\nb: 1\n"},
		{"replace a plain scalar", "a: old\n", "a", "yes", "a: \"yes\"\n"},
		{"quoted when YAML would misread", "m:\n  x: 1\n", "m/port", "8080", "m:\n  x: 1\n  port: \"8080\"\n"},
		{"flow map", "metadata: {name: web}\n", "metadata/annotations/sinew.dev/inject", "enabled",
			"metadata: {name: web, annotations: {sinew.dev/inject: enabled}}\n"},
		{"empty flow map", "annotations: {}\n", "annotations/k", "v", "annotations: {k: v}\n"},
		{"null value replaced", "metadata:\n  annotations:\n  name: x\n", "metadata/annotations/k", "v",
			"metadata:\n  name: x\n  annotations:\n    k: v\n"},
		{"prepend to block seq", "spec:\n  containers:\n  - name: app\n    image: x\n", "spec/containers/0", map[string]any{"name": "proxy", "args": []string{"a", "b"}},
			"spec:\n  containers:\n  - args:\n    - a\n    - b\n    name: proxy\n  - name: app\n    image: x\n"},
		{"append to indented block seq", "spec:\n  volumes:\n    - name: a\n      emptyDir: {}\n  other: 1\n", "spec/volumes/-", map[string]any{"name": "b"},
			"spec:\n  volumes:\n    - name: a\n      emptyDir: {}\n    - name: b\n  other: 1\n"},
		{"new list key", "spec:\n  containers:\n  - name: app\n", "spec/initContainers", []map[string]string{{"name": "init"}},
			"spec:\n  containers:\n  - name: app\n  initContainers:\n  - name: init\n"},
		{"literal block for PEM", "env: []\nx: 1\n", "env/-", map[string]string{"value": "-----BEGIN\nabc\n-----END\n"},
			"env: [{value: \"-----BEGIN\\nabc\\n-----END\\n\"}]\nx: 1\n"},
		{"block item with a PEM", "env:\n- name: A\n", "env/-", map[string]string{"value": "L1\nL2\n"},
			"env:\n- name: A\n- value: |\n    L1\n    L2\n"},
		{"JSON object, pretty", "{\n  \"metadata\": {\n    \"name\": \"web\"\n  }\n}\n", "metadata/annotations", map[string]string{"a": "b"},
			"{\n  \"metadata\": {\n    \"name\": \"web\",\n    \"annotations\": {\n      \"a\": \"b\"\n    }\n  }\n}\n"},
		{"JSON one line", `{"metadata":{"name":"web"}}`, "metadata/labels/x", "y", `{"metadata":{"name":"web", "labels": {"x": "y"}}}`},
		{"JSON prepend array", "{\"a\": [\n    1\n]}", "a/0", 0, "{\"a\": [\n    0,\n    1\n]}"},
		{"CRLF", "a:\r\n  b: 1\r\n", "a/c", 2, "a:\r\n  b: 1\r\n  c: 2\r\n"},
		{"in a List item", "items:\n- kind: Pod\n  metadata:\n    name: a\n", "items/0/metadata/labels", map[string]string{"x": "z"},
			"items:\n- kind: Pod\n  metadata:\n    name: a\n    labels:\n      x: z\n"},
		{"metadata into a list item", "items:\n- kind: Pod\n  spec: {}\n", "items/0/metadata/name", "a",
			"items:\n- metadata:\n    name: a\n  kind: Pod\n  spec: {}\n"},
		{"comments and blank lines stay", "# head\na:\n\n  # about b\n  b: 1\n\n# tail\n", "a/c", 3, "# head\na:\n\n  # about b\n  b: 1\n  c: 3\n\n# tail\n"},
		{"no final newline", "a:\n  b: 1", "a/c", 2, "a:\n  b: 1\n  c: 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := parse(t, tc.in)
			path := p(tc.path)
			for i := range path {
				path[i] = strings.ReplaceAll(path[i], "~1", "/")
			}
			if tc.name == "new map created after the last key" {
				path = []string{"metadata", "annotations", "sinew.dev~1inject"}
			}
			if tc.name == "flow map" {
				path = []string{"metadata", "annotations", "sinew.dev/inject"}
			}
			if err := d.Add(path, tc.value); err != nil {
				t.Fatal(err)
			}
			if got := string(d.Bytes()); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	for _, tc := range []struct{ name, in, path, want string }{
		{"block entry", "a:\n  b: 1\n  c: 2 # two\n  d: 3\n", "a/c", "a:\n  b: 1\n  d: 3\n"},
		{"block entry with nested value", "a:\n  b:\n    x: 1\n\n    y: [1,\n      2]\n  c: 2\n", "a/b", "a:\n  c: 2\n"},
		{"last entry at end of text", "a:\n  b: 1\n  c: 2", "a/c", "a:\n  b: 1"},
		{"block item", "l:\n- name: a\n  x: |\n    text\n- name: b\n", "l/0", "l:\n- name: b\n"},
		{"last block item", "l:\n  - a\n  - b\nz: 1\n", "l/1", "l:\n  - a\nz: 1\n"},
		{"compact list value", "m:\n  l:\n  - 1\n  - 2\n  k: v\n", "m/l", "m:\n  k: v\n"},
		{"flow first", "a: {x: 1, y: 2}\n", "a/x", "a: {y: 2}\n"},
		{"flow last", "a: {x: 1, y: 2}\n", "a/y", "a: {x: 1}\n"},
		{"flow only", "a: { x: 1 }\n", "a/x", "a: {}\n"},
		{"JSON middle", "{\"a\": [1, 2, 3]}", "a/1", "{\"a\": [1, 3]}"},
		{"JSON pretty last", "{\n  \"a\": \"b\",\n  \"c\": \"d\"\n}", "c", "{\n  \"a\": \"b\"\n}"},
		{"missing key", "a: 1\n", "b", "a: 1\n"},
		{"first key of a list item falls back to the tree", "l:\n- name: a\n  x: 1\n", "l/0/name", "l:\n- x: 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := parse(t, tc.in)
			if err := d.Remove(p(tc.path)); err != nil {
				t.Fatal(err)
			}
			if got := string(d.Bytes()); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestAddRemoveRoundTrip: removing what Add inserted gives the input back, byte for byte.
func TestAddRemoveRoundTrip(t *testing.T) {
	for _, in := range []string{
		"metadata:\n  labels:\n    app: web\n",
		"metadata:\n    annotations:\n        a: b\n",
		"metadata: {labels: {app: web}, annotations: {a: b}}\n",
		"{\n  \"metadata\": {\n    \"annotations\": {\n      \"a\": \"b\"\n    }\n  }\n}\n",
		"metadata:\n  annotations: {a: b} # flow in block\n",
	} {
		d := parse(t, in)
		path := []string{"metadata", "annotations", "sinew.dev/inject"}
		existed := d.Root().Path("metadata", "annotations") != nil
		if err := d.Add(path, "enabled"); err != nil {
			t.Fatal(err)
		}
		if err := d.Remove(path); err != nil {
			t.Fatal(err)
		}
		if !existed && d.Root().Path("metadata", "annotations").Empty() {
			if err := d.Remove(path[:2]); err != nil {
				t.Fatal(err)
			}
		}
		if got := string(d.Bytes()); got != in {
			t.Errorf("round trip of\n%s\ngave\n%s", in, got)
		}
	}
}

func TestFallbackForAnchors(t *testing.T) {
	d := parse(t, "base: &b {x: 1}\nuse: *b\nm: !!map\n  k: v\n")
	if err := d.Add([]string{"m", "k2"}, "v2"); err != nil {
		t.Fatal(err)
	}
	js, _ := d.JSON()
	if string(js) != `{"base":{"x":1},"use":{"x":1},"m":{"k":"v","k2":"v2"}}` {
		t.Errorf("after the fallback: %s\n%s", js, d.Bytes())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		line int
		want string
	}{
		{"a: 1\nb: [1, 2\nc: 3\n", 0, "did not find expected"},
		{"a: 1\n  b: 2\n", 2, "mapping values are not allowed"},
		{"{\n  \"a\": 1,\n  \"b\": \n}", 4, "invalid value"},
		{"{\"a\": 1} {\"b\": 2}", 1, "text after the JSON value"},
	} {
		_, err := Parse(Segment{Index: 3, Line: 10, Text: []byte(tc.in)})
		e, ok := err.(*Error)
		if !ok || e.Doc != 3 || !strings.Contains(e.Msg, tc.want) || tc.line > 0 && e.Line != 9+tc.line {
			t.Errorf("%q: error %v (want document 3, line %d, %q)", tc.in, err, 9+tc.line, tc.want)
		}
	}
}

func TestConversions(t *testing.T) {
	d := parse(t, "# c\nb: 1\na: [x, {y: \"2\"}]\nn: ~\nf: 1.5\nt: true\n")
	js, err := d.JSON()
	if err != nil || string(js) != `{"b":1,"a":["x",{"y":"2"}],"n":null,"f":1.5,"t":true}` {
		t.Errorf("JSON %s %v", js, err)
	}
	j := parse(t, `{"b": 1, "a": ["x", {"y": "2"}], "s": "on\/off"}`)
	y, err := j.YAML()
	if err != nil || string(y) != "b: 1\na:\n- x\n- \"y\": \"2\"\ns: on/off\n" {
		t.Errorf("YAML %q %v", y, err)
	}
}

// TestAliasBomb: aliases of aliases that would expand exponentially are refused, not expanded.
func TestAliasBomb(t *testing.T) {
	in := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for _, l := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		in += l + ": &" + l + " [" + strings.Repeat("*"+prev+",", 8) + "*" + prev + "]\n"
		prev = l
	}
	in += "metadata: {}\n"
	d := parse(t, in)
	err := d.Add([]string{"metadata", "x"}, "y")
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("Add on an alias bomb: %v", err)
	}
}
