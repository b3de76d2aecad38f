package names

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestDNSChecks(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"web": true, "web-svc": true, "a": true, "0abc": true, strings.Repeat("a", 63): true,
		"": false, "Web": false, "-web": false, "web-": false, "web.svc": false, "web_svc": false, strings.Repeat("a", 64): false,
	} {
		if got := IsDNSLabel(s); got != want {
			t.Errorf("IsDNSLabel(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{
		"cluster.local": true, "example.com": true, "local": true, "a-b.c-d": true,
		"": false, "Cluster.local": false, "cluster..local": false, ".local": false, "local.": false,
		strings.Repeat("a", 64) + ".local": false, strings.Repeat("a.", 127) + "ab": false,
	} {
		if got := IsDNSName(s); got != want {
			t.Errorf("IsDNSName(%q) = %v, want %v", s, got, want)
		}
	}
	if err := CheckDNSLabel("Web"); err == nil || !strings.Contains(err.Error(), `"Web"`) {
		t.Errorf("CheckDNSLabel(Web) = %v, want an error naming the value", err)
	}
}

// TestChartDefaults keeps the control-plane chart's defaults equal to the names Go code uses; a chart cannot import
// them.
func TestChartDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../charts/sinew-control-plane/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ClusterDomain        string `json:"clusterDomain"`
		DefaultInboundPolicy string `json:"defaultInboundPolicy"`
		ClusterNetworks      string `json:"clusterNetworks"`
		ProbeNetworks        string `json:"probeNetworks"`
		Proxy                struct {
			UID         int    `json:"uid"`
			OpaquePorts string `json:"opaquePorts"`
		} `json:"proxy"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, chart, code string }{
		{"clusterDomain", v.ClusterDomain, DefaultClusterDomain},
		{"defaultInboundPolicy", v.DefaultInboundPolicy, DefaultInboundPolicy},
		{"clusterNetworks", v.ClusterNetworks, DefaultClusterNetworks},
		{"probeNetworks", v.ProbeNetworks, DefaultProbeNetworks},
		{"proxy.opaquePorts", v.Proxy.OpaquePorts, DefaultOpaquePorts},
	} {
		if c.chart != c.code {
			t.Errorf("values.yaml %s = %q, names has %q", c.what, c.chart, c.code)
		}
	}
	if v.Proxy.UID != DefaultProxyUID {
		t.Errorf("values.yaml proxy.uid = %d, names has %d", v.Proxy.UID, DefaultProxyUID)
	}
}

func TestGatewayResourceName(t *testing.T) {
	t.Parallel()
	if got := GatewayResourceName("emojivoto"); got != "sinew-gateway-emojivoto" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("a", 60)
	a, b := GatewayResourceName(long), GatewayResourceName(long+"b")
	if len(a) > 63 || len(b) > 63 || a == b || !IsDNSLabel(a) || !IsDNSLabel(b) {
		t.Errorf("long names %q %q", a, b)
	}
}
