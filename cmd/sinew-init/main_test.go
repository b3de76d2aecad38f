package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/capture"
	"golang.org/x/sys/unix"

	"github.com/sinewmesh/sinew/internal/testutil"
)

// The test binary doubles as sinew-init: with SINEW_INIT_TEST_MAIN=1 it runs main's logic on its arguments, so the
// netns test exercises the real command line inside `ip netns exec`.
func TestMain(m *testing.M) {
	if os.Getenv("SINEW_INIT_TEST_MAIN") == "1" {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "sinew-init:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--skip-inbound-ports", "80,x"}, `--skip-inbound-ports: "x"`},
		{[]string{"--skip-outbound-ports", "90-80"}, "range ends before it starts"},
		{[]string{"--skip-subnets", "10.0.0.0/33"}, `--skip-subnets: "10.0.0.0/33" is not a CIDR`},
		{[]string{"--inbound-port", "70000"}, "--inbound-port 70000: want a port"},
		{[]string{"--inbound-port", "4140"}, "they must differ"},
		{[]string{"--proxy-uid", "0"}, "proxy-uid: must not be 0"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errOut bytes.Buffer
		err := run(tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestDryRunChangesNothingAndPrintsRules(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--dry-run", "--skip-outbound-ports", "443,6443", "--skip-subnets", "10.96.0.0/12"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table inet sinew {", "tcp dport 4191 return", "meta l4proto tcp redirect to :4143",
		"meta skuid 2102 return", "ip daddr 10.96.0.0/12 return", "tcp dport 6443 return", "redirect to :4140",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out.String())
		}
	}
}

// A pod network namespace ("pod") and a peer namespace ("peer") joined by a veth pair, IPv4 and IPv6. sinew-init
// runs inside the pod namespace; real TCP connections then show where each kind of connection lands.
func TestCaptureInNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip command (iproute2) is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pod := fmt.Sprintf("sinit-pod-%d", os.Getpid())
	peer := fmt.Sprintf("sinit-peer-%d", os.Getpid())
	for _, ns := range []string{pod, peer} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", peer, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", pod)
	for _, a := range []struct{ ns, v4, v6 string }{{peer, "192.0.2.1/24", "2001:db8::1/64"}, {pod, "192.0.2.2/24", "2001:db8::2/64"}} {
		sh(t, "ip", "-n", a.ns, "addr", "add", a.v4, "dev", "eth0")
		sh(t, "ip", "-n", a.ns, "-6", "addr", "add", a.v6, "dev", "eth0", "nodad")
		sh(t, "ip", "-n", a.ns, "link", "set", "eth0", "up")
	}
	// a second peer address inside the skipped subnet
	sh(t, "ip", "-n", peer, "addr", "add", "192.0.2.200/24", "dev", "eth0")

	// Listeners that name themselves: the pod's proxy ports and app ports, and a remote server on the peer.
	for name, addr := range map[string]string{
		"proxy-inbound": "[::]:4143", "proxy-outbound": "[::]:4140", "proxy-admin": "[::]:4191",
		"app": "[::]:8080", "app-skipped": "[::]:9000",
	} {
		serveName(t, pod, addr, name)
	}
	serveName(t, peer, "[::]:7000", "remote")
	serveName(t, peer, "[::]:7443", "remote")

	initArgs := []string{"--skip-inbound-ports", "9000", "--skip-outbound-ports", "7443", "--skip-subnets", "192.0.2.128/25"}
	runInit(t, self, pod, initArgs...)

	const appUID, proxyUID = 1000, 2102
	cases := []struct {
		what, from string
		uid        int
		addr, want string
	}{
		{"inbound v4 to an app port is captured", peer, 0, "192.0.2.2:8080", "proxy-inbound"},
		{"inbound v6 to an app port is captured", peer, 0, "[2001:db8::2]:8080", "proxy-inbound"},
		{"inbound to a skip-inbound port reaches the app", peer, 0, "192.0.2.2:9000", "app-skipped"},
		{"inbound to the admin port reaches the proxy admin", peer, 0, "192.0.2.2:4191", "proxy-admin"},
		{"inbound to the proxy inbound port is not redirected", peer, 0, "[2001:db8::2]:4143", "proxy-inbound"},
		{"outbound v4 from the app's UID is captured", pod, appUID, "192.0.2.1:7000", "proxy-outbound"},
		{"outbound v6 from the app's UID is captured", pod, appUID, "[2001:db8::1]:7000", "proxy-outbound"},
		{"outbound from root is captured too", pod, 0, "192.0.2.1:7000", "proxy-outbound"},
		{"outbound from the proxy UID is not captured", pod, proxyUID, "192.0.2.1:7000", "remote"},
		{"outbound v6 from the proxy UID is not captured", pod, proxyUID, "[2001:db8::1]:7000", "remote"},
		{"outbound to a skip-outbound port is not captured", pod, appUID, "192.0.2.1:7443", "remote"},
		{"outbound to a skip subnet is not captured", pod, appUID, "192.0.2.200:7000", "remote"},
		{"outbound to loopback is not captured", pod, appUID, "127.0.0.1:8080", "app"},
		{"outbound to v6 loopback is not captured", pod, appUID, "[::1]:8080", "app"},
	}
	check := func(round string) {
		t.Helper()
		for _, c := range cases {
			if got, err := dialName(c.from, c.uid, c.addr); err != nil || got != c.want {
				t.Errorf("%s: %s (uid %d dials %s): landed on %q (err %v), want %q", round, c.what, c.uid, c.addr, got, err, c.want)
			}
		}
	}
	check("first run")

	// Idempotent: running again replaces the table instead of adding a second copy of the rules.
	runInit(t, self, pod, initArgs...)
	runInit(t, self, pod, initArgs...)
	cfg := capture.DefaultConfig()
	cfg.SkipInboundPorts, _ = capture.ParsePorts("9000")
	cfg.SkipOutboundPorts, _ = capture.ParsePorts("7443")
	cfg.SkipSubnets, _ = capture.ParseSubnets("192.0.2.128/25")
	want := map[string]int{}
	for _, r := range capture.Rules(cfg) {
		want[r.Chain]++
	}
	var got map[string]int
	if err := testutil.InNetns(pod, func() (err error) { got, err = capture.Installed(); return err }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after three runs the table holds %v rules per chain, want %v (one copy)", got, want)
	}
	check("third run")

	// A run with other settings replaces the old rules: port 9000 is no longer skipped.
	runInit(t, self, pod)
	if got, err := dialName(peer, 0, "192.0.2.2:9000"); err != nil || got != "proxy-inbound" {
		t.Fatalf("after re-running without --skip-inbound-ports, port 9000 landed on %q (err %v), want proxy-inbound", got, err)
	}
}

// Without CAP_NET_ADMIN, sinew-init fails with an error that names the capability.
func TestMissingNetAdminIsAClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to start a process under another UID")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// the unprivileged user must be able to execute a copy of this test binary
	dir, err := os.MkdirTemp("", "sinew-init-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "sinew-init")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "SINEW_INIT_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("sinew-init as an unprivileged user succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "CAP_NET_ADMIN") || !strings.Contains(string(out), "NET_ADMIN") {
		t.Fatalf("error does not name the missing capability:\n%s", out)
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func runInit(t *testing.T, self, ns string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, args...)...)
	cmd.Env = append(os.Environ(), "SINEW_INIT_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sinew-init %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	if !strings.Contains(string(out), "redirect to :4143") {
		t.Fatalf("sinew-init did not print the rules it installed:\n%s", out)
	}
}

// serveName listens on addr inside ns and answers every connection with name.
func serveName(t *testing.T, ns, addr, name string) {
	t.Helper()
	var ln net.Listener
	if err := testutil.InNetns(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
}

// dialName connects from ns to addr with a socket owned by uid and returns the name the listener answered with.
// The socket's owner (what nftables' meta skuid matches) is the creating thread's filesystem UID, so the thread
// switches its fsuid around the socket's creation only.
func dialName(ns string, uid int, addr string) (string, error) {
	var c net.Conn
	err := testutil.InNetns(ns, func() error {
		if uid != 0 {
			unix.Setfsuid(uid)
			defer unix.Setfsuid(0)
		}
		var err error
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}
