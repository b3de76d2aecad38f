package detect

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want Protocol
		more bool
	}{
		{"get", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP1, false},
		{"http10", "POST /a?b=c HTTP/1.0\r\n", HTTP1, false},
		{"lf-only", "GET / HTTP/1.1\n", HTTP1, false},
		{"partial-method", "GE", 0, true},
		{"partial-line", "GET /foo", 0, true},
		{"h2", Preface + "\x00\x00", HTTP2, false},
		{"h2-partial", "PRI * HTTP/2", 0, true},
		{"redis", "*1\r\n$4\r\nPING\r\n", Opaque, false},
		{"binary", "\x00\x01\x02\x03", Opaque, false},
		{"http-version-bad", "GET / HTTP/2.0\r\n", Opaque, false},
		{"space-first", " GET / HTTP/1.1\r\n", Opaque, false},
		{"ctrl-in-line", "GET /\x01", Opaque, false},
		{"tls-partial", "\x16\x03\x01", 0, true},
		{"not-tls", "\x16\x05", Opaque, false},
	}
	for _, c := range cases {
		res, err := Classify([]byte(c.in))
		if c.more {
			if !errors.Is(err, ErrNeedMore) {
				t.Errorf("%s: got %v %v, want ErrNeedMore", c.name, res, err)
			}
			continue
		}
		if err != nil || res.Protocol != c.want {
			t.Errorf("%s: got %v %v, want %v", c.name, res.Protocol, err, c.want)
		}
	}
}

// clientHello captures a real ClientHello produced by crypto/tls.
func clientHello(t testing.TB, sni string, alpn []string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true})
		c.Handshake() //nolint:errcheck // we only want the hello bytes
		a.Close()
	}()
	buf := make([]byte, 0, MaxPeek)
	tmp := make([]byte, 4096)
	for {
		n, err := b.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if _, cerr := Classify(buf); cerr == nil || err != nil {
			break
		}
	}
	b.Close()
	return buf
}

func TestClassifyTLS(t *testing.T) {
	t.Parallel()
	hello := clientHello(t, "web.emojivoto", []string{"sinew/1", "h2"})
	res, err := Classify(hello)
	if err != nil || res.Protocol != TLS {
		t.Fatalf("Classify = %v, %v", res, err)
	}
	if res.SNI != "web.emojivoto" || !slices.Equal(res.ALPN, []string{"sinew/1", "h2"}) {
		t.Fatalf("SNI %q ALPN %q", res.SNI, res.ALPN)
	}
	for i := 1; i < len(hello); i++ {
		if _, err := Classify(hello[:i]); !errors.Is(err, ErrNeedMore) {
			t.Fatalf("prefix %d: %v, want ErrNeedMore", i, err)
		}
	}
}

func TestPeekReplaysBytes(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		a.Write([]byte("GET /x HTTP/1.1\r\n")) //nolint:errcheck
		a.Write([]byte("Host: y\r\n\r\nBODY")) //nolint:errcheck
		a.Close()
	}()
	c, res, err := Peek(b, time.Second)
	if err != nil || res.Protocol != HTTP1 {
		t.Fatalf("Peek = %v, %v", res, err)
	}
	all, _ := io.ReadAll(c)
	if string(all) != "GET /x HTTP/1.1\r\nHost: y\r\n\r\nBODY" {
		t.Fatalf("replayed %q", all)
	}
}

func TestPeekTimeoutIsOpaque(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go a.Write([]byte("GET")) //nolint:errcheck
	c, res, err := Peek(b, 50*time.Millisecond)
	if err != nil || res.Protocol != Opaque || string(c.Buffered()) != "GET" {
		t.Fatalf("Peek = %v %v %q", res, err, c.Buffered())
	}
}

func TestPeekEmpty(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Close()
	if _, _, err := Peek(b, time.Second); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Peek = %v, want ErrEmpty", err)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte(Preface))
	f.Add(clientHello(f, "a.b", []string{"sinew/1"}))
	f.Add([]byte{0x16, 3, 1, 0, 10, 1, 0, 0, 6, 3, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Classify(b)
		if err != nil && !errors.Is(err, ErrNeedMore) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil {
			// Classification of a longer stream must agree on the protocol once decided (except TLS whose
			// record may complete later, and opaque decided on a partial line).
			res2, err2 := Classify(append(append([]byte{}, b...), "\r\n"...))
			if err2 == nil && res.Protocol != Opaque && res2.Protocol != res.Protocol {
				t.Fatalf("%q: %v then %v", b, res.Protocol, res2.Protocol)
			}
		}
	})
}
