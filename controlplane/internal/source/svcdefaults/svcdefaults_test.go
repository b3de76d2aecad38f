package svcdefaults

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

func dur(d time.Duration) model.Duration { return model.Duration(d) }

func sr(first, last uint16) model.StatusRange { return model.StatusRange{First: first, Last: last} }

func accrual(maxFailures uint32, minP, maxP time.Duration, jitter float64) *model.FailureAccrual {
	return &model.FailureAccrual{ConsecutiveFailures: maxFailures, MinPenalty: dur(minP), MaxPenalty: dur(maxP), JitterRatio: jitter}
}

var defaultAccrual = accrual(DefaultMaxFailures, DefaultMinPenalty, DefaultMaxPenalty, DefaultJitterRatio)

func TestParseGood(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		ann  map[string]string
		want model.OutboundDefaults
	}{
		"none":           {nil, model.OutboundDefaults{}},
		"unrelated only": {map[string]string{"sinew.dev/inject": "enabled", "retry.linkerd.io/http": "5xx"}, model.OutboundDefaults{}},
		"http 5xx": {map[string]string{names.AnnRetryHTTP: "5xx"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 1, HTTPStatuses: []model.StatusRange{sr(500, 599)}}}},
		"http list": {map[string]string{names.AnnRetryHTTP: " 504, 500-502 ,Gateway-Error,429"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 1, HTTPStatuses: []model.StatusRange{sr(504, 504), sr(500, 502), sr(502, 504), sr(429, 429)}}}},
		"grpc": {map[string]string{names.AnnRetryGRPC: "cancelled,deadline-exceeded,internal,resource-exhausted,UNAVAILABLE"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 1, GRPCCodes: []uint32{1, 4, 13, 8, 14}}}},
		"limit alone retries 5xx": {map[string]string{names.AnnRetryLimit: "3"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 3, HTTPStatuses: []model.StatusRange{sr(500, 599)}}}},
		"retry timeout alone": {map[string]string{names.AnnRetryTimeout: "250ms"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 1, HTTPStatuses: []model.StatusRange{sr(500, 599)}, PerTryTimeout: dur(250 * time.Millisecond)}}},
		"retry timeout 0 is unset": {map[string]string{names.AnnRetryTimeout: "0"}, model.OutboundDefaults{}},
		"all retry": {map[string]string{names.AnnRetryHTTP: "gateway-error", names.AnnRetryGRPC: "unavailable", names.AnnRetryLimit: "65535", names.AnnRetryTimeout: "1m30s"},
			model.OutboundDefaults{Retry: &model.Retry{Limit: 65535, HTTPStatuses: []model.StatusRange{sr(502, 504)}, GRPCCodes: []uint32{14}, PerTryTimeout: dur(90 * time.Second)}}},
		"timeouts": {map[string]string{names.AnnTimeoutRequest: "10s", names.AnnTimeoutResponse: "2s", names.AnnTimeoutIdle: "1d"},
			model.OutboundDefaults{RequestTimeout: dur(10 * time.Second), ResponseTimeout: dur(2 * time.Second), IdleTimeout: dur(24 * time.Hour)}},
		"timeout 0 is none":    {map[string]string{names.AnnTimeoutRequest: "0s"}, model.OutboundDefaults{}},
		"accrual defaults":     {map[string]string{names.AnnFailureAccrual: "consecutive"}, model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"accrual all settings": {map[string]string{names.AnnFailureAccrual: "consecutive", names.AnnFailureAccrualMaxFailures: "4", names.AnnFailureAccrualMinPenalty: "30s", names.AnnFailureAccrualMaxPenalty: "2m", names.AnnFailureAccrualJitterRatio: "0.25"}, model.OutboundDefaults{FailureAccrual: accrual(4, 30*time.Second, 2*time.Minute, 0.25)}},
		"accrual small max caps default min": {map[string]string{names.AnnFailureAccrual: "consecutive", names.AnnFailureAccrualMaxPenalty: "500ms"},
			model.OutboundDefaults{FailureAccrual: accrual(7, 500*time.Millisecond, 500*time.Millisecond, 0.5)}},
		"accrual min 0 and equal": {map[string]string{names.AnnFailureAccrual: "consecutive", names.AnnFailureAccrualMinPenalty: "0", names.AnnFailureAccrualJitterRatio: "0"},
			model.OutboundDefaults{FailureAccrual: accrual(7, 0, time.Minute, 0)}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, errs := Parse(tc.ann)
			if len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v %+v %+v\nwant %+v %+v %+v", got, got.Retry, got.FailureAccrual, tc.want, tc.want.Retry, tc.want.FailureAccrual)
			}
		})
	}
}

// TestParseBad: every bad value is reported by annotation name, and only that annotation is ignored.
func TestParseBad(t *testing.T) {
	t.Parallel()
	const consecutive = "consecutive"
	for name, tc := range map[string]struct {
		ann map[string]string
		// bad is the one annotation the single error must name; msg a part of its message.
		bad, msg string
		want     model.OutboundDefaults
	}{
		"http word":          {map[string]string{names.AnnRetryHTTP: "4xx"}, names.AnnRetryHTTP, `"4xx": want a status`, model.OutboundDefaults{}},
		"http out of range":  {map[string]string{names.AnnRetryHTTP: "600"}, names.AnnRetryHTTP, `"600"`, model.OutboundDefaults{}},
		"http reversed":      {map[string]string{names.AnnRetryHTTP: "504-500"}, names.AnnRetryHTTP, `"504-500"`, model.OutboundDefaults{}},
		"http empty element": {map[string]string{names.AnnRetryHTTP: "500,,502"}, names.AnnRetryHTTP, "empty list element", model.OutboundDefaults{}},
		"http empty":         {map[string]string{names.AnnRetryHTTP: ""}, names.AnnRetryHTTP, "empty list element", model.OutboundDefaults{}},
		"http bad, limit good": {map[string]string{names.AnnRetryHTTP: "5XX-ish", names.AnnRetryLimit: "2"}, names.AnnRetryHTTP, `"5XX-ish"`,
			model.OutboundDefaults{Retry: &model.Retry{Limit: 2, HTTPStatuses: []model.StatusRange{sr(500, 599)}}}},
		"grpc unknown": {map[string]string{names.AnnRetryGRPC: "unavailable,aborted"}, names.AnnRetryGRPC, `"aborted": want cancelled`, model.OutboundDefaults{}},
		"grpc number":  {map[string]string{names.AnnRetryGRPC: "14"}, names.AnnRetryGRPC, `"14"`, model.OutboundDefaults{}},
		"limit zero":   {map[string]string{names.AnnRetryLimit: "0"}, names.AnnRetryLimit, "at least 1", model.OutboundDefaults{}},
		"limit text": {map[string]string{names.AnnRetryLimit: "three", names.AnnRetryHTTP: "503"}, names.AnnRetryLimit, "whole number",
			model.OutboundDefaults{Retry: &model.Retry{Limit: 1, HTTPStatuses: []model.StatusRange{sr(503, 503)}}}},
		"limit too big":    {map[string]string{names.AnnRetryLimit: "70000"}, names.AnnRetryLimit, "1-65535", model.OutboundDefaults{}},
		"limit negative":   {map[string]string{names.AnnRetryLimit: "-1"}, names.AnnRetryLimit, "whole number", model.OutboundDefaults{}},
		"retry timeout":    {map[string]string{names.AnnRetryTimeout: "5"}, names.AnnRetryTimeout, "want a duration", model.OutboundDefaults{}},
		"request timeout":  {map[string]string{names.AnnTimeoutRequest: "ten seconds"}, names.AnnTimeoutRequest, "want a duration", model.OutboundDefaults{}},
		"response timeout": {map[string]string{names.AnnTimeoutResponse: "-1s"}, names.AnnTimeoutResponse, "must not be negative", model.OutboundDefaults{}},
		"idle timeout": {map[string]string{names.AnnTimeoutIdle: "1.5d", names.AnnTimeoutRequest: "1s"}, names.AnnTimeoutIdle, "want a duration",
			model.OutboundDefaults{RequestTimeout: dur(time.Second)}},
		"accrual mode": {map[string]string{names.AnnFailureAccrual: "success-rate", names.AnnFailureAccrualMaxFailures: "3"}, names.AnnFailureAccrual, `only mode is "consecutive"`, model.OutboundDefaults{}},
		"max failures zero": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMaxFailures: "0"}, names.AnnFailureAccrualMaxFailures, "at least 1",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"max failures text": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMaxFailures: "many"}, names.AnnFailureAccrualMaxFailures, "whole number",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"min penalty": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMinPenalty: "soon"}, names.AnnFailureAccrualMinPenalty, "want a duration",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"min above max": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMinPenalty: "2m", names.AnnFailureAccrualMaxPenalty: "90s"}, names.AnnFailureAccrualMinPenalty, "exceeds the max penalty 1m30s",
			model.OutboundDefaults{FailureAccrual: accrual(7, time.Second, 90*time.Second, 0.5)}},
		"min above default max": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMinPenalty: "5m"}, names.AnnFailureAccrualMinPenalty, "exceeds the max penalty 1m0s",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"max penalty zero": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMaxPenalty: "0s"}, names.AnnFailureAccrualMaxPenalty, "more than 0",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"max penalty text": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualMaxPenalty: "1 minute"}, names.AnnFailureAccrualMaxPenalty, "want a duration",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"jitter negative": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualJitterRatio: "-0.1"}, names.AnnFailureAccrualJitterRatio, "0 to 100",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"jitter NaN": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualJitterRatio: "NaN"}, names.AnnFailureAccrualJitterRatio, "0 to 100",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"jitter too big": {map[string]string{names.AnnFailureAccrual: consecutive, names.AnnFailureAccrualJitterRatio: "101"}, names.AnnFailureAccrualJitterRatio, "0 to 100",
			model.OutboundDefaults{FailureAccrual: defaultAccrual}},
		"setting without mode": {map[string]string{names.AnnFailureAccrualMaxFailures: "3"}, names.AnnFailureAccrualMaxFailures, "has no effect without " + names.AnnFailureAccrual,
			model.OutboundDefaults{}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, errs := Parse(tc.ann)
			if len(errs) != 1 {
				t.Fatalf("want one error naming %s, got %v", tc.bad, errs)
			}
			msg := errs[0].Error()
			if !strings.HasPrefix(msg, "annotation "+tc.bad+": ") || !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q: want it to name %s and say %q", msg, tc.bad, tc.msg)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v %+v %+v\nwant %+v %+v %+v", got, got.Retry, got.FailureAccrual, tc.want, tc.want.Retry, tc.want.FailureAccrual)
			}
		})
	}
}

// TestParseSeveralBad: every bad annotation is reported, in a stable order.
func TestParseSeveralBad(t *testing.T) {
	t.Parallel()
	ann := map[string]string{
		names.AnnRetryHTTP: "x", names.AnnRetryGRPC: "y", names.AnnRetryLimit: "z", names.AnnRetryTimeout: "w",
		names.AnnTimeoutRequest: "a", names.AnnTimeoutResponse: "b", names.AnnTimeoutIdle: "c",
		names.AnnFailureAccrual: "consecutive", names.AnnFailureAccrualMaxFailures: "d", names.AnnFailureAccrualMinPenalty: "e",
		names.AnnFailureAccrualMaxPenalty: "f", names.AnnFailureAccrualJitterRatio: "g",
	}
	want := []string{names.AnnRetryHTTP, names.AnnRetryGRPC, names.AnnRetryLimit, names.AnnRetryTimeout,
		names.AnnTimeoutRequest, names.AnnTimeoutResponse, names.AnnTimeoutIdle,
		names.AnnFailureAccrualMaxFailures, names.AnnFailureAccrualMaxPenalty, names.AnnFailureAccrualMinPenalty, names.AnnFailureAccrualJitterRatio}
	for range 3 {
		got, errs := Parse(ann)
		if len(errs) != len(want) {
			t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), errs)
		}
		for i, e := range errs {
			if !strings.HasPrefix(e.Error(), "annotation "+want[i]+": ") {
				t.Errorf("error %d: %v, want it about %s", i, e, want[i])
			}
		}
		if !reflect.DeepEqual(got, model.OutboundDefaults{FailureAccrual: defaultAccrual}) {
			t.Errorf("got %+v", got)
		}
	}
}
