// Package transport encodes the header a sinew proxy writes at the start of every mesh connection, right after
// the mTLS handshake. It tells the inbound proxy which application port the client meant and how the rest of the
// stream is framed, so one inbound listener can serve every port of the workload.
package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Proto says how the bytes after the header are framed.
type Proto byte

const (
	// ProtoH2 is HTTP/2 between the proxies, for requests the client sent as HTTP/2 (gRPC).
	ProtoH2 Proto = 1
	// ProtoOpaque is raw TCP for the application port.
	ProtoOpaque Proto = 2
	// ProtoHTTP1 is HTTP/1.1 over the mesh connection, for requests the client sent as HTTP/1 (decision 0004).
	ProtoHTTP1 Proto = 3
)

func (p Proto) String() string {
	switch p {
	case ProtoH2:
		return "h2"
	case ProtoOpaque:
		return "opaque"
	case ProtoHTTP1:
		return "http1"
	}
	return fmt.Sprintf("proto(%d)", byte(p))
}

// Size is the encoded length of a header.
const Size = 8

var magic = [4]byte{'S', 'N', 'W', 1}

// Header is the mesh connection header.
type Header struct {
	Proto Proto
	Port  uint16
}

// ErrBadHeader is returned for bytes that are not a valid header; the connection should be closed.
var ErrBadHeader = errors.New("invalid sinew transport header")

// Append appends the encoded header to b.
func (h Header) Append(b []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, byte(h.Proto), 0)
	return binary.BigEndian.AppendUint16(b, h.Port)
}

// Parse decodes a header from exactly Size bytes.
func Parse(b []byte) (Header, error) {
	if len(b) < Size {
		return Header{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadHeader, len(b), Size)
	}
	if [4]byte(b[:4]) != magic {
		return Header{}, fmt.Errorf("%w: bad magic %q", ErrBadHeader, b[:4])
	}
	h := Header{Proto: Proto(b[4]), Port: binary.BigEndian.Uint16(b[6:8])}
	switch h.Proto {
	case ProtoH2, ProtoOpaque, ProtoHTTP1:
	default:
		return Header{}, fmt.Errorf("%w: unknown protocol %d", ErrBadHeader, b[4])
	}
	if b[5] != 0 {
		return Header{}, fmt.Errorf("%w: reserved byte is %d", ErrBadHeader, b[5])
	}
	if h.Port == 0 {
		return Header{}, fmt.Errorf("%w: port 0", ErrBadHeader)
	}
	return h, nil
}

// Read reads one header from r.
func Read(r io.Reader) (Header, error) {
	var buf [Size]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Header{}, fmt.Errorf("reading transport header: %w", err)
	}
	return Parse(buf[:])
}
