// Package h1head reads HTTP/1.1 request and response heads in their common shapes with a few allocations, where
// net/http's ReadRequest and ReadResponse make one or more per header. It is a fast path, not a second parser of
// the protocol: it takes a head only when the whole of it is already in the bufio.Reader's buffer and it is plain
// (CRLF line ends, tokens and visible values, an origin-form target without escapes, at most a Content-Length for
// framing, none of the headers whose meaning net/http works out: Connection, Transfer-Encoding, Trailer, Pragma,
// and for a request a single Host). Anything else is left where it was for net/http, which then decides (accepts
// or refuses) exactly as it always did. What it returns equals what net/http returns for the same bytes
// (h1head_test.go checks this on a corpus and by fuzzing). WriteRequest is the same kind of fast path for writing
// a request (write.go).
package h1head

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

var headEnd = []byte("\r\n\r\n")

// whole returns the head at the start of br's buffer when all of it is there ("" otherwise), without reading.
func whole(br *bufio.Reader) string {
	buf, _ := br.Peek(br.Buffered())
	i := bytes.Index(buf, headEnd)
	if i < 0 {
		return ""
	}
	return string(buf[:i+len(headEnd)])
}

// ReadRequest reads a request head from br, as http.ReadRequest would, when it can (ok); otherwise it reads
// nothing. The request is a copy of base (whose context it keeps) with the head's fields.
func ReadRequest(br *bufio.Reader, base *http.Request) (req *http.Request, ok bool) {
	head := whole(br)
	if head == "" {
		return nil, false
	}
	line, rest, _ := strings.Cut(head, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == "" || !httpguts.ValidHeaderFieldName(method) {
		return nil, false
	}
	x := new(requestParts) // one allocation for the request and its parts
	if !originForm(target, &x.u) {
		return nil, false
	}
	h, cl, ok := header(rest, true, x.values[:])
	if !ok {
		return nil, false
	}
	hosts := h["Host"]
	if len(hosts) != 1 {
		return nil, false
	}
	delete(h, "Host") // as net/http: the Host is req.Host
	req = &x.req
	*req = *base
	req.Method, req.URL, req.RequestURI = method, &x.u, target
	req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, 1
	req.Header, req.Host = h, hosts[0]
	req.ContentLength, req.Body = cl, http.NoBody
	if cl > 0 {
		x.body = body{r: br, n: cl}
		req.Body = &x.body
	}
	_, _ = br.Discard(len(head))
	return req, true
}

// requestParts is a request, its URL, its body and a short header's values, allocated together.
type requestParts struct {
	req    http.Request
	u      url.URL
	body   body
	values [shortHeader]string
}

// shortHeader is how many header fields a head may have for their values to come with its request or response
// rather than in an allocation of their own. Room for more would cost every head bytes (the collector runs per
// bytes allocated) for the few heads that have more: with 8, BenchmarkReadRequest's 4-field request cost 64 B
// more than with 4 or 6.
const shortHeader = 6

// ReadResponse reads a response head to req from br, as http.ReadResponse would, when it can (ok); otherwise
// it reads nothing. Informational (1xx) responses and responses whose end is the connection's are net/http's.
func ReadResponse(br *bufio.Reader, req *http.Request) (resp *http.Response, ok bool) {
	head := whole(br)
	if head == "" {
		return nil, false
	}
	line, rest, _ := strings.Cut(head, "\r\n")
	proto, status, ok := strings.Cut(line, " ")
	if !ok || proto != "HTTP/1.1" || len(status) < 3 || len(status) > 3 && status[3] != ' ' {
		return nil, false
	}
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || !visible(status) {
		return nil, false
	}
	x := new(responseParts) // one allocation for the response and its parts
	h, cl, ok := header(rest, false, x.values[:])
	if !ok {
		return nil, false
	}
	resp = &x.resp
	*resp = http.Response{Status: status, StatusCode: code, Proto: proto, ProtoMajor: 1, ProtoMinor: 1, Header: h, Request: req}
	switch {
	case req != nil && req.Method == http.MethodHead:
		// No body; the length is the one a GET would have had, as the head says (-1: not said).
		resp.ContentLength, resp.Body = cl, http.NoBody
	case code == http.StatusNoContent, code == http.StatusNotModified, cl == 0:
		resp.ContentLength, resp.Body = 0, http.NoBody
	case cl < 0:
		return nil, false // read to the connection's end: net/http's
	default:
		x.body = body{r: br, n: cl}
		resp.ContentLength, resp.Body = cl, &x.body
	}
	_, _ = br.Discard(len(head))
	return resp, true
}

// responseParts is a response, its body and a short header's values, allocated together.
type responseParts struct {
	resp   http.Response
	body   body
	values [shortHeader]string
}

// originForm sets u to the URL of a request target of the plain origin form (ok): "/path?query", printable
// ASCII, no escapes, no fragment, not starting with "//".
func originForm(target string, u *url.URL) (ok bool) {
	if len(target) == 0 || target[0] != '/' || strings.HasPrefix(target, "//") {
		return false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return false
		}
	}
	path, query, hasQuery := strings.Cut(target, "?")
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	if u.EscapedPath() != path {
		u.RawPath = path // a character url escapes, sent as it was (as url.ParseRequestURI keeps it)
	}
	return true
}

// header parses the header lines of a head (after its first line), each "Name: value\r\n", up to the empty line.
// cl is the Content-Length (-1 when there is none). The values go into room when they fit there.
func header(s string, request bool, room []string) (h http.Header, cl int64, ok bool) {
	n := strings.Count(s, "\r\n") - 1 // the last one ends the head
	if n < 0 {
		return nil, 0, false
	}
	h = make(http.Header, n)
	values := room
	if n > len(values) {
		values = make([]string, n)
	}
	cl = -1
	for i := range n {
		line, rest, _ := strings.Cut(s, "\r\n")
		s = rest
		name, value, found := strings.Cut(line, ":")
		if !found || name == "" || !httpguts.ValidHeaderFieldName(name) {
			return nil, 0, false // also a folded line, which starts with a space
		}
		value = trimOWS(value)
		if !visible(value) {
			return nil, 0, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Connection", "Transfer-Encoding", "Trailer", "Pragma", "Te":
			return nil, 0, false
		case "Content-Length":
			if cl >= 0 || value == "" || len(value) > 18 {
				return nil, 0, false
			}
			for _, c := range []byte(value) {
				if c < '0' || c > '9' {
					return nil, 0, false
				}
			}
			cl, _ = strconv.ParseInt(value, 10, 64)
		}
		values[i] = value
		if prev, dup := h[key]; dup {
			h[key] = append(prev, value)
		} else {
			h[key] = values[i : i+1 : i+1]
		}
	}
	if request && cl < 0 {
		cl = 0
	}
	return h, cl, true
}

// visible reports whether a header value (or reason phrase) holds only visible ASCII, spaces and tabs.
func visible(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c >= 0x7f {
			return false
		}
	}
	return true
}

// body is a body of known length, read from the connection's reader: its last bytes come with io.EOF, and a
// connection that ends early is io.ErrUnexpectedEOF, as net/http's body reports them.
type body struct {
	r *bufio.Reader
	n int64
}

func (b *body) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: what is left of the body is the connection's owner's to drain or to close the connection
// over.
func (b *body) Close() error { return nil }

// trimOWS drops the optional white space (spaces and tabs) around a field value; strings.Trim with a cutset builds
// a set on every call, which showed in the proxy's profile.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
