package gateway

import (
	"slices"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestIntersect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		listener string
		route    []gatewayv1.Hostname
		want     []string
		ok       bool
	}{
		{"", nil, nil, true},
		{"", []gatewayv1.Hostname{"a.example.com", "*.b.org"}, []string{"a.example.com", "*.b.org"}, true},
		{"shop.example.com", nil, []string{"shop.example.com"}, true},
		{"shop.example.com", []gatewayv1.Hostname{"shop.example.com"}, []string{"shop.example.com"}, true},
		{"shop.example.com", []gatewayv1.Hostname{"other.example.com"}, nil, false},
		{"shop.example.com", []gatewayv1.Hostname{"*.example.com"}, []string{"shop.example.com"}, true},
		{"shop.example.com", []gatewayv1.Hostname{"*.shop.example.com"}, nil, false},
		// A wildcard matches one or more labels, never the bare suffix.
		{"*.example.com", []gatewayv1.Hostname{"a.example.com", "a.b.example.com", "example.com", "aexample.com"},
			[]string{"a.example.com", "a.b.example.com"}, true},
		{"*.example.com", []gatewayv1.Hostname{"*.example.com"}, []string{"*.example.com"}, true},
		{"*.example.com", []gatewayv1.Hostname{"*.shop.example.com"}, []string{"*.shop.example.com"}, true},
		{"*.shop.example.com", []gatewayv1.Hostname{"*.example.com"}, []string{"*.shop.example.com"}, true},
		{"*.example.com", []gatewayv1.Hostname{"*.example.org"}, nil, false},
		// Duplicates collapse, in the route's order.
		{"*.example.com", []gatewayv1.Hostname{"b.example.com", "B.example.com", "a.example.com"}, []string{"b.example.com", "a.example.com"}, true},
	} {
		got, ok := intersect(tc.listener, tc.route)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("intersect(%q, %q) = %q, %v; want %q, %v", tc.listener, tc.route, got, ok, tc.want, tc.ok)
		}
	}
}
