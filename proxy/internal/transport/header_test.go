package transport

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, h := range []Header{{ProtoH2, 8080}, {ProtoOpaque, 1}, {ProtoHTTP1, 65535}} {
		b := h.Append(nil)
		if len(b) != Size {
			t.Fatalf("encoded %d bytes, want %d", len(b), Size)
		}
		got, err := Read(bytes.NewReader(b))
		if err != nil || got != h {
			t.Fatalf("Read(%v) = %v, %v", h, got, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	valid := Header{ProtoH2, 80}.Append(nil)
	cases := map[string][]byte{
		"short":    valid[:5],
		"magic":    append([]byte("GET "), valid[4:]...),
		"proto":    append(append([]byte{}, valid[:4]...), 9, 0, 0, 80),
		"reserved": append(append([]byte{}, valid[:4]...), 1, 7, 0, 80),
		"port0":    append(append([]byte{}, valid[:4]...), 1, 0, 0, 0),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: Parse = %v, want ErrBadHeader", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Header{ProtoH2, 8080}.Append(nil))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if again, err := Parse(h.Append(nil)); err != nil || again != h {
			t.Fatalf("re-encoding %v gave %v, %v", h, again, err)
		}
	})
}
