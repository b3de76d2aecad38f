package integration

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// mtlsFixture is srv (an HTTP app behind its proxy) and cli (a meshed client whose outbound port leads to srv's
// service), with srv's Workload rewritten per case to carry config.sinew.dev/mtls-mode.
type mtlsFixture struct {
	m     *mesh
	pair  *pairT
	plain string // srv's proxy inbound address, where a plaintext client connects
}

func startMTLSFixture(t *testing.T) *mtlsFixture {
	t.Helper()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	return &mtlsFixture{m: m, pair: pair, plain: pair.server.p.InboundAddr()}
}

// setMode rewrites srv's Workload with the annotation ("" for none), and its Service.
func (f *mtlsFixture) setMode(mode string) {
	ann := ""
	if mode != "" {
		ann = fmt.Sprintf(", annotations: {config.sinew.dev/mtls-mode: %q}", mode)
	}
	f.m.write("srv.yaml", fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: srv, namespace: test, labels: {app: srv}%s}
spec:
  serviceAccount: srv-sa
  address: 127.0.0.1
  meshPort: %d
  ports: [{name: p, port: 8080}]
---
`, ann, f.pair.server.inboundPort())+serviceYAML("test", "srv", "srv", 80, 8080))
}

// mtlsGet sends GET /hello to addr with a fresh connection; it returns the status and the client identity the app saw.
func mtlsGet(addr string) (status int, clientID string, err error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/hello")
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("x-seen-client-id"), nil
}

// expect waits until the meshed client gets meshed (and is seen with clientID by the app) and a plaintext client
// gets plain.
func (f *mtlsFixture) expect(t *testing.T, what string, meshed int, clientID string, plain int) {
	t.Helper()
	eventually(t, 10*time.Second, what, func() error {
		m, id, err := mtlsGet(f.pair.outbound)
		if err != nil {
			return fmt.Errorf("meshed client: %w", err)
		}
		p, _, err := mtlsGet(f.plain)
		if err != nil {
			return fmt.Errorf("plaintext client: %w", err)
		}
		if m != meshed || p != plain || (m == 200 && id != clientID) {
			return fmt.Errorf("meshed %d (client id %q), plaintext %d; want %d (%q), %d", m, id, p, meshed, clientID, plain)
		}
		return nil
	})
}

// TestMTLSModeStrict: a STRICT port (annotation on srv's Workload) refuses a plaintext client with 403 and admits
// the meshed client over mTLS; a Server's mtlsMode STRICT wins over the annotation's PERMISSIVE the same way.
func TestMTLSModeStrict(t *testing.T) {
	t.Parallel()
	f := startMTLSFixture(t)
	cliID := spiffeID("test", "cli-sa")
	f.expect(t, "no mode: PERMISSIVE", 200, cliID, 200)

	f.setMode("STRICT")
	f.expect(t, "STRICT by annotation", 200, cliID, 403)

	f.setMode("8080=PERMISSIVE")
	f.expect(t, "PERMISSIVE by annotation", 200, cliID, 200)
	f.m.write("policy.yaml", `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: p
  accessPolicy: all-unauthenticated
  mtlsMode: STRICT
`)
	f.expect(t, "STRICT by Server over the annotation's PERMISSIVE", 200, cliID, 403)
	if v := metricValue(f.pair.server.metrics(t), "inbound_http_authz_deny_total", `srv_name="srv-http"`, `tls="no_identity"`); v < 1 {
		t.Errorf("inbound_http_authz_deny_total for the plaintext client = %v", v)
	}
}

// TestMTLSModePermissive: PERMISSIVE admits both the meshed client (over mTLS) and a plaintext one.
func TestMTLSModePermissive(t *testing.T) {
	t.Parallel()
	f := startMTLSFixture(t)
	f.setMode("PERMISSIVE")
	f.expect(t, "PERMISSIVE", 200, spiffeID("test", "cli-sa"), 200)
	if v := metricValue(f.pair.client.metrics(t), "response_total", `direction="outbound"`, `tls="true"`); v < 1 {
		t.Errorf("outbound responses over mTLS = %v", v)
	}
}

// TestMTLSModeDisable: on a DISABLE port the meshed client's requests reach the app in plaintext, without an
// identity: the client proxy's outbound metrics carry tls="disabled" (what viz edges shows as the reason) and the
// server proxy's inbound ones tls="no_identity". Back to PERMISSIVE, new connections are mTLS again.
func TestMTLSModeDisable(t *testing.T) {
	t.Parallel()
	f := startMTLSFixture(t)
	cliID := spiffeID("test", "cli-sa")
	f.expect(t, "mTLS before", 200, cliID, 200)

	f.setMode("DISABLE")
	f.expect(t, "DISABLE: the meshed client in plaintext", 200, "", 200)
	eventually(t, 10*time.Second, "plaintext counted on both sides", func() error {
		if _, _, err := mtlsGet(f.pair.outbound); err != nil {
			return err
		}
		if v := metricValue(f.pair.client.metrics(t), "response_total", `direction="outbound"`, `tls="disabled"`); v < 1 {
			return fmt.Errorf("client: outbound response_total{tls=disabled} = %v:\n%s", v, grepLines(f.pair.client.metrics(t), "response_total"))
		}
		if v := metricValue(f.pair.server.metrics(t), "request_total", `direction="inbound"`, `tls="no_identity"`); v < 1 {
			return fmt.Errorf("server: inbound request_total{tls=no_identity} = %v", v)
		}
		return nil
	})

	f.setMode("PERMISSIVE")
	f.expect(t, "PERMISSIVE again: mTLS", 200, cliID, 200)
	before := metricValue(f.pair.client.metrics(t), "response_total", `direction="outbound"`, `tls="disabled"`)
	for range 3 {
		if code, id, err := mtlsGet(f.pair.outbound); err != nil || code != 200 || id != cliID {
			t.Fatalf("after PERMISSIVE: %d %q %v", code, id, err)
		}
	}
	if after := metricValue(f.pair.client.metrics(t), "response_total", `direction="outbound"`, `tls="disabled"`); after != before {
		t.Errorf("plaintext responses went from %v to %v after the switch back", before, after)
	}
}
