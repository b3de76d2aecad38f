package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/certs"
	"github.com/sinewmesh/sinew/internal/names"
)

// webhookRenewBefore: upgrade replaces a webhook certificate that expires sooner than this.
const webhookRenewBefore = 60 * 24 * time.Hour

// existingCerts are the certificates of an installed control plane, which upgrade keeps.
type existingCerts struct {
	identity certs.Identity
	webhook  certs.Webhook
	// webhookUsable is false when the webhook certificate is missing, invalid or near expiry: upgrade makes a new one.
	webhookUsable bool
}

func newUpgradeCmd(env *Env) *cobra.Command {
	var (
		f    installFlags
		crds bool
	)
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Print the manifests that upgrade or reconfigure the installed control plane (or, with --crds, the CRDs)",
		Long: `Print the manifests that upgrade the installed control plane to this CLI's version, or change its settings,
for kubectl apply -f -:

  sinew upgrade --crds | kubectl apply -f -
  sinew upgrade | kubectl apply -f -

It starts from the values stored in the ConfigMap sinew-config at install, applies the flags given now on top, and
keeps the installed trust anchors, issuer and webhook certificate (a webhook certificate that expires within 60
days is renewed). Give all three --identity-* file flags to replace the trust anchors and issuer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst := newInstaller(env)
			if crds {
				return inst.printCRDs(cmd, &f)
			}
			return inst.upgrade(cmd, &f)
		},
	}
	cmd.Flags().BoolVar(&crds, "crds", false, "print the CRDs (upgrade them first)")
	f.register(cmd)
	_ = cmd.Flags().MarkHidden("ignore-cluster") // upgrade reads the cluster by definition
	return cmd
}

func (in *installer) upgrade(cmd *cobra.Command, f *installFlags) error {
	ctx := cmd.Context()
	stored, existing, err := in.readInstalled(ctx)
	if err != nil {
		return err
	}
	// the images follow the CLI unless --image-tag says otherwise; the certificates come from the cluster
	if m, ok := stored["image"].(map[string]any); ok {
		delete(m, "tag")
	}
	if m, ok := stored["identity"].(map[string]any); ok {
		delete(m, "trustAnchorsPEM")
	}
	v, err := in.mergeFlags(cmd, f, stored)
	if err != nil {
		return err
	}
	return in.printControlPlane(v, f, existing)
}

// readInstalled reads the installed control plane's values and certificates.
func (in *installer) readInstalled(ctx context.Context) (map[string]any, *existingCerts, error) {
	cl, err := in.env.KubeClients()
	if err != nil {
		return nil, nil, err
	}
	ns := in.env.ControlPlaneNS
	stored, err := chartcmd.InstalledValues(ctx, cl.Kube, ns)
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("no control plane is installed in namespace %s (ConfigMap %s not found): install one with `sinew install | kubectl apply -f -`", ns, names.ConfigMap)
	}
	if err != nil {
		return nil, nil, err
	}
	id, err := check.InstalledIdentity(ctx, cl.Kube, ns)
	if err != nil {
		return nil, nil, err
	}
	ex := &existingCerts{identity: id}
	if _, err := certs.CheckIdentity(ex.identity, check.IdentitySources(ns), in.now()); err != nil {
		return nil, nil, fmt.Errorf("the installed identity certificates are not usable: %w; give new ones with the --identity-* file flags", err)
	}
	if sec, err := cl.Kube.CoreV1().Secrets(ns).Get(ctx, names.InjectorTLSSecret, metav1.GetOptions{}); err == nil {
		ex.webhook = certs.Webhook{CAPEM: sec.Data["ca.crt"], CertPEM: sec.Data["tls.crt"], KeyPEM: sec.Data["tls.key"]}
		if c, err := certs.CheckWebhook(ex.webhook, []string{check.WebhookDNSName(ns)}, in.now()); err == nil && c.NotAfter.Sub(in.now()) > webhookRenewBefore {
			ex.webhookUsable = true
		}
	} else if !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("reading Secret %s/%s: %w", ns, names.InjectorTLSSecret, err)
	}
	return stored, ex, nil
}
