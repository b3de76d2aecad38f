package meshtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"
)

// leaf issues a certificate for the SPIFFE ID id, signed by ca.
func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, id string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: Serial(), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), URIs: []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestResumedSessionIsVerified: a client that resumes a TLS session still checks the server's identity, and the
// server still checks the client's chain. Resumption skips VerifyPeerCertificate, so a check there would let a
// client expecting another identity resume a session it never verified.
func TestResumedSessionIsVerified(t *testing.T) {
	t.Parallel()
	ca, caKey, err := NewCA("root", 0, nil, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	anchors := x509.NewCertPool()
	anchors.AddCert(ca)
	serverID, clientID := ID("td", "ns", "server"), ID("td", "ns", "client")
	serverCert, clientCert := leaf(t, ca, caKey, serverID), leaf(t, ca, caKey, clientID)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(anchors, func() *tls.Certificate { return serverCert }, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("x")) // the client reads it, and with it the session ticket
				}
			}()
		}
	}()

	cache := tls.NewLRUClientSessionCache(4)
	dial := func(want string) (tls.ConnectionState, error) {
		cfg := ClientConfig(anchors, want, func() *tls.Certificate { return clientCert })
		cfg.ClientSessionCache = cache
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			return tls.ConnectionState{}, err
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("read: %v", err)
		}
		return c.ConnectionState(), nil
	}

	if _, err := dial(serverID); err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	st, err := dial(serverID)
	if err != nil {
		t.Fatalf("second handshake: %v", err)
	}
	if st.CurveID != tls.X25519MLKEM768 {
		t.Errorf("mesh peers agreed on key exchange %v, want the post-quantum hybrid X25519MLKEM768", st.CurveID)
	}
	if !st.DidResume {
		t.Fatal("the second handshake did not resume, so this test proves nothing")
	}
	if _, err := dial(ID("td", "ns", "someone-else")); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("resumed handshake expecting another identity: %v, want %v", err, ErrIdentityMismatch)
	}
}
