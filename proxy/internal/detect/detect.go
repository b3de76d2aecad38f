// Package detect classifies the first bytes of a connection: TLS ClientHello (and its SNI and ALPN), the HTTP/2
// client preface, an HTTP/1.x request line, or anything else (opaque TCP). It only looks; it never consumes bytes
// that the caller cannot replay (see Peek).
package detect

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Protocol is a detection result.
type Protocol int

const (
	// Opaque is anything we do not recognise: carry it as bytes.
	Opaque Protocol = iota
	HTTP1
	HTTP2
	TLS
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http1"
	case HTTP2:
		return "h2"
	case TLS:
		return "tls"
	}
	return "opaque"
}

// Result is what Classify learned.
type Result struct {
	Protocol Protocol
	// For TLS: the server name and offered ALPN protocols from the ClientHello.
	SNI  string
	ALPN []string
}

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// MaxPeek bounds how many bytes detection may need. A TLS record is at most 16 KiB + 5; an HTTP/1 request line
// longer than this is treated as opaque.
const MaxPeek = 16384 + 5

// ErrNeedMore means the bytes so far are a valid prefix of some protocol; read more and try again.
var ErrNeedMore = errors.New("need more bytes")

// Classify decides the protocol of a connection from its first bytes. It returns ErrNeedMore while b is a
// valid but incomplete prefix; a caller that runs out of time or bytes should treat the connection as opaque.
func Classify(b []byte) (Result, error) {
	if len(b) == 0 {
		return Result{}, ErrNeedMore
	}
	switch {
	case b[0] == 0x16:
		return classifyTLS(b)
	case b[0] == 'P' && bytes.HasPrefix([]byte(Preface), b[:min(len(b), len(Preface))]):
		if len(b) < len(Preface) {
			return Result{}, ErrNeedMore
		}
		return Result{Protocol: HTTP2}, nil
	}
	return classifyHTTP1(b)
}

// classifyHTTP1 accepts "METHOD SP request-target SP HTTP/1.x CRLF".
func classifyHTTP1(b []byte) (Result, error) {
	opaque := Result{Protocol: Opaque}
	i := 0
	for ; i < len(b) && b[i] != ' '; i++ {
		if !isTokenChar(b[i]) || i >= 20 {
			return opaque, nil
		}
	}
	if i == len(b) {
		return Result{}, ErrNeedMore
	}
	if i == 0 {
		return opaque, nil
	}
	line := b[i+1:]
	end := bytes.IndexByte(line, '\n')
	if end < 0 {
		if len(b) >= MaxPeek {
			return opaque, nil
		}
		for _, c := range line {
			if c < 0x20 && c != '\r' && c != '\t' {
				return opaque, nil
			}
		}
		return Result{}, ErrNeedMore
	}
	line = bytes.TrimSuffix(line[:end], []byte{'\r'})
	sp := bytes.LastIndexByte(line, ' ')
	if sp <= 0 {
		return opaque, nil
	}
	v := line[sp+1:]
	if len(v) == 8 && bytes.HasPrefix(v, []byte("HTTP/1.")) && (v[7] == '0' || v[7] == '1') {
		return Result{Protocol: HTTP1}, nil
	}
	return opaque, nil
}

func isTokenChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// classifyTLS parses a TLS ClientHello record far enough to read SNI and ALPN. Anything malformed is opaque.
func classifyTLS(b []byte) (Result, error) {
	opaque := Result{Protocol: Opaque}
	if len(b) < 5 {
		if len(b) >= 2 && b[1] != 3 {
			return opaque, nil
		}
		return Result{}, ErrNeedMore
	}
	if b[1] != 3 {
		return opaque, nil
	}
	recLen := int(binary.BigEndian.Uint16(b[3:5]))
	if recLen < 4 || recLen > 16384 {
		return opaque, nil
	}
	if len(b) < 5+4 {
		return Result{}, ErrNeedMore
	}
	hs := b[5:]
	if hs[0] != 1 { // ClientHello
		return opaque, nil
	}
	hsLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if hsLen+4 > recLen {
		// A ClientHello split across records is legal but rare; we only need to know it is TLS.
		return Result{Protocol: TLS}, nil
	}
	if len(b) < 5+recLen {
		return Result{}, ErrNeedMore
	}
	res := Result{Protocol: TLS}
	p := parser(hs[4 : 4+hsLen])
	if !p.skip(2+32) || !p.skipVec8() || !p.skipVec16() || !p.skipVec8() {
		return opaque, nil
	}
	if p.empty() { // no extensions
		return res, nil
	}
	exts, ok := p.vec16()
	if !ok {
		return opaque, nil
	}
	for !exts.empty() {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return opaque, nil
		}
		switch typ {
		case 0: // server_name
			list, ok := data.vec16()
			for ok && !list.empty() {
				kind, ok1 := list.u8()
				name, ok2 := list.vec16()
				if !ok1 || !ok2 {
					return opaque, nil
				}
				if kind == 0 {
					res.SNI = string(name)
				}
			}
			if !ok {
				return opaque, nil
			}
		case 16: // application_layer_protocol_negotiation
			list, ok := data.vec16()
			for ok && !list.empty() {
				proto, ok1 := list.vec8()
				if !ok1 {
					return opaque, nil
				}
				res.ALPN = append(res.ALPN, string(proto))
			}
			if !ok {
				return opaque, nil
			}
		}
	}
	return res, nil
}

type parser []byte

func (p *parser) empty() bool { return len(*p) == 0 }

func (p *parser) skip(n int) bool {
	if len(*p) < n {
		return false
	}
	*p = (*p)[n:]
	return true
}

func (p *parser) u8() (byte, bool) {
	if len(*p) < 1 {
		return 0, false
	}
	v := (*p)[0]
	*p = (*p)[1:]
	return v, true
}

func (p *parser) u16() (uint16, bool) {
	if len(*p) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*p)
	*p = (*p)[2:]
	return v, true
}

func (p *parser) vec8() (parser, bool) {
	n, ok := p.u8()
	if !ok || len(*p) < int(n) {
		return nil, false
	}
	v := (*p)[:n]
	*p = (*p)[n:]
	return v, true
}

func (p *parser) vec16() (parser, bool) {
	n, ok := p.u16()
	if !ok || len(*p) < int(n) {
		return nil, false
	}
	v := (*p)[:n]
	*p = (*p)[n:]
	return v, true
}

func (p *parser) skipVec8() bool  { _, ok := p.vec8(); return ok }
func (p *parser) skipVec16() bool { _, ok := p.vec16(); return ok }
