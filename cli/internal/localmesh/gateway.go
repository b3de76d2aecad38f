package localmesh

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/cli/internal/yamledit"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/proxy"
)

// Gateway is a Gateway API Gateway of GatewayClass sinew in the user's resource files: sinew run starts a gateway
// proxy for it, listening on loopback.
type Gateway struct {
	Namespace, Name string
	// Ports are its listeners' ports, each once, in order; HTTPS says which of them terminate TLS.
	Ports []uint16
	HTTPS map[uint16]bool
}

// ResourceName is the name of the gateway's workload and service account (as in Kubernetes).
func (g Gateway) ResourceName() string { return names.GatewayResourceName(g.Name) }

// LocalPort is where a gateway's listener port listens on this machine: a port below 1024, which only root may
// bind, moves to 18000 + the port (80 → 18080, 443 → 18443); others stay.
func LocalPort(p uint16) uint16 {
	if p < 1024 {
		return 18000 + p
	}
	return p
}

// URL is the address of listener port p, as a client reaches it.
func (g Gateway) URL(p uint16) string {
	scheme := "http"
	if g.HTTPS[p] {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(LocalPort(p)))) + "/"
}

// FindGateways reads the Gateways of GatewayClass sinew in files; a Gateway without a namespace is in ns. A
// document that does not parse is left to the control plane's check, which names its file and line. hasClass
// says the files define GatewayClass sinew themselves (otherwise the run adds it).
func FindGateways(files []string, ns string) (out []Gateway, hasClass bool, err error) {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, false, err
		}
		for _, seg := range yamledit.Split(data) {
			doc := seg.Text
			var d struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name, Namespace string
				} `json:"metadata"`
				Spec struct {
					GatewayClassName string `json:"gatewayClassName"`
					Listeners        []struct {
						Port     uint16 `json:"port"`
						Protocol string `json:"protocol"`
					} `json:"listeners"`
				} `json:"spec"`
			}
			if yaml.Unmarshal(doc, &d) != nil || !strings.HasPrefix(d.APIVersion, "gateway.networking.k8s.io/") {
				continue
			}
			if d.Kind == "GatewayClass" && d.Metadata.Name == names.GatewayClass {
				hasClass = true
			}
			if d.Kind != "Gateway" || d.Spec.GatewayClassName != names.GatewayClass || d.Metadata.Name == "" {
				continue
			}
			g := Gateway{Namespace: d.Metadata.Namespace, Name: d.Metadata.Name, HTTPS: map[uint16]bool{}}
			if g.Namespace == "" {
				g.Namespace = ns
			}
			for _, l := range d.Spec.Listeners {
				if l.Port != 0 && !slices.Contains(g.Ports, l.Port) {
					g.Ports = append(g.Ports, l.Port)
					g.HTTPS[l.Port] = l.Protocol == "HTTPS"
				}
			}
			if slices.ContainsFunc(out, func(o Gateway) bool { return o.Namespace == g.Namespace && o.Name == g.Name }) {
				return nil, false, fmt.Errorf("%s: Gateway %s/%s is defined twice", f, g.Namespace, g.Name)
			}
			out = append(out, g)
		}
	}
	return out, hasClass, nil
}

// gatewayResources renders the gateways as Workload documents: each gateway proxy is a workload of its own, with
// the identity of its service account (sinew-gateway-<name>, the one that may watch the Gateway's configuration)
// and the labels a Server selects it by. Unless the user's files define it, GatewayClass sinew comes first, as
// `sinew install` creates it in Kubernetes.
func gatewayResources(gws []Gateway, hasClass bool) []byte {
	var buf bytes.Buffer
	if !hasClass {
		buf.WriteString("---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: " + names.GatewayClass +
			"}\nspec: {controllerName: " + names.GatewayController + "}\n")
	}
	for _, g := range gws {
		var ports []map[string]any
		for _, p := range g.Ports {
			ports = append(ports, map[string]any{"port": p, "protocol": "http"})
		}
		spec := map[string]any{"serviceAccount": g.ResourceName(), "address": "127.0.0.1"}
		if len(ports) > 0 {
			spec["ports"] = ports
		}
		doc := map[string]any{
			"apiVersion": APIVersion, "kind": "Workload",
			"metadata": map[string]any{"name": g.ResourceName(), "namespace": g.Namespace, "labels": map[string]string{
				names.GatewayLabel: g.Name, names.OwnerLabelPrefix + "deployment": g.ResourceName(),
			}, "annotations": map[string]string{
				// A gateway faces clients outside the mesh; a Server on its ports restricts them.
				names.AnnDefaultInboundPolicy: "all-unauthenticated",
			}},
			"spec": spec,
		}
		b, err := yaml.Marshal(doc)
		if err != nil { // plain maps of strings and numbers always marshal
			panic(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes()
}

// gatewayBindings are the addresses the gateways will listen on.
func gatewayBindings(gws []Gateway) []Binding {
	var b []Binding
	for _, g := range gws {
		for _, p := range g.Ports {
			b = append(b, Binding{net.JoinHostPort("127.0.0.1", strconv.Itoa(int(LocalPort(p)))), fmt.Sprintf("gateway %s/%s port %d", g.Namespace, g.Name, p)})
		}
	}
	return b
}

// startGateway starts the gateway proxy of g: gateway mode, listening on loopback (LocalPort).
func (r *runner) startGateway(cp *controlplane.ControlPlane, g Gateway) (*runningProxy, error) {
	cfg := proxy.Defaults()
	cfg.Mode = proxy.ModeGateway
	cfg.Gateway = g.Namespace + "/" + g.Name
	cfg.GatewayHost = "127.0.0.1"
	for _, p := range g.Ports {
		if lp := LocalPort(p); lp != p {
			if cfg.GatewayPortMap == nil {
				cfg.GatewayPortMap = map[uint16]uint16{}
			}
			cfg.GatewayPortMap[p] = lp
		}
	}
	return r.runProxy(cp, g.Namespace, g.ResourceName(), g.ResourceName(), "info", cfg)
}
