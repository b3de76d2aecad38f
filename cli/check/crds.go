package check

import (
	"context"
	"fmt"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CRDs checks that the CRDs this CLI installs are present and served.
func CRDs() Category {
	return Category{ID: "sinew-crds", Checks: []Check{
		{
			ID: "crds-exist", Description: "the sinew CRDs are installed", Severity: Fatal,
			Run: func(ctx context.Context, env *Env) error {
				var missing []string
				for _, n := range env.ExpectedCRDs {
					if _, err := env.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{}); err != nil {
						if !apierrors.IsNotFound(err) {
							return err
						}
						missing = append(missing, n)
					}
				}
				if len(missing) > 0 {
					return fmt.Errorf("missing: %s; install them with `sinew install --crds | kubectl apply -f -`", strings.Join(missing, ", "))
				}
				return nil
			},
		},
		{
			ID: "crds-established", Description: "the sinew CRDs are established", Severity: Error, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				var not []string
				for _, n := range env.ExpectedCRDs {
					crd, err := env.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
					if err != nil {
						return err
					}
					est := false
					for _, c := range crd.Status.Conditions {
						if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
							est = true
						}
					}
					if !est {
						not = append(not, n)
					}
				}
				if len(not) > 0 {
					return fmt.Errorf("not established yet: %s", strings.Join(not, ", "))
				}
				return nil
			},
		},
		gatewayAPICheck(),
	}}
}
