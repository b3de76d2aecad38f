package replay

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// source is a request body that records whether it was closed.
type source struct {
	io.Reader
	closed int
}

func (s *source) Close() error {
	s.closed++
	return nil
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func mustReader(t *testing.T, b *Body) io.ReadCloser {
	t.Helper()
	r, ok := b.Reader()
	if !ok {
		t.Fatal("Reader: cannot replay")
	}
	return r
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return p
}

func TestReplayAfterPartialCompleteAndNoReads(t *testing.T) {
	t.Parallel()
	data := body(10_000)
	for _, first := range []int{0, 1, 4096, 5000, 10_000} {
		src := &source{Reader: iotest.HalfReader(bytes.NewReader(data))}
		b := New(src, 64<<10)
		if got := readN(t, mustReader(t, b), first); !bytes.Equal(got, data[:first]) {
			t.Fatalf("first %d bytes differ", first)
		}
		// Two more attempts, each reading all of it, the second after the first completed.
		for attempt := 2; attempt <= 3; attempt++ {
			r := mustReader(t, b)
			if err := iotest.TestReader(r, data); err != nil {
				t.Fatalf("first read %d, attempt %d: %v", first, attempt, err)
			}
			if err := r.Close(); err != nil || src.closed != 0 {
				t.Fatalf("a reader's Close closed the source (%v)", err)
			}
		}
		if err := b.Close(); err != nil || src.closed != 1 {
			t.Fatalf("Close: %v, source closed %d times", err, src.closed)
		}
	}
}

func TestOverLimit(t *testing.T) {
	t.Parallel()
	data := body(100)

	// Exactly the limit read: still replayable.
	b := New(&source{Reader: bytes.NewReader(data)}, 100)
	if _, err := io.ReadAll(mustReader(t, b)); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(mustReader(t, b)); !bytes.Equal(got, data) {
		t.Fatal("a body of exactly the limit not replayed")
	}

	// One byte over: the attempt that read it goes on to the end, and nothing can be replayed.
	b = New(&source{Reader: iotest.OneByteReader(bytes.NewReader(data))}, 50)
	r := mustReader(t, b)
	got := readN(t, r, 51)
	if _, ok := b.Reader(); ok {
		t.Fatal("Reader after 51 bytes with a limit of 50")
	}
	if b.buf != nil {
		t.Fatal("copy kept past the limit")
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(got, rest...), data) {
		t.Fatalf("the last reader lost bytes: %v", err)
	}

	// A limit of 0 (or less) replays only an empty body.
	b = New(&source{Reader: strings.NewReader("x")}, -1)
	if _, err := io.ReadAll(mustReader(t, b)); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Reader(); ok {
		t.Fatal("replay with a negative limit")
	}
}

func TestSupersededReader(t *testing.T) {
	t.Parallel()
	data := body(1000)
	b := New(&source{Reader: bytes.NewReader(data)}, 4096)
	old := mustReader(t, b)
	readN(t, old, 300)
	cur := mustReader(t, b)
	if n, err := old.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrSuperseded) {
		t.Fatalf("superseded Read = %d, %v", n, err)
	}
	if err := iotest.TestReader(cur, data); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(old); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("superseded reader after the new one finished: %v", err)
	}
}

// gate is a source whose reads wait to be let through, to hold a read in flight.
type gate struct {
	started chan struct{}
	chunks  chan []byte
}

func (g *gate) Read(p []byte) (int, error) {
	g.started <- struct{}{}
	c, ok := <-g.chunks
	if !ok {
		return 0, io.EOF
	}
	return copy(p, c), nil
}

func (g *gate) Close() error { return nil }

// TestAbandonedReadInFlight: an abandoned attempt's transport is blocked reading the source when the next attempt
// takes the body. What that read returns belongs to the new attempt, also when it takes the body past the limit.
func TestAbandonedReadInFlight(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{100, 4} {
		g := &gate{started: make(chan struct{}), chunks: make(chan []byte)}
		b := New(g, limit)
		old := mustReader(t, b)
		done := make(chan error)
		go func() {
			_, err := old.Read(make([]byte, 64))
			done <- err
		}()
		<-g.started // the old attempt is inside the source's Read
		cur := mustReader(t, b)
		g.chunks <- []byte("hello, ")
		if err := <-done; !errors.Is(err, ErrSuperseded) {
			t.Fatalf("limit %d: abandoned read returned %v", limit, err)
		}
		go func() {
			<-g.started
			g.chunks <- []byte("world")
			<-g.started
			close(g.chunks)
		}()
		got, err := io.ReadAll(cur)
		if err != nil || string(got) != "hello, world" {
			t.Fatalf("limit %d: new attempt read %q, %v", limit, got, err)
		}
		if _, ok := b.Reader(); ok != (limit >= len(got)) {
			t.Fatalf("limit %d: Reader ok = %v after %d bytes", limit, ok, len(got))
		}
	}
}

func TestErrorsPropagate(t *testing.T) {
	t.Parallel()
	// Data and io.EOF from the same Read.
	b := New(&source{Reader: iotest.DataErrReader(strings.NewReader("abc"))}, 10)
	for range 3 {
		if got, err := io.ReadAll(mustReader(t, b)); err != nil || string(got) != "abc" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	// A failed source fails every attempt once past the copy.
	boom := errors.New("client went away")
	b = New(&source{Reader: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))}, 10)
	for range 3 {
		if got, err := io.ReadAll(mustReader(t, b)); !errors.Is(err, boom) || string(got) != "abc" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
}

func TestCloseAndEmpty(t *testing.T) {
	t.Parallel()
	src := &source{Reader: strings.NewReader("abc")}
	b := New(src, 10)
	r := mustReader(t, b)
	readN(t, r, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil || src.closed != 1 {
		t.Fatalf("second Close: %v, source closed %d times", err, src.closed)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, ok := b.Reader(); ok {
		t.Fatal("Reader after Close")
	}

	var nilBody *Body
	for _, b := range []*Body{New(nil, 10), New(http.NoBody, 10), nilBody} {
		for range 2 {
			r, ok := b.Reader()
			if !ok {
				t.Fatal("no reader for an empty body")
			}
			if got, err := io.ReadAll(r); err != nil || len(got) != 0 {
				t.Fatalf("empty body read %q, %v", got, err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// liar claims more bytes than it was given, or fewer than none.
type liar struct{ n int }

func (l *liar) Read(p []byte) (int, error) { l.n = -l.n; return l.n, nil }
func (*liar) Close() error                 { return nil }

func TestBrokenSource(t *testing.T) {
	t.Parallel()
	b := New(&liar{n: 1 << 20}, 10)
	r := mustReader(t, b)
	for range 4 {
		n, _ := r.Read(make([]byte, 8))
		if n < 0 || n > 8 {
			t.Fatalf("Read returned %d", n)
		}
	}
}

// TestConcurrentAttempts takes readers from many goroutines at once: each reads a prefix of the body until it is
// superseded, and the last one taken reads it whole. -race checks the locking.
func TestConcurrentAttempts(t *testing.T) {
	t.Parallel()
	data := body(20_000)
	b := New(&source{Reader: iotest.HalfReader(bytes.NewReader(data))}, 64<<10)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				r, ok := b.Reader()
				if !ok {
					t.Error("cannot replay under the limit")
					return
				}
				got, err := io.ReadAll(iotest.OneByteReader(r))
				if err != nil && !errors.Is(err, ErrSuperseded) {
					t.Errorf("read: %v", err)
				}
				if !bytes.Equal(got, data[:len(got)]) {
					t.Errorf("read %d bytes that are not a prefix of the body", len(got))
				}
			}
		})
	}
	wg.Wait()
	if got, err := io.ReadAll(mustReader(t, b)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("final attempt: %d bytes, %v", len(got), err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// resettable is a 1 KiB body that can be read again without allocating.
type resettable struct{ bytes.Reader }

func (*resettable) Close() error { return nil }

// BenchmarkReadOnce is the common case: a 1 KiB body, one attempt, no retry.
func BenchmarkReadOnce(b *testing.B) {
	data := body(1 << 10)
	src := &resettable{}
	p := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		src.Reset(data)
		body := New(src, 64<<10)
		r, _ := body.Reader()
		for {
			if _, err := r.Read(p); err != nil {
				break
			}
		}
		body.Close()
	}
}

// BenchmarkReadTwice is a retried 1 KiB body.
func BenchmarkReadTwice(b *testing.B) {
	data := body(1 << 10)
	src := &resettable{}
	p := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		src.Reset(data)
		body := New(src, 64<<10)
		for range 2 {
			r, _ := body.Reader()
			for {
				if _, err := r.Read(p); err != nil {
					break
				}
			}
		}
		body.Close()
	}
}
