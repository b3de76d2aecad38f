package check

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxClockSkew is how far a node's clock may be from this machine's before certificates look not-yet-valid or
// expired to one of them.
const MaxClockSkew = 5 * time.Minute

// what install creates, for the RBAC checks: group, resource, namespaced.
var installResources = []struct {
	group, resource string
	namespaced      bool
}{
	{"", "namespaces", false},
	{"apiextensions.k8s.io", "customresourcedefinitions", false},
	{"rbac.authorization.k8s.io", "clusterroles", false},
	{"rbac.authorization.k8s.io", "clusterrolebindings", false},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", false},
	{"", "serviceaccounts", true},
	{"", "secrets", true},
	{"", "configmaps", true},
	{"", "services", true},
	{"apps", "deployments", true},
	{"rbac.authorization.k8s.io", "roles", true},
	{"rbac.authorization.k8s.io", "rolebindings", true},
	{"policy", "poddisruptionbudgets", true},
}

// Pre checks, before an install, that it can succeed.
func Pre() Category {
	checks := []Check{{
		ID: "pre-ns-absent", Description: "control plane namespace does not already exist", Severity: Error,
		Run: func(ctx context.Context, env *Env) error {
			_, err := env.Kube.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
			if err == nil {
				return fmt.Errorf("the namespace %q already exists: sinew may be installed already (`sinew check`; change it with `sinew upgrade`)", env.Namespace)
			}
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		},
	}}
	for _, r := range installResources {
		r := r
		checks = append(checks, Check{
			ID: "pre-rbac-" + r.resource, HintAnchor: "pre-rbac", Severity: Error,
			Description: "can create " + r.resource,
			Run: func(ctx context.Context, env *Env) error {
				ns := ""
				if r.namespaced {
					ns = env.Namespace
				}
				ok, reason, err := canCreate(ctx, env, r.group, r.resource, ns)
				if err != nil {
					return err
				}
				if !ok {
					msg := fmt.Sprintf("you may not create %s", r.resource)
					if ns != "" {
						msg += " in namespace " + ns
					}
					if reason != "" {
						msg += ": " + reason
					}
					return fmt.Errorf("%s", msg)
				}
				return nil
			},
		})
	}
	checks = append(checks,
		Check{
			ID: "pre-clock-skew", Description: "clocks of the nodes and of this machine agree", Severity: Warning,
			Run: func(ctx context.Context, env *Env) error {
				nodes, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				now := env.now()
				var bad []string
				for _, n := range nodes.Items {
					for _, c := range n.Status.Conditions {
						if c.Type != corev1.NodeReady || c.LastHeartbeatTime.IsZero() {
							continue
						}
						// the kubelet reports every 10s to 1m; a heartbeat from the future, or much older than that,
						// means a clock apart
						skew := c.LastHeartbeatTime.Sub(now)
						if skew > MaxClockSkew || -skew > MaxClockSkew+time.Minute {
							bad = append(bad, fmt.Sprintf("%s (last heartbeat %s, this machine's clock %s)", n.Name,
								c.LastHeartbeatTime.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
						}
					}
				}
				if len(bad) > 0 {
					return fmt.Errorf("clocks differ by more than %s: %s", MaxClockSkew, strings.Join(bad, "; "))
				}
				return nil
			},
		},
		Check{
			ID: "pre-net-admin", Description: "meshed pods may have the NET_ADMIN capability", Severity: Warning,
			Run: func(ctx context.Context, env *Env) error {
				nss, err := env.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				var bad []string
				for _, ns := range nss.Items {
					if systemNamespace(ns.Name) {
						continue
					}
					if lvl := ns.Labels["pod-security.kubernetes.io/enforce"]; lvl == "baseline" || lvl == "restricted" {
						bad = append(bad, fmt.Sprintf("%s (enforces %s)", ns.Name, lvl))
					}
				}
				sort.Strings(bad)
				if len(bad) > 0 {
					return fmt.Errorf("sinew-init needs NET_ADMIN and NET_RAW, which Pod Security rejects in: %s; label such a namespace pod-security.kubernetes.io/enforce=privileged before meshing its pods", strings.Join(bad, ", "))
				}
				return nil
			},
		},
	)
	return Category{ID: "pre-kubernetes-setup", Checks: checks}
}

func canCreate(ctx context.Context, env *Env, group, resource, ns string) (bool, string, error) {
	if env.CanCreate != nil {
		return env.CanCreate(ctx, group, resource, ns)
	}
	r, err := env.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: "create", Group: group, Resource: resource,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("asking the API server whether you may create %s: %w", resource, err)
	}
	return r.Status.Allowed, r.Status.Reason, nil
}

func systemNamespace(n string) bool {
	return n == "kube-system" || n == "kube-public" || n == "kube-node-lease"
}
