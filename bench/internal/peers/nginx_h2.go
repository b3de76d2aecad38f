package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// startH2 is the nginx pair for S8. nginx cannot proxy HTTP/2 to an upstream with proxy_pass, so both
// sides use grpc_pass, which carries any HTTP/2 request (h2c GETs too): h2c in on the client side
// (`listen … http2`, prior knowledge), HTTP/2 over mTLS between the pair, h2c to the app.
func (Nginx) startH2(ctx context.Context, env *Env) (*Instance, error) {
	in, err := newInstance(env, "nginx", H2Mesh)
	if err != nil {
		return nil, err
	}
	dir, front := in.dir, in.Addr
	back, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	// pass is grpc:// or grpcs:// to the "next" upstream, whose keep-alive pool holds the connections.
	launch := func(name, listen, upstream, pass, server, location string) (*Proc, error) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(d, "tmp"), 0o777); err != nil {
			return nil, err
		}
		conf := nginxConf(d, listen, upstream, server, location)
		conf = strings.Replace(conf, "      proxy_pass http://next;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n",
			"      grpc_pass "+pass+";\n      grpc_read_timeout 300s; grpc_send_timeout 300s;\n", 1)
		path, err := writeFile(d, "nginx.conf", conf)
		if err != nil {
			return nil, err
		}
		return Launch(dir, name, env.core(), nil, NginxBinary, "-p", d, "-c", path, "-e", filepath.Join(d, "error.log"))
	}
	t := env.TLS
	serverTLS := fmt.Sprintf(`    ssl_certificate %s; ssl_certificate_key %s;
    ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites %s;
    ssl_client_certificate %s; ssl_verify_client on;
    ssl_session_cache shared:SSL:1m;
`, t.ServerCert, t.ServerKey, tls13Suite, t.CA)
	srv, err := launch("nginx-server", back+" ssl http2", env.AppAddr, "grpc://next", serverTLS, "")
	if err != nil {
		return nil, err
	}
	in.Proxies = []*Proc{srv}
	clientTLS := fmt.Sprintf(`      grpc_ssl_certificate %s; grpc_ssl_certificate_key %s;
      grpc_ssl_trusted_certificate %s; grpc_ssl_verify on;
      grpc_ssl_name %s; grpc_ssl_server_name on;
      grpc_ssl_protocols TLSv1.3; grpc_ssl_conf_command Ciphersuites %s;
      grpc_ssl_session_reuse on;
`, t.ClientCert, t.ClientKey, t.CA, ServerName, tls13Suite)
	cli, err := launch("nginx-client", front+" http2", back, "grpcs://next", "", clientTLS)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = []*Proc{cli, srv}
	return ready(ctx, in, cli, srv)
}
