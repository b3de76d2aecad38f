package identity

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
	"github.com/sinewmesh/sinew/internal/names"
)

// podNameExtra is the TokenReview user extra that names the pod a projected token is bound to.
const podNameExtra = "authentication.kubernetes.io/pod-name"

// TokenReviewAuthenticator checks projected ServiceAccount tokens with the API server's TokenReview and accepts
// only service-account tokens issued for its audience.
type TokenReviewAuthenticator struct {
	client   kubernetes.Interface
	audience string
	outcomes *prometheus.CounterVec
}

var _ Authenticator = (*TokenReviewAuthenticator)(nil)

// NewTokenReviewAuthenticator reviews tokens through client for audience (names.TokenAudience when empty). It needs
// RBAC to create tokenreviews.authentication.k8s.io.
func NewTokenReviewAuthenticator(client kubernetes.Interface, audience string, reg prometheus.Registerer) *TokenReviewAuthenticator {
	if audience == "" {
		audience = names.TokenAudience
	}
	return &TokenReviewAuthenticator{
		client: client, audience: audience,
		outcomes: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identity_token_reviews_total",
			Help: "TokenReviews by outcome (ok, unauthenticated, wrong_audience, not_service_account, error).",
		}, []string{"outcome"})),
	}
}

// Authenticate reviews the token; the subject is the token's service account (and pod, when it is bound to one).
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token []byte) (Subject, error) {
	subj, outcome, err := a.review(ctx, token)
	a.outcomes.WithLabelValues(outcome).Inc()
	return subj, err
}

func (a *TokenReviewAuthenticator) review(ctx context.Context, token []byte) (Subject, string, error) {
	token = bytes.TrimSpace(token)
	res, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: string(token), Audiences: []string{a.audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Subject{}, "error", fmt.Errorf("%w: token review failed: %v", ErrUnavailable, err)
	}
	st := res.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "the API server did not authenticate it"
		}
		return Subject{}, "unauthenticated", fmt.Errorf("%w: token rejected by TokenReview: %s", ErrUnauthenticated, reason)
	}
	// An API server that ignores audiences answers with none; such an answer proves nothing about ours.
	if !slices.Contains(st.Audiences, a.audience) {
		return Subject{}, "wrong_audience", fmt.Errorf("%w: token is not valid for audience %q (TokenReview audiences %v)",
			ErrUnauthenticated, a.audience, st.Audiences)
	}
	rest, ok := strings.CutPrefix(st.User.Username, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return Subject{}, "not_service_account", fmt.Errorf("%w: token belongs to %q, not a service account (want system:serviceaccount:<namespace>:<name>)",
			ErrPermissionDenied, st.User.Username)
	}
	subj := Subject{Namespace: ns, ServiceAccount: sa}
	if pods := st.User.Extra[podNameExtra]; len(pods) == 1 {
		subj.Workload = pods[0]
	}
	return subj, "ok", nil
}
