package h1head

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// WriteRequest writes req as (*http.Request).Write would, when it is of the plain shape a proxy sends on nearly
// every time (handled); otherwise it writes nothing and req is net/http's to write. Plain: a method that is a
// token other than CONNECT, an origin-form URL, an ASCII Host without a zone, a User-Agent header (possibly
// empty: none is sent), no Transfer-Encoding or trailers, a known length (Body nil or http.NoBody for 0), and
// header names and values that need no repair. net/http's writer formats the first lines with fmt, sorts the
// header and builds a transfer writer: six allocations and most of a request's user CPU on the sidecar's upstream
// side (issue #11's allocation profile); this one makes none. The header goes out in map order, not sorted:
// fields of different names may come in any order (RFC 9110 5.3).
//
// As net/http does, the head is flushed before a body is read unless the body is in memory (a MemBody; any other
// may be a client's upload that is still arriving, and the next hop sees the head at once), the body must hold
// exactly ContentLength bytes, and the body is closed once written or on failure.
func WriteRequest(bw *bufio.Writer, req *http.Request) (handled bool, err error) {
	// Built in bw's free space, in one pass that checks as it goes; nothing reaches bw unless all of it is plain.
	head, ok := appendHead(bw.AvailableBuffer(), req)
	if !ok {
		return false, nil
	}
	defer func() {
		if req.Body != nil {
			if cerr := req.Body.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	if _, err := bw.Write(head); err != nil {
		return true, err
	}
	if req.ContentLength == 0 {
		return true, nil
	}
	if _, mem := req.Body.(*MemBody); !mem {
		if err := bw.Flush(); err != nil {
			return true, err
		}
	}
	return true, copyBody(bw, req.Body, req.ContentLength)
}

// appendHead appends req's head to b when req is plain (ok).
func appendHead(b []byte, req *http.Request) ([]byte, bool) {
	if !plainRequest(req) {
		return nil, false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// The target as URL.RequestURI makes it, in two pieces rather than joined into a new string.
	path, query := req.URL.EscapedPath(), req.URL.RawQuery
	if path == "" {
		path = "/"
	}
	ua, hasUA := req.Header["User-Agent"]
	if !hasUA || !plainHost(host) || !noCTL(path) || !noCTL(query) || len(ua) > 0 && !plainValue(ua[0]) {
		return nil, false // without a User-Agent entry, net/http would add its own
	}
	b = append(append(append(b, req.Method...), ' '), path...)
	if req.URL.ForceQuery || query != "" {
		b = append(append(b, '?'), query...)
	}
	b = append(append(append(b, " HTTP/1.1\r\nHost: "...), host...), "\r\n"...)
	if len(ua) > 0 && ua[0] != "" {
		b = appendField(b, "User-Agent", ua[0])
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	if sendLength(req.Method, req.ContentLength) {
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), req.ContentLength, 10), "\r\n"...)
	}
	for k, vv := range req.Header {
		if excluded(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, false
		}
		for _, v := range vv {
			if !plainValue(v) {
				return nil, false
			}
			b = appendField(b, k, v)
		}
	}
	return append(b, "\r\n"...), true
}

// plainRequest: the request's shape, before its strings are looked at.
func plainRequest(req *http.Request) bool {
	if req.URL == nil || req.URL.Opaque != "" || req.Method == "" || req.Method == http.MethodConnect ||
		!httpguts.ValidHeaderFieldName(req.Method) || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 ||
		req.ContentLength < 0 {
		return false
	}
	noBody := req.Body == nil || req.Body == http.NoBody
	return req.ContentLength == 0 && noBody || req.ContentLength > 0 && !noBody
}

// excluded: the fields the head has from the request's other fields, as net/http leaves them out of the header.
func excluded(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// sendLength: net/http's rule for a request's Content-Length with no Transfer-Encoding: sent when there is a
// body, and for an empty one on POST, PUT and PATCH (many servers want one there).
func sendLength(method string, n int64) bool {
	return n > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

func appendField(b []byte, k, v string) []byte {
	return append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
}

// plainHost: ASCII, valid as a Host, no zone: net/http would send it as it is.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 0x7f || c == '%' {
			return false
		}
	}
	return httpguts.ValidHostHeader(h)
}

// noCTL: no control bytes, which net/http refuses in a request target.
func noCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// plainValue: a value net/http writes unchanged: no line breaks (it turns them into spaces) and no white space
// for textproto.TrimString to take off either end.
func plainValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			return false
		}
	}
	return textproto.TrimString(v) == v
}

// copyBody writes exactly n bytes of body to bw, as net/http's transfer writer does: a shorter body, or a longer
// one, is an error (the request cannot be framed as announced). What fits in bw's free space is read there, in
// place; a larger rest goes through a pooled 32 KiB buffer, in writes of that size rather than of bw's.
func copyBody(bw *bufio.Writer, body io.Reader, n int64) error {
	var big *[]byte
	defer func() {
		if big != nil {
			bigBuffers.Put(big)
		}
	}()
	var copied int64
	for {
		var buf []byte
		switch rest := n - copied; {
		case rest == 0:
			// Only to see that the body ends here.
			if bw.Available() == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			buf = bw.AvailableBuffer()[:1]
		case rest <= int64(bw.Available()):
			buf = bw.AvailableBuffer()[:rest]
		default:
			if big == nil {
				big = bigBuffers.Get().(*[]byte)
			}
			buf = (*big)[:min(rest, int64(len(*big)))]
		}
		m, err := body.Read(buf)
		if m > 0 {
			if copied == n {
				return fmt.Errorf("http: ContentLength=%d with Body length greater than %d", n, n)
			}
			// Read in place, Write only moves bw past the bytes.
			if _, werr := bw.Write(buf[:m]); werr != nil {
				return werr
			}
			copied += int64(m)
		}
		switch {
		case err == io.EOF && copied == n:
			return nil
		case err == io.EOF:
			return fmt.Errorf("http: ContentLength=%d with Body length %d", n, copied)
		case err != nil:
			return err
		}
	}
}

// bigBuffers are copyBody's buffers for bodies larger than the writer's free space.
var bigBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// MemBody is a request body held in memory, such as one a proxy read whole before sending it on. WriteRequest
// sends the head and such a body in one write, as net/http does for a bytes.Reader it can see (one behind
// io.NopCloser too); a body it cannot see into, it flushes the head before.
type MemBody struct{ r bytes.Reader }

// NewMemBody is a MemBody reading b.
func NewMemBody(b []byte) *MemBody {
	m := new(MemBody)
	m.Reset(b)
	return m
}

// Reset makes the body read b from its start.
func (m *MemBody) Reset(b []byte)             { m.r.Reset(b) }
func (m *MemBody) Read(p []byte) (int, error) { return m.r.Read(p) }
func (m *MemBody) Close() error               { return nil }
