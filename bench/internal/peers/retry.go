package peers

import (
	"context"
	"errors"
	"strings"
	"syscall"
)

// Ports are chosen free (bind :0, read the port, close) and bound later by a child process, so another
// process on the machine can take one in between. Teaching every peer to bind port 0 and report back is
// not possible (nginx and HAProxy cannot), so a start that fails on a taken port is retried whole, on
// fresh ports: every peer picks its ports inside Start.

// StartAttempts is how many times StartRetry tries a peer whose ports were taken.
const StartAttempts = 4

// IsAddrInUse reports whether err says that a listener could not bind because its address was taken. It
// matches Go's EADDRINUSE and the text children write to their logs (Go "bind: address already in use",
// nginx "(98: Address already in use)", HAProxy "cannot bind socket (Address already in use)"), which
// reach the harness inside start errors.
func IsAddrInUse(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(strings.ToLower(err.Error()), "address already in use")
}

// StartRetry starts p and, when the start fails because a port was taken, starts it again on fresh ports,
// up to StartAttempts times. Any other failure is returned at once. retried (may be nil) is told about
// each retry.
func StartRetry(ctx context.Context, p Peer, env *Env, topo Topology, retried func(attempt int, err error)) (*Instance, error) {
	return retryAddrInUse(ctx, StartAttempts, func() (*Instance, error) { return p.Start(ctx, env, topo) }, retried)
}

func retryAddrInUse[T any](ctx context.Context, attempts int, start func() (T, error), retried func(int, error)) (T, error) {
	var zero T
	var err error
	for i := 1; i <= attempts; i++ {
		var v T
		v, err = start()
		if err == nil {
			return v, nil
		}
		if !IsAddrInUse(err) || ctx.Err() != nil {
			return zero, err
		}
		if retried != nil && i < attempts {
			retried(i, err)
		}
	}
	return zero, err
}

// RetryAddrInUse runs start up to StartAttempts times while it fails with a taken address: for the
// harness's own long-lived children (the app), which pick their port the same way.
func RetryAddrInUse[T any](ctx context.Context, start func() (T, error), retried func(int, error)) (T, error) {
	return retryAddrInUse(ctx, StartAttempts, start, retried)
}
