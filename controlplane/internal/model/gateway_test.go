package model_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/testutil"
)

// keyPair returns a self-signed certificate for host and its key, both PEM.
func keyPair(t *testing.T, host string) (chain, key []byte) {
	c, k, _ := testutil.SelfSigned(t, host, host)
	return c, k
}

func TestGatewayLookups(t *testing.T) {
	chain, key := keyPair(t, "example.com")
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	snap := snapshot(model.Resources{GatewayResources: model.GatewayResources{
		Gateways:        []*gatewayv1.Gateway{{ObjectMeta: meta("b", "gw")}, {ObjectMeta: meta("a", "gw")}},
		GatewayClasses:  []*gatewayv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "sinew"}}},
		ReferenceGrants: []*gatewayv1beta1.ReferenceGrant{{ObjectMeta: meta("certs", "allow")}},
		TLSSecrets:      []*model.TLSSecret{{Namespace: "a", Name: "cert", Chain: chain, PrivateKey: key}},
		Namespaces:      []*model.Namespace{{Name: "a", Labels: map[string]string{"team": "x"}}},
	}})
	if gws := snap.Gateways(); len(gws) != 2 || gws[0].Namespace != "a" {
		t.Errorf("Gateways() not sorted by namespace/name: %v", gws)
	}
	if _, ok := snap.Gateway("b", "gw"); !ok {
		t.Error("Gateway(b, gw) not found")
	}
	if _, ok := snap.GatewayClass("sinew"); !ok {
		t.Error("GatewayClass(sinew) not found")
	}
	if len(snap.ReferenceGrants()) != 1 {
		t.Error("ReferenceGrants() lost one")
	}
	sec, ok := snap.TLSSecret("a", "cert")
	if !ok || sec.Check() != nil {
		t.Fatalf("TLSSecret(a, cert) = %v, %v; Check: %v", sec, ok, sec.Check())
	}
	if got := snap.NamespaceLabels("a"); got["team"] != "x" || got[model.NamespaceNameLabel] != "a" {
		t.Errorf("NamespaceLabels(a) = %v", got)
	}
	if got := snap.NamespaceLabels("other"); len(got) != 1 || got[model.NamespaceNameLabel] != "other" {
		t.Errorf("NamespaceLabels(other) = %v", got)
	}

	// Neither /debug/model nor a log line shows key material.
	b, err := json.Marshal(snap.Debug())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, []byte("CERTIFICATE")) || !bytes.Contains(b, []byte(`"tlsSecrets":["a/cert"]`)) {
		t.Errorf("debug view shows a Secret's data or not its name: %s", b)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", sec)
	if strings.Contains(logged.String(), "PRIVATE") || !strings.Contains(logged.String(), "a/cert") {
		t.Errorf("log line: %s", logged.String())
	}
	if s := fmt.Sprint(sec); strings.Contains(s, "PRIVATE") {
		t.Errorf("fmt shows the key: %s", s)
	}
}

func TestTLSSecretCheck(t *testing.T) {
	chain, key := keyPair(t, "a.example.com")
	_, otherKey := keyPair(t, "b.example.com")
	for _, tc := range []struct {
		name       string
		chain, key []byte
		want       string
	}{
		{"valid", chain, key, ""},
		{"no chain", nil, key, "data.tls.crt: required"},
		{"no key", chain, nil, "data.tls.key: required"},
		{"not PEM", []byte("hello"), key, "tls.crt holds no PEM certificate"},
		{"key not PEM", chain, []byte("hello"), "tls.key holds no PEM private key"},
		{"mismatch", chain, otherKey, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&model.TLSSecret{Namespace: "ns", Name: "s", Chain: tc.chain, PrivateKey: tc.key}).Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}
