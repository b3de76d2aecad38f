package check

import (
	"bytes"
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/cli/internal/certs"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
)

// Webhook checks the proxy injector's admission webhook: its configuration, certificate and endpoints.
func Webhook() Category {
	return Category{ID: "sinew-webhook", Checks: []Check{
		{
			ID: "webhook-config-exists", Description: "proxy injector webhook configuration exists", Severity: Error,
			Run: func(ctx context.Context, env *Env) error {
				_, err := env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, names.InjectorWebhookConfig, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("the MutatingWebhookConfiguration %s does not exist: pods are not injected automatically", names.InjectorWebhookConfig)
				}
				return err
			},
		},
		{
			ID: "webhook-cert-valid", Description: "proxy injector certificate is valid", Severity: Error,
			Run: func(ctx context.Context, env *Env) error {
				w, err := webhookTLS(ctx, env)
				if err != nil {
					return err
				}
				_, err = certs.CheckWebhook(w, []string{WebhookDNSName(env.Namespace)}, env.now())
				return err
			},
		},
		{
			ID: "webhook-cert-not-expiring", Description: "proxy injector certificate is valid for at least 60 days", Severity: Warning,
			Run: func(ctx context.Context, env *Env) error {
				w, err := webhookTLS(ctx, env)
				if err != nil {
					return err
				}
				c, err := meshtls.ParseCertificates(w.CertPEM)
				if err != nil {
					return err
				}
				if err := notExpiring(c[0], env.now()); err != nil {
					return fmt.Errorf("the webhook certificate %w: `sinew upgrade` renews it", err)
				}
				return nil
			},
		},
		{
			ID: "webhook-cabundle-matches", Description: "webhook caBundle trusts the injector certificate", Severity: Error,
			Run: func(ctx context.Context, env *Env) error {
				cfg, err := env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, names.InjectorWebhookConfig, metav1.GetOptions{})
				if err != nil {
					return err
				}
				w, err := webhookTLS(ctx, env)
				if err != nil {
					return err
				}
				for _, wh := range cfg.Webhooks {
					if len(bytes.TrimSpace(wh.ClientConfig.CABundle)) == 0 {
						return fmt.Errorf("webhook %s has no caBundle", wh.Name)
					}
					w.CAPEM = wh.ClientConfig.CABundle
					if _, err := certs.CheckWebhook(w, []string{WebhookDNSName(env.Namespace)}, env.now()); err != nil {
						return fmt.Errorf("the API server cannot trust the injector with webhook %s's caBundle: %w", wh.Name, err)
					}
				}
				return nil
			},
		},
		{
			ID: "webhook-endpoints", Description: "proxy injector service has endpoints", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				ok, err := hasReadyEndpoint(ctx, env, names.InjectorService)
				if err != nil || ok {
					return err
				}
				return fmt.Errorf("the Service %s/%s has no ready endpoint: is the proxy injector pod ready?", env.Namespace, names.InjectorService)
			},
		},
	}}
}

// WebhookDNSName is the name the API server calls the proxy injector by, which its certificate must carry.
func WebhookDNSName(ns string) string { return names.InjectorService + "." + ns + ".svc" }

func webhookTLS(ctx context.Context, env *Env) (certs.Webhook, error) {
	sec, err := env.Kube.CoreV1().Secrets(env.Namespace).Get(ctx, names.InjectorTLSSecret, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return certs.Webhook{}, fmt.Errorf("the Secret %s/%s does not exist", env.Namespace, names.InjectorTLSSecret)
		}
		return certs.Webhook{}, err
	}
	return certs.Webhook{CAPEM: sec.Data["ca.crt"], CertPEM: sec.Data["tls.crt"], KeyPEM: sec.Data["tls.key"]}, nil
}
