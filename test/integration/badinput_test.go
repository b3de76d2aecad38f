package integration

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"golang.org/x/net/http2"
)

// meshDial opens mesh TLS to a proxy's inbound port as a peer proxy would, with cert (or none).
func meshDial(t *testing.T, addr string, cert *tls.Certificate, anchors *x509.CertPool) (*tls.Conn, error) {
	t.Helper()
	cfg := meshtls.ClientConfig(anchors, "", func() *tls.Certificate { return cert }, meshtls.ALPN)
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3: a client certificate the server rejects shows up on the first read, not in the handshake.
	return c, nil
}

func anchorsOf(t *testing.T, m *mesh) *x509.CertPool {
	pool, err := meshtls.ParseAnchors(m.cp.TrustAnchorsPEM())
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// foreignCert is a SPIFFE certificate from a CA the mesh does not trust.
func foreignCert(t *testing.T, id string) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "intruder"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// expectClosed reads from c until the peer closes it (or fails the test after a deadline).
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open", what)
	}
}

func TestInboundMeshTLS(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	anchors := anchorsOf(t, m)
	inbound := pair.server.p.InboundAddr()
	peer := m.certFor(t, "test", "peer", "peer-sa")

	// The server proxy proves the identity the destination service announced for it.
	c, err := meshDial(t, inbound, &peer, anchors)
	if err != nil {
		t.Fatal(err)
	}
	if got := meshtls.PeerID(c.ConnectionState().PeerCertificates[0]); got != spiffeID("test", "srv-sa") {
		t.Fatalf("inbound proxy presented %s", got)
	}
	if _, err := meshtls.VerifyChain(rawChain(c), anchors, spiffeID("test", "srv-sa")); err != nil {
		t.Fatal(err)
	}
	// Garbage instead of the transport header: closed, counted, nothing else disturbed.
	io.WriteString(c, "GARBAGE!GARBAGE!")
	expectClosed(t, c, "garbage transport header")

	// No client certificate: refused.
	if c, err := meshDial(t, inbound, nil, anchors); err == nil {
		c.Write([]byte{0})
		expectClosed(t, c, "client without certificate")
	}
	// A certificate from another CA claiming a mesh identity: refused.
	if c, err := meshDial(t, inbound, foreignCert(t, spiffeID("test", "cli-sa")), anchors); err == nil {
		c.Write([]byte{0})
		expectClosed(t, c, "foreign certificate")
	}
	// Random bytes that look like nothing: passed to the application as opaque TCP (it is the app's port), and
	// the app's own HTTP server answers 400; the proxy keeps serving others.
	raw, err := net.Dial("tcp", inbound)
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("\x16\x03\x01\x00\x05garbage that is not a ClientHello\r\n\r\n"))
	expectClosed(t, raw, "garbage bytes")

	if who, err := servedBy(&http.Client{}, "http://"+pair.outbound+"/after"); err != nil || who != "srv" {
		t.Fatalf("traffic after bad input: %q %v", who, err)
	}
	text := pair.server.metrics(t)
	if v := metricValue(text, "proxy_errors_total", `error="bad_transport_header"`); v != 1 {
		t.Fatalf("bad_transport_header = %v", v)
	}
	if v := metricValue(text, "proxy_errors_total", `error="tls_handshake"`); v != 2 {
		t.Fatalf("tls_handshake errors = %v, want 2", v)
	}
}

func rawChain(c *tls.Conn) [][]byte {
	var out [][]byte
	for _, cert := range c.ConnectionState().PeerCertificates {
		out = append(out, cert.Raw)
	}
	return out
}

func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	// 50 slow-loris clients send half a request and stall.
	var slow []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", pair.outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		slow = append(slow, c)
	}
	// And one client opens an HTTP/2 connection and violates the protocol (DATA on stream 0).
	h2c, err := net.Dial("tcp", pair.outbound)
	if err != nil {
		t.Fatal(err)
	}
	defer h2c.Close()
	io.WriteString(h2c, http2.ClientPreface)
	fr := http2.NewFramer(h2c, bufio.NewReader(h2c))
	fr.AllowIllegalWrites = true
	fr.WriteSettings()
	fr.WriteData(0, false, []byte("bad"))
	h2c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sawGoAway := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			sawGoAway = ga.ErrCode == http2.ErrCodeProtocol
		}
	}
	if !sawGoAway {
		t.Fatal("protocol violation did not get GOAWAY(PROTOCOL_ERROR)")
	}
	// Everyone else is served.
	for i := range 20 {
		if who, err := servedBy(&http.Client{}, "http://"+pair.outbound+"/"); err != nil || who != "srv" {
			t.Fatalf("request %d among slow clients: %q %v", i, who, err)
		}
	}
	// The slow clients are cut off by the header timeout (10 s) rather than held forever.
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
	}
	for i, c := range slow {
		_, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow client %d still connected", i)
		}
	}
}

func TestProxyRefusedOthersIdentity(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	m.write("w.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9)+"---\n"+workloadYAML("test", "srv", "srv-sa", "srv", 0, 9))
	// A token for "cli" cannot get srv's identity: the proxy never becomes ready and says why in metrics.
	tok, err := m.cp.IssueJoinToken("test", "cli")
	if err != nil {
		t.Fatal(err)
	}
	s := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", token: tok, localName: spiffeID("test", "srv-sa"), outbound: []string{svcAuthority}})
	eventually(t, 10*time.Second, "certification failures counted", func() error {
		if v := metricValue(s.metrics(t), "identity_cert_refresh_failures_total"); v < 2 {
			return fmt.Errorf("failures = %v", v)
		}
		return nil
	})
	resp, err := http.Get("http://" + s.p.AdminAddr() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || s.p.Certificate() != nil {
		t.Fatalf("ready=%d with a certificate for someone else", resp.StatusCode)
	}
}
