package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	"github.com/sinewmesh/sinew/internal/names"
)

func newDiagnosticsCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diagnostics",
		Short: "Show what a proxy received from the control plane, for debugging the mesh",
		Long: `Diagnostics commands print what the mesh computed, as the components hold it, so that a surprise can be
traced to the policy that caused it. They read a proxy's admin endpoint (/debug/config): in a running local
mesh (sinew demo, sinew run) by workload name, else in Kubernetes through the API server's proxy to the pod's
admin port (` + strconv.Itoa(names.ProxyAdminPort) + `), or at --admin-addr.`,
	}
	cmd.AddCommand(newDiagnosticsPolicyCmd(env))
	return cmd
}

func newDiagnosticsPolicyCmd(env *Env) *cobra.Command {
	var (
		namespace, adminAddr string
		outbound             bool
	)
	cmd := &cobra.Command{
		Use:   "policy [--outbound] POD PORT|TARGET",
		Short: "Print, as JSON, the authorization policy a proxy applies to an inbound port (or its outbound policy for a target)",
		Long: `Policy prints what POD's proxy received from the policy service for its inbound PORT: the Server that
governs it (srvKind, srvName: a Server, or "default" and the default policy's name), its protocol, whether
plaintext is refused (mtlsStrict), the authorizations that admit clients, and the probe paths admitted anyway.
With --outbound it prints the proxy's outbound policy (routes, retries, timeouts) for TARGET (host:port, or a
service name that the target starts with).

A proxy asks the policy service about a port (or target) when it first needs it; one it has not been asked about
is not known yet: send it a request, then run this again. POD is a pod name in Kubernetes and a workload name in
a local mesh.`,
		Example: `  sinew diagnostics policy -n emojivoto web 8080                 # local demo: web's http port
  sinew diagnostics policy -n emojivoto web-5f7c9d-x2x7z 8080     # Kubernetes: a pod of web
  sinew diagnostics policy --outbound -n emojivoto web voting-svc:8080`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod := strings.TrimPrefix(strings.TrimPrefix(args[0], "pod/"), "pods/")
			var port int
			if !outbound {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 || n > 65535 {
					return fmt.Errorf("PORT %q: want a port number (1-65535); for a target, use --outbound", args[1])
				}
				port = n
			}
			cfg, where, err := proxyDebugConfig(cmd.Context(), env, namespace, pod, adminAddr)
			if err != nil {
				return err
			}
			var out []byte
			if outbound {
				out, err = outboundPolicy(cfg, args[1])
			} else {
				out, err = inboundPolicy(cfg, port)
			}
			if err != nil {
				return fmt.Errorf("the proxy of %s (%s) %w", pod, where, err)
			}
			_, err = env.Stdout.Write(append(out, '\n'))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of POD (Kubernetes default: default; local: any running mesh's)")
	f.BoolVar(&outbound, "outbound", false, "print the outbound policy for TARGET instead of an inbound port's")
	f.StringVar(&adminAddr, "admin-addr", "", "read the proxy's admin server at this host:port instead of finding POD")
	return cmd
}

// proxyDebugConfig reads the /debug/config of POD's proxy: at adminAddr if set, else in a running local mesh,
// else through the Kubernetes API server. where says how it was reached.
func proxyDebugConfig(ctx context.Context, env *Env, namespace, pod, adminAddr string) (cfg []byte, where string, err error) {
	if adminAddr != "" {
		b, err := getAdmin(ctx, adminAddr)
		return b, "admin " + adminAddr, err
	}
	var localErr error
	if dir := localmesh.StateDir(env.Lookup); dir != "" {
		admin, mesh, err := localmesh.FindWorkload(dir, namespace, pod)
		if err == nil {
			b, err := getAdmin(ctx, admin)
			return b, "local mesh " + mesh.Name + ", admin " + admin, err
		}
		localErr = err
	}
	if namespace == "" {
		namespace = "default"
	}
	b, err := kubeDebugConfig(ctx, env, namespace, pod)
	if err != nil {
		if localErr != nil {
			return nil, "", fmt.Errorf("%w, and in Kubernetes: %w", localErr, err)
		}
		return nil, "", err
	}
	return b, "pod " + namespace + "/" + pod, nil
}

func getAdmin(ctx context.Context, addr string) ([]byte, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("admin address %q: want host:port", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/config", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's /debug/config: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's /debug/config: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the proxy's /debug/config at %s answered %s", addr, resp.Status)
	}
	return b, nil
}

// kubeDebugConfig reads a pod's proxy /debug/config through the API server's proxy to the pod's admin port, as
// `kubectl get --raw /api/v1/namespaces/NS/pods/POD:4191/proxy/debug/config` does: one request, no port-forward.
func kubeDebugConfig(ctx context.Context, env *Env, namespace, pod string) ([]byte, error) {
	cl, err := env.KubeClients()
	if err != nil {
		return nil, err
	}
	p, err := cl.Kube.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no pod %s in namespace %s", pod, namespace)
	}
	if err != nil {
		return nil, err
	}
	if !check.HasProxy(p) {
		return nil, fmt.Errorf("pod %s/%s has no %s container: it is not meshed", namespace, pod, names.ProxyContainer)
	}
	b, err := cl.Kube.CoreV1().Pods(namespace).ProxyGet("http", pod, strconv.Itoa(names.ProxyAdminPort), "/debug/config", nil).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s's proxy /debug/config through the API server: %w", namespace, pod, err)
	}
	return b, nil
}

// debugConfig is the part of a proxy's /debug/config the policy diagnostics read; entries stay raw so that every
// field the proxy reports is printed.
type debugConfig struct {
	Inbound  *[]json.RawMessage `json:"inboundPolicies"`
	Outbound *[]json.RawMessage `json:"outboundPolicies"`
}

// inboundPolicy picks port's entry of a /debug/config, indented. The error completes "the proxy of POD …".
func inboundPolicy(cfg []byte, port int) ([]byte, error) {
	var dc debugConfig
	if err := json.Unmarshal(cfg, &dc); err != nil {
		return nil, fmt.Errorf("answered something that is not its /debug/config: %w", err)
	}
	if dc.Inbound == nil {
		return nil, errors.New("reports no inbound policies: it predates inbound authorization policy; upgrade it")
	}
	var known []int
	for _, raw := range *dc.Inbound {
		var e struct {
			Port   int             `json:"port"`
			Server json.RawMessage `json:"server"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("reports an inbound policy that cannot be read: %w", err)
		}
		if e.Port != port {
			known = append(known, e.Port)
			continue
		}
		if len(e.Server) == 0 || string(e.Server) == "null" {
			return nil, fmt.Errorf("has asked the policy service about port %d but has no answer yet, so it admits nobody on it: "+
				"is the control plane up? (sinew check; in a local mesh, its control-plane log)", port)
		}
		return indent(raw)
	}
	return nil, fmt.Errorf("has not been asked about port %d yet (ports it has policy for: %s). A proxy asks the policy "+
		"service about a port when the port first gets a connection: send it a request on port %d, then run this again",
		port, portList(known), port)
}

// outboundPolicy picks target's entry of a /debug/config: the exact target, else the one whose host starts with
// target's host (a service name, "web-svc" or "web-svc.emojivoto"), on target's port if it has one.
func outboundPolicy(cfg []byte, target string) ([]byte, error) {
	var dc debugConfig
	if err := json.Unmarshal(cfg, &dc); err != nil {
		return nil, fmt.Errorf("answered something that is not its /debug/config: %w", err)
	}
	if dc.Outbound == nil {
		return nil, errors.New("reports no outbound policies: it predates outbound policy; upgrade it")
	}
	wantHost, wantPort, err := net.SplitHostPort(target)
	if err != nil {
		wantHost, wantPort = target, ""
	}
	var known []string
	var matches []json.RawMessage
	var matched []string
	for _, raw := range *dc.Outbound {
		var e struct {
			Target string `json:"target"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("reports an outbound policy that cannot be read: %w", err)
		}
		known = append(known, e.Target)
		if e.Target == target {
			return indent(raw)
		}
		host, port, err := net.SplitHostPort(e.Target)
		if err != nil {
			host, port = e.Target, ""
		}
		if (host == wantHost || strings.HasPrefix(host, wantHost+".")) && (wantPort == "" || port == wantPort) {
			matches = append(matches, raw)
			matched = append(matched, e.Target)
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("has no outbound policy for %s yet (targets it has policy for: %s). A proxy asks the policy "+
			"service about a target when it first sends a request to it: send one through the proxy, then run this again",
			target, listOrNone(known))
	case 1:
		return indent(matches[0])
	default:
		return nil, fmt.Errorf("has several targets that %s could mean: %s; give one exactly", target, strings.Join(matched, ", "))
	}
}

func indent(raw json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func portList(ports []int) string {
	slices.Sort(ports)
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return listOrNone(s)
}
