package state

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Entry is one journal entry: its sequence number and the event's JSON. Data
// is a copy owned by the caller.
type Entry struct {
	Seq  uint64
	Data []byte
}

// Read returns up to max entries after seq, in order, stopping early once
// maxBytes of data have been collected (at least one entry is returned when
// any exists).
func (s *Store) Read(after uint64, max int, maxBytes int) ([]Entry, error) {
	out, _, err := s.ReadInto(after, max, maxBytes, nil)
	return out, err
}

// ReadInto is Read with the entries' data copied into buf's storage when it
// is large enough; it returns the buffer used, for the next call. The data
// stays valid until buf is reused.
func (s *Store) ReadInto(after uint64, max int, maxBytes int, buf []byte) ([]Entry, []byte, error) {
	if out, b, ok := s.tail.read(after, max, maxBytes, buf); ok {
		return out, b, nil
	}
	var out []Entry
	var total int
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		start := make([]byte, 8)
		binary.BigEndian.PutUint64(start, after+1)
		// First pass sizes the batch so its data is copied once into one
		// allocation; the second copies it out of the memory map.
		n := 0
		for k, v := c.Seek(start); k != nil && n < max; k, v = c.Next() {
			d := len(v)
			if n > 0 && total+d > maxBytes {
				break
			}
			total += d
			n++
		}
		if n == 0 {
			return nil
		}
		if cap(buf) < total {
			buf = make([]byte, 0, total)
		}
		buf = buf[:0]
		out = make([]Entry, 0, n)
		for k, v := c.Seek(start); k != nil && len(out) < n; k, v = c.Next() {
			p := len(buf)
			buf = append(buf, v...)
			out = append(out, Entry{Seq: binary.BigEndian.Uint64(k), Data: buf[p:len(buf):len(buf)]})
		}
		s.releaseMapping(tx, total)
		return nil
	})
	return out, buf, err
}

// Get returns one entry's data, or nil when it is not (or no longer) in the
// journal.
func (s *Store) Get(seq uint64) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, seq)
		if v := tx.Bucket(bucketJournal).Get(k); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// Cursor returns the sink's cursor (the seq of the last entry it delivered)
// and whether the sink has one yet.
func (s *Store) Cursor(sink string) (uint64, bool, error) {
	var seq uint64
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCursors).Get([]byte(sink))
		if len(v) == 8 {
			seq, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return seq, ok, err
}

// SetCursor moves the sink's cursor forward to seq. A cursor never moves
// back: a lower seq (a batch that was also evicted to dead-letter) is ignored.
// A cursor already known to be at or past seq costs no transaction: a bbolt
// commit writes and syncs its meta page even when nothing changed.
func (s *Store) SetCursor(sink string, seq uint64) error {
	s.cursorMu.Lock()
	cur, known := s.cursors[sink] // never ahead of the file: eviction only moves the file's forward
	s.cursorMu.Unlock()
	if known && cur >= seq {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if cur := getUint(b, []byte(sink)); cur >= seq && b.Get([]byte(sink)) != nil {
			return nil
		}
		putUint(b, []byte(sink), seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: set cursor of %s: %w", sink, err)
	}
	s.cursorMu.Lock()
	s.cursors[sink] = max(s.cursors[sink], seq)
	s.cursorMu.Unlock()
	return nil
}

// Stats summarises the journal.
type Stats struct {
	// LastSeq is the last sequence number handed out.
	LastSeq uint64
	// FirstSeq is the oldest entry still held (0 when empty).
	FirstSeq uint64
	// Entries and Bytes held by the journal.
	Entries uint64
	Bytes   uint64
	// Cursors by sink name.
	Cursors map[string]uint64
}

// Stats returns the journal's counters and every sink cursor.
func (s *Store) Stats() (Stats, error) {
	st := Stats{Cursors: map[string]uint64{}}
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.LastSeq = getUint(meta, keyJournalSeq)
		st.Entries = getUint(meta, keyJournalCount)
		st.Bytes = getUint(meta, keyJournalBytes)
		if k, _ := tx.Bucket(bucketJournal).Cursor().First(); k != nil {
			st.FirstSeq = binary.BigEndian.Uint64(k)
		}
		return tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				st.Cursors[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return st, err
}

// Eviction is a set of undelivered entries that the budget pushed out of the
// journal, with the sinks that had not delivered each.
type Eviction struct {
	Entry Entry
	Sinks []string
}

// TrimResult says what a Trim removed.
type TrimResult struct {
	Deleted uint64 // entries removed in all
	Evicted uint64 // of those, entries some sink had not delivered
}

// Trim applies retention and the byte budget to the journal.
//
// Entries every listed sink has delivered are deleted once older than
// retention, or earlier when the journal is over maxBytes. If the journal is
// still over maxBytes, the oldest undelivered entries are handed to evict
// (which must make them durable elsewhere, e.g. a dead-letter file) and then
// deleted, and the cursors of the sinks that held them are moved past them.
// If evict fails nothing more is deleted.
func (s *Store) Trim(now time.Time, retention time.Duration, maxBytes uint64, sinks []string, evict func([]Eviction) error) (TrimResult, error) {
	var res TrimResult
	const chunk = 10000
	for {
		st, err := s.Stats()
		if err != nil {
			return res, err
		}
		minCursor := st.LastSeq
		for _, name := range sinks {
			c, ok := st.Cursors[name]
			if !ok {
				c = 0
			}
			if c < minCursor {
				minCursor = c
			}
		}
		over := maxBytes > 0 && st.Bytes > maxBytes
		cutoff := now.Add(-retention)
		// Phase 1: delivered entries, by age or by budget.
		n, err := s.deleteDelivered(minCursor, cutoff, over, maxBytes, chunk)
		if err != nil {
			return res, err
		}
		if n > 0 {
			s.tail.dropThrough(minCursor) // every sink is past them
		}
		res.Deleted += n
		if n == chunk {
			continue
		}
		st, err = s.Stats()
		if err != nil {
			return res, err
		}
		if maxBytes == 0 || st.Bytes <= maxBytes || st.Entries == 0 {
			if res.Deleted > 0 {
				s.notify()
			}
			return res, nil
		}
		// Phase 2: still over budget: evict the oldest undelivered entries.
		ev, err := s.collectEvictions(st, sinks, maxBytes, 1000)
		if err != nil {
			return res, err
		}
		if len(ev) == 0 {
			return res, nil
		}
		if err := evict(ev); err != nil {
			return res, fmt.Errorf("state: evict to dead-letter: %w", err)
		}
		if err := s.deleteEvicted(ev); err != nil {
			return res, err
		}
		s.tail.dropThrough(ev[len(ev)-1].Entry.Seq)
		res.Deleted += uint64(len(ev))
		res.Evicted += uint64(len(ev))
		s.notify()
	}
}

// deleteDelivered removes up to max entries that every sink has passed
// (seq <= minCursor) and that are either older than cutoff or, when over
// is set, needed to get under maxBytes. It returns how many went.
func (s *Store) deleteDelivered(minCursor uint64, cutoff time.Time, over bool, maxBytes uint64, max int) (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		bytes := getUint(meta, keyJournalBytes)
		count := getUint(meta, keyJournalCount)
		// Entries committed before cutoff: up to the first commit at or after it.
		oldBound := getUint(meta, keyJournalSeq)
		jt := tx.Bucket(bucketJTime).Cursor()
		for k, v := jt.First(); k != nil; k, v = jt.Next() {
			if int64(binary.BigEndian.Uint64(v)) >= cutoff.UnixNano() {
				oldBound = binary.BigEndian.Uint64(k) - 1
				break
			}
		}
		bound := min(minCursor, oldBound)
		if over {
			bound = minCursor
		}
		var doomed [][]byte
		c := tx.Bucket(bucketJournal).Cursor()
		for k, v := c.First(); k != nil && len(doomed) < max; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) > bound {
				break
			}
			if over && binary.BigEndian.Uint64(k) > oldBound && bytes <= maxBytes {
				break
			}
			bytes -= uint64(len(v))
			count--
			doomed = append(doomed, append([]byte(nil), k...))
		}
		if len(doomed) == 0 {
			return nil
		}
		if err := deleteKeys(tx.Bucket(bucketJournal), doomed); err != nil {
			return fmt.Errorf("state: delete journal entries: %w", err)
		}
		n = uint64(len(doomed))
		putUint(meta, keyJournalBytes, bytes)
		putUint(meta, keyJournalCount, count)
		return trimTimeIndex(tx, binary.BigEndian.Uint64(doomed[len(doomed)-1]))
	})
	return n, err
}

// deleteKeys deletes keys (ascending) from the back, so that each removal
// from a page moves as little as possible.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for i := len(keys) - 1; i >= 0; i-- {
		if err := b.Delete(keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// trimTimeIndex drops time-index entries whose commits lie wholly at or
// before deleted: an entry covers seqs up to the next entry's first seq.
func trimTimeIndex(tx *bolt.Tx, deleted uint64) error {
	c := tx.Bucket(bucketJTime).Cursor()
	var doomed [][]byte
	k, _ := c.First()
	for k != nil {
		next, _ := c.Next()
		if next == nil || binary.BigEndian.Uint64(next)-1 > deleted {
			break
		}
		doomed = append(doomed, append([]byte(nil), k...))
		k = next
	}
	return deleteKeys(tx.Bucket(bucketJTime), doomed)
}

func (s *Store) collectEvictions(st Stats, sinks []string, maxBytes uint64, max int) ([]Eviction, error) {
	var out []Eviction
	err := s.view(func(tx *bolt.Tx) error {
		bytes := st.Bytes
		c := tx.Bucket(bucketJournal).Cursor()
		for k, v := c.First(); k != nil && len(out) < max && bytes > maxBytes; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			var held []string
			for _, name := range sinks {
				if st.Cursors[name] < seq {
					held = append(held, name)
				}
			}
			sort.Strings(held)
			data := append([]byte(nil), v...)
			out = append(out, Eviction{Entry: Entry{Seq: seq, Data: data}, Sinks: held})
			bytes -= uint64(len(v))
		}
		return nil
	})
	return out, err
}

func (s *Store) deleteEvicted(ev []Eviction) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		journal := tx.Bucket(bucketJournal)
		cursors := tx.Bucket(bucketCursors)
		bytes := getUint(meta, keyJournalBytes)
		count := getUint(meta, keyJournalCount)
		k := make([]byte, 8)
		for _, e := range ev {
			binary.BigEndian.PutUint64(k, e.Entry.Seq)
			if v := journal.Get(k); v != nil {
				bytes -= uint64(len(v))
				count--
				if err := journal.Delete(k); err != nil {
					return fmt.Errorf("state: delete evicted entry: %w", err)
				}
			}
			for _, name := range e.Sinks {
				if getUint(cursors, []byte(name)) < e.Entry.Seq {
					putUint(cursors, []byte(name), e.Entry.Seq)
				}
			}
		}
		putUint(meta, keyJournalBytes, bytes)
		putUint(meta, keyJournalCount, count)
		if len(ev) == 0 {
			return nil
		}
		return trimTimeIndex(tx, ev[len(ev)-1].Entry.Seq)
	})
}

// SeqRange returns the journal sequence numbers of the retained entries
// committed within [since, until): first is the first such entry and last
// the last one; ok is false when there is none. A zero until means no upper
// bound. Commit times come from the time index, one per commit.
func (s *Store) SeqRange(since, until time.Time) (first, last uint64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		lastSeq := getUint(tx.Bucket(bucketMeta), keyJournalSeq)
		jk, _ := tx.Bucket(bucketJournal).Cursor().First()
		if jk == nil {
			return nil
		}
		oldest := binary.BigEndian.Uint64(jk)
		first, last = 0, 0
		c := tx.Bucket(bucketJTime).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			if !until.IsZero() && !at.Before(until) {
				if first != 0 {
					last = seq - 1
				}
				break
			}
			if first == 0 && !at.Before(since) {
				first = max(seq, oldest)
			}
		}
		if first != 0 && last == 0 {
			last = lastSeq
		}
		return nil
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("state: journal time range: %w", err)
	}
	return first, last, first != 0 && last >= first, nil
}

// SeqBefore returns the seq after which the journal's entries up to and
// including seq hold at least bytes bytes of data, or the seq before the
// oldest retained entry when the journal holds less than that. A dispatcher
// uses it to deliver the last stretch before its cursor again.
func (s *Store) SeqBefore(seq uint64, bytes int) (uint64, error) {
	out := seq
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, seq+1)
		kk, v := c.Seek(k)
		if kk == nil {
			kk, v = c.Last()
		} else {
			kk, v = c.Prev()
		}
		total := 0
		for ; kk != nil && total < bytes; kk, v = c.Prev() {
			total += len(v)
			out = binary.BigEndian.Uint64(kk) - 1
		}
		return nil
	})
	if err != nil {
		return seq, fmt.Errorf("state: journal before %d: %w", seq, err)
	}
	return out, nil
}
