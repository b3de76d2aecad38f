package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sinewmesh/sinew/cli/internal/certs"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
)

// ExpiryWarning is how close to expiry a certificate must be for a warning.
const ExpiryWarning = 60 * 24 * time.Hour

// Identity checks the mesh CA: the trust anchors in the trust-roots ConfigMap and the issuer in its Secret.
func Identity() Category {
	return Category{ID: "sinew-identity", Checks: []Check{
		{
			ID: "identity-trust-anchors-valid", Description: "trust anchors are valid", Severity: Error,
			Run: eachCert("trust anchor", trustAnchors, func(c *x509.Certificate, now time.Time) error {
				if !c.IsCA {
					return errors.New("is not a CA certificate")
				}
				return certs.ValidAt(c, now)
			}),
		},
		{
			ID: "identity-trust-anchors-not-expiring", Description: "trust anchors are valid for at least 60 days", Severity: Warning,
			Run: eachCert("trust anchor", trustAnchors, notExpiring),
		},
		{
			ID: "identity-issuer-valid", Description: "issuer certificate is valid", Severity: Error,
			Run: eachCert("the issuer", issuerCert, func(c *x509.Certificate, now time.Time) error {
				if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
					return errors.New("is not a CA certificate (needs CA:true and keyUsage certSign)")
				}
				return certs.ValidAt(c, now)
			}),
		},
		{
			ID: "identity-issuer-chains", Description: "issuer certificate is issued by the trust anchors", Severity: Error,
			Run: func(ctx context.Context, env *Env) error {
				id, err := identityMaterial(ctx, env)
				if err != nil {
					return err
				}
				_, err = certs.CheckIdentity(id, IdentitySources(env.Namespace), env.now())
				return err
			},
		},
		{
			ID: "identity-issuer-not-expiring", Description: "issuer certificate is valid for at least 60 days", Severity: Warning,
			Run: eachCert("the issuer", issuerCert, notExpiring),
		},
	}}
}

// IdentitySources names the cluster objects an installed identity is read from, for certs.CheckIdentity's errors.
func IdentitySources(ns string) certs.Sources {
	return certs.Sources{
		TrustAnchors: "(ConfigMap " + ns + "/" + names.TrustRootsConfigMap + ")",
		IssuerCert:   "(Secret " + ns + "/" + names.IssuerSecret + " tls.crt)",
		IssuerKey:    "(Secret " + ns + "/" + names.IssuerSecret + " tls.key)",
	}
}

// eachCert is a check that runs check on every certificate list returns; the error names the first that fails,
// after what it is.
func eachCert(what string, list func(context.Context, *Env) ([]*x509.Certificate, error), check func(*x509.Certificate, time.Time) error) func(context.Context, *Env) error {
	return func(ctx context.Context, env *Env) error {
		cs, err := list(ctx, env)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := check(c, env.now()); err != nil {
				return fmt.Errorf("%s %q %w", what, certs.Name(c), err)
			}
		}
		return nil
	}
}

// issuerCert reads the issuer certificate (the first of its Secret's chain) from the cluster.
func issuerCert(ctx context.Context, env *Env) ([]*x509.Certificate, error) {
	id, err := identityMaterial(ctx, env)
	if err != nil {
		return nil, err
	}
	chain, err := meshtls.ParseCertificates(id.IssuerCertPEM)
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s tls.crt: %w", env.Namespace, names.IssuerSecret, err)
	}
	return chain[:1], nil
}

func trustAnchors(ctx context.Context, env *Env) ([]*x509.Certificate, error) {
	cm, err := env.Kube.CoreV1().ConfigMaps(env.Namespace).Get(ctx, names.TrustRootsConfigMap, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the ConfigMap %s/%s does not exist", env.Namespace, names.TrustRootsConfigMap)
		}
		return nil, err
	}
	anchors, err := meshtls.ParseCertificates([]byte(cm.Data[names.TrustRootsKey]))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s key %s: %w", env.Namespace, names.TrustRootsConfigMap, names.TrustRootsKey, err)
	}
	return anchors, nil
}

// identityMaterial reads the trust anchors and the issuer (certificate and key) from the cluster.
func identityMaterial(ctx context.Context, env *Env) (certs.Identity, error) {
	return InstalledIdentity(ctx, env.Kube, env.Namespace)
}

// InstalledIdentity reads the trust anchors and the issuer (certificate and key) of the control plane in ns, unchecked
// (certs.CheckIdentity with IdentitySources checks them).
func InstalledIdentity(ctx context.Context, kube kubernetes.Interface, ns string) (certs.Identity, error) {
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, names.TrustRootsConfigMap, metav1.GetOptions{})
	if err != nil {
		return certs.Identity{}, fmt.Errorf("reading ConfigMap %s/%s: %w", ns, names.TrustRootsConfigMap, err)
	}
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, names.IssuerSecret, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return certs.Identity{}, fmt.Errorf("the Secret %s/%s does not exist", ns, names.IssuerSecret)
		}
		return certs.Identity{}, fmt.Errorf("reading Secret %s/%s: %w", ns, names.IssuerSecret, err)
	}
	return certs.Identity{
		TrustAnchorsPEM: []byte(cm.Data[names.TrustRootsKey]),
		IssuerCertPEM:   sec.Data["tls.crt"],
		IssuerKeyPEM:    sec.Data["tls.key"],
	}, nil
}

func notExpiring(c *x509.Certificate, now time.Time) error {
	if left := c.NotAfter.Sub(now); left < ExpiryWarning {
		return fmt.Errorf("expires on %s, in %d days", c.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
	}
	return nil
}
