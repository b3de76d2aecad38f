package controlplane

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// secretReader reads the JWKS Secrets of JWTAuthentications one GET at a time, when the fetcher refreshes them.
// The controller's ClusterRole grants no access to Secrets: a namespace that keeps its keys in a Secret grants
// get on that one Secret to the controller's service account with a Role (docs/security/authorization-policy.md),
// so the controller can read nothing else.
type secretReader struct{ client kubernetes.Interface }

func (r secretReader) SecretKey(ctx context.Context, namespace, name, key string) ([]byte, error) {
	s, err := r.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("the controller may not read Secret %s/%s: grant get on it with a Role and RoleBinding", namespace, name)
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("Secret %s/%s does not exist", namespace, name)
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	b, ok := s.Data[key]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s has no key %q", namespace, name, key)
	}
	return b, nil
}
