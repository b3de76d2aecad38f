package peers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/h2load"
	"github.com/sinewmesh/sinew/bench/internal/procstat"
)

// Proc is one child process started by the harness. Stop ends it (and any descendants it left) by PID.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// PID is the process ID (taskset execs the target, so this is the proxy itself).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Log is the path of the file that holds the process's stdout and stderr.
func (p *Proc) Log() string { return p.log }

// Exited reports whether the process has already ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Launch starts argv pinned to core (when core >= 0 and taskset exists), with output in dir/<name>.log.
func Launch(dir, name string, core int, env []string, argv ...string) (*Proc, error) {
	if core >= 0 {
		if ts, err := exec.LookPath("taskset"); err == nil {
			argv = append([]string{ts, "-c", strconv.Itoa(core)}, argv...)
		}
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	// Own process group so a terminal ^C reaches the harness first; die with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILLs the process and every descendant it had.
func (p *Proc) Stop() {
	if p == nil || p.Exited() {
		return
	}
	kids := procstat.Descendants(p.PID())
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for _, k := range kids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", k)); err == nil {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
}

// Tail returns the last n bytes of the process log, for error messages.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// WaitHTTP polls http://addr+path (with Host header host) until it answers 200, the process exits or the
// deadline passes.
func WaitHTTP(ctx context.Context, addr, host, path string, timeout time.Duration, procs ...*Proc) error {
	return waitHTTP(ctx, addr, host, path, "", nil, timeout, procs...)
}

// waitHTTP is WaitHTTP, over TLS when tcfg is set, with the Authorization header authorization when set.
func waitHTTP(ctx context.Context, addr, host, path, authorization string, tcfg *tls.Config, timeout time.Duration, procs ...*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tcfg}}
	scheme := "http://"
	if tcfg != nil {
		scheme = "https://"
	}
	var last error // set by every attempt before the deadline can be seen
	for {
		for _, p := range procs {
			if p.Exited() {
				return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(2000))
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+path, nil)
		if host != "" {
			req.Host = host
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s%s: %w (last: %v)", addr, path, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitEcho dials addr until a short message comes back unchanged (a TCP echo through the instance), the
// process exits or the deadline passes.
func WaitEcho(ctx context.Context, addr string, timeout time.Duration, procs ...*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		for _, p := range procs {
			if p.Exited() {
				return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(2000))
			}
		}
		if last = echoOnce(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for an echo from %s: %w (last: %v)", addr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func echoOnce(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	msg := []byte("sinew-bench")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return fmt.Errorf("echo returned %q", got)
	}
	return nil
}

// WaitH2 polls with h2c GETs (Host header host, and the Authorization header authorization when set) until one
// answers 200 over HTTP/2, the process exits or the deadline passes.
func WaitH2(ctx context.Context, addr, host, authorization string, timeout time.Duration, procs ...*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := h2load.NewClient(addr, host, authorization, 16, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	var last error
	for {
		for _, p := range procs {
			if p.Exited() {
				return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(2000))
			}
		}
		actx, acancel := context.WithTimeout(ctx, time.Second)
		ok, err := c.Get(actx)
		acancel()
		if ok && err == nil {
			return nil
		}
		if last = err; last == nil {
			last = errors.New("not a 200 over HTTP/2")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for an h2c 200 from %s: %w (last: %v)", addr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
