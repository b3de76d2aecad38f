package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/controlplane/internal/source/svcdefaults"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
)

// APIVersion is the apiVersion of the local-mode kinds. An omitted apiVersion is read as this one.
const APIVersion = "sinew.dev/v1alpha1"

// parsed is what one file contributes to the model.
type parsed struct {
	services  []*model.Service
	workloads []*model.Workload
	// policies are the policy.sinew.dev objects, in document order.
	policies []authzapi.Object
	// httpRoutes and grpcRoutes are the Gateway API routes, in document order.
	httpRoutes []*routesapi.HTTPRoute
	grpcRoutes []*routesapi.GRPCRoute
	// The ingress gateway's objects, in document order.
	gateways        []*gatewayv1.Gateway
	gatewayClasses  []*gatewayv1.GatewayClass
	referenceGrants []*gatewayv1beta1.ReferenceGrant
	secrets         []*model.TLSSecret
	namespaces      []*model.Namespace
	// ignored counts documents of kinds this source does not know (yet).
	ignored []string
	// problems are parts of valid documents that were ignored (a malformed annotation): reported, but the file
	// still loads.
	problems []string
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Annotations: on a Service, its outbound defaults (svcdefaults); on a Workload, its default inbound policy
	// (config.sinew.dev/default-inbound-policy) and its mTLS modes (config.sinew.dev/mtls-mode); others are not
	// read.
	Annotations annotations `json:"annotations,omitempty"`
}

// annotations are string values as in Kubernetes, but a value YAML reads as something else (retry.sinew.dev/limit:
// 3, or a list) is kept as its JSON text rather than failing the whole file: the annotation's own parser then
// accepts it ("3") or reports that one annotation.
type annotations map[string]string

func (a *annotations) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*a = make(annotations, len(raw))
	for k, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			str = string(v)
		}
		(*a)[k] = str
	}
	return nil
}

type workloadDoc struct {
	typeMeta `json:",inline"`
	Metadata objectMeta   `json:"metadata"`
	Spec     workloadSpec `json:"spec"`
}

type workloadSpec struct {
	ServiceAccount string         `json:"serviceAccount,omitempty"`
	Address        string         `json:"address,omitempty"`
	MeshPort       int            `json:"meshPort,omitempty"`
	Ports          []workloadPort `json:"ports,omitempty"`
}

type workloadPort struct {
	Name     string `json:"name,omitempty"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

type serviceDoc struct {
	typeMeta `json:",inline"`
	Metadata objectMeta  `json:"metadata"`
	Spec     serviceSpec `json:"spec"`
}

type serviceSpec struct {
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []servicePort     `json:"ports"`
}

type servicePort struct {
	Name        string     `json:"name,omitempty"`
	Port        int        `json:"port"`
	TargetPort  *intOrName `json:"targetPort,omitempty"`
	AppProtocol string     `json:"appProtocol,omitempty"`
}

// intOrName is a port number or a port name, as Kubernetes' IntOrString.
type intOrName struct {
	num  int
	name string
}

func (p *intOrName) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.Atoi(s); err == nil {
			p.num = n
			return nil
		}
		p.name = s
		return nil
	}
	return json.Unmarshal(b, &p.num)
}

// parseFile reads every document of a file. Any invalid document rejects the whole file, so that the caller can
// keep the file's last good content instead of a half-applied one.
func parseFile(name string, data []byte) (parsed, error) {
	var out parsed
	for i, doc := range splitDocuments(data) {
		where := fmt.Sprintf("%s: document %d", name, i+1)
		if isBlank(doc.text) {
			continue
		}
		var tm typeMeta
		if err := yaml.Unmarshal(doc.text, &tm); err != nil {
			return parsed{}, fmt.Errorf("%s: %s", where, yamlError(err, doc.line))
		}
		if tm.Kind == "" {
			return parsed{}, fmt.Errorf("%s (line %d): kind: required", where, doc.line)
		}
		if _, ok := authzapi.New(tm.Kind); ok {
			obj, err := parsePolicy(tm, doc)
			if err != nil {
				return parsed{}, fmt.Errorf("%s %w", where, err)
			}
			out.policies = append(out.policies, obj)
			continue
		}
		switch tm.Kind {
		case routesapi.KindHTTPRoute:
			rt := &routesapi.HTTPRoute{}
			if err := parseRoute(tm, doc, rt, &rt.ObjectMeta, func() error { return routesapi.Validate(rt) }); err != nil {
				return parsed{}, fmt.Errorf("%s %w", where, err)
			}
			out.httpRoutes = append(out.httpRoutes, rt)
			continue
		case routesapi.KindGRPCRoute:
			rt := &routesapi.GRPCRoute{}
			if err := parseRoute(tm, doc, rt, &rt.ObjectMeta, func() error { return routesapi.ValidateGRPC(rt) }); err != nil {
				return parsed{}, fmt.Errorf("%s %w", where, err)
			}
			out.grpcRoutes = append(out.grpcRoutes, rt)
			continue
		}
		if done, err := parseGatewayKind(tm, doc, &out); done {
			if err != nil {
				return parsed{}, fmt.Errorf("%s %w", where, err)
			}
			continue
		}
		if tm.Kind != "Workload" && tm.Kind != "Service" {
			out.ignored = append(out.ignored, tm.Kind)
			continue
		}
		if tm.APIVersion != "" && tm.APIVersion != APIVersion {
			return parsed{}, fmt.Errorf("%s (%s): apiVersion: must be %s, got %q", where, tm.Kind, APIVersion, tm.APIVersion)
		}
		switch tm.Kind {
		case "Workload":
			var d workloadDoc
			if err := yaml.UnmarshalStrict(doc.text, &d); err != nil {
				return parsed{}, fmt.Errorf("%s (Workload): %s", where, yamlError(err, doc.line))
			}
			w, err := d.toModel()
			if err != nil {
				return parsed{}, fmt.Errorf("%s (%s, line %d): %w", where, strings.TrimSpace("Workload "+d.Metadata.Name), doc.line, err)
			}
			out.workloads = append(out.workloads, w)
		case "Service":
			var d serviceDoc
			if err := yaml.UnmarshalStrict(doc.text, &d); err != nil {
				return parsed{}, fmt.Errorf("%s (Service): %s", where, yamlError(err, doc.line))
			}
			s, err := d.toModel()
			if err != nil {
				return parsed{}, fmt.Errorf("%s (%s, line %d): %w", where, strings.TrimSpace("Service "+d.Metadata.Name), doc.line, err)
			}
			// A bad annotation loses only itself: the Service still serves, without that default.
			var problems []error
			s.Outbound, problems = svcdefaults.Parse(d.Metadata.Annotations)
			for _, p := range problems {
				out.problems = append(out.problems, fmt.Sprintf("%s (Service %s, line %d): metadata.annotations: %v", where, d.Metadata.Name, doc.line, p))
			}
			out.services = append(out.services, s)
		}
	}
	return out, nil
}

// parsePolicy reads one document of a policy.sinew.dev kind. Errors start with the kind, name and the
// document's first line: "(Server web, line 12): spec.port: …".
func parsePolicy(tm typeMeta, doc document) (authzapi.Object, error) {
	obj, _ := authzapi.New(tm.Kind)
	if tm.APIVersion != "" && tm.APIVersion != authzapi.APIVersion {
		return nil, fmt.Errorf("(%s, line %d): apiVersion: must be %s, got %q", tm.Kind, doc.line, authzapi.APIVersion, tm.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc.text, obj); err != nil {
		return nil, fmt.Errorf("(%s, line %d): %s", tm.Kind, doc.line, yamlError(err, doc.line))
	}
	m := obj.ObjectMeta()
	var errs []error
	ns := validateMeta(&objectMeta{Name: m.Name, Namespace: m.Namespace}, &errs)
	m.Namespace = ns
	if err := obj.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s, ok := obj.(*authzapi.Server); ok && s.Spec.PodSelector != nil && s.Spec.WorkloadSelector == nil {
		// Local mode has no pods: its Workloads are what pods are in a cluster, so a podSelector picks them.
		s.Spec.WorkloadSelector, s.Spec.PodSelector = s.Spec.PodSelector, nil
	}
	if err := joinErrors(errs); err != nil {
		return nil, fmt.Errorf("(%s, line %d): %w", strings.TrimSpace(tm.Kind+" "+m.Name), doc.line, err)
	}
	return obj, nil
}

// parseRoute reads one Gateway API route (HTTPRoute, GRPCRoute) into rt, whose metadata is meta, and checks it
// with validate; its apiVersion must be gateway.networking.k8s.io/v1. Errors start like parsePolicy's.
func parseRoute(tm typeMeta, doc document, rt any, meta *metav1.ObjectMeta, validate func() error) error {
	if tm.APIVersion != routesapi.APIVersion {
		return fmt.Errorf("(%s, line %d): apiVersion: must be %s, got %q", tm.Kind, doc.line, routesapi.APIVersion, tm.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc.text, rt); err != nil {
		return fmt.Errorf("(%s, line %d): %s", tm.Kind, doc.line, yamlError(err, doc.line))
	}
	var errs []error
	meta.Namespace = validateMeta(&objectMeta{Name: meta.Name, Namespace: meta.Namespace}, &errs)
	if err := validate(); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("(%s, line %d): %w", strings.TrimSpace(tm.Kind+" "+meta.Name), doc.line, err)
	}
	return nil
}

type document struct {
	text []byte
	line int // 1-based line of the document's first line in the file
}

// splitDocuments splits a YAML stream on "---" separator lines.
func splitDocuments(data []byte) []document {
	var (
		docs  []document
		cur   bytes.Buffer
		start = 1
	)
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, " \t\r\n")
		if bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(trimmed, []byte("--- ")) || bytes.HasPrefix(trimmed, []byte("---\t")) {
			docs = append(docs, document{text: bytes.Clone(cur.Bytes()), line: start})
			cur.Reset()
			start = i + 2
			continue
		}
		cur.Write(l)
	}
	docs = append(docs, document{text: cur.Bytes(), line: start})
	// A stream that starts with "---" has an empty first document; drop it so numbering matches what people see.
	if len(docs) > 1 && isBlank(docs[0].text) {
		docs = docs[1:]
	}
	return docs
}

func isBlank(b []byte) bool {
	for l := range bytes.Lines(b) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError strips the library's layering from a decoding error and turns document-relative line numbers into
// file line numbers.
func yamlError(err error, docLine int) string {
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return "line " + strconv.Itoa(n+docLine-1)
	})
}

func (d *workloadDoc) toModel() (*model.Workload, error) {
	var errs []error
	ns := validateMeta(&d.Metadata, &errs)
	w := &model.Workload{
		Kind: model.KindWorkload,
		// Local proxies run in explicit mode: nothing captures traffic to the application's ports.
		ExplicitInbound: true,
		Namespace:       ns,
		Name:            d.Metadata.Name,
		Labels:          d.Metadata.Labels,
		ServiceAccount:  d.Spec.ServiceAccount,
	}
	if v, ok := d.Metadata.Annotations[names.AnnDefaultInboundPolicy]; ok {
		// A file with a misspelt policy is refused rather than loaded with a more open default.
		if !slices.Contains(names.InboundPolicies, v) {
			errs = append(errs, fmt.Errorf("metadata.annotations: %s: must be one of %s, got %q", names.AnnDefaultInboundPolicy,
				strings.Join(names.InboundPolicies, ", "), v))
		}
		w.DefaultInboundPolicy = v
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	} else if err := names.CheckDNSLabel(w.ServiceAccount); err != nil {
		errs = append(errs, fmt.Errorf("spec.serviceAccount: %s", err))
	}
	addr := d.Spec.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	if a, err := netip.ParseAddr(addr); err != nil || a.Zone() != "" {
		errs = append(errs, fmt.Errorf("spec.address: must be an IP address, got %q", d.Spec.Address))
	} else {
		w.Address = a.Unmap()
	}
	if d.Spec.MeshPort < 0 || d.Spec.MeshPort > 65535 {
		errs = append(errs, errors.New("spec.meshPort: must be 0-65535 (0: not meshed)"))
	} else {
		w.MeshPort = uint16(d.Spec.MeshPort)
	}
	portNames := map[string]bool{}
	numbers := map[int]bool{}
	for i, p := range d.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		wp := model.WorkloadPort{Name: p.Name, Protocol: model.ProtocolHTTP}
		if p.Port < 1 || p.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s.port: must be 1-65535", field))
		} else if numbers[p.Port] {
			errs = append(errs, fmt.Errorf("%s.port: %d declared twice", field, p.Port))
		} else if w.MeshPort != 0 && p.Port == int(w.MeshPort) {
			errs = append(errs, fmt.Errorf("%s.port: %d is also spec.meshPort", field, p.Port))
		} else {
			numbers[p.Port] = true
			wp.Port = uint16(p.Port)
		}
		checkPortName(field, p.Name, portNames, &errs)
		switch p.Protocol {
		case "", "http":
		case "opaque":
			wp.Protocol = model.ProtocolOpaque
		default:
			errs = append(errs, fmt.Errorf("%s.protocol: must be http or opaque, got %q", field, p.Protocol))
		}
		w.Ports = append(w.Ports, wp)
	}
	if v, ok := d.Metadata.Annotations[names.AnnMTLSMode]; ok {
		w.MTLSModes = parseMTLSModes(v, w, &errs)
	}
	return w, joinErrors(errs)
}

// parseMTLSModes reads a Workload's config.sinew.dev/mtls-mode. Any problem refuses the file, so that its last
// good content stays (a typo never weakens a STRICT port), unlike Kubernetes mode where a pod cannot be refused.
// A local proxy takes plaintext clients for its first port only (they all arrive at its one inbound address), so
// DISABLE on another declared port is refused too: meshed clients could not reach it in plaintext.
func parseMTLSModes(v string, w *model.Workload, errs *[]error) authzapi.PortMTLSModes {
	field := "metadata.annotations: " + names.AnnMTLSMode + ": "
	byName := func(name string) (uint16, bool) {
		wp, ok := w.PortByName(name)
		return wp.Port, ok
	}
	modes, perrs := authzapi.ParseMTLSAnnotation(v, byName)
	for _, err := range perrs {
		*errs = append(*errs, errors.New(field+err.Error()))
	}
	for i, wp := range w.Ports {
		if i > 0 && wp.Port != 0 && modes.For(wp.Port) == authzapi.MTLSDisable {
			*errs = append(*errs, fmt.Errorf("%sDISABLE for port %d: in local mode only the Workload's first port (%d) can be DISABLE, since its proxy takes plaintext clients for that port alone",
				field, wp.Port, w.Ports[0].Port))
		}
	}
	for _, r := range modes.Ports {
		declared := false
		for _, wp := range w.Ports {
			declared = declared || (r.First <= wp.Port && wp.Port <= r.Last)
		}
		if !declared {
			*errs = append(*errs, fmt.Errorf("%s%s: no port of the Workload is there (spec.ports)", field, ports.Range{From: r.First, To: r.Last}))
		}
	}
	return modes
}

func (d *serviceDoc) toModel() (*model.Service, error) {
	var errs []error
	ns := validateMeta(&d.Metadata, &errs)
	s := &model.Service{Namespace: ns, Name: d.Metadata.Name, Selector: d.Spec.Selector}
	if len(d.Spec.Ports) == 0 {
		errs = append(errs, errors.New("spec.ports: at least one port is required"))
	}
	numbers := map[int]bool{}
	portNames := map[string]bool{}
	for i, p := range d.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		sp := model.ServicePort{Name: p.Name}
		if p.Port < 1 || p.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s.port: must be 1-65535", field))
		} else if numbers[p.Port] {
			errs = append(errs, fmt.Errorf("%s.port: %d declared twice", field, p.Port))
		} else {
			numbers[p.Port] = true
			sp.Port = uint16(p.Port)
		}
		checkPortName(field, p.Name, portNames, &errs)
		switch {
		case p.TargetPort == nil:
			sp.TargetPort.Number = sp.Port
		case p.TargetPort.name != "":
			if err := names.CheckDNSLabel(p.TargetPort.name); err != nil {
				errs = append(errs, fmt.Errorf("%s.targetPort: must be a port number or a port name: %v", field, err))
			}
			sp.TargetPort.Name = p.TargetPort.name
		case p.TargetPort.num < 1 || p.TargetPort.num > 65535:
			errs = append(errs, fmt.Errorf("%s.targetPort: must be 1-65535 or a port name", field))
		default:
			sp.TargetPort.Number = uint16(p.TargetPort.num)
		}
		switch p.AppProtocol {
		case "":
		case "http":
			sp.AppProtocol = model.ProtocolHTTP
		case "opaque":
			sp.AppProtocol = model.ProtocolOpaque
		default:
			errs = append(errs, fmt.Errorf("%s.appProtocol: must be http or opaque, got %q", field, p.AppProtocol))
		}
		s.Ports = append(s.Ports, sp)
	}
	return s, joinErrors(errs)
}

func validateMeta(m *objectMeta, errs *[]error) string {
	if m.Name == "" {
		*errs = append(*errs, errors.New("metadata.name: required"))
	} else if err := names.CheckDNSLabel(m.Name); err != nil {
		*errs = append(*errs, fmt.Errorf("metadata.name: %s", err))
	}
	ns := m.Namespace
	if ns == "" {
		ns = "default"
	} else if err := names.CheckDNSLabel(ns); err != nil {
		*errs = append(*errs, fmt.Errorf("metadata.namespace: %s", err))
	}
	return ns
}

// joinErrors joins field errors on one line, so that a log line names them all.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// checkPortName validates an optional port name and that it is unique among seen.
func checkPortName(field, name string, seen map[string]bool, errs *[]error) {
	if name == "" {
		return
	}
	if err := names.CheckDNSLabel(name); err != nil {
		*errs = append(*errs, fmt.Errorf("%s.name: %v", field, err))
	} else if seen[name] {
		*errs = append(*errs, fmt.Errorf("%s.name: %q declared twice", field, name))
	}
	seen[name] = true
}
