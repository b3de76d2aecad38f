package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/internal/names"
)

// fakeReviews answers TokenReviews from a table of tokens, the way an API server would: a token has audiences
// and a user; a review for an audience the token lacks is unauthenticated.
func fakeReviews(t *testing.T, tokens map[string]authenticationv1.TokenReviewStatus) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if tr.Spec.Token == "api-down" {
			return true, nil, errors.New("connection refused")
		}
		st, ok := tokens[tr.Spec.Token]
		out := tr.DeepCopy()
		switch {
		case !ok:
			out.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		case st.Authenticated && len(st.Audiences) > 0 && !intersects(st.Audiences, tr.Spec.Audiences):
			out.Status = authenticationv1.TokenReviewStatus{Error: "token audiences " + strings.Join(st.Audiences, ",") + " is invalid for the target audiences"}
		default:
			out.Status = st
		}
		return true, out, nil
	})
	return client
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func saStatus(ns, sa, pod string, audiences ...string) authenticationv1.TokenReviewStatus {
	st := authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: audiences,
		User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + sa}}
	if pod != "" {
		st.User.Extra = map[string]authenticationv1.ExtraValue{podNameExtra: {pod}}
	}
	return st
}

func TestTokenReviewAuthenticator(t *testing.T) {
	t.Parallel()
	client := fakeReviews(t, map[string]authenticationv1.TokenReviewStatus{
		"web-pod":      saStatus("emojivoto", "web", "web-6cf646cd6-b4dz7", names.TokenAudience),
		"web-unbound":  saStatus("emojivoto", "web", "", names.TokenAudience),
		"api-audience": saStatus("emojivoto", "web", "", "https://kubernetes.default.svc"),
		// An authenticator that ignores audiences answers authenticated without any.
		"no-audiences": saStatus("emojivoto", "web", ""),
		"user":         {Authenticated: true, Audiences: []string{names.TokenAudience}, User: authenticationv1.UserInfo{Username: "alice"}},
		"odd-sa":       {Authenticated: true, Audiences: []string{names.TokenAudience}, User: authenticationv1.UserInfo{Username: "system:serviceaccount:emojivoto"}},
	})
	reg := prometheus.NewRegistry()
	a := NewTokenReviewAuthenticator(client, "", reg)
	for token, tc := range map[string]struct {
		want    Subject
		err     error
		message string
	}{
		"web-pod":      {want: Subject{Namespace: "emojivoto", ServiceAccount: "web", Workload: "web-6cf646cd6-b4dz7"}},
		"web-unbound":  {want: Subject{Namespace: "emojivoto", ServiceAccount: "web"}},
		"api-audience": {err: ErrUnauthenticated, message: "is invalid for the target audiences"},
		"no-audiences": {err: ErrUnauthenticated, message: `not valid for audience "identity.sinew.dev"`},
		"garbage":      {err: ErrUnauthenticated, message: "invalid bearer token"},
		"user":         {err: ErrPermissionDenied, message: `token belongs to "alice", not a service account`},
		"odd-sa":       {err: ErrPermissionDenied, message: "not a service account"},
		"api-down":     {err: ErrUnavailable, message: "connection refused"},
	} {
		got, err := a.Authenticate(context.Background(), []byte(token+"\n"))
		if tc.err == nil {
			if err != nil || got != tc.want {
				t.Errorf("%s: %+v, %v; want %+v", token, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v; want %v containing %q", token, err, tc.err, tc.message)
		}
		if strings.Contains(err.Error(), token+"\n") {
			t.Errorf("%s: the error echoes the token", token)
		}
	}
	for outcome, want := range map[string]float64{"ok": 2, "unauthenticated": 2, "wrong_audience": 1, "not_service_account": 2, "error": 1} {
		var m dto.Metric
		_ = a.outcomes.WithLabelValues(outcome).Write(&m)
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("outcome %s counted %v, want %v", outcome, got, want)
		}
	}
	// The review asked for our audience.
	for _, act := range client.Actions() {
		if tr := act.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview); len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != names.TokenAudience {
			t.Errorf("review audiences %v", tr.Spec.Audiences)
		}
	}
}

// Through Certify: a service account's token certifies that service account's identity and nothing else.
func TestCertifyWithTokenReview(t *testing.T) {
	t.Parallel()
	ca, _, _, _, err := GenerateCA("cluster.local", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client := fakeReviews(t, map[string]authenticationv1.TokenReviewStatus{
		"web":  saStatus("emojivoto", "web", "web-1", names.TokenAudience),
		"user": {Authenticated: true, Audiences: []string{names.TokenAudience}, User: authenticationv1.UserInfo{Username: "alice"}},
	})
	srv := NewServer(ServerConfig{
		CA: ca, TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local"), CertLifetime: time.Hour,
		Authenticator: NewTokenReviewAuthenticator(client, names.TokenAudience, nil),
	})
	const web = "spiffe://cluster.local/ns/emojivoto/sa/web"
	const voting = "spiffe://cluster.local/ns/emojivoto/sa/voting"
	for name, tc := range map[string]struct {
		identity, token string
		want            codes.Code
		message         string
	}{
		"own identity":       {web, "web", codes.OK, ""},
		"another identity":   {voting, "web", codes.PermissionDenied, "token for emojivoto/web-1 may not certify " + voting},
		"user token":         {web, "user", codes.PermissionDenied, "not a service account"},
		"unknown token":      {web, "nope", codes.Unauthenticated, "invalid bearer token"},
		"API server trouble": {web, "api-down", codes.Unavailable, "token review failed"},
	} {
		resp, err := srv.Certify(context.Background(), &identityv1.CertifyRequest{
			Identity: tc.identity, Token: []byte(tc.token), CertificateSigningRequest: csrFor(t, tc.identity),
		})
		if status.Code(err) != tc.want || (err != nil && !strings.Contains(err.Error(), tc.message)) {
			t.Errorf("%s: %v; want %v %q", name, err, tc.want, tc.message)
		}
		if err == nil && len(resp.GetLeafCertificate()) == 0 {
			t.Errorf("%s: no certificate", name)
		}
	}
}
