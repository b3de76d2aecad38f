package peers

import (
	"context"
	"fmt"
	"syscall"
)

// HAProxyBinary is Debian's HAProxy.
var HAProxyBinary = "/usr/sbin/haproxy"

// HAProxy is one single-threaded HAProxy per proxy, HTTP mode, server connections pooled
// (http-reuse always), TLS 1.3 with client certificates between the pair; TCP mode for opaque TCP.
type HAProxy struct{}

func (HAProxy) Name() string { return "haproxy" }
func (HAProxy) Available(*Env) string {
	return binaryMissing("haproxy", HAProxyBinary)
}

func haproxyConf(topo Topology, bind, server string) string {
	if topo.TCP() {
		return fmt.Sprintf(`global
  nbthread 1
  maxconn %[4]d
  ssl-default-bind-ciphersuites %[1]s
  ssl-default-server-ciphersuites %[1]s
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  maxconn %[4]d
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend fe
  bind %[2]s
  default_backend be
backend be
  server next %[3]s
`, tls13Suite, bind, server, haproxyMaxConn())
	}
	return fmt.Sprintf(`global
  nbthread 1
  maxconn %[4]d
  ssl-default-bind-ciphersuites %[1]s
  ssl-default-server-ciphersuites %[1]s
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  maxconn %[4]d
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  timeout http-request 10s
  option http-keep-alive
  http-reuse always
frontend fe
  bind %[2]s
  default_backend be
backend be
  server next %[3]s
`, tls13Suite, bind, server, haproxyMaxConn())
}

func (HAProxy) Start(ctx context.Context, env *Env, topo Topology) (*Instance, error) {
	in, err := newInstance(env, "haproxy", topo)
	if err != nil {
		return nil, err
	}
	dir, front := in.dir, in.Addr
	launch := func(name, conf string) (*Proc, error) {
		path, err := writeFile(dir, name+".cfg", conf)
		if err != nil {
			return nil, err
		}
		return Launch(dir, name, env.core(), nil, HAProxyBinary, "-db", "-f", path)
	}
	if !topo.Paired() {
		p, err := launch("haproxy", haproxyConf(topo, front, env.upstream(topo)))
		if err != nil {
			return nil, err
		}
		in.Proxies = []*Proc{p}
		return ready(ctx, in, p)
	}
	back, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	// HTTP/2 end to end for S8: h2c in from the client and out to the app, ALPN h2 between the pair.
	h2c, alpn := "", ""
	if topo == H2Mesh {
		h2c, alpn = " proto h2", " alpn h2"
	}
	t := env.TLS
	srv, err := launch("haproxy-server", haproxyConf(topo,
		fmt.Sprintf("%s ssl crt %s ca-file %s verify required%s", back, t.ServerPEM, t.CA, alpn), env.upstream(topo)+h2c))
	if err != nil {
		return nil, err
	}
	in.Proxies = []*Proc{srv}
	switch topo {
	case TLSMesh:
		front += fmt.Sprintf(" ssl crt %s ca-file %s verify required", t.ServerPEM, t.CA)
	case Edge:
		front += fmt.Sprintf(" ssl crt %s", t.ServerPEM) // an edge: no client certificate asked for
	}
	cli, err := launch("haproxy-client", haproxyConf(topo, front+h2c,
		fmt.Sprintf("%s ssl verify required ca-file %s crt %s sni str(%s) verifyhost %s%s", back, t.CA, t.ClientPEM, ServerName, ServerName, alpn)))
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = []*Proc{cli, srv}
	return ready(ctx, in, cli, srv)
}

// haproxyMaxConn is the largest maxconn HAProxy accepts under the current open-file limit: it reserves
// two descriptors per connection plus a few of its own.
func haproxyMaxConn() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 4000
	}
	n := (int(lim.Cur) - 100) / 2
	if n > 30000 {
		n = 30000
	}
	return n
}
