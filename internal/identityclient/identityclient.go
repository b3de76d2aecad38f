// Package identityclient keeps a workload certificate fresh: the proxy's, and in Kubernetes mode the control-plane
// servers' own (they are workloads too). The private key is generated in memory at start and never leaves the
// process: only a CSR and the identity token go to the identity service. It knows nothing of Kubernetes.
package identityclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Config says whom to ask and who we are.
type Config struct {
	// Addr of the identity service and the SPIFFE ID it must present.
	Addr, ServerName string
	// LocalName is our SPIFFE ID.
	LocalName string
	// Token, or TokenFile (re-read on every request so rotated tokens are picked up).
	Token     []byte
	TokenFile string
	Anchors   *x509.CertPool
}

// Client obtains and renews the workload certificate.
type Client struct {
	cfg  Config
	log  *slog.Logger
	key  *ecdsa.PrivateKey
	csr  []byte
	cert atomic.Pointer[tls.Certificate]

	readyOnce sync.Once
	ready     chan struct{}

	expiry   prometheus.Gauge
	refresh  prometheus.Counter
	failures prometheus.Counter
}

// New generates the private key and CSR. It does not contact the identity service; Run does.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if _, _, _, err := meshtls.ParseID(cfg.LocalName); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating private key: %w", err)
	}
	u, err := url.Parse(cfg.LocalName)
	if err != nil {
		return nil, fmt.Errorf("identity %q: %w", cfg.LocalName, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, fmt.Errorf("creating CSR: %w", err)
	}
	c := &Client{
		cfg: cfg, log: log, key: key, csr: csr, ready: make(chan struct{}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "identity_cert_expiration_timestamp_seconds",
			Help: "Time when this proxy's current workload certificate expires.",
		}),
		refresh: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identity_cert_refresh_count",
			Help: "Number of times the workload certificate was obtained or renewed.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identity_cert_refresh_failures_total",
			Help: "Failed attempts to obtain or renew the workload certificate.",
		}),
	}
	for _, m := range []prometheus.Collector{c.expiry, c.refresh, c.failures} {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Certificate returns the current certificate (with chain), or nil before the first one arrived.
func (c *Client) Certificate() *tls.Certificate { return c.cert.Load() }

// Ready is closed once the first certificate is in place.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Expiry returns when the current certificate expires (zero before the first).
func (c *Client) Expiry() time.Time {
	if cert := c.cert.Load(); cert != nil && cert.Leaf != nil {
		return cert.Leaf.NotAfter
	}
	return time.Time{}
}

// Run certifies, then renews at 70% of the remaining lifetime, until ctx ends. Failures are retried with
// backoff while the current certificate keeps being used.
func (c *Client) Run(ctx context.Context) error {
	creds := credentials.NewTLS(meshtls.ClientConfig(c.cfg.Anchors, c.cfg.ServerName, func() *tls.Certificate { return nil }))
	conn, err := grpc.NewClient(c.cfg.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("identity service %s: %w", c.cfg.Addr, err)
	}
	defer func() { _ = conn.Close() }() // Run is ending; a failed close changes nothing
	client := identityv1.NewIdentityClient(conn)

	backoff := 250 * time.Millisecond
	for {
		wait, err := c.certify(ctx, client)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.failures.Inc()
			c.log.Warn("identity certification failed; retrying", "addr", c.cfg.Addr, "retry_in", backoff, "err", err)
			wait = backoff/2 + mrand.N(backoff/2)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = 250 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Client) certify(ctx context.Context, client identityv1.IdentityClient) (time.Duration, error) {
	token := c.cfg.Token
	if c.cfg.TokenFile != "" {
		b, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return 0, fmt.Errorf("reading identity token: %w", err)
		}
		token = b
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := client.Certify(rctx, &identityv1.CertifyRequest{
		Identity:                  c.cfg.LocalName,
		Token:                     token,
		CertificateSigningRequest: c.csr,
	})
	if err != nil {
		return 0, err
	}
	cert, err := c.assemble(resp)
	if err != nil {
		return 0, err
	}
	c.cert.Store(cert)
	c.refresh.Inc()
	c.expiry.Set(float64(cert.Leaf.NotAfter.Unix()))
	c.readyOnce.Do(func() { close(c.ready) })
	wait := time.Duration(float64(time.Until(cert.Leaf.NotAfter)) * 0.7)
	wait = min(max(wait, time.Second), 24*time.Hour)
	c.log.Info("workload certificate issued", "identity", c.cfg.LocalName, "expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "renew_in", wait.Round(time.Second))
	return wait, nil
}

// assemble checks the response: the leaf must carry our identity, match our key and chain to the anchors.
func (c *Client) assemble(resp *identityv1.CertifyResponse) (*tls.Certificate, error) {
	chain := append([][]byte{resp.GetLeafCertificate()}, resp.GetIntermediateCertificates()...)
	if _, err := meshtls.VerifyChain(chain, c.cfg.Anchors, c.cfg.LocalName); err != nil {
		return nil, fmt.Errorf("identity service returned an unusable certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(resp.GetLeafCertificate())
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&c.key.PublicKey) {
		return nil, errors.New("identity service returned a certificate for a different key")
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: c.key, Leaf: leaf}, nil
}
