package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
}

// Open opens or creates the state file at path (its directory is created
// 0700, the file 0600), checks the schema version and verifies the journal
// index.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("state: create directory: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.LockTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         opts.NoSync,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: %w (waited %s; is another mdbridge running with the same state.path?)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, changed: make(chan struct{})}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
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
	Data []byte
	Seen *SeenEntry
}

// Commit is the unit of progress of one poll: its events, the stream's new
// state, and the seen entries that fell out of the window.
type Commit struct {
	Stream string
	State  StreamState
	Events []Append
	// PruneBefore drops seen entries with a record time before it.
	PruneBefore time.Time
}

// Commit appends the events to the journal, writes their seen entries,
// prunes old seen entries and stores the stream state, all in one
// transaction: either everything is durable or nothing is. It returns the
// journal sequence number of the first event (0 when there were none).
func (s *Store) Commit(c Commit) (uint64, error) {
	// One allocation holds every key and value of the commit: bbolt keeps
	// references to them until the transaction is written.
	size := 0
	for _, a := range c.Events {
		size += 8 + entryHeader + len(a.Data)
		if a.Seen != nil {
			size += 8 + len(a.Seen.Key) + seenValueLen
		}
	}
	slab := make([]byte, 0, size)
	alloc := func(n int) []byte {
		b := slab[len(slab) : len(slab)+n : len(slab)+n]
		slab = slab[:len(slab)+n]
		return b
	}
	stateJSON, err := json.Marshal(c.State)
	if err != nil {
		return 0, fmt.Errorf("state: encode stream state: %w", err)
	}
	now := uint64(time.Now().UnixNano())
	var first uint64
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
		count := getUint(meta, keyJournalCount)
		for i := range c.Events {
			a := &c.Events[i]
			seq++
			if first == 0 {
				first = seq
			}
			k := alloc(8)
			binary.BigEndian.PutUint64(k, seq)
			v := alloc(entryHeader + len(a.Data))
			binary.BigEndian.PutUint64(v, now)
			copy(v[entryHeader:], a.Data)
			if err := journal.Put(k, v); err != nil {
				return fmt.Errorf("state: journal append: %w", err)
			}
			bytes += uint64(len(v))
			count++
			if a.Seen != nil {
				a.Seen.JournalSeq = seq
				sk := alloc(8 + len(a.Seen.Key))
				putTimeKey(sk, a.Seen.Time)
				copy(sk[8:], a.Seen.Key)
				sv := alloc(seenValueLen)
				encodeSeen(sv, a.Seen)
				if err := seen.Put(sk, sv); err != nil {
					return fmt.Errorf("state: seen put: %w", err)
				}
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
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(c.Events) > 0 {
		s.notify()
	}
	return first, nil
}

func pruneSeen(b *bolt.Bucket, before time.Time) error {
	limit := make([]byte, 8)
	putTimeKey(limit, before)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && string(k[:8]) < string(limit); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("state: prune seen: %w", err)
		}
	}
	return nil
}

// LoadStream returns a stream's state and its seen index (oldest first). A
// stream never committed returns a zero StreamState.
func (s *Store) LoadStream(stream string) (StreamState, []SeenEntry, error) {
	var st StreamState
	var entries []SeenEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketStreams).Get([]byte(stream)); v != nil {
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("state: decode stream %s: %w", stream, err)
			}
		}
		b := tx.Bucket(bucketSeen).Bucket([]byte(stream))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 8 || len(v) != seenValueLen {
				return fmt.Errorf("state: corrupt seen entry in stream %s", stream)
			}
			e := decodeSeen(v)
			e.Time = timeFromKey(k)
			e.Key = string(k[8:])
			entries = append(entries, e)
			return nil
		})
	})
	if err != nil {
		return StreamState{}, nil, err
	}
	return st, entries, nil
}

// Streams returns the state of every stream, keyed by stream id.
func (s *Store) Streams() (map[string]StreamState, error) {
	out := map[string]StreamState{}
	err := s.db.View(func(tx *bolt.Tx) error {
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

const seenValueLen = 8 + 4 + 8

func encodeSeen(v []byte, e *SeenEntry) {
	binary.BigEndian.PutUint64(v[0:8], e.Hash)
	binary.BigEndian.PutUint32(v[8:12], e.Revision)
	binary.BigEndian.PutUint64(v[12:20], e.JournalSeq)
}

func decodeSeen(v []byte) SeenEntry {
	return SeenEntry{
		Hash:       binary.BigEndian.Uint64(v[0:8]),
		Revision:   binary.BigEndian.Uint32(v[8:12]),
		JournalSeq: binary.BigEndian.Uint64(v[12:20]),
	}
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
