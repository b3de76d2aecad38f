package yamledit

import (
	"testing"
)

// FuzzEdit: whatever the input, parsing and editing never panic, and an edit that succeeds means what it says
// (the document then holds the value), while removing it again leaves no trace of it.
func FuzzEdit(f *testing.F) {
	for _, s := range []string{
		"metadata:\n  name: a\n", "metadata: {name: a}\n", "{\"metadata\": {}}", "a: [1, 2]\n", "- x\n",
		"metadata:\n  annotations:\n    k: v # c\n", "m: &a {x: 1}\nn: *a\n", "metadata:\n  annotations:\n",
		"spec:\n  containers:\n  - name: x\n    args: [a,\n      b]\n", "metadata:\r\n  labels:\r\n    a: b\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, seg := range Split([]byte(in)) {
			d, err := Parse(seg)
			if err != nil || d.Root() == nil || d.Root().Kind != Map {
				continue
			}
			path := []string{"metadata", "annotations", "sinew.dev/inject"}
			if err := d.Add(path, "enabled"); err != nil {
				continue // a path through a scalar, say: reported, not panicked
			}
			if got := d.Root().Path(path...).Str(); got != "enabled" {
				t.Fatalf("after Add the value is %q\n%s", got, d.Bytes())
			}
			if _, err := Parse(Segment{Index: 1, Line: 1, Text: d.Bytes()}); err != nil {
				t.Fatalf("Add produced a document that does not parse: %v\n%s", err, d.Bytes())
			}
			if err := d.Remove(path); err != nil {
				t.Fatalf("Remove after Add: %v", err)
			}
			if d.Root().Path(path...) != nil {
				t.Fatalf("Remove left the key\n%s", d.Bytes())
			}
		}
	})
}
