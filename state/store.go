package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options configure Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the
	// file. Zero means 5s; it never waits forever.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. Only for benchmarks of the layout itself.
	NoSync bool
	// ReadOnly opens an existing file for reading only, under a shared lock
	// (so it waits, up to LockTimeout, while a bridge holds the file): nothing
	// is created or written, and the schema version is not enforced, so that
	// Inspect and Check can report on any file. See OpenReadOnly.
	ReadOnly bool
}

// ErrLocked is returned (wrapped) by Open when another process holds the file.
var ErrLocked = errors.New("state file is locked by another process")

// Store is the open state file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every append

	readBytes int64 // bytes read through Read since the last mapping release

	// commitMu orders commits so the tail cache gets them in journal order.
	commitMu sync.Mutex
	tail     tailCache

	// advise is a descriptor of the file used only to tell the kernel which
	// of its cached pages are no longer needed (dropCache); nil when not
	// used. unadvised counts journal bytes committed since the last time.
	advise    *os.File
	unadvised int64

	// cursors are the sink cursors set by this process (SetCursor), so
	// dropCache can tell whether every sink reads from the tail cache.
	cursorMu sync.Mutex
	cursors  map[string]uint64
}

// Open opens or creates the state file at path (its directory is created
// 0700, the file 0600), checks the schema version and verifies the journal
// index.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	if dir := filepath.Dir(path); dir != "" && !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("state: create directory: %w", err)
		}
	}
	if !opts.ReadOnly {
		if err := verifyPages(path, opts); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, changed: make(chan struct{}), tail: tailCache{limit: tailCacheBytes}, cursors: map[string]uint64{}}
	if opts.ReadOnly {
		return s, nil
	}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if f, err := os.Open(path); err == nil {
		s.advise = f // without it only the page-cache hint is lost
	}
	return s, nil
}

// openBolt opens the file with the store's bbolt options. Compact renames
// a new file over path while it holds the old one's lock, so an Open that
// waited for that lock opens again when path names another file by then:
// a bridge never writes to a file no longer at path.
func openBolt(path string, opts Options) (*bolt.DB, error) {
	for try := 0; ; try++ {
		pre, _ := os.Stat(path)
		db, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout:        opts.LockTimeout,
			NoFreelistSync: true,
			PageSize:       pageSize,
			FreelistType:   bolt.FreelistMapType,
			NoSync:         opts.NoSync,
			ReadOnly:       opts.ReadOnly,
		})
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("state: open %s: %w (waited %s; is another mdbridge running with the same state.path?)", path, ErrLocked, opts.LockTimeout)
		}
		if err != nil {
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
		post, _ := os.Stat(path)
		if pre == nil || post == nil || os.SameFile(pre, post) || try == 2 {
			return db, nil
		}
		_ = db.Close()
	}
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("state: create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchemaVersion); {
		case v == nil:
			if err := meta.Put(keySchemaVersion, []byte(SchemaVersion)); err != nil {
				return fmt.Errorf("state: write schema version: %w", err)
			}
		case string(v) != SchemaVersion:
			return fmt.Errorf("state: %s has schema version %q; this mdbridge reads version %q", s.path, v, SchemaVersion)
		}
		// The journal index must never go backwards: the last key can not be
		// past the counter that hands out new keys.
		last, _ := tx.Bucket(bucketJournal).Cursor().Last()
		if last != nil && getUint(meta, keyJournalSeq) < binary.BigEndian.Uint64(last) {
			return fmt.Errorf("state: %s is inconsistent: journal holds seq %d past the counter %d", s.path, binary.BigEndian.Uint64(last), getUint(meta, keyJournalSeq))
		}
		return nil
	})
}

// Close closes the file.
func (s *Store) Close() error {
	if s.advise != nil {
		_ = s.advise.Close()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Changed returns a channel that is closed after the next append to the
// journal (or trim), so dispatchers can sleep until there is work.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// StreamState is what the store keeps per stream besides its seen index.
type StreamState struct {
	// Watermark is the newest record time committed.
	Watermark time.Time `json:"watermark"`
	// Floor is the oldest record time the stream wants (set on first run from
	// the source's start setting).
	Floor time.Time `json:"floor"`
	// LastSeq is the per-stream event sequence number of the last event.
	LastSeq uint64 `json:"last_seq"`
	// Started is set once the stream has committed its first poll.
	Started bool `json:"started"`
	// Gaps counts records the stream knows it skipped.
	Gaps uint64 `json:"gaps"`
}

// SeenEntry is one record in a stream's seen index.
type SeenEntry struct {
	Time       time.Time
	Key        string
	Hash       uint64
	Revision   uint32
	JournalSeq uint64
}

// Append is one event to add to the journal, with the seen-index entry that
// records it. Seen.JournalSeq is filled in by Commit.
type Append struct {
	// Data is the event's JSON. bbolt keeps a reference to it until the
	// transaction is written, so it must not change until Commit returns.
	Data []byte
	Seen *SeenEntry
}

// Commit is the unit of progress of one poll: its events, the stream's new
// state, and the seen entries that fell out of the window.
type Commit struct {
	Stream string
	State  StreamState
	Events []Append
	// Seen are seen-index entries without a journal event (records a set
	// stream takes in as its baseline, see pipeline.SetStream); their
	// JournalSeq stays 0.
	Seen []SeenEntry
	// PruneBefore drops seen entries with a record time before it.
	PruneBefore time.Time
}

// Commit appends the events to the journal, writes their seen entries,
// prunes old seen entries and stores the stream state, all in one
// transaction: either everything is durable or nothing is. It returns the
// journal sequence number of the first event (0 when there were none).
//
// The event data is handed to bbolt as is, without a copy; the seen entries
// of the commit go into one packed value, so an event costs one journal
// value and about 40 bytes of index.
func (s *Store) Commit(c Commit) (uint64, error) {
	stateJSON, err := json.Marshal(c.State)
	if err != nil {
		return 0, fmt.Errorf("state: encode stream state: %w", err)
	}
	keys := make([]byte, 8*len(c.Events))
	var first uint64
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		journal := tx.Bucket(bucketJournal)
		journal.FillPercent = 1.0 // keys only ever grow: pack pages full
		seen, err := tx.Bucket(bucketSeen).CreateBucketIfNotExists([]byte(c.Stream))
		if err != nil {
			return fmt.Errorf("state: seen bucket for %s: %w", c.Stream, err)
		}
		seq := getUint(meta, keyJournalSeq)
		bytes := getUint(meta, keyJournalBytes)
		startBytes := bytes
		count := getUint(meta, keyJournalCount)
		var seenEntries []*SeenEntry
		var newest time.Time
		for i := range c.Events {
			a := &c.Events[i]
			seq++
			if first == 0 {
				first = seq
			}
			k := keys[8*i : 8*i+8 : 8*i+8]
			binary.BigEndian.PutUint64(k, seq)
			if err := journal.Put(k, a.Data); err != nil {
				return fmt.Errorf("state: journal append: %w", err)
			}
			bytes += uint64(len(a.Data))
			count++
			if a.Seen != nil {
				a.Seen.JournalSeq = seq
				seenEntries = append(seenEntries, a.Seen)
				if a.Seen.Time.After(newest) {
					newest = a.Seen.Time
				}
			}
		}
		if first != 0 {
			tk := make([]byte, 16)
			binary.BigEndian.PutUint64(tk, first)
			binary.BigEndian.PutUint64(tk[8:], uint64(time.Now().UnixNano()))
			jt := tx.Bucket(bucketJTime)
			jt.FillPercent = 1.0
			if err := jt.Put(tk[:8], tk[8:]); err != nil {
				return fmt.Errorf("state: journal time index: %w", err)
			}
		}
		tag := first
		if first == 0 && len(c.Seen) > 0 {
			// No event to name the value by: a serial of its own, with the
			// top bit set so it never meets a journal sequence number.
			serial := getUint(meta, keySeenSerial) + 1
			putUint(meta, keySeenSerial, serial)
			tag = serial | 1<<63
		}
		for i := range c.Seen {
			c.Seen[i].JournalSeq = 0
			seenEntries = append(seenEntries, &c.Seen[i])
			if c.Seen[i].Time.After(newest) {
				newest = c.Seen[i].Time
			}
		}
		if len(seenEntries) > 0 {
			k := make([]byte, 16)
			putTimeKey(k, newest)
			binary.BigEndian.PutUint64(k[8:], tag)
			if err := seen.Put(k, packSeen(seenEntries)); err != nil {
				return fmt.Errorf("state: seen put: %w", err)
			}
		}
		if !c.PruneBefore.IsZero() {
			if err := pruneSeen(seen, c.PruneBefore); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketStreams).Put([]byte(c.Stream), stateJSON); err != nil {
			return fmt.Errorf("state: stream state: %w", err)
		}
		putUint(meta, keyJournalSeq, seq)
		putUint(meta, keyJournalBytes, bytes)
		putUint(meta, keyJournalCount, count)
		s.releaseMapping(tx, int(bytes-startBytes))
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(c.Events) > 0 {
		s.tail.add(first, c.Events)
		s.notify()
		s.dropCache(c.Events)
	}
	return first, nil
}

// packSeen encodes entries as repeated: time (8) hash (8) revision (4)
// journal seq (8) key length (uvarint) key.
func packSeen(entries []*SeenEntry) []byte {
	n := 0
	for _, e := range entries {
		n += 28 + binary.MaxVarintLen32 + len(e.Key)
	}
	b := make([]byte, 0, n)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, 0)
		putTimeKey(b[len(b)-8:], e.Time)
		b = binary.BigEndian.AppendUint64(b, e.Hash)
		b = binary.BigEndian.AppendUint32(b, e.Revision)
		b = binary.BigEndian.AppendUint64(b, e.JournalSeq)
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
	}
	return b
}

func unpackSeen(b []byte, fn func(SeenEntry)) error {
	for len(b) > 0 {
		if len(b) < 28 {
			return errors.New("short seen entry")
		}
		e := SeenEntry{
			Time:       timeFromKey(b[0:8]),
			Hash:       binary.BigEndian.Uint64(b[8:16]),
			Revision:   binary.BigEndian.Uint32(b[16:20]),
			JournalSeq: binary.BigEndian.Uint64(b[20:28]),
		}
		n, w := binary.Uvarint(b[28:])
		if w <= 0 || uint64(len(b)-28-w) < n {
			return errors.New("bad seen key length")
		}
		e.Key = string(b[28+w : 28+w+int(n)])
		fn(e)
		b = b[28+w+int(n):]
	}
	return nil
}

// pruneSeen deletes the packed values whose newest record is before the
// limit (whole values only, so no index page is rewritten entry by entry)
// and records the limit, so entries older than it in a kept value are
// ignored when the index is loaded.
func pruneSeen(b *bolt.Bucket, before time.Time) error {
	limit := make([]byte, 8)
	putTimeKey(limit, before)
	c := b.Cursor()
	var doomed [][]byte
	for k, _ := c.First(); k != nil && len(k) == 16 && string(k[:8]) < string(limit); k, _ = c.Next() {
		doomed = append(doomed, append([]byte(nil), k...))
	}
	// Delete from the back: each removal from a page then moves nothing.
	for i := len(doomed) - 1; i >= 0; i-- {
		if err := b.Delete(doomed[i]); err != nil {
			return fmt.Errorf("state: prune seen: %w", err)
		}
	}
	if err := b.Put(keySeenFloor, limit); err != nil {
		return fmt.Errorf("state: prune seen: %w", err)
	}
	return nil
}

// LoadStream returns a stream's state and its seen index (oldest first). A
// stream never committed returns a zero StreamState.
func (s *Store) LoadStream(stream string) (StreamState, []SeenEntry, error) {
	var st StreamState
	var entries []SeenEntry
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketStreams).Get([]byte(stream)); v != nil {
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("state: decode stream %s: %w", stream, err)
			}
		}
		b := tx.Bucket(bucketSeen).Bucket([]byte(stream))
		if b == nil {
			return nil
		}
		var floor time.Time
		if f := b.Get(keySeenFloor); len(f) == 8 {
			floor = timeFromKey(f)
		}
		// Values are ordered by their newest record, not by commit, so a
		// key seen in several commits keeps its highest revision.
		latest := map[string]int{}
		err := b.ForEach(func(k, v []byte) error {
			if len(k) != 16 {
				return nil
			}
			return unpackSeen(v, func(e SeenEntry) {
				if e.Time.Before(floor) {
					return
				}
				if i, ok := latest[e.Key]; ok {
					if entries[i].Revision > e.Revision || entries[i].JournalSeq > e.JournalSeq {
						return
					}
					entries[i] = e
					return
				}
				latest[e.Key] = len(entries)
				entries = append(entries, e)
			})
		})
		if err != nil {
			return fmt.Errorf("state: corrupt seen index of stream %s: %w", stream, err)
		}
		slices.SortFunc(entries, func(a, b SeenEntry) int { return a.Time.Compare(b.Time) })
		return nil
	})
	if err != nil {
		return StreamState{}, nil, err
	}
	return st, entries, nil
}

// Streams returns the state of every stream, keyed by stream id.
func (s *Store) Streams() (map[string]StreamState, error) {
	out := map[string]StreamState{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			var st StreamState
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("state: decode stream %s: %w", k, err)
			}
			out[string(k)] = st
			return nil
		})
	})
	return out, err
}

// putTimeKey writes t as 8 bytes that sort in time order (the sign bit is
// flipped so times before 1970 sort first).
func putTimeKey(b []byte, t time.Time) {
	var n int64
	switch {
	case t.Before(minKeyTime):
		n = math.MinInt64
	case t.After(maxKeyTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	binary.BigEndian.PutUint64(b, uint64(n)^(1<<63))
}

// The range of times that fit in int64 nanoseconds.
var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

func timeFromKey(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, n)
	_ = b.Put(k, v) // only fails on a read-only tx or bad key, neither possible here
}
