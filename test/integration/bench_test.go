package integration

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkMeshedHTTP1 sends requests through a client proxy, mTLS and a server proxy to an app, all in this
// process: run with -cpuprofile/-memprofile to see where a meshed request's time goes. Latency comparisons with
// other proxies are bench/'s job.
func BenchmarkMeshedHTTP1(b *testing.B) {
	m := startMesh(b, meshOpts{})
	pair := startPair(b, m, httpApp(b, "srv", false))
	body := bytes.Repeat([]byte("x"), 1024)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := "http://" + pair.outbound + "/bench"
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkMeshedHTTP1Serial is BenchmarkMeshedHTTP1 with one client sending one request at a time: run it under
// strace to count the syscalls of a meshed request (strace -f -c), without requests interleaving.
func BenchmarkMeshedHTTP1Serial(b *testing.B) {
	m := startMesh(b, meshOpts{})
	pair := startPair(b, m, httpApp(b, "srv", false))
	body := bytes.Repeat([]byte("x"), 1024)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := "http://" + pair.outbound + "/bench"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
