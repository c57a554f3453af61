package state

import (
	"sync"
	"sync/atomic"
)

// tailCacheBytes is how much of the newest journal data the store keeps in
// memory for dispatchers (see tailCache).
const tailCacheBytes = 16 << 20

// tailCache holds copies of the most recently committed journal entries, so
// that a dispatcher that keeps up with the pollers reads what it delivers
// from memory instead of from the file. Reading back through bbolt's memory
// map costs a page fault per 4 KiB and keeps the file's pages cached, and
// keeping a file of gigabytes in the page cache is what made journal writes
// expensive (see dropCache). A dispatcher that falls behind the cache reads
// from the file as before; both give the same bytes.
//
// The cache is a run of chunks, one per commit, in journal order and
// without holes; chunks evicted from the front are reused for new commits,
// so its memory is allocated once and stays flat.
type tailCache struct {
	mu     sync.Mutex
	limit  int
	bytes  int
	chunks []*tailChunk
	spare  []*tailChunk

	hits, misses atomic.Uint64
}

// tailChunk is the entries of one commit: seqs first, first+1, ... with the
// data of entry i at data[ends[i-1]:ends[i]].
type tailChunk struct {
	first uint64
	data  []byte
	ends  []int
}

func (c *tailChunk) last() uint64 { return c.first + uint64(len(c.ends)) - 1 }

func (c *tailChunk) entry(seq uint64) []byte {
	i := int(seq - c.first)
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]]
}

// add records a committed run of entries starting at seq first. Commits are
// added in journal order; a run that does not follow the cached one (a
// failed commit in between) empties the cache first.
func (t *tailCache) add(first uint64, events []Append) {
	if len(events) == 0 {
		return
	}
	size := 0
	for i := range events {
		size += len(events[i].Data)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.chunks); n > 0 && t.chunks[n-1].last()+1 != first {
		t.clearLocked()
	}
	if size > t.limit {
		t.clearLocked() // larger than the whole cache: read from the file
		return
	}
	for t.bytes+size > t.limit && len(t.chunks) > 0 {
		t.evictFrontLocked()
	}
	var c *tailChunk
	for i, s := range t.spare {
		if cap(s.data) >= size {
			c = s
			t.spare = append(t.spare[:i], t.spare[i+1:]...)
			break
		}
	}
	if c == nil {
		c = &tailChunk{data: make([]byte, 0, size)}
	}
	c.first, c.data, c.ends = first, c.data[:0], c.ends[:0]
	for i := range events {
		c.data = append(c.data, events[i].Data...)
		c.ends = append(c.ends, len(c.data))
	}
	t.chunks = append(t.chunks, c)
	t.bytes += size
}

// evictFrontLocked moves the oldest chunk to the spares (at most a few are
// kept; the rest are left to the collector).
func (t *tailCache) evictFrontLocked() {
	c := t.chunks[0]
	t.chunks[0] = nil
	t.chunks = t.chunks[1:]
	t.bytes -= len(c.data)
	if len(t.spare) < 4 {
		t.spare = append(t.spare, c)
	}
}

func (t *tailCache) clearLocked() {
	for len(t.chunks) > 0 {
		t.evictFrontLocked()
	}
}

// dropThrough forgets every chunk holding a seq at or below seq, because
// those entries left the journal (retention or eviction).
func (t *tailCache) dropThrough(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.chunks) > 0 && t.chunks[0].first <= seq {
		t.evictFrontLocked()
	}
}

// read is Store.ReadInto served from the cache. It reports false, and
// returns nothing, when the entry after seq after is not cached.
func (t *tailCache) read(after uint64, max, maxBytes int, buf []byte) ([]Entry, []byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.chunks) == 0 || after+1 < t.chunks[0].first || after+1 > t.chunks[len(t.chunks)-1].last() {
		t.misses.Add(1)
		return nil, buf, false
	}
	t.hits.Add(1)
	// Size the batch first, as the file path does, so its data is copied
	// once into one buffer.
	n, total := 0, 0
	ci := 0
	for ci < len(t.chunks) && t.chunks[ci].last() <= after {
		ci++
	}
	seq := after + 1
sizing:
	for c := ci; c < len(t.chunks) && n < max; c++ {
		for ; seq <= t.chunks[c].last() && n < max; seq++ {
			d := len(t.chunks[c].entry(seq))
			if n > 0 && total+d > maxBytes {
				break sizing
			}
			total += d
			n++
		}
	}
	if cap(buf) < total {
		buf = make([]byte, 0, total)
	}
	buf = buf[:0]
	out := make([]Entry, 0, n)
	seq = after + 1
	for c := ci; c < len(t.chunks) && len(out) < n; c++ {
		for ; seq <= t.chunks[c].last() && len(out) < n; seq++ {
			p := len(buf)
			buf = append(buf, t.chunks[c].entry(seq)...)
			out = append(out, Entry{Seq: seq, Data: buf[p:len(buf):len(buf)]})
		}
	}
	return out, buf, true
}

// TailStats reports how many journal reads the in-memory tail served and
// how many went to the file, for benchmarks and tests.
func (s *Store) TailStats() (hits, misses uint64) {
	return s.tail.hits.Load(), s.tail.misses.Load()
}
