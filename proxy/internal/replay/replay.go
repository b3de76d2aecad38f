// Package replay lets a request body be sent more than once, for retries: it keeps a copy of what an attempt read,
// up to a limit, and gives the next attempt a reader that replays the copy and then carries on from the source.
// It does not decide whether to retry; a body that outgrew the limit simply cannot be replayed.
package replay

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// Errors a Reader returns.
var (
	// ErrSuperseded: a later attempt took the body; this attempt's reader is dead. Retrying does not help.
	ErrSuperseded = errors.New("replay: request body taken by a later attempt")
	// ErrClosed: the request is over and the body was closed.
	ErrClosed = errors.New("replay: request body closed")
)

// Body is a request body that can be read again from the start, as long as no more than its limit has been read.
//
// Readers are handed out one at a time: taking a new one supersedes every earlier one, whose Read then fails with
// ErrSuperseded. An attempt's transport may still be reading in another goroutine after the attempt was
// abandoned; whatever that read gets from the source is kept for the new reader, never lost to it. One goroutine
// at a time reads the source, without holding the lock that Reader and Close take, so a read blocked on a slow
// client holds up neither.
type Body struct {
	src   io.ReadCloser // nil: no body
	limit int64

	srcMu sync.Mutex // held while reading src

	mu     sync.Mutex
	gen    uint64  // generation of the current Reader
	read   int64   // bytes read from src so far
	buf    *[]byte // copy of bytes [0, read) while needed; pooled; nil until the first byte
	over   bool    // more than limit bytes were read: no more Readers
	err    error   // the error src returned (io.EOF at the end), for every later reader once past the copy
	closed bool
	first  reader // the first Reader, kept here so that a request without retries allocates no reader
}

// New returns a replayable body over src that keeps up to limit bytes (a negative limit is 0). src may be nil or
// http.NoBody: then every Reader is an empty body.
func New(src io.ReadCloser, limit int) *Body {
	if src == http.NoBody {
		src = nil
	}
	return &Body{src: src, limit: int64(max(limit, 0))}
}

// Reader returns a reader from byte 0 for the next attempt and supersedes every earlier one. It reports false when
// the body cannot be sent again: more than limit bytes were already read, or the body was closed. The reader's
// Close does not close the source (transports close request bodies; the request is not over until Body.Close).
func (b *Body) Reader() (io.ReadCloser, bool) {
	if b == nil || b.src == nil {
		return http.NoBody, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over || b.closed {
		return nil, false
	}
	b.gen++
	if b.gen == 1 {
		b.first = reader{b: b, gen: 1}
		return &b.first, true
	}
	return &reader{b: b, gen: b.gen}, true
}

// Close closes the source and frees the copy: the request is over. Readers fail with ErrClosed afterwards.
func (b *Body) Close() error {
	if b == nil || b.src == nil {
		return nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.release()
	b.mu.Unlock()
	return b.src.Close()
}

type reader struct {
	b   *Body
	gen uint64
	off int64 // bytes this reader has returned
}

// Close does nothing: the source belongs to the Body.
func (r *reader) Close() error { return nil }

func (r *reader) Read(p []byte) (int, error) {
	b := r.b
	for {
		b.mu.Lock()
		if err := r.usable(); err != nil {
			b.mu.Unlock()
			return 0, err
		}
		if r.off < b.read {
			// Behind the source: replay from the copy.
			n := copy(p, (*b.buf)[r.off:b.read])
			r.off += int64(n)
			r.releaseIfPast()
			b.mu.Unlock()
			return n, nil
		}
		if err := b.err; err != nil {
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}

		b.srcMu.Lock()
		b.mu.Lock()
		// Another reader may have read the source while this one waited, or a new Reader taken the body.
		ready := r.usable() == nil && r.off == b.read && b.err == nil
		b.mu.Unlock()
		if !ready {
			b.srcMu.Unlock()
			continue
		}
		n, err := b.src.Read(p)
		n = min(max(n, 0), len(p)) // a broken source must not make us panic
		b.mu.Lock()
		n, err = r.record(p[:n], err)
		b.mu.Unlock()
		b.srcMu.Unlock()
		return n, err
	}
}

// usable says why r may not read (nil: it may). b.mu is held.
func (r *reader) usable() error {
	switch {
	case r.b.closed:
		return ErrClosed
	case r.gen != r.b.gen:
		return ErrSuperseded
	}
	return nil
}

// record accounts for data just read from the source by r and returns what r's Read returns. b.mu is held.
func (r *reader) record(data []byte, err error) (int, error) {
	b := r.b
	if b.closed {
		return 0, ErrClosed
	}
	current := r.gen == b.gen
	if len(data) > 0 {
		b.read += int64(len(data))
		if !b.over {
			b.over = b.read > b.limit
			// Keep the bytes while the body is replayable, and also when a later reader took the body during
			// this read: it has not seen them yet (it may be the last reader, past the limit).
			if !b.over || !current {
				b.keep(data)
			}
		}
	}
	if err != nil {
		b.err = err
	}
	if !current {
		return 0, ErrSuperseded
	}
	r.off = b.read
	r.releaseIfPast()
	return len(data), err
}

// releaseIfPast frees the copy once the body is past the limit and r, the last reader, has read all of it.
func (r *reader) releaseIfPast() {
	if b := r.b; b.over && r.gen == b.gen && r.off >= b.read {
		b.release()
	}
}

// keep appends data to the copy, moving it to a larger buffer when full.
func (b *Body) keep(data []byte) {
	if b.buf == nil {
		b.buf = getBuf(len(data))
	}
	if need := len(*b.buf) + len(data); need > cap(*b.buf) {
		nb := getBuf(max(need, 2*cap(*b.buf)))
		*nb = append(*nb, *b.buf...)
		putBuf(b.buf)
		b.buf = nb
	}
	*b.buf = append(*b.buf, data...)
}

func (b *Body) release() {
	if b.buf != nil {
		putBuf(b.buf)
		b.buf = nil
	}
}

// Copies come in a few sizes, each pooled: most bodies are small, and a 64 KiB buffer per request would dominate
// the proxy's memory.
var (
	bufSizes = [...]int{4 << 10, 16 << 10, 64 << 10}
	bufPools [len(bufSizes)]sync.Pool // of *[]byte
)

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) *[]byte {
	for i, size := range bufSizes {
		if n <= size {
			if v, ok := bufPools[i].Get().(*[]byte); ok {
				*v = (*v)[:0]
				return v
			}
			s := make([]byte, 0, size)
			return &s
		}
	}
	s := make([]byte, 0, n)
	return &s
}

func putBuf(p *[]byte) {
	for i, size := range bufSizes {
		if cap(*p) == size {
			bufPools[i].Put(p)
			return
		}
	}
}
