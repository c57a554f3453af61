package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Problem is one inconsistency Check found.
type Problem struct {
	// Area is the part of the file: bbolt, schema, journal, time index,
	// cursors, streams or seen.
	Area string `json:"area"`
	// Message says what is wrong, naming keys and sequence numbers.
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Area + ": " + p.Message }

// maxPerArea bounds the problems listed per area; the rest are counted in
// one last line, so a badly damaged file gives a readable answer.
const maxPerArea = 20

type problems struct {
	list []Problem
	n    map[string]int
}

func (p *problems) add(area, format string, args ...any) {
	p.n[area]++
	if p.n[area] <= maxPerArea {
		p.list = append(p.list, Problem{Area: area, Message: fmt.Sprintf(format, args...)})
	}
}

func (p *problems) done() []Problem {
	for _, area := range slices.Sorted(maps.Keys(p.n)) {
		if n := p.n[area]; n > maxPerArea {
			p.list = append(p.list, Problem{Area: area, Message: fmt.Sprintf("%d more problems not listed", n-maxPerArea)})
		}
	}
	return p.list
}

// Check verifies the file in one read transaction: bbolt's own page-level
// consistency check, the schema version and buckets, the journal (8-byte
// keys strictly increasing without holes, none past the sequence counter,
// the entry and byte counters, every value JSON with an id and a seq), the
// time index against the journal, the sink cursors, the stream states and
// the seen indexes. It returns what it found; none means the file is sound.
// An error reading the file is itself reported as a problem.
func (s *Store) Check() []Problem {
	p := &problems{n: map[string]int{}}
	err := s.view(func(tx *bolt.Tx) error {
		// bbolt's check rebuilds the free list first, in a goroutine of its
		// own that crashes the process on a damaged page; reading every
		// page here first turns that into a finding.
		if err := readAll(tx); err != nil {
			p.add("bbolt", "the file is damaged, nothing more can be checked: %v", err)
			return nil
		}
		for err := range tx.Check() {
			p.add("bbolt", "%v", err)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				p.add("schema", "bucket %q is missing", name)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keySchemaVersion); string(v) != SchemaVersion {
			p.add("schema", "schema version is %q; this mdbridge reads %q", v, SchemaVersion)
		}
		for _, k := range [][]byte{keyJournalSeq, keyJournalBytes, keyJournalCount, keySeenSerial} {
			if v := meta.Get(k); v != nil && len(v) != 8 {
				p.add("schema", "meta key %s holds %d bytes, want 8", k, len(v))
			}
		}
		lastSeq := getUint(meta, keyJournalSeq)
		first, last := checkJournal(tx, meta, lastSeq, p)
		checkTimeIndex(tx, first, last, lastSeq, p)
		checkCursors(tx, lastSeq, p)
		checkStreams(tx, lastSeq, p)
		return nil
	})
	if err != nil {
		p.add("bbolt", "read: %v", err)
	}
	return p.done()
}

// readAll reads every key and value of every bucket, recovering the panic
// with which bbolt meets a page that is not what its parent says.
func readAll(tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if sub := b.Bucket(k); sub != nil {
					return walk(sub)
				}
			}
			return nil
		})
	}
	return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
}

// checkJournal returns the first and last seq the journal holds (0, 0 when
// empty).
func checkJournal(tx *bolt.Tx, meta *bolt.Bucket, lastSeq uint64, p *problems) (first, last uint64) {
	b := tx.Bucket(bucketJournal)
	if b == nil {
		return 0, 0
	}
	var count, bytes uint64
	var ev struct {
		ID  *string `json:"id"`
		Seq *uint64 `json:"seq"`
	}
	err := b.ForEach(func(k, v []byte) error {
		count++
		bytes += uint64(len(v))
		if len(k) != 8 {
			p.add("journal", "key %x is %d bytes long, want 8", k, len(k))
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		switch {
		case last == 0:
			first = seq
		case seq <= last:
			p.add("journal", "seq %d follows seq %d: keys must strictly increase", seq, last)
		case seq == last+2:
			p.add("journal", "seq %d is missing in the middle of the journal", last+1)
		case seq != last+1:
			p.add("journal", "seq %d to %d are missing in the middle of the journal", last+1, seq-1)
		}
		if seq > lastSeq {
			p.add("journal", "seq %d is past the sequence counter %d", seq, lastSeq)
		}
		last = max(last, seq)
		if v == nil {
			p.add("journal", "seq %d is a bucket, not an event", seq)
			return nil
		}
		ev.ID, ev.Seq = nil, nil
		switch err := json.Unmarshal(v, &ev); {
		case err != nil:
			p.add("journal", "seq %d is not a valid event: %v", seq, err)
		case ev.ID == nil || *ev.ID == "":
			p.add("journal", "seq %d is an event without an id", seq)
		case ev.Seq == nil:
			p.add("journal", "seq %d is an event without a seq", seq)
		}
		return nil
	})
	if err != nil {
		p.add("journal", "read: %v", err)
	}
	if c := getUint(meta, keyJournalCount); c != count {
		p.add("journal", "the entry counter says %d, the journal holds %d", c, count)
	}
	if c := getUint(meta, keyJournalBytes); c != bytes {
		p.add("journal", "the byte counter says %d, the journal holds %d", c, bytes)
	}
	return first, last
}

// checkTimeIndex checks the commit-time index against the journal: every
// key is the first seq of a commit, so the oldest retained entry must be
// covered by exactly one key at or before it, and no key may lie past the
// sequence counter.
func checkTimeIndex(tx *bolt.Tx, first, last, lastSeq uint64, p *problems) {
	b := tx.Bucket(bucketJTime)
	if b == nil {
		return
	}
	var prev, keys, atOrBefore uint64
	var lowest uint64
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 8 {
			p.add("time index", "entry %x holds %d bytes, want an 8-byte key and value", k, len(v))
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		if keys == 0 {
			lowest = seq
		} else if seq <= prev {
			p.add("time index", "seq %d follows seq %d: keys must strictly increase", seq, prev)
		}
		keys++
		prev = seq
		if seq > lastSeq {
			p.add("time index", "a commit starts at seq %d, past the sequence counter %d", seq, lastSeq)
		} else if last != 0 && seq > last {
			p.add("time index", "a commit starts at seq %d, past the journal's last entry %d", seq, last)
		}
		if first != 0 && seq <= first {
			atOrBefore++
		}
		return nil
	})
	if err != nil {
		p.add("time index", "read: %v", err)
	}
	switch {
	case first == 0:
	case keys == 0:
		p.add("time index", "is empty, but the journal holds seq %d to %d", first, last)
	case lowest > first:
		p.add("time index", "journal entries %d to %d have no commit time (the first commit starts at %d)", first, lowest-1, lowest)
	case atOrBefore > 1:
		p.add("time index", "%d entries for commits no longer in the journal (its oldest entry is seq %d)", atOrBefore-1, first)
	}
}

func checkCursors(tx *bolt.Tx, lastSeq uint64, p *problems) {
	b := tx.Bucket(bucketCursors)
	if b == nil {
		return
	}
	err := b.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			p.add("cursors", "sink %q: cursor holds %d bytes, want 8", k, len(v))
			return nil
		}
		if c := binary.BigEndian.Uint64(v); c > lastSeq {
			p.add("cursors", "sink %q: cursor %d is past the journal's last seq %d", k, c, lastSeq)
		}
		return nil
	})
	if err != nil {
		p.add("cursors", "read: %v", err)
	}
}

func checkStreams(tx *bolt.Tx, lastSeq uint64, p *problems) {
	if b := tx.Bucket(bucketStreams); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			var st StreamState
			if err := json.Unmarshal(v, &st); err != nil {
				p.add("streams", "stream %q: state is not valid: %v", k, err)
			}
			return nil
		})
		if err != nil {
			p.add("streams", "read: %v", err)
		}
	}
	seen := tx.Bucket(bucketSeen)
	if seen == nil {
		return
	}
	err := seen.ForEach(func(stream, v []byte) error {
		if v != nil {
			p.add("seen", "key %q is a value, want a stream's bucket", stream)
			return nil
		}
		b := seen.Bucket(stream)
		return b.ForEach(func(k, v []byte) error {
			switch {
			case string(k) == string(keySeenFloor):
				if len(v) != 8 {
					p.add("seen", "stream %q: floor holds %d bytes, want 8", stream, len(v))
				}
				return nil
			case len(k) != 16:
				p.add("seen", "stream %q: key %x is %d bytes long, want 16", stream, k, len(k))
				return nil
			}
			err := unpackSeen(v, func(e SeenEntry) {
				if e.JournalSeq > lastSeq {
					p.add("seen", "stream %q: record %q points at seq %d, past the sequence counter %d", stream, e.Key, e.JournalSeq, lastSeq)
				}
			})
			if err != nil {
				p.add("seen", "stream %q: value of key %x: %v", stream, k, err)
			}
			return nil
		})
	})
	if err != nil {
		p.add("seen", "read: %v", err)
	}
}
