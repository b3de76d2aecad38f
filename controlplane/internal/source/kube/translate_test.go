package kube

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/names"
)

func ptr[T any](v T) *T { return &v }

func ns(name string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}

// pod is a running pod with an app container; mutate adds the rest.
func pod(namespace, name, ip string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{
			Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func withSidecar(p *corev1.Pod) {
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: names.ProxyContainer,
		Ports: []corev1.ContainerPort{{Name: names.ProxyInboundPortName, ContainerPort: 4143}, {Name: "sinew-admin", ContainerPort: 4191}}})
}

func withNativeSidecar(port int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers,
			corev1.Container{Name: "sinew-init"},
			corev1.Container{Name: names.ProxyContainer, RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
				Ports: []corev1.ContainerPort{{Name: names.ProxyInboundPortName, ContainerPort: port}}})
	}
}

func annotate(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func rng(a, b uint16) model.PortRange { return model.PortRange{First: a, Last: b} }

func TestTranslatePod(t *testing.T) {
	t.Parallel()
	plainNS := ns("emojivoto", nil)
	for name, tc := range map[string]struct {
		pod      *corev1.Pod
		ns       *corev1.Namespace
		want     *model.Workload // nil: not a workload
		problems string
	}{
		"meshed sidecar": {
			pod: pod("emojivoto", "web-1", "10.0.0.1", withSidecar), ns: plainNS,
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "web-1", Labels: map[string]string{"app": "web-1"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143, UndeclaredPorts: true, OpaquePorts: DefaultOpaquePorts,
				ProxyPorts: []uint16{4143, 4191}, Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
		},
		"native sidecar with its own port, no namespace object": {
			pod: pod("emojivoto", "web-2", "fd00::2", withNativeSidecar(5143)),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "web-2", Labels: map[string]string{"app": "web-2"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("fd00::2"), MeshPort: 5143, UndeclaredPorts: true, OpaquePorts: DefaultOpaquePorts,
				ProxyPorts: []uint16{5143}, Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
		},
		"unmeshed, default service account, UDP and a plain init container ignored, host network": {
			pod: pod("emojivoto", "dns", "192.168.1.5", func(p *corev1.Pod) {
				p.Spec.ServiceAccountName = ""
				p.Spec.HostNetwork = true
				p.Spec.InitContainers = []corev1.Container{{Name: names.ProxyContainer}} // not restartable: not a sidecar
				p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
					corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
					corev1.ContainerPort{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP})
			}),
			ns: plainNS,
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "dns", Labels: map[string]string{"app": "dns"}, ServiceAccount: "default",
				Address: netip.MustParseAddr("192.168.1.5"), OpaquePorts: DefaultOpaquePorts,
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}, {Name: "dns-tcp", Port: 53, Protocol: model.ProtocolHTTP}}},
		},
		"pod annotation by name and range replaces the defaults": {
			pod: pod("emojivoto", "db", "10.0.0.3", annotate(names.AnnOpaquePorts, "http, 9000-9010")), ns: ns("emojivoto", map[string]string{names.AnnOpaquePorts: "1234"}),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "db", Labels: map[string]string{"app": "db"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.3"), UndeclaredPorts: true, OpaquePorts: []model.PortRange{rng(8080, 8080), rng(9000, 9010)},
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolOpaque}}},
		},
		"namespace annotation": {
			pod: pod("emojivoto", "db", "10.0.0.3"), ns: ns("emojivoto", map[string]string{names.AnnOpaquePorts: "8080"}),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "db", Labels: map[string]string{"app": "db"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.3"), UndeclaredPorts: true, OpaquePorts: []model.PortRange{rng(8080, 8080)},
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolOpaque}}},
		},
		"empty annotation: nothing opaque": {
			pod: pod("emojivoto", "db", "10.0.0.3", annotate(names.AnnOpaquePorts, "")), ns: plainNS,
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "db", Labels: map[string]string{"app": "db"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.3"), UndeclaredPorts: true,
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
		},
		"bad pod annotation: reported, namespace applies": {
			pod: pod("emojivoto", "db", "10.0.0.3", annotate(names.AnnOpaquePorts, "mysql,70000")), ns: ns("emojivoto", map[string]string{names.AnnOpaquePorts: "1234"}),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "db", Labels: map[string]string{"app": "db"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.3"), UndeclaredPorts: true, OpaquePorts: []model.PortRange{rng(1234, 1234)},
				Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}},
			problems: `annotation config.sinew.dev/opaque-ports: "mysql": no port by that name`,
		},
		"probes by number and by name, the proxy's own left out; default inbound policy from the pod": {
			pod: pod("emojivoto", "web-3", "10.0.0.4", withSidecar, annotate(names.AnnDefaultInboundPolicy, "deny"), func(p *corev1.Pod) {
				c := &p.Spec.Containers[0]
				c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/live?verbose=1", Port: intstr.FromString("http")}}}
				c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "ready", Port: intstr.FromInt32(9090)}}}
				c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}
				p.Spec.Containers[1].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(4191)}}}
			}),
			ns: ns("emojivoto", map[string]string{names.AnnDefaultInboundPolicy: "all-authenticated"}),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "web-3", Labels: map[string]string{"app": "web-3"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.4"), MeshPort: 4143, UndeclaredPorts: true, OpaquePorts: DefaultOpaquePorts,
				ProxyPorts: []uint16{4143, 4191}, Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}},
				DefaultInboundPolicy: "deny", Probes: []model.Probe{{Port: 8080, Path: "/live"}, {Port: 9090, Path: "/ready"}}},
		},
		"default inbound policy: a bad pod annotation is reported, the namespace's applies": {
			pod: pod("emojivoto", "db", "10.0.0.3", annotate(names.AnnDefaultInboundPolicy, "allow")),
			ns:  ns("emojivoto", map[string]string{names.AnnDefaultInboundPolicy: "cluster-authenticated"}),
			want: &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "db", Labels: map[string]string{"app": "db"}, ServiceAccount: "web",
				Address: netip.MustParseAddr("10.0.0.3"), UndeclaredPorts: true, OpaquePorts: DefaultOpaquePorts,
				Ports:                []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}},
				DefaultInboundPolicy: "cluster-authenticated"},
			problems: `annotation config.sinew.dev/default-inbound-policy: "allow" is not one of`,
		},
		"pending without an IP": {pod: pod("emojivoto", "new", "", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })},
		"finished":              {pod: pod("emojivoto", "job", "10.0.0.9", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })},
		"garbage IP":            {pod: pod("emojivoto", "odd", "10.0.0"), problems: `status.podIP "10.0.0"`},
	} {
		got, problems := TranslatePod(tc.pod, tc.ns, DefaultOpaquePorts)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, tc.want)
		}
		if joined := strings.Join(problems, "; "); (tc.problems == "") != (joined == "") || !strings.Contains(joined, tc.problems) {
			t.Errorf("%s: problems %q, want %q", name, joined, tc.problems)
		}
	}
}

func service(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "emojivoto", Name: "web-svc"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20", "fd00:96::20"},
			Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "admin", Port: 9990, TargetPort: intstr.FromInt32(9991), AppProtocol: ptr("kubernetes.io/h2c")},
				{Name: "db", Port: 3306},
				{Name: "custom", Port: 7000, AppProtocol: ptr("sinew.dev/opaque")},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func slice(name string, addressType discoveryv1.AddressType, ports map[string]int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "emojivoto", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "web-svc"}},
		AddressType: addressType, Endpoints: eps,
	}
	for n, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr(n), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)})
	}
	return es
}

func endpoint(ip, podName string, ready *bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	if podName != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "emojivoto", Name: podName}
	}
	return ep
}

func TestTranslateService(t *testing.T) {
	t.Parallel()
	ready, notReady := ptr(true), ptr(false)
	withZone := endpoint("10.0.0.1", "web-1", ready)
	withZone.Zone = ptr("zone-a")
	slices := []*discoveryv1.EndpointSlice{
		// The named target port "http" is 8080 on these pods...
		slice("web-svc-a", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080, "admin": 9991},
			withZone,
			endpoint("10.0.0.2", "web-2", nil), // unknown readiness counts as ready
			endpoint("10.0.0.3", "web-3", notReady),
		),
		// ...and 9090 on a pod of another version; the same web-1 endpoint repeated in a second slice counts once.
		slice("web-svc-b", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 9090},
			endpoint("10.0.0.4", "web-4", ready),
		),
		slice("web-svc-c", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080, "admin": 9991, "nosuchport": 1},
			endpoint("10.0.0.1", "web-1", ready),
			endpoint("192.0.2.1", "", ready), // an address without a pod
		),
		slice("web-svc-fqdn", discoveryv1.AddressTypeFQDN, map[string]int32{"http": 80}, endpoint("example.com", "", ready)),
	}
	got, problems := TranslateService(service(), slices, ns("emojivoto", nil), DefaultOpaquePorts)
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	want := &model.Service{
		Namespace: "emojivoto", Name: "web-svc", Selector: map[string]string{"app": "web"},
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.20"), netip.MustParseAddr("fd00:96::20")}, ExplicitEndpoints: true,
		Ports: []model.ServicePort{
			{Name: "http", Port: 80, TargetPort: model.TargetPort{Name: "http"}, AppProtocol: model.ProtocolHTTP},
			{Name: "admin", Port: 9990, TargetPort: model.TargetPort{Number: 9991}, AppProtocol: model.ProtocolHTTP},
			{Name: "db", Port: 3306, TargetPort: model.TargetPort{Number: 3306}, AppProtocol: model.ProtocolOpaque}, // a default opaque port
			{Name: "custom", Port: 7000, TargetPort: model.TargetPort{Number: 7000}, AppProtocol: model.ProtocolOpaque},
		},
		Endpoints: []model.ServiceEndpoint{
			{PortName: "admin", Address: netip.MustParseAddr("10.0.0.1"), Port: 9991, Workload: "web-1", Zone: "zone-a"},
			{PortName: "admin", Address: netip.MustParseAddr("10.0.0.2"), Port: 9991, Workload: "web-2"},
			{PortName: "admin", Address: netip.MustParseAddr("192.0.2.1"), Port: 9991},
			{PortName: "http", Address: netip.MustParseAddr("10.0.0.1"), Port: 8080, Workload: "web-1", Zone: "zone-a"},
			{PortName: "http", Address: netip.MustParseAddr("10.0.0.2"), Port: 8080, Workload: "web-2"},
			{PortName: "http", Address: netip.MustParseAddr("10.0.0.4"), Port: 9090, Workload: "web-4"},
			{PortName: "http", Address: netip.MustParseAddr("192.0.2.1"), Port: 8080},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}

	// A Service annotation (port names allowed) replaces the defaults; other appProtocols are opaque.
	got, _ = TranslateService(service(func(s *corev1.Service) {
		s.Annotations = map[string]string{names.AnnOpaquePorts: "http"}
		s.Spec.Ports[1].AppProtocol = ptr("mysql")
	}), nil, nil, DefaultOpaquePorts)
	for _, p := range got.Ports {
		if wantOpaque := p.Name != "db"; (p.AppProtocol == model.ProtocolOpaque) != wantOpaque {
			t.Errorf("annotated service: port %s is %s", p.Name, p.AppProtocol)
		}
	}

	// Outbound defaults come from the Service's annotations; a bad one is a problem that names it, and the
	// service is still translated with the good ones.
	got, problems = TranslateService(service(func(s *corev1.Service) {
		s.Annotations = map[string]string{
			names.AnnRetryHTTP: "gateway-error", names.AnnRetryLimit: "lots", names.AnnTimeoutRequest: "10s",
			names.AnnFailureAccrual: "consecutive",
		}
	}), slices, nil, DefaultOpaquePorts)
	wantDefaults := model.OutboundDefaults{
		Retry:          &model.Retry{Limit: 1, HTTPStatuses: []model.StatusRange{{First: 502, Last: 504}}},
		RequestTimeout: model.Duration(10 * time.Second),
		FailureAccrual: &model.FailureAccrual{ConsecutiveFailures: 7, MinPenalty: model.Duration(time.Second), MaxPenalty: model.Duration(time.Minute), JitterRatio: 0.5},
	}
	if !reflect.DeepEqual(got.Outbound, wantDefaults) || len(got.Endpoints) != len(want.Endpoints) || len(got.Ports) != len(want.Ports) {
		t.Errorf("annotated service: defaults %+v, %d endpoints, %d ports", got.Outbound, len(got.Endpoints), len(got.Ports))
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "annotation "+names.AnnRetryLimit+`: "lots"`) {
		t.Errorf("annotated service: problems %q, want one about %s", problems, names.AnnRetryLimit)
	}

	// Headless: no ClusterIPs; ExternalName: not a mesh service; unset targetPort is the port.
	got, _ = TranslateService(service(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"} }), nil, nil, nil)
	if len(got.ClusterIPs) != 0 || got.Endpoints != nil || !got.ExplicitEndpoints {
		t.Errorf("headless: %+v", got)
	}
	if got, _ := TranslateService(service(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName }), nil, nil, nil); got != nil {
		t.Errorf("ExternalName: %+v", got)
	}
}

func TestParsePortList(t *testing.T) {
	t.Parallel()
	names := func(n string) (uint16, bool) {
		p, ok := map[string]uint16{"mysql": 3306, "http-alt": 8080}[n]
		return p, ok
	}
	got, err := ParsePortList(" 25, 4000-4010 ,mysql,,http-alt", names)
	if err != nil || !reflect.DeepEqual(got, []model.PortRange{rng(25, 25), rng(4000, 4010), rng(3306, 3306), rng(8080, 8080)}) {
		t.Errorf("%v, %v", got, err)
	}
	for _, bad := range []string{"0", "65536", "10-5", "1-", "-3", "x-y", "redis", "1.5"} {
		if _, err := ParsePortList(bad, names); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ParsePortList("mysql", nil); err == nil {
		t.Error("a name without a lookup was accepted")
	}
}

// A port whose endpoints are all terminating keeps the ones still serving, as kube-proxy does; once any endpoint
// is ready, only ready ones take traffic.
func TestTranslateServiceTerminatingFallback(t *testing.T) {
	t.Parallel()
	terminating := func(ip, pod string, serving bool) discoveryv1.Endpoint {
		ep := endpoint(ip, pod, ptr(false))
		ep.Conditions.Serving, ep.Conditions.Terminating = ptr(serving), ptr(true)
		return ep
	}
	addrs := func(s *model.Service) []string {
		var a []string
		for _, e := range s.Endpoints {
			if e.PortName == "http" {
				a = append(a, e.Address.String())
			}
		}
		return a
	}
	allGoing := []*discoveryv1.EndpointSlice{slice("web-svc-a", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080},
		terminating("10.0.0.1", "web-1", true), terminating("10.0.0.2", "web-2", false))}
	got, _ := TranslateService(service(), allGoing, ns("emojivoto", nil), DefaultOpaquePorts)
	if a := addrs(got); !reflect.DeepEqual(a, []string{"10.0.0.1"}) {
		t.Fatalf("all terminating: endpoints %v, want the serving one", a)
	}
	withReady := append(allGoing, slice("web-svc-b", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080},
		endpoint("10.0.0.3", "web-3", ptr(true))))
	got, _ = TranslateService(service(), withReady, ns("emojivoto", nil), DefaultOpaquePorts)
	if a := addrs(got); !reflect.DeepEqual(a, []string{"10.0.0.3"}) {
		t.Fatalf("one ready: endpoints %v, want only the ready one", a)
	}
}

// config.sinew.dev/mtls-mode: the pod's, port names resolved against its containers, else the namespace's; what
// does not parse is a problem and its ports get PERMISSIVE.
func TestTranslatePodMTLSModes(t *testing.T) {
	t.Parallel()
	rngMode := func(a, b uint16, m authzapi.MTLSMode) authzapi.PortRangeMTLSMode {
		return authzapi.PortRangeMTLSMode{First: a, Last: b, Mode: m}
	}
	for name, tc := range map[string]struct {
		pod      *corev1.Pod
		ns       *corev1.Namespace
		want     authzapi.PortMTLSModes
		problems string
	}{
		"none": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar), ns: ns("emojivoto", nil)},
		"pod, every port": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar, annotate(names.AnnMTLSMode, "STRICT")),
			ns: ns("emojivoto", map[string]string{names.AnnMTLSMode: "DISABLE"}), want: authzapi.PortMTLSModes{All: authzapi.MTLSStrict}},
		"pod, by name and number": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar, annotate(names.AnnMTLSMode, "http=DISABLE,9090=strict")),
			want: authzapi.PortMTLSModes{Ports: []authzapi.PortRangeMTLSMode{rngMode(8080, 8080, authzapi.MTLSDisable), rngMode(9090, 9090, authzapi.MTLSStrict)}}},
		"namespace": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar), ns: ns("emojivoto", map[string]string{names.AnnMTLSMode: "STRICT,8080=PERMISSIVE"}),
			want: authzapi.PortMTLSModes{All: authzapi.MTLSStrict, Ports: []authzapi.PortRangeMTLSMode{rngMode(8080, 8080, authzapi.MTLSPermissive)}}},
		"bad mode: reported, the port PERMISSIVE, the rest applies": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar, annotate(names.AnnMTLSMode, "STRICT,http=DISABLED")),
			want:     authzapi.PortMTLSModes{All: authzapi.MTLSStrict, Ports: []authzapi.PortRangeMTLSMode{rngMode(8080, 8080, authzapi.MTLSPermissive)}},
			problems: `annotation config.sinew.dev/mtls-mode: "http=DISABLED": "DISABLED" is not an mTLS mode: want one of STRICT, PERMISSIVE, DISABLE; the port gets PERMISSIVE`},
		"namespace names no port": {pod: pod("emojivoto", "web", "10.0.0.1", withSidecar), ns: ns("emojivoto", map[string]string{names.AnnMTLSMode: "http=STRICT"}),
			problems: `namespace annotation config.sinew.dev/mtls-mode: "http=STRICT": "http" is not a port`},
	} {
		got, problems := TranslatePod(tc.pod, tc.ns, DefaultOpaquePorts)
		if !reflect.DeepEqual(got.MTLSModes, tc.want) {
			t.Errorf("%s: %+v, want %+v", name, got.MTLSModes, tc.want)
		}
		if got.ExplicitInbound {
			t.Errorf("%s: a pod's proxy captures its ports", name)
		}
		if joined := strings.Join(problems, "; "); (tc.problems == "") != (joined == "") || !strings.Contains(joined, tc.problems) {
			t.Errorf("%s: problems %q, want %q", name, joined, tc.problems)
		}
	}
}

// A gateway's pod, as the gateway controller has it built, is a workload with the gateway's identity whose ports
// are its listeners; it has no mesh port (its proxy has no mesh inbound listener), so clients reach the listeners
// directly.
func TestTranslateGatewayPod(t *testing.T) {
	t.Parallel()
	tmpl, err := inject.GatewayPodTemplate(inject.GatewayInput{Namespace: "emojivoto", Name: "public", Ports: []int32{443, 80}},
		inject.Config{TrustAnchorsPEM: testAnchors(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9"}}
	p.Namespace, p.Name = "emojivoto", "sinew-gateway-public-abc"
	w, problems := TranslatePod(p, ns("emojivoto", nil), DefaultOpaquePorts)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if w.Meshed() || w.ServiceAccount != names.GatewayResourceName("public") {
		t.Errorf("want the gateway's identity and no mesh port: %+v", w)
	}
	if want := []model.WorkloadPort{{Name: "gw-80", Port: 80, Protocol: model.ProtocolHTTP}, {Name: "gw-443", Port: 443, Protocol: model.ProtocolHTTP}}; !reflect.DeepEqual(w.Ports, want) {
		t.Errorf("ports %+v, want %+v", w.Ports, want)
	}
	if want := []uint16{names.ProxyAdminPort, names.ProxyTapPort}; !reflect.DeepEqual(w.ProxyPorts, want) {
		t.Errorf("proxy ports %v, want %v", w.ProxyPorts, want)
	}
	if w.DefaultInboundPolicy != names.PolicyAllUnauthenticated {
		t.Errorf("default inbound policy %q", w.DefaultInboundPolicy)
	}
}

// testAnchors is a PEM certificate the injector's Config accepts as trust anchors.
func testAnchors(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../../inject/testdata/trust-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
