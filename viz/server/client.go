package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// Client reads a viz server's API: what the CLI uses.
type Client struct {
	base *url.URL
	http *http.Client
}

// NewClient returns a client of the viz server at base (e.g. "http://127.0.0.1:17006").
func NewClient(base string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad viz URL %q: want http(s)://host:port", base)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, http: hc}, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach viz at %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("viz answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading viz's answer to %s: %w", path, err)
	}
	return nil
}

// Version asks which viz answers.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.getJSON(ctx, "/api/version", nil, &v)
	return v, err
}

// Stat asks /api/stat; q holds its parameters (docs/architecture/viz.md).
func (c *Client) Stat(ctx context.Context, q url.Values) ([]metricsapi.StatRow, error) {
	var a struct {
		Rows []metricsapi.StatRow `json:"rows"`
	}
	err := c.getJSON(ctx, "/api/stat", q, &a)
	return a.Rows, err
}

// Edges asks /api/edges.
func (c *Client) Edges(ctx context.Context, q url.Values) ([]metricsapi.Edge, error) {
	var a struct {
		Edges []metricsapi.Edge `json:"edges"`
	}
	err := c.getJSON(ctx, "/api/edges", q, &a)
	return a.Edges, err
}

// Routes asks /api/routes.
func (c *Client) Routes(ctx context.Context, q url.Values) ([]metricsapi.RouteRow, error) {
	var a struct {
		Routes []metricsapi.RouteRow `json:"routes"`
	}
	err := c.getJSON(ctx, "/api/routes", q, &a)
	return a.Routes, err
}

// Authz asks /api/authz.
func (c *Client) Authz(ctx context.Context, q url.Values) ([]metricsapi.AuthzRow, error) {
	var a struct {
		Rows []metricsapi.AuthzRow `json:"rows"`
	}
	err := c.getJSON(ctx, "/api/authz", q, &a)
	return a.Rows, err
}

// TapEvent is one decoded line of a tap stream.
type TapEvent struct {
	Proxy string
	Index int
	Event *tapv1.TapEvent // nil when Err is set
	Err   string
}

// Tap streams /api/tap, calling fn for each line until the stream ends, ctx ends or fn fails.
func (c *Client) Tap(ctx context.Context, q url.Values, fn func(TapEvent) error) error {
	resp, err := c.get(ctx, "/api/tap", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		var l TapLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("reading the tap stream: %w", err)
		}
		ev := TapEvent{Proxy: l.Proxy, Index: l.Index, Err: l.Error}
		if l.Error == "" {
			ev.Event = &tapv1.TapEvent{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(l.Event, ev.Event); err != nil {
				return fmt.Errorf("reading the tap stream: %w", err)
			}
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("the tap stream broke: %w", err)
	}
	return nil
}
