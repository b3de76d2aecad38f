// Package metricsapi is viz's metrics core: it asks a Prometheus (or anything that answers PromQL) for the golden
// metrics of meshed workloads and turns the answers into rows, tables and JSON. It also renders the Prometheus
// configuration that scrapes a local mesh's proxies. It does not scrape proxies itself and holds no state.
package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sample is one series of an instant-vector answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Querier answers an instant PromQL query evaluated at a given time (zero: the server's now). Prometheus's HTTP API
// implements it (Client); an embedded scraper can too. Callers evaluate related queries at one instant, so ratios of
// their answers are consistent (a success count never exceeds its total).
type Querier interface {
	Query(ctx context.Context, promql string, at time.Time) ([]Sample, error)
}

// Client queries a Prometheus server's HTTP API.
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

var _ Querier = (*Client)(nil)

// NewClient returns a client of the Prometheus at address (e.g. "http://127.0.0.1:9090"). Each query is bounded by
// timeout (default 10s) on top of the caller's context.
func NewClient(address string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad Prometheus URL %q: want http(s)://host:port", address)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{base: u, http: &http.Client{}, timeout: timeout}, nil
}

// ErrUnreachable marks a Prometheus that could not be reached at all (retrying later may help); other errors mean it
// answered and refused the query.
var ErrUnreachable = errors.New("Prometheus is unreachable")

// IsUnreachable tells whether err came from not reaching Prometheus.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

type unreachableError struct {
	addr string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("Prometheus at %s is unreachable: %v", e.addr, e.err)
}
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.err }

// apiResponse is the envelope of /api/v1/query.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query runs an instant query at time at (zero: the server's current time).
func (c *Client) Query(ctx context.Context, promql string, at time.Time) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base.JoinPath("api/v1/query")
	form := url.Values{"query": {promql}}
	if !at.IsZero() {
		form.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &unreachableError{addr: c.base.String(), err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &unreachableError{addr: c.base.String(), err: err}
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query failed: Prometheus at %s answered HTTP %d with something that is not its API (%s)",
			c.base, resp.StatusCode, snippet(body))
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query failed: %s: %s (query: %s)", r.ErrorType, r.Error, promql)
	}
	return decodeResult(r.Data.ResultType, r.Data.Result)
}

func decodeResult(resultType string, raw json.RawMessage) ([]Sample, error) {
	switch resultType {
	case "vector":
		var series []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(raw, &series); err != nil {
			return nil, fmt.Errorf("query failed: bad vector result: %w", err)
		}
		out := make([]Sample, 0, len(series))
		for _, s := range series {
			v, err := sampleValue(s.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Labels: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("query failed: bad scalar result: %w", err)
		}
		v, err := sampleValue(pair[1])
		if err != nil {
			return nil, err
		}
		return []Sample{{Labels: map[string]string{}, Value: v}}, nil
	}
	return nil, fmt.Errorf("query failed: want an instant vector, got a %q result", resultType)
}

func sampleValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("query failed: sample value %v is not a string", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("query failed: sample value %q: %w", s, err)
	}
	return f, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
