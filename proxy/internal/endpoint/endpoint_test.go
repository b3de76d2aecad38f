package endpoint

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPlainDialFailureIsADialError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	p := NewPlain(NewDialer(nil, nil, time.Second))
	r := httptest.NewRequest("GET", "http://"+addr+"/", nil)
	r.RequestURI = ""
	_, err = p.RoundTrip(r, false, false, "HTTP/1.1", false)
	if !IsDialError(err) {
		t.Fatalf("refused connection: %v is not a DialError", err)
	}
}

// An HTTP/1.0 request reaches the application as HTTP/1.0, without a Host when the client sent none.
func TestPlainKeepsHTTP10(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
			head.WriteString(line)
		}
		got <- head.String()
		c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")) //nolint:errcheck
	}()
	p := NewPlain(NewDialer(nil, nil, time.Second))
	r, err := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x?y=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = ""
	resp, err := p.RoundTrip(r, false, false, "HTTP/1.0", true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	head := <-got
	if !strings.HasPrefix(head, "GET /x?y=1 HTTP/1.0\r\n") || strings.Contains(strings.ToLower(head), "host:") {
		t.Fatalf("the application saw:\n%s", head)
	}
	if resp.StatusCode != 200 || resp.ProtoMinor != 0 {
		t.Fatalf("response %d %s", resp.StatusCode, resp.Proto)
	}
}

func TestTakeDialTime(t *testing.T) {
	t.Parallel()
	e := NewPassthrough("192.0.2.1:80", nil, NewDialer(nil, nil, time.Second), nil)
	if _, err := e.timed(func() (net.Conn, error) { time.Sleep(2 * time.Millisecond); return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if d := e.TakeDialTime(); d < 2*time.Millisecond {
		t.Fatalf("dial time %v", d)
	}
	if d := e.TakeDialTime(); d != 0 {
		t.Fatalf("taken twice: %v", d)
	}
}
