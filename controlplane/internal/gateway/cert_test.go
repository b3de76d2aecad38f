package gateway_test

import (
	"testing"

	"github.com/sinewmesh/sinew/internal/testutil"
)

// keyPair returns a self-signed certificate for host and its key, both PEM.
func keyPair(t *testing.T, host string) (chain, key string) {
	c, k, _ := testutil.SelfSigned(t, host, host)
	return string(c), string(k)
}
