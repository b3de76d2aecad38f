package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NginxBinary is Debian's nginx.
var NginxBinary = "/usr/sbin/nginx"

// Nginx is one nginx instance per proxy (one worker, keep-alive upstream pool of 1,024), TLS 1.3 with
// client certificates between the pair.
type Nginx struct{}

func (Nginx) Name() string { return "nginx" }
func (Nginx) Available(*Env) string {
	return binaryMissing("nginx", NginxBinary)
}

// Ciphersuite all OpenSSL-based peers are held to; Go picks the same one on AES-capable CPUs.
const tls13Suite = "TLS_AES_128_GCM_SHA256"

func nginxConf(dir, listen, upstream, server, location string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;\n"
	}
	tmp := filepath.Join(dir, "tmp")
	return fmt.Sprintf(`%sworker_processes 1;
daemon off;
master_process on;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 19000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path %[3]s/body; proxy_temp_path %[3]s/proxy; fastcgi_temp_path %[3]s/fcgi;
  uwsgi_temp_path %[3]s/uwsgi; scgi_temp_path %[3]s/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  upstream next { server %[4]s; keepalive 1024; keepalive_requests 10000000; keepalive_timeout 300s; }
  server {
    listen %[5]s backlog=4096;
%[6]s
    location / {
      proxy_pass %[7]s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
%[8]s    }
  }
}
`, user, dir, tmp, upstream, listen, server, "http://next", location)
}

func (n Nginx) Start(ctx context.Context, env *Env, topo Topology) (*Instance, error) {
	if topo.TCP() {
		return n.startStream(ctx, env, topo)
	}
	if topo == H2Mesh {
		return n.startH2(ctx, env)
	}
	in, err := newInstance(env, "nginx", topo)
	if err != nil {
		return nil, err
	}
	dir, front := in.dir, in.Addr
	launch := func(name, conf string) (*Proc, error) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(d, "tmp"), 0o777); err != nil {
			return nil, err
		}
		path, err := writeFile(d, "nginx.conf", conf)
		if err != nil {
			return nil, err
		}
		return Launch(dir, name, env.core(), nil, NginxBinary, "-p", d, "-c", path, "-e", filepath.Join(d, "error.log"))
	}
	if topo == Hop {
		p, err := launch("nginx", nginxConf(filepath.Join(dir, "nginx"), front, env.AppAddr, "", ""))
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
    ssl_session_cache shared:SSL:1m;
`, t.ServerCert, t.ServerKey, tls13Suite, t.CA)
	srvConf := nginxConf(filepath.Join(dir, "nginx-server"), back+" ssl", env.AppAddr, serverTLS, "")
	srv, err := launch("nginx-server", srvConf)
	if err != nil {
		return nil, err
	}
	in.Proxies = []*Proc{srv}
	clientTLS := fmt.Sprintf(`      proxy_ssl_certificate %s; proxy_ssl_certificate_key %s;
      proxy_ssl_trusted_certificate %s; proxy_ssl_verify on;
      proxy_ssl_name %s; proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3; proxy_ssl_conf_command Ciphersuites %s;
      proxy_ssl_session_reuse on;
`, t.ClientCert, t.ClientKey, t.CA, ServerName, tls13Suite)
	cliListen, cliServer := front, ""
	switch topo {
	case TLSMesh:
		cliListen, cliServer = front+" ssl", serverTLS
	case Edge:
		// An edge: the same certificate, no client certificate asked for.
		cliListen, cliServer = front+" ssl", fmt.Sprintf(`    ssl_certificate %s; ssl_certificate_key %s;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites %s;
    ssl_session_cache shared:SSL:1m;
`, t.ServerCert, t.ServerKey, tls13Suite)
	}
	cliConf := nginxConf(filepath.Join(dir, "nginx-client"), cliListen, back, cliServer, clientTLS)
	cliConf = strings.Replace(cliConf, "proxy_pass http://next;", "proxy_pass https://next;", 1)
	cli, err := launch("nginx-client", cliConf)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = []*Proc{cli, srv}
	return ready(ctx, in, cli, srv)
}
