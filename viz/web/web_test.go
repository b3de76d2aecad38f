package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestAssetsHoldTheDashboard(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := fs.ReadFile(Assets, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
}

// The dashboard must work with no network beyond the viz server: no CDN, no web fonts, no remote scripts.
func TestDashboardLoadsNothingFromElsewhere(t *testing.T) {
	index, err := fs.ReadFile(Assets, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"http://", "https://"} {
		if i := strings.Index(string(index), scheme); i >= 0 {
			t.Errorf("index.html refers to an outside URL: %q", string(index[i:min(len(index), i+60)]))
		}
	}
	// Whatever index.html loads is one of the embedded files.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(string(index), -1) {
		if strings.HasPrefix(m[1], "data:") {
			continue
		}
		if _, err := fs.Stat(Assets, m[1]); err != nil {
			t.Errorf("index.html loads %q, which is not embedded: %v", m[1], err)
		}
	}
	// The other files name no URL either; SVG's namespace name is an identifier that is never fetched.
	const svgNS = "http://www.w3.org/2000/svg"
	err = fs.WalkDir(Assets, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Assets, path)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(b), svgNS, "")
		for _, bad := range []string{"http://", "https://", "@import", "fonts.g"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
