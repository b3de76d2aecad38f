package proxy

import (
	"os"
	"strings"
	"testing"
	"time"
)

func validEnv() []string {
	return []string{
		"SINEW_PROXY_IDENTITY_SVC_ADDR=127.0.0.1:8080",
		"SINEW_PROXY_DESTINATION_SVC_ADDR=127.0.0.1:8086",
		"SINEW_PROXY_IDENTITY_LOCAL_NAME=spiffe://cluster.local/ns/emojivoto/sa/web",
		"SINEW_PROXY_IDENTITY_TOKEN=t",
		"SINEW_PROXY_IDENTITY_TRUST_ANCHORS_FILE=/ca.crt",
		"PATH=/bin",
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeTransparent || c.InboundAddr != "0.0.0.0:4143" || c.OutboundAddr != "127.0.0.1:4140" ||
		c.AdminAddr != "0.0.0.0:4191" || c.TapAddr != "0.0.0.0:4190" || c.DetectTimeout != 10*time.Second ||
		c.ConnectTimeout != time.Second || c.ShutdownGrace != 2*time.Minute || len(c.OpaquePorts) != 8 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.IdentityName != "spiffe://cluster.local/ns/sinew/sa/sinew-identity" || c.DestinationName != "spiffe://cluster.local/ns/sinew/sa/sinew-destination" {
		t.Fatalf("control-plane names derived from the trust domain: %s %s", c.IdentityName, c.DestinationName)
	}
}

func TestLoadExplicit(t *testing.T) {
	t.Parallel()
	c, err := Load(append(validEnv(),
		"SINEW_PROXY_MODE=explicit",
		"SINEW_PROXY_INBOUND_PORTS=8080=127.0.0.1:18080, 9090=127.0.0.1:19090",
		"SINEW_PROXY_OUTBOUND_PORTS=127.0.0.1:15001=web-svc.emojivoto.svc.cluster.local:80",
		"SINEW_PROXY_OPAQUE_PORTS=5432,7000-7002",
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.InboundPorts) != 2 || c.InboundPorts[1] != (InboundPort{9090, "127.0.0.1:19090"}) {
		t.Fatalf("inbound ports %+v", c.InboundPorts)
	}
	if c.OutboundPorts[0].Target != "web-svc.emojivoto.svc.cluster.local:80" || len(c.OpaquePorts) != 4 {
		t.Fatalf("outbound %+v opaque %v", c.OutboundPorts, c.OpaquePorts)
	}
}

// Every bad value is reported at once, each naming its variable and what is wrong.
func TestLoadErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{
		"SINEW_PROXY_MODE=sidecar",
		"SINEW_PROXY_DETECT_TIMEOUT=soon",
		"SINEW_PROXY_ADMIN_LISTEN_ADDR=4191",
		"SINEW_PROXY_OPAQUE_PORTS=70000",
		"SINEW_PROXY_INBOUND_PORTS=8080",
		"SINEW_PROXY_LOG_LEVL=debug",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`SINEW_PROXY_MODE="sidecar": must be transparent, explicit or gateway`,
		`SINEW_PROXY_DETECT_TIMEOUT="soon": not a duration`,
		`SINEW_PROXY_ADMIN_LISTEN_ADDR="4191"`,
		`SINEW_PROXY_OPAQUE_PORTS="70000"`,
		`SINEW_PROXY_INBOUND_PORTS="8080": "8080": want port=host:port`,
		`SINEW_PROXY_LOG_LEVL: unknown setting`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// The drain delay is off unless set (local mode stops at once); 0 is a valid value, unlike the timeouts.
func TestShutdownDrainDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  string
		want time.Duration
		err  string
	}{
		{"", 0, ""},
		{"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=5s", 5 * time.Second, ""},
		{"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=0s", 0, ""},
		{"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=-1s", 0, `SINEW_PROXY_SHUTDOWN_DRAIN_DELAY="-1s": must not be negative`},
		{"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=5", 0, `SINEW_PROXY_SHUTDOWN_DRAIN_DELAY="5": not a duration`},
	} {
		env := validEnv()
		if tc.env != "" {
			env = append(env, tc.env)
		}
		c, err := Load(env)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.env, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.env, err)
		case tc.err == "" && c.ShutdownDrainDelay != tc.want:
			t.Errorf("%q: drain delay %v, want %v", tc.env, c.ShutdownDrainDelay, tc.want)
		}
	}
}

func TestValidateRequirements(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{"SINEW_PROXY_IDENTITY_LOCAL_NAME=web"})
	for _, want := range []string{"IDENTITY_SVC_ADDR: required", "DESTINATION_SVC_ADDR: required", "must start with spiffe://", "IDENTITY_TOKEN_FILE: set exactly one", "TRUST_ANCHORS_FILE: set exactly one"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	_, err = Load(append(validEnv(), "SINEW_PROXY_MODE=explicit"))
	if err == nil || !strings.Contains(err.Error(), "set SINEW_PROXY_INBOUND_PORTS and/or") {
		t.Errorf("explicit mode without ports: %v", err)
	}
}

// The reference page lists every setting with the default the code uses.
func TestDocumentedDefaultsMatchCode(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/reference/proxy-configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range envVars {
		def := ev.def
		if def == "" {
			def = "-"
		}
		row := "| `" + envPrefix + ev.name + "` | `" + def + "` |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/reference/proxy-configuration.md lacks the row %s", row)
		}
	}
}

// Tap is authorized for the viz tap service in the proxy's own trust domain unless told otherwise.
func TestTapAuthorizedIdentities(t *testing.T) {
	t.Parallel()
	c, err := Load(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TapAuthorizedIDs) != 1 || c.TapAuthorizedIDs[0] != "spiffe://cluster.local/ns/sinew-viz/sa/tap" {
		t.Fatalf("default tap identities %v", c.TapAuthorizedIDs)
	}
	c, err = Load(append(validEnv(), "SINEW_PROXY_TAP_AUTHORIZED_IDENTITIES=spiffe://local/ns/sinew-viz/sa/tap, spiffe://local/ns/me/sa/cli"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TapAuthorizedIDs) != 2 || c.TapAuthorizedIDs[1] != "spiffe://local/ns/me/sa/cli" {
		t.Fatalf("tap identities %v", c.TapAuthorizedIDs)
	}
	_, err = Load(append(validEnv(), "SINEW_PROXY_TAP_AUTHORIZED_IDENTITIES=tap-service"))
	if err == nil || !strings.Contains(err.Error(), "SINEW_PROXY_TAP_AUTHORIZED_IDENTITIES") {
		t.Fatalf("bad identity accepted or not named: %v", err)
	}
}
