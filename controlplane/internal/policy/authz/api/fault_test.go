package api

import (
	"strings"
	"testing"
)

func TestHTTPFaultValidate(t *testing.T) {
	t.Parallel()
	p := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name string
		spec HTTPFaultSpec
		want string
	}{
		{"good", HTTPFaultSpec{Abort: &FaultAbort{HTTPStatus: i(503), GRPCStatus: s("unavailable"), Percentage: p(12.5)},
			Delay: &FaultDelay{FixedDelay: "1.5s", Percentage: p(50)}, MaxActiveFaults: i(3)}, ""},
		{"gRPC by number", HTTPFaultSpec{Abort: &FaultAbort{GRPCStatus: s("14")}}, ""},
		{"nothing", HTTPFaultSpec{}, "spec: give at least one of abort and delay"},
		{"abort without a status", HTTPFaultSpec{Abort: &FaultAbort{}}, "spec.abort: give httpStatus, grpcStatus or both"},
		{"status", HTTPFaultSpec{Abort: &FaultAbort{HTTPStatus: i(99)}}, "spec.abort.httpStatus: must be between 200 and 599, got 99"},
		{"gRPC OK", HTTPFaultSpec{Abort: &FaultAbort{GRPCStatus: s("OK")}}, `spec.abort.grpcStatus: "OK" is not the name of a gRPC status code other than OK`},
		{"gRPC name", HTTPFaultSpec{Abort: &FaultAbort{GRPCStatus: s("BROKEN")}}, `"BROKEN" is not the name`},
		{"percentage", HTTPFaultSpec{Abort: &FaultAbort{HTTPStatus: i(500), Percentage: p(101)}}, "spec.abort.percentage: must be between 0 and 100, got 101"},
		{"delay", HTTPFaultSpec{Delay: &FaultDelay{FixedDelay: "soon"}}, `spec.delay.fixedDelay: "soon" is not a duration`},
		{"long delay", HTTPFaultSpec{Delay: &FaultDelay{FixedDelay: "2h"}}, "spec.delay.fixedDelay: must be more than 0 and at most 1h0m0s, got 2h0m0s"},
		{"max active", HTTPFaultSpec{Delay: &FaultDelay{FixedDelay: "1s"}, MaxActiveFaults: i(0)}, "spec.maxActiveFaults: must be between 1 and 1000000, got 0"},
	} {
		err := (&HTTPFault{Spec: tc.spec}).Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if c, err := GRPCCode("unavailable"); err != nil || c != 14 {
		t.Errorf("GRPCCode(unavailable) = %d, %v", c, err)
	}
}
