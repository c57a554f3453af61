package state

import (
	"sync"
	"sync/atomic"
)

// tailCacheBytes is how much of the newest journal data the store keeps in
// memory for dispatchers (see tailCache).
const tailCacheBytes = 8 << 20

// tailCache holds copies of the most recently committed journal entries, so
// that a dispatcher that keeps up with the pollers reads what it delivers
// from memory instead of from the file. Reading back through bbolt's memory
// map costs a page fault per 4 KiB and keeps the file's pages cached, and
// keeping a file of gigabytes in the page cache is what made journal writes
// expensive (see dropCache). A dispatcher that falls behind the cache reads
// from the file as before; both give the same bytes.
//
// The data lives in one ring buffer of limit bytes, allocated on first use
// (outside the Go heap where the system allows: tailMemory) and never again, so memory stays flat however many commits pass through;
// each entry is stored whole (an entry that does not fit before the end of
// the buffer starts again at its beginning). The entries are consecutive
// journal sequence numbers: a commit that does not follow the cached ones
// empties the cache first.
type tailCache struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	wpos  int // where the next entry goes

	ents    []tailEntry // a ring: the oldest at ents[head], n in use
	head, n int

	hits, misses atomic.Uint64 // reads served and not, for tests
}

type tailEntry struct {
	seq      uint64
	off, len int
}

func (t *tailCache) at(i int) *tailEntry { return &t.ents[(t.head+i)%len(t.ents)] }

func (t *tailCache) popOldest() {
	t.head = (t.head + 1) % len(t.ents)
	t.n--
}

func (t *tailCache) clearLocked() { t.head, t.n, t.wpos = 0, 0, 0 }

// add records a committed run of entries starting at seq first.
func (t *tailCache) add(first uint64, events []Append) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n > 0 && t.at(t.n-1).seq+1 != first {
		t.clearLocked() // a hole (a failed commit): the cache restarts here
	}
	if t.buf == nil {
		t.buf = tailMemory(t.limit)
	}
	for i := range events {
		t.put(first+uint64(i), events[i].Data)
	}
}

// put stores one entry, evicting the oldest ones until it fits.
func (t *tailCache) put(seq uint64, data []byte) {
	size := len(data)
	if size > t.limit {
		t.clearLocked() // larger than the whole cache: it is read from the file
		return
	}
	for t.n > 0 {
		oldest := t.at(0).off
		if oldest < t.wpos {
			// Live data is [oldest, wpos): free after it, or before it.
			if t.wpos+size <= t.limit {
				break
			}
			if size <= oldest {
				t.wpos = 0
				break
			}
		} else if t.wpos+size <= oldest {
			// Live data wraps: [oldest, limit) and [0, wpos); free between.
			break
		}
		t.popOldest()
	}
	if t.n == 0 {
		t.wpos = 0
	}
	if t.n == len(t.ents) {
		grown := make([]tailEntry, max(2*len(t.ents), 1024))
		for i := range t.n {
			grown[i] = *t.at(i)
		}
		t.ents, t.head = grown, 0
	}
	copy(t.buf[t.wpos:], data)
	*t.at(t.n) = tailEntry{seq: seq, off: t.wpos, len: size}
	t.n++
	t.wpos += size
}

// first returns the oldest cached seq, or 0 when the cache is empty.
func (t *tailCache) first() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return 0
	}
	return t.at(0).seq
}

// dropThrough forgets every entry at or below seq, because those entries
// left the journal (retention or eviction).
func (t *tailCache) dropThrough(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.n > 0 && t.at(0).seq <= seq {
		t.popOldest()
	}
}

// read is Store.ReadInto served from the cache. It reports false, and
// returns nothing, when the entry after seq after is not cached.
func (t *tailCache) read(after uint64, max, maxBytes int, buf []byte) ([]Entry, []byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || after+1 < t.at(0).seq || after+1 > t.at(t.n-1).seq {
		t.misses.Add(1)
		return nil, buf, false
	}
	t.hits.Add(1)
	start := int(after + 1 - t.at(0).seq)
	// Size the batch first, as the file path does, so its data is copied
	// once into one buffer.
	n, total := 0, 0
	for i := start; i < t.n && n < max; i++ {
		d := t.at(i).len
		if n > 0 && total+d > maxBytes {
			break
		}
		total += d
		n++
	}
	if cap(buf) < total {
		buf = make([]byte, 0, total)
	}
	buf = buf[:0]
	out := make([]Entry, 0, n)
	for i := start; i < start+n; i++ {
		e := t.at(i)
		p := len(buf)
		buf = append(buf, t.buf[e.off:e.off+e.len]...)
		out = append(out, Entry{Seq: e.seq, Data: buf[p:len(buf):len(buf)]})
	}
	return out, buf, true
}

// sinksReadFromTail reports whether every sink that set a cursor in this
// process is at most one entry behind the tail cache, so that its next
// reads come from memory.
func (s *Store) sinksReadFromTail() bool {
	first := s.tail.first()
	if first == 0 {
		return false
	}
	s.cursorMu.Lock()
	defer s.cursorMu.Unlock()
	for _, c := range s.cursors {
		if c+1 < first {
			return false
		}
	}
	return true
}
