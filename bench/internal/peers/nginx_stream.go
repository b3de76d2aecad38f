package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// NginxStreamModule is Debian's dynamic stream module (package libnginx-mod-stream), needed for opaque TCP.
var NginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

func nginxStreamConf(dir, listen, upstream, server, proxy string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;\n"
	}
	return fmt.Sprintf(`%sload_module %s;
worker_processes 1;
daemon off;
master_process on;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;
events { worker_connections 19000; multi_accept on; }
stream {
  server {
    listen %[4]s backlog=4096;
    tcp_nodelay on;
%[6]s    proxy_pass %[5]s;
%[7]s  }
}
`, user, NginxStreamModule, dir, listen, upstream, server, proxy)
}

// startStream is nginx in stream mode: one instance (TCPHop) or a pair with mTLS between (TCPMesh).
func (Nginx) startStream(ctx context.Context, env *Env, topo Topology) (*Instance, error) {
	if _, err := os.Stat(NginxStreamModule); err != nil {
		return nil, fmt.Errorf("nginx stream module not installed (%s, package libnginx-mod-stream): %w", NginxStreamModule, ErrUnsupported)
	}
	in, err := newInstance(env, "nginx", topo)
	if err != nil {
		return nil, err
	}
	dir, front := in.dir, in.Addr
	launch := func(name string, conf func(d string) string) (*Proc, error) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o777); err != nil {
			return nil, err
		}
		path, err := writeFile(d, "nginx.conf", conf(d))
		if err != nil {
			return nil, err
		}
		return Launch(dir, name, env.core(), nil, NginxBinary, "-p", d, "-c", path, "-e", filepath.Join(d, "error.log"))
	}
	if topo == TCPHop {
		p, err := launch("nginx", func(d string) string { return nginxStreamConf(d, front, env.EchoAddr, "", "") })
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
	t := env.TLS
	serverTLS := fmt.Sprintf(`    ssl_certificate %s; ssl_certificate_key %s;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites %s;
    ssl_client_certificate %s; ssl_verify_client on;
`, t.ServerCert, t.ServerKey, tls13Suite, t.CA)
	srv, err := launch("nginx-server", func(d string) string {
		return nginxStreamConf(d, back+" ssl", env.EchoAddr, serverTLS, "")
	})
	if err != nil {
		return nil, err
	}
	in.Proxies = []*Proc{srv}
	clientTLS := fmt.Sprintf(`    proxy_ssl on;
    proxy_ssl_certificate %s; proxy_ssl_certificate_key %s;
    proxy_ssl_trusted_certificate %s; proxy_ssl_verify on;
    proxy_ssl_name %s; proxy_ssl_server_name on;
    proxy_ssl_protocols TLSv1.3; proxy_ssl_conf_command Ciphersuites %s;
`, t.ClientCert, t.ClientKey, t.CA, ServerName, tls13Suite)
	cli, err := launch("nginx-client", func(d string) string { return nginxStreamConf(d, front, back, "", clientTLS) })
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = []*Proc{cli, srv}
	return ready(ctx, in, cli, srv)
}
