package authz

import (
	"slices"
	"testing"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

// TestMTLSModes: a port's mode comes from the Server that applies to it when that Server sets mtlsMode, else from
// the workload's annotation, else PERMISSIVE; Inbound carries it as the contract's mode (golden files show it
// with the rest of the port's policy).
func TestMTLSModes(t *testing.T) {
	t.Parallel()
	annotated := func(m api.PortMTLSModes) *model.Workload {
		w := web()
		w.MTLSModes = m
		return w
	}
	strictAll := api.PortMTLSModes{All: api.MTLSStrict}
	perPort := api.PortMTLSModes{All: api.MTLSStrict, Ports: []api.PortRangeMTLSMode{{First: 9990, Last: 9990, Mode: api.MTLSDisable}}}
	const serverDisable = `
kind: Server
metadata: {name: web-http}
spec: {podSelector: {matchLabels: {app: web}}, port: http, mtlsMode: DISABLE}
`
	const serverNoMode = `
kind: Server
metadata: {name: web-http}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080, accessPolicy: all-unauthenticated}
`
	const serverStrict = `
kind: Server
metadata: {name: web-admin}
spec: {podSelector: {matchLabels: {app: web}}, port: 9990, mtlsMode: STRICT, accessPolicy: all-unauthenticated}
`
	for _, tc := range []struct {
		name, docs, golden string
		w                  *model.Workload
		port               uint16
		want               api.MTLSMode
	}{
		{name: "nothing set", w: web(), port: 8080, want: api.MTLSPermissive},
		{name: "annotation for every port", w: annotated(strictAll), port: 8080, want: api.MTLSStrict, golden: "mtls-annotation-strict"},
		{name: "annotation per port", w: annotated(perPort), port: 9990, want: api.MTLSDisable},
		{name: "annotation per port, others", w: annotated(perPort), port: 8080, want: api.MTLSStrict},
		{name: "Server wins over the annotation", w: annotated(strictAll), docs: serverDisable, port: 8080, want: api.MTLSDisable, golden: "mtls-server-disable"},
		{name: "Server without a mode leaves the annotation", w: annotated(strictAll), docs: serverNoMode, port: 8080, want: api.MTLSStrict},
		{name: "Server strict, annotation disable", w: annotated(perPort), docs: serverStrict, port: 9990, want: api.MTLSStrict, golden: "mtls-server-strict"},
		{name: "Server of another port", w: annotated(perPort), docs: serverStrict, port: 8080, want: api.MTLSStrict},
		{name: "unknown workload", port: 8080, want: api.MTLSPermissive},
	} {
		var ws []*model.Workload
		if tc.w != nil {
			ws = append(ws, tc.w)
		}
		snap := snapshot(policies(t, tc.docs), ws...)
		if got := MTLSMode(snap, tc.w, tc.port); got != tc.want {
			t.Errorf("%s: MTLSMode %q, want %q", tc.name, got, tc.want)
		}
		got := Inbound(snap, testConfig, tc.w, tc.port)
		if want := mtlsModes[tc.want]; got.GetMtlsMode() != want {
			t.Errorf("%s: Inbound mtlsMode %v, want %v", tc.name, got.GetMtlsMode(), want)
		}
		if tc.golden != "" {
			golden.Check(t, "testdata/"+tc.golden+".json", render(t, got))
		}
	}
}

// A Server that disables mTLS on a port a local Workload cannot take plaintext on (not its first) is reported;
// on its first port, or on a pod's, it is not.
func TestMTLSDisableProblems(t *testing.T) {
	t.Parallel()
	local := web()
	local.Kind, local.ExplicitInbound = model.KindWorkload, true
	docs := `
kind: Server
metadata: {name: web-admin}
spec: {workloadSelector: {matchLabels: {app: web}}, port: 9990, mtlsMode: DISABLE}
---
kind: Server
metadata: {name: web-http}
spec: {workloadSelector: {matchLabels: {app: web}}, port: 8080, mtlsMode: DISABLE}
`
	got := Problems(snapshot(policies(t, docs), local), testConfig)
	want := "Server emojivoto/web-admin: mtlsMode DISABLE on web-1:9990: a local-mode Workload takes plaintext on its first port only; meshed clients keep using mTLS there"
	if !slices.Equal(got, []string{want}) {
		t.Errorf("problems %q\nwant %q", got, want)
	}
	pod := web()
	if got := Problems(snapshot(policies(t, `
kind: Server
metadata: {name: web-admin}
spec: {podSelector: {matchLabels: {app: web}}, port: 9990, mtlsMode: DISABLE}
`), pod), testConfig); len(got) != 0 {
		t.Errorf("a pod's port: problems %q", got)
	}
}
