package scrape

import (
	"context"
	"slices"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// samplesPerChunk is how many samples a chunk takes before it is sealed. Prometheus uses 120 too: the XOR encoding
// gets most of its gain by then (about 1-2 bytes a sample for counters scraped at a steady interval), and retention
// drops whole sealed chunks, so a smaller chunk would keep less past the window but compress worse.
const samplesPerChunk = 120

// chunk is one run of samples of a series, XOR-encoded like Prometheus's head chunks.
type chunk struct {
	c          *chunkenc.XORChunk
	mint, maxt int64
}

// memSeries is one series: its labels, its sealed chunks and the open chunk that scrapes append to.
type memSeries struct {
	lset    labels.Labels
	sealed  []chunk
	head    chunk
	app     chunkenc.Appender
	lastT   int64 // timestamp of the last sample, to refuse out-of-order or duplicate ones
	deleted bool  // dropped by retention; a target holding it must look it up again
}

// store is an in-memory series store with a time window. Scrapes append under the write lock; a query's Select
// decodes the samples it needs under the read lock, so evaluating the query never holds up a scrape.
type store struct {
	mu      sync.RWMutex
	byHash  map[uint64][]*memSeries
	byName  map[string]map[*memSeries]struct{}
	minTime int64 // samples before this are past retention and invisible to queries
	samples int   // samples held, for the self-metrics and tests
	series  int
}

func newStore() *store {
	return &store{byHash: map[uint64][]*memSeries{}, byName: map[string]map[*memSeries]struct{}{}}
}

// getOrCreate returns the series with exactly these labels, creating it. The caller holds the write lock.
func (s *store) getOrCreate(lset labels.Labels) *memSeries {
	h := lset.Hash()
	for _, ms := range s.byHash[h] {
		if labels.Equal(ms.lset, lset) {
			return ms
		}
	}
	ms := &memSeries{lset: lset, lastT: -1 << 63}
	s.byHash[h] = append(s.byHash[h], ms)
	name := lset.Get(model.MetricNameLabel)
	if s.byName[name] == nil {
		s.byName[name] = map[*memSeries]struct{}{}
	}
	s.byName[name][ms] = struct{}{}
	s.series++
	return ms
}

// append adds one sample to ms and tells whether it was taken (a sample not newer than the last one is refused, as
// Prometheus refuses out-of-order samples). The caller holds the write lock.
func (s *store) append(ms *memSeries, t int64, v float64) bool {
	if t <= ms.lastT {
		return false
	}
	if ms.app == nil || ms.head.c.NumSamples() >= samplesPerChunk {
		if ms.app != nil {
			ms.head.c.Compact() // no more appends: give back the spare capacity
			ms.sealed = append(ms.sealed, ms.head)
		}
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil { // a new XOR chunk always has an appender
			panic(err)
		}
		ms.head, ms.app = chunk{c: c, mint: t}, app
	}
	ms.app.Append(0, t, v)
	ms.head.maxt, ms.lastT = t, t
	s.samples++
	return true
}

// truncate forgets every sample before mint: queries stop seeing them at once, sealed chunks that end before mint
// are dropped, and series with nothing left are deleted.
func (s *store) truncate(mint int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mint > s.minTime {
		s.minTime = mint
	}
	for h, list := range s.byHash {
		kept := list[:0]
		for _, ms := range list {
			if ms.lastT < mint {
				s.samples -= ms.numSamples()
				s.series--
				ms.deleted = true
				name := ms.lset.Get(model.MetricNameLabel)
				delete(s.byName[name], ms)
				if len(s.byName[name]) == 0 {
					delete(s.byName, name)
				}
				continue
			}
			n := 0
			for n < len(ms.sealed) && ms.sealed[n].maxt < mint {
				s.samples -= ms.sealed[n].c.NumSamples()
				n++
			}
			if n > 0 {
				// A fresh slice, so that the dropped chunks can be collected even while a query holds the old one.
				ms.sealed = slices.Clone(ms.sealed[n:])
			}
			kept = append(kept, ms)
		}
		if len(kept) == 0 {
			delete(s.byHash, h)
		} else {
			clear(list[len(kept):])
			s.byHash[h] = kept
		}
	}
}

func (ms *memSeries) numSamples() int {
	n := 0
	for _, c := range ms.sealed {
		n += c.c.NumSamples()
	}
	if ms.app != nil {
		n += ms.head.c.NumSamples()
	}
	return n
}

// stats returns the series and samples held.
func (s *store) stats() (series, samples int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.series, s.samples
}

var _ storage.Queryable = (*store)(nil)

// Querier implements storage.Queryable for the PromQL engine.
func (s *store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *store
	mint, maxt int64
}

// candidates returns the series that may match: those of the metric name when a matcher pins it, else all. The
// caller holds the read lock.
func (q *querier) candidates(ms []*labels.Matcher) func(yield func(*memSeries) bool) {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return func(yield func(*memSeries) bool) {
				for s := range q.s.byName[m.Value] {
					if !yield(s) {
						return
					}
				}
			}
		}
	}
	return func(yield func(*memSeries) bool) {
		for _, list := range q.s.byHash {
			for _, s := range list {
				if !yield(s) {
					return
				}
			}
		}
	}
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *querier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.s.mu.RLock()
	mint := max(q.mint, q.s.minTime)
	var (
		out []storage.Series
		it  chunkenc.Iterator
	)
	for s := range q.candidates(ms) {
		if s.lastT < mint || !matches(s.lset, ms) {
			continue
		}
		// Decode the samples in range now, under the read lock: the open chunk changes with the next scrape.
		var list fsamples
		read := func(c chunk) {
			if c.maxt < mint || c.mint > q.maxt {
				return
			}
			it = c.c.Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				if t, v := it.At(); t >= mint && t <= q.maxt {
					list = append(list, fsample{t: t, f: v})
				}
			}
		}
		for _, c := range s.sealed {
			read(c)
		}
		if s.app != nil {
			read(s.head)
		}
		if len(list) > 0 {
			out = append(out, &storage.SeriesEntry{Lset: s.lset, SampleIteratorFn: list.iterator})
		}
	}
	q.s.mu.RUnlock()
	// Sorted always: the engine relies on sorted input for some selections, and it is cheap at this size.
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &seriesSet{list: out, i: -1}
}

func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	seen := map[string]struct{}{}
	for s := range q.candidates(ms) {
		if v := s.lset.Get(name); v != "" && s.lastT >= max(q.mint, q.s.minTime) && matches(s.lset, ms) {
			seen[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	seen := map[string]struct{}{}
	for s := range q.candidates(ms) {
		if s.lastT >= max(q.mint, q.s.minTime) && matches(s.lset, ms) {
			s.lset.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *querier) Close() error { return nil }

// fsample is one float sample, as chunks.Sample (through a pointer, so that handing one out does not allocate).
type fsample struct {
	t int64
	f float64
}

func (s *fsample) T() int64                      { return s.t }
func (s *fsample) ST() int64                     { return 0 }
func (s *fsample) F() float64                    { return s.f }
func (s *fsample) H() *histogram.Histogram       { return nil }
func (s *fsample) FH() *histogram.FloatHistogram { return nil }
func (s *fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *fsample) Copy() chunks.Sample           { c := *s; return &c }

// fsamples are a series' samples in time order, as storage.Samples.
type fsamples []fsample

func (l fsamples) Get(i int) chunks.Sample { return &l[i] }
func (l fsamples) Len() int                { return len(l) }

func (l fsamples) iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(l)
}

type seriesSet struct {
	list []storage.Series
	i    int
}

func (ss *seriesSet) Next() bool                        { ss.i++; return ss.i < len(ss.list) }
func (ss *seriesSet) At() storage.Series                { return ss.list[ss.i] }
func (ss *seriesSet) Err() error                        { return nil }
func (ss *seriesSet) Warnings() annotations.Annotations { return nil }
