package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// JoinKeyFileName is the HMAC key for join tokens, in the data directory.
const JoinKeyFileName = "join-token.key"

const joinKeyLen = 32

// Errors an Authenticator returns. Retrying with the same token does not help with either.
var (
	// ErrUnauthenticated: the token is not genuine (or expired, or malformed).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the token is genuine but grants nothing now (its workload is gone, say).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: the token could not be checked (the API server is unreachable, say); retrying may help.
	ErrUnavailable = errors.New("unavailable")
)

// Subject is who a token proves the caller to be.
type Subject struct {
	Namespace      string
	ServiceAccount string
	// Workload is the workload (local mode) or pod (Kubernetes, when the token is bound to one); may be empty.
	Workload string
}

// String names the subject in messages: "namespace/workload", or "serviceaccount namespace/name".
func (s Subject) String() string {
	if s.Workload != "" {
		return s.Namespace + "/" + s.Workload
	}
	return "serviceaccount " + s.Namespace + "/" + s.ServiceAccount
}

// Authenticator turns a proof of identity into a Subject. Local mode uses join tokens; Kubernetes mode uses
// TokenReview on projected ServiceAccount tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, token []byte) (Subject, error)
}

// JoinTokenAuthenticator verifies join tokens against the key and the current model.
type JoinTokenAuthenticator struct {
	key      []byte
	snapshot func() *model.Snapshot
}

var _ Authenticator = (*JoinTokenAuthenticator)(nil)

// NewJoinTokenAuthenticator verifies tokens signed with key; workloads are looked up in the snapshot current at
// the time of each request.
func NewJoinTokenAuthenticator(key []byte, snapshot func() *model.Snapshot) *JoinTokenAuthenticator {
	return &JoinTokenAuthenticator{key: key, snapshot: snapshot}
}

type joinClaims struct {
	Namespace string `json:"ns"`
	Workload  string `json:"wl"`
	IssuedAt  int64  `json:"iat"`
}

// Authenticate checks the token's MAC and that its workload exists now.
func (a *JoinTokenAuthenticator) Authenticate(_ context.Context, token []byte) (Subject, error) {
	claims, err := verifyJoinToken(a.key, string(token))
	if err != nil {
		return Subject{}, err
	}
	w, ok := a.snapshot().Workload(claims.Namespace, claims.Workload)
	if !ok {
		return Subject{}, fmt.Errorf("%w: token for %s/%s: no such workload", ErrPermissionDenied, claims.Namespace, claims.Workload)
	}
	return Subject{Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Workload: w.Name}, nil
}

func verifyJoinToken(key []byte, token string) (joinClaims, error) {
	payloadB64, sigB64, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !ok {
		return joinClaims{}, fmt.Errorf("%w: malformed join token", ErrUnauthenticated)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil {
		return joinClaims{}, fmt.Errorf("%w: malformed join token", ErrUnauthenticated)
	}
	if !hmac.Equal(sig, mac(key, []byte(payloadB64))) {
		return joinClaims{}, fmt.Errorf("%w: join token signature does not verify", ErrUnauthenticated)
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil {
		return joinClaims{}, fmt.Errorf("%w: malformed join token", ErrUnauthenticated)
	}
	var c joinClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Namespace == "" || c.Workload == "" {
		return joinClaims{}, fmt.Errorf("%w: malformed join token claims", ErrUnauthenticated)
	}
	return c, nil
}

// mac signs the base64url payload as it appears in the token, so verification needs no re-encoding.
func mac(key, payloadB64 []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(payloadB64)
	return h.Sum(nil)
}

// IssueJoinToken returns base64url(JSON{"ns","wl","iat"}) + "." + base64url(HMAC-SHA256(key, first part)).
func IssueJoinToken(key []byte, namespace, workload string, now time.Time) (string, error) {
	if len(key) != joinKeyLen {
		return "", fmt.Errorf("join token key must be %d bytes, got %d", joinKeyLen, len(key))
	}
	if namespace == "" || workload == "" {
		return "", errors.New("join token: namespace and workload are required")
	}
	payload, err := json.Marshal(joinClaims{Namespace: namespace, Workload: workload, IssuedAt: now.Unix()})
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(key, []byte(p))), nil
}

// LoadOrCreateJoinKey reads dataDir/join-token.key, creating the directory (0700) and a random key (0600) when
// missing. Concurrent callers (the controller and `sinew-controller token`) end up with the same key.
func LoadOrCreateJoinKey(dataDir string) ([]byte, error) {
	return loadOrCreateJoinKey(dataDir, createTemp)
}

// keyFile is what createJoinKey needs of its temporary file: an *os.File, or in tests one whose writes fail.
type keyFile interface {
	io.WriteCloser
	Name() string
	Chmod(fs.FileMode) error
}

func createTemp(dir, pattern string) (keyFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

func loadOrCreateJoinKey(dataDir string, create func(dir, pattern string) (keyFile, error)) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("join token key: %w", err)
	}
	path := filepath.Join(dataDir, JoinKeyFileName)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = createJoinKey(dataDir, path, create); err == nil {
			key, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("join token key: %w", err)
	}
	if len(key) != joinKeyLen {
		return nil, fmt.Errorf("join token key %s: must be %d bytes, got %d", path, joinKeyLen, len(key))
	}
	return key, nil
}

// createJoinKey writes a random key to path unless the file appears meanwhile: it links a complete temporary file
// into place, and Link fails if another process won the race, whose key then stands. A temporary file that could
// not be made complete (chmod, write or close failed) is never linked.
func createJoinKey(dataDir, path string, create func(dir, pattern string) (keyFile, error)) error {
	key := make([]byte, joinKeyLen)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	tmp, err := create(dataDir, "."+JoinKeyFileName+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // only the temporary name; the link, if made, stays
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(key)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}
