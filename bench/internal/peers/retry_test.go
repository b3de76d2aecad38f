package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

func TestIsAddrInUse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("bind: %w", syscall.EADDRINUSE)}, true},
		{errors.New("sinew-proxy client not ready: sinew-proxy-client exited: exit status 1\nSINEW_PROXY_ADMIN_LISTEN_ADDR: listen tcp 127.0.0.1:40507: bind: address already in use"), true},
		{errors.New(`nginx-client exited: exit status 1
nginx: [emerg] bind() to 127.0.0.1:41234 failed (98: Address already in use)`), true},
		{errors.New("[ALERT] Starting frontend fe: cannot bind socket (Address already in use) [127.0.0.1:4321]"), true},
		{errors.New("sinew-controller not serving after 20s"), false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), false},
	} {
		if got := IsAddrInUse(tc.err); got != tc.want {
			t.Errorf("IsAddrInUse(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetryAddrInUse(t *testing.T) {
	t.Parallel()
	inUse := errors.New("bind: address already in use")
	other := errors.New("config rejected")
	for _, tc := range []struct {
		name      string
		fails     []error // error of each attempt; past the end, success
		wantCalls int
		wantErr   error
	}{
		{"first try", nil, 1, nil},
		{"taken then free", []error{inUse, inUse}, 3, nil},
		{"other error is not retried", []error{other}, 1, other},
		{"taken every time", []error{inUse, inUse, inUse, inUse, inUse}, StartAttempts, inUse},
		{"taken then other", []error{inUse, other}, 2, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls, retries := 0, 0
			v, err := RetryAddrInUse(context.Background(), func() (int, error) {
				calls++
				if calls <= len(tc.fails) {
					return 0, tc.fails[calls-1]
				}
				return 42, nil
			}, func(int, error) { retries++ })
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) {
				t.Fatalf("calls=%d err=%v, want calls=%d err=%v", calls, err, tc.wantCalls, tc.wantErr)
			}
			if err == nil && v != 42 {
				t.Errorf("value %d, want 42", v)
			}
			if want := max(tc.wantCalls-1, 0); err == nil && retries != want {
				t.Errorf("retried told %d times, want %d", retries, want)
			}
		})
	}
}

func TestRetryStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := RetryAddrInUse(ctx, func() (int, error) {
		calls++
		cancel()
		return 0, errors.New("address already in use")
	}, nil)
	if calls != 1 || err == nil {
		t.Errorf("calls=%d err=%v, want one call and the error", calls, err)
	}
}
