// Package portforward opens a local port that leads to a Service's ready pod through the API server, as
// `kubectl port-forward svc/NAME` does. viz's commands use it to reach sinew-viz in a cluster.
package portforward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/sinewmesh/sinew/cli/check"
)

// Forward is an open port-forward.
type Forward struct {
	// Local is the local port that leads to the pod.
	Local int
	// Pod is the pod it leads to.
	Pod  string
	stop chan struct{}
	done chan error
}

// Close ends the forward.
func (f *Forward) Close() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	return <-f.done
}

// Done reports the forward's end: the error that ended it, nil after Close.
func (f *Forward) Done() <-chan error { return f.done }

// ToService forwards address:localPort (localPort 0: any free port) to the target port of Service namespace/name's
// port portName, on one of its ready pods.
func ToService(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, namespace, name, portName, address string, localPort int) (*Forward, error) {
	svc, err := client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", namespace, name, err)
	}
	var target *intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if p.Name == portName || (portName == "" && len(svc.Spec.Ports) == 1) {
			tp := p.TargetPort
			if tp.IntValue() == 0 && tp.Type == intstr.Int {
				tp = intstr.FromInt32(p.Port)
			}
			target = &tp
		}
	}
	if target == nil {
		return nil, fmt.Errorf("service %s/%s has no port named %q", namespace, name, portName)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s/%s selects no pods", namespace, name)
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(svc.Spec.Selector).String()})
	if err != nil {
		return nil, fmt.Errorf("pods of service %s/%s: %w", namespace, name, err)
	}
	pod, port := readyPod(pods.Items, *target)
	if pod == nil {
		return nil, fmt.Errorf("service %s/%s has no ready pod (kubectl get pods -n %s)", namespace, name, namespace)
	}
	return ToPod(cfg, client, namespace, pod.Name, port, address, localPort)
}

func readyPod(pods []corev1.Pod, target intstr.IntOrString) (*corev1.Pod, int) {
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || !check.PodReady(p) {
			continue
		}
		if target.Type == intstr.Int {
			return p, target.IntValue()
		}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == target.StrVal {
					return p, int(cp.ContainerPort)
				}
			}
		}
	}
	return nil, 0
}

// ToPod forwards address:localPort to namespace/pod's port and returns once the local port listens.
func ToPod(cfg *rest.Config, client kubernetes.Interface, namespace, pod string, port int, address string, localPort int) (*Forward, error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	url := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	if address == "" {
		address = "127.0.0.1"
	}
	f := &Forward{Pod: pod, stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{address}, []string{strconv.Itoa(localPort) + ":" + strconv.Itoa(port)}, f.stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	go func() { f.done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		if err == nil {
			err = errors.New("port-forward ended before it was ready")
		}
		return nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, err)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		_ = f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s: no local port: %v", namespace, pod, err)
	}
	f.Local = int(ports[0].Local)
	return f, nil
}
