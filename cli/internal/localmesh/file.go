// Package localmesh runs processes meshed on one machine, without Kubernetes and without root: a local-mode control
// plane, a sinew-proxy beside every process (explicit ports) and the processes themselves as children. It is what
// `sinew run FILE` and `sinew demo` execute. It must not know about any particular application: the demo is just a
// Mesh value built in demo.go.
package localmesh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/names"
)

// APIVersion and Kind identify a run file.
const (
	APIVersion = "sinew.dev/v1alpha1"
	Kind       = "LocalMesh"
)

// Mesh is a run file: which control plane addresses to use, the services, and the workloads to start.
type Mesh struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names the mesh.
type Metadata struct {
	Name string `json:"name"`
}

// Spec is the content of a run file.
type Spec struct {
	// Namespace of every service and workload (default "default").
	Namespace    string       `json:"namespace,omitempty"`
	TrustDomain  string       `json:"trustDomain,omitempty"`
	ControlPlane ControlPlane `json:"controlPlane,omitempty"`
	Services     []Service    `json:"services,omitempty"`
	Workloads    []Workload   `json:"workloads"`
}

// ControlPlane holds the local control plane's listen addresses (loopback defaults).
type ControlPlane struct {
	Identity    string `json:"identity,omitempty"`
	Destination string `json:"destination,omitempty"`
	Policy      string `json:"policy,omitempty"`
	Admin       string `json:"admin,omitempty"`
}

// Service is a load-balanced name for the workloads its selector picks.
type Service struct {
	Name     string            `json:"name"`
	Selector map[string]string `json:"selector"`
	Ports    []ServicePort     `json:"ports"`
}

// ServicePort maps a service port to a workload port.
type ServicePort struct {
	Name        string `json:"name,omitempty"`
	Port        int    `json:"port"`
	TargetPort  int    `json:"targetPort,omitempty"` // default: port
	AppProtocol string `json:"appProtocol,omitempty"`
}

// Workload is one process and its proxy.
type Workload struct {
	Name           string            `json:"name"`
	ServiceAccount string            `json:"serviceAccount,omitempty"` // default: name
	Labels         map[string]string `json:"labels,omitempty"`
	Command        []string          `json:"command"`
	Env            map[string]string `json:"env,omitempty"`
	Dir            string            `json:"dir,omitempty"`
	// Ports the process serves through the mesh.
	Ports []Port `json:"ports,omitempty"`
	// Upstreams are services the process calls: it connects to Listen, its proxy carries the call over mTLS.
	Upstreams []Upstream `json:"upstreams,omitempty"`
	Proxy     Proxy      `json:"proxy"`
}

// Port is a port the workload serves: peers ask for Port, the process listens on App.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     int    `json:"port"`
	App      string `json:"app"`
	Protocol string `json:"protocol,omitempty"` // http (detect, the default) or opaque
}

// Upstream is a local listener of the proxy that stands for a service.
type Upstream struct {
	// Service is "name:port", "name.namespace:port" or a full authority "name.namespace.svc.cluster.local:port".
	Service string `json:"service"`
	Listen  string `json:"listen"`
}

// Proxy holds the workload proxy's own addresses.
type Proxy struct {
	Inbound  string `json:"inbound,omitempty"` // required when the workload has ports
	Admin    string `json:"admin"`
	LogLevel string `json:"logLevel,omitempty"`
}

// Load reads and validates a run file.
func Load(path string) (*Mesh, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads a run file strictly (unknown fields are errors), applies defaults and validates it. Errors name the
// file and the field.
func Parse(name string, data []byte) (*Mesh, error) {
	var m Mesh
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		// sigs.k8s.io/yaml converts to JSON first; its wrapping says nothing useful to a user.
		msg := err.Error()
		for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
			msg = strings.TrimPrefix(msg, p)
		}
		return nil, fmt.Errorf("%s: %s", name, msg)
	}
	m.setDefaults()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// Marshal renders the mesh as a run file.
func (m *Mesh) Marshal() ([]byte, error) { return yaml.Marshal(m) }

func (m *Mesh) setDefaults() {
	s := &m.Spec
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.TrustDomain == "" {
		s.TrustDomain = names.DefaultTrustDomain
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.ControlPlane.Identity, controlplane.DefaultIdentityAddr)
	def(&s.ControlPlane.Destination, controlplane.DefaultDestinationAddr)
	def(&s.ControlPlane.Policy, controlplane.DefaultPolicyAddr)
	def(&s.ControlPlane.Admin, controlplane.DefaultAdminAddr)
	for i := range s.Services {
		for j := range s.Services[i].Ports {
			if p := &s.Services[i].Ports[j]; p.TargetPort == 0 {
				p.TargetPort = p.Port
			}
		}
	}
	for i := range s.Workloads {
		w := &s.Workloads[i]
		def(&w.ServiceAccount, w.Name)
		def(&w.Proxy.LogLevel, "info")
		for j := range w.Ports {
			def(&w.Ports[j].Protocol, "http")
		}
	}
}

// Validate checks the whole file and reports every problem with its field path.
func (m *Mesh) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if m.APIVersion != APIVersion {
		bad("apiVersion", "must be %s, got %q", APIVersion, m.APIVersion)
	}
	if m.Kind != Kind {
		bad("kind", "must be %s, got %q", Kind, m.Kind)
	}
	s := &m.Spec
	if !names.IsDNSLabel(s.Namespace) {
		bad("spec.namespace", "%q must be a DNS label (lower-case letters, digits, '-')", s.Namespace)
	}
	addr := func(path, v string) {
		if v == "" {
			bad(path, "required")
			return
		}
		if _, p, err := net.SplitHostPort(v); err != nil {
			bad(path, "%q: want host:port", v)
		} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			bad(path, "%q: port must be 1-65535", v)
		}
	}
	port := func(path string, p int) {
		if p < 1 || p > 65535 {
			bad(path, "%d: must be 1-65535", p)
		}
	}
	addr("spec.controlPlane.identity", s.ControlPlane.Identity)
	addr("spec.controlPlane.destination", s.ControlPlane.Destination)
	addr("spec.controlPlane.policy", s.ControlPlane.Policy)
	addr("spec.controlPlane.admin", s.ControlPlane.Admin)

	services := map[string]*Service{}
	for i := range s.Services {
		svc := &s.Services[i]
		path := fmt.Sprintf("spec.services[%d]", i)
		if !names.IsDNSLabel(svc.Name) {
			bad(path+".name", "%q must be a DNS label", svc.Name)
		} else if services[svc.Name] != nil {
			bad(path+".name", "%q is declared twice", svc.Name)
		}
		services[svc.Name] = svc
		if len(svc.Selector) == 0 {
			bad(path+".selector", "required (labels of the workloads behind the service)")
		}
		if len(svc.Ports) == 0 {
			bad(path+".ports", "at least one port is required")
		}
		for j, p := range svc.Ports {
			pp := fmt.Sprintf("%s.ports[%d]", path, j)
			port(pp+".port", p.Port)
			port(pp+".targetPort", p.TargetPort)
			if p.AppProtocol != "" && p.AppProtocol != "http" && p.AppProtocol != "opaque" {
				bad(pp+".appProtocol", "%q: must be http or opaque", p.AppProtocol)
			}
		}
	}
	if len(s.Workloads) == 0 {
		bad("spec.workloads", "at least one workload is required")
	}
	workloadNames := map[string]bool{}
	for i := range s.Workloads {
		w := &s.Workloads[i]
		path := fmt.Sprintf("spec.workloads[%d]", i)
		if !names.IsDNSLabel(w.Name) {
			bad(path+".name", "%q must be a DNS label", w.Name)
		} else if workloadNames[w.Name] {
			bad(path+".name", "%q is declared twice", w.Name)
		}
		workloadNames[w.Name] = true
		if !names.IsDNSLabel(w.ServiceAccount) {
			bad(path+".serviceAccount", "%q must be a DNS label", w.ServiceAccount)
		}
		if len(w.Command) == 0 || w.Command[0] == "" {
			bad(path+".command", "required (the program and its arguments)")
		}
		for j, p := range w.Ports {
			pp := fmt.Sprintf("%s.ports[%d]", path, j)
			port(pp+".port", p.Port)
			addr(pp+".app", p.App)
			if p.Protocol != "http" && p.Protocol != "opaque" {
				bad(pp+".protocol", "%q: must be http or opaque", p.Protocol)
			}
		}
		for j, u := range w.Upstreams {
			pp := fmt.Sprintf("%s.upstreams[%d]", path, j)
			addr(pp+".listen", u.Listen)
			host, p, err := net.SplitHostPort(u.Service)
			if err != nil || host == "" {
				bad(pp+".service", "%q: want service:port", u.Service)
				continue
			}
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				bad(pp+".service", "%q: port must be 1-65535", u.Service)
			}
			if !strings.Contains(host, ".") {
				svc := services[host]
				if svc == nil {
					bad(pp+".service", "no service %q in spec.services", host)
				} else if !hasPort(svc, p) {
					bad(pp+".service", "service %q has no port %s", host, p)
				}
			}
		}
		if len(w.Ports) > 0 {
			addr(path+".proxy.inbound", w.Proxy.Inbound)
		}
		addr(path+".proxy.admin", w.Proxy.Admin)
		if !slices.Contains(names.LogLevels, w.Proxy.LogLevel) {
			bad(path+".proxy.logLevel", "%q: must be debug, info, warn or error", w.Proxy.LogLevel)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.checkAddressesUnique()
}

func hasPort(svc *Service, p string) bool {
	for _, sp := range svc.Ports {
		if strconv.Itoa(sp.Port) == p {
			return true
		}
	}
	return false
}

// Binding is one address the mesh listens on, with what it is for.
type Binding struct {
	Addr, Role string
}

// Bindings lists every address the mesh will listen on: the control plane's, the proxies' and the processes'.
func (m *Mesh) Bindings() []Binding {
	s := &m.Spec
	b := []Binding{
		{s.ControlPlane.Identity, "control plane identity"},
		{s.ControlPlane.Destination, "control plane destination"},
		{s.ControlPlane.Policy, "control plane policy"},
		{s.ControlPlane.Admin, "control plane admin"},
	}
	for _, w := range s.Workloads {
		for _, p := range w.Ports {
			b = append(b, Binding{p.App, w.Name + " application port " + strconv.Itoa(p.Port)})
		}
		if len(w.Ports) > 0 {
			b = append(b, Binding{w.Proxy.Inbound, w.Name + " proxy inbound"})
		}
		b = append(b, Binding{w.Proxy.Admin, w.Name + " proxy admin"})
		for _, u := range w.Upstreams {
			b = append(b, Binding{u.Listen, w.Name + " proxy outbound for " + u.Service})
		}
	}
	return b
}

func (m *Mesh) checkAddressesUnique() error {
	seen := map[string]string{}
	var errs []error
	for _, b := range m.Bindings() {
		if prev, ok := seen[b.Addr]; ok {
			errs = append(errs, fmt.Errorf("address %s is used twice: by %s and by %s", b.Addr, prev, b.Role))
			continue
		}
		seen[b.Addr] = b.Role
	}
	return errors.Join(errs...)
}

// Authority expands an upstream's service into the authority the proxy asks discovery for.
func (m *Mesh) Authority(service string) string {
	host, port, _ := net.SplitHostPort(service)
	switch strings.Count(host, ".") {
	case 0:
		host += "." + m.Spec.Namespace + ".svc.cluster.local"
	case 1:
		host += ".svc.cluster.local"
	}
	return net.JoinHostPort(host, port)
}

// Resources renders the services and workloads as the control plane's local-source YAML.
func (m *Mesh) Resources() []byte {
	var buf bytes.Buffer
	ns := m.Spec.Namespace
	write := func(v any) {
		b, err := yaml.Marshal(v)
		if err != nil { // plain maps and slices of strings and numbers always marshal
			panic(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	for _, svc := range m.Spec.Services {
		var ports []map[string]any
		for _, p := range svc.Ports {
			sp := map[string]any{"port": p.Port, "targetPort": p.TargetPort}
			if p.Name != "" {
				sp["name"] = p.Name
			}
			if p.AppProtocol != "" {
				sp["appProtocol"] = p.AppProtocol
			}
			ports = append(ports, sp)
		}
		write(map[string]any{
			"apiVersion": APIVersion, "kind": "Service",
			"metadata": map[string]any{"name": svc.Name, "namespace": ns},
			"spec":     map[string]any{"selector": svc.Selector, "ports": ports},
		})
	}
	for _, w := range m.Spec.Workloads {
		spec := map[string]any{"serviceAccount": w.ServiceAccount, "address": "127.0.0.1"}
		if len(w.Ports) > 0 {
			host, p, _ := net.SplitHostPort(w.Proxy.Inbound)
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				spec["address"] = ip.String()
			}
			n, _ := strconv.Atoi(p)
			spec["meshPort"] = n
			var ports []map[string]any
			for _, wp := range w.Ports {
				port := map[string]any{"port": wp.Port, "protocol": wp.Protocol}
				if wp.Name != "" {
					port["name"] = wp.Name
				}
				ports = append(ports, port)
			}
			spec["ports"] = ports
		}
		meta := map[string]any{"name": w.Name, "namespace": ns}
		if len(w.Labels) > 0 {
			meta["labels"] = w.Labels
		}
		write(map[string]any{"apiVersion": APIVersion, "kind": "Workload", "metadata": meta, "spec": spec})
	}
	return buf.Bytes()
}
