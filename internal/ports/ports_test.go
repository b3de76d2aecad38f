package ports

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseAndMerge(t *testing.T) {
	names := func(n string) (uint16, bool) {
		p, ok := map[string]uint16{"mysql": 3306, "http-alt": 8080}[n]
		return p, ok
	}
	for _, tc := range []struct {
		in, want, merged, err string
		byName                func(string) (uint16, bool)
	}{
		{in: "", want: "[]", merged: "[]"},
		{in: " 25, 443 ,", want: "[25 443]", merged: "[25 443]"},
		{in: "8000-8090,8080,8091,1-3", want: "[8000-8090 8080 8091 1-3]", merged: "[1-3 8000-8091]"},
		{in: "65535", want: "[65535]", merged: "[65535]"},
		{in: " 25, 4000-4010 ,mysql,,http-alt", byName: names, want: "[25 4000-4010 3306 8080]", merged: "[25 3306 4000-4010 8080]"},
		{in: "0", err: `"0" is not a port between 1 and 65535`},
		{in: "65536", err: `"65536" is not a port between 1 and 65535`},
		{in: "1.5", err: `"1.5" is not a port`},
		{in: "80-", err: `"80-": "" is not a port`},
		{in: "1-70000", err: `"1-70000": "70000" is not a port`},
		{in: "90-80", err: `"90-80": the range ends before it starts`},
		{in: "x-y", err: `"x-y" is not a port: want a port like 443`},
		{in: "-3", err: `"-3" is not a port`},
		{in: "http", err: `"http" is not a port: want a port like 443 or a range like 8000-8090`},
		{in: "redis", byName: names, err: `"redis": no port by that name`},
	} {
		got, err := Parse(tc.in, tc.byName)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
		if m := Merge(got); fmt.Sprint(m) != tc.merged {
			t.Errorf("Merge(Parse(%q)) = %v, want %s", tc.in, m, tc.merged)
		}
	}
	if got := Format([]Range{{25, 25}, {8000, 8090}}); got != "25,8000-8090" {
		t.Errorf("Format = %q", got)
	}
}
