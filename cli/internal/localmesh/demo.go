package localmesh

import (
	"fmt"
	"strconv"

	"github.com/sinewmesh/sinew/internal/names"
)

// DefaultPortBase is where the demo's ports start: base+0..3 control plane, +5 Prometheus, +6 viz, base+10.. emoji, +20.. voting,
// +30.. web, +40.. vote-bot.
const DefaultPortBase = 17000

// DemoPortSpan is how many ports above the base the demo may use.
const DemoPortSpan = 50

// Demo is the emojivoto sample application as a run file: emoji, voting and web with a proxy each, and the
// vote-bot (unless traffic is false) calling web through its own proxy. app is the command that runs a part of
// emojivoto: the emojivoto program, or sinew and its hidden __emojivoto command; the part's name and flags follow.
func Demo(base int, traffic bool, app []string) *Mesh {
	cmd := func(args ...string) []string { return append(append([]string(nil), app...), args...) }
	a := func(off int) string { return "127.0.0.1:" + strconv.Itoa(base+off) }
	port := func(off int) string { return strconv.Itoa(base + off) }
	env := map[string]string{"BIND_HOST": "127.0.0.1"} // the apps are reachable only through their proxies
	grpcWorkload := func(name string, off int) Workload {
		return Workload{
			Name: name, Labels: map[string]string{"app": name + "-svc", names.DeploymentLabel: name},
			Command: cmd(name, "--port", port(off)), Env: env,
			Ports: []Port{{Name: "grpc", Port: 8080, App: a(off)}},
			Proxy: Proxy{Inbound: a(off + 1), Admin: a(off + 2)},
		}
	}
	m := &Mesh{
		APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: "emojivoto"},
		Spec: Spec{
			Namespace:    "emojivoto",
			ControlPlane: ControlPlane{Identity: a(0), Destination: a(1), Policy: a(2), Admin: a(3)},
			Services: []Service{
				{Name: "emoji-svc", Selector: map[string]string{"app": "emoji-svc"}, Ports: []ServicePort{{Name: "grpc", Port: 8080}}},
				{Name: "voting-svc", Selector: map[string]string{"app": "voting-svc"}, Ports: []ServicePort{{Name: "grpc", Port: 8080}}},
				{Name: "web-svc", Selector: map[string]string{"app": "web-svc"}, Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}},
			},
			Workloads: []Workload{
				grpcWorkload("emoji", 10),
				grpcWorkload("voting", 20),
				{
					Name: "web", Labels: map[string]string{"app": "web-svc", names.DeploymentLabel: "web"},
					Command: cmd("web", "--port", port(30), "--emoji-addr", a(33), "--voting-addr", a(34)), Env: env,
					Ports:     []Port{{Name: "http", Port: 8080, App: a(30)}},
					Upstreams: []Upstream{{Service: "emoji-svc:8080", Listen: a(33)}, {Service: "voting-svc:8080", Listen: a(34)}},
					Proxy:     Proxy{Inbound: a(31), Admin: a(32)},
				},
			},
		},
	}
	if traffic {
		m.Spec.Workloads = append(m.Spec.Workloads, Workload{
			Name: "vote-bot", Labels: map[string]string{"app": "vote-bot", names.DeploymentLabel: "vote-bot"},
			Command:   cmd("vote-bot", "--web-host", a(43), "--rate", "2"),
			Upstreams: []Upstream{{Service: "web-svc:80", Listen: a(43)}},
			Proxy:     Proxy{Admin: a(42)},
		})
	}
	m.setDefaults()
	return m
}

// DemoPrometheus is where the demo's Prometheus listens.
func DemoPrometheus(base int) string { return "127.0.0.1:" + strconv.Itoa(base+5) }

// DemoViz is where the demo serves the viz API and dashboard.
func DemoViz(base int) string { return "127.0.0.1:" + strconv.Itoa(base+6) }

// DemoURL is the web application's address through web's proxy.
func DemoURL(base int) string { return fmt.Sprintf("http://127.0.0.1:%d/", base+31) }
