package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkMeshHop: one GET at a time through a meshed pair (client proxy → mTLS HTTP/2 → server proxy → app)
// on one keep-alive connection; allocations are the whole process's (both proxies, the app, the client), so
// compare them between revisions, not with zero. With -cpuprofile and -memprofile it shows where a request's cost
// goes in the proxies.
func BenchmarkMeshHop(b *testing.B) {
	m := startMesh(b, meshOpts{})
	pair := startPair(b, m, benchApp(b))
	c, err := net.Dial("tcp", pair.outbound)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: " + svcAuthority + "\r\n\r\n")
	get := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get() // the connection, the mesh connection and the policies are set up outside the measurement
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}

// benchApp answers every request with a short fixed body, as the bench harness's app does.
func benchApp(b *testing.B) string {
	ln := listen(b)
	body := []byte("hello from the app\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body) //nolint:errcheck
	})}
	go srv.Serve(ln) //nolint:errcheck
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
