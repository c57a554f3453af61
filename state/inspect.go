package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpenReadOnly opens an existing state file for `mdbridge state inspect` and
// `check`: nothing is created or written, and it fails with ErrLocked
// (after opts.LockTimeout) while a bridge holds the file.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	opts.ReadOnly = true
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return Open(path, opts)
}

// Report is what Inspect finds in a state file.
type Report struct {
	Path string `json:"path"`
	// SchemaVersion is the file's layout version ("" when it has none).
	SchemaVersion string `json:"schema_version"`
	// FileSize is the file's size in bytes; PageSize its bbolt page size.
	FileSize int64 `json:"file_size"`
	PageSize int   `json:"page_size"`
	// Journal sums up the journal.
	Journal JournalReport `json:"journal"`
	// Streams and Sinks are sorted by id and name.
	Streams []StreamReport `json:"streams"`
	Sinks   []SinkReport   `json:"sinks"`
}

// JournalReport describes the journal.
type JournalReport struct {
	// Entries and Bytes are the journal's own counters.
	Entries uint64 `json:"entries"`
	Bytes   uint64 `json:"bytes"`
	// FirstSeq is the oldest entry held (0 when empty); LastSeq the last
	// sequence number handed out.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Commits is the number of commits the time index still covers;
	// Oldest and Newest are the first and last of their commit times.
	Commits uint64    `json:"commits"`
	Oldest  time.Time `json:"oldest_commit,omitzero"`
	Newest  time.Time `json:"newest_commit,omitzero"`
}

// StreamReport describes one stream.
type StreamReport struct {
	ID        string    `json:"id"`
	Watermark time.Time `json:"watermark"`
	Floor     time.Time `json:"floor"`
	// LastSeq is the stream's own event sequence number.
	LastSeq uint64 `json:"seq"`
	Gaps    uint64 `json:"gaps"`
	Started bool   `json:"started"`
	// Seen counts the distinct records in the stream's seen index that
	// still count (at or after its prune floor).
	Seen int `json:"seen_entries"`
}

// SinkReport describes one sink's cursor.
type SinkReport struct {
	Name   string `json:"name"`
	Cursor uint64 `json:"cursor"`
	// Backlog is how many sequence numbers lie past the cursor (the
	// journal's last seq minus the cursor).
	Backlog uint64 `json:"backlog"`
}

// Inspect reads the whole state in one read transaction. A bucket the file
// lacks reads as empty (Check reports it).
func (s *Store) Inspect() (Report, error) {
	rep := Report{Path: s.path, PageSize: s.db.Info().PageSize}
	fi, err := os.Stat(s.path)
	if err != nil {
		return Report{}, fmt.Errorf("state: %w", err)
	}
	rep.FileSize = fi.Size()
	err = s.view(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			rep.SchemaVersion = string(meta.Get(keySchemaVersion))
			rep.Journal.LastSeq = getUint(meta, keyJournalSeq)
			rep.Journal.Entries = getUint(meta, keyJournalCount)
			rep.Journal.Bytes = getUint(meta, keyJournalBytes)
		}
		if j := tx.Bucket(bucketJournal); j != nil {
			if k, _ := j.Cursor().First(); len(k) == 8 {
				rep.Journal.FirstSeq = binary.BigEndian.Uint64(k)
			}
		}
		if jt := tx.Bucket(bucketJTime); jt != nil {
			rep.Journal.Commits = uint64(jt.Stats().KeyN)
			c := jt.Cursor()
			if _, v := c.First(); len(v) == 8 {
				rep.Journal.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
			}
			if _, v := c.Last(); len(v) == 8 {
				rep.Journal.Newest = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
			}
		}
		streams := map[string]*StreamReport{}
		stream := func(id string) *StreamReport {
			if streams[id] == nil {
				streams[id] = &StreamReport{ID: id}
			}
			return streams[id]
		}
		if b := tx.Bucket(bucketStreams); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var st StreamState
				if err := json.Unmarshal(v, &st); err != nil {
					return fmt.Errorf("state: decode stream %s: %w", k, err)
				}
				r := stream(string(k))
				r.Watermark, r.Floor, r.LastSeq, r.Gaps, r.Started = st.Watermark, st.Floor, st.LastSeq, st.Gaps, st.Started
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketSeen); b != nil {
			err := b.ForEachBucket(func(k []byte) error {
				n, err := countSeen(b.Bucket(k))
				if err != nil {
					return fmt.Errorf("state: corrupt seen index of stream %s: %w", k, err)
				}
				stream(string(k)).Seen = n
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, r := range streams {
			rep.Streams = append(rep.Streams, *r)
		}
		slices.SortFunc(rep.Streams, func(a, b StreamReport) int { return strings.Compare(a.ID, b.ID) })
		if b := tx.Bucket(bucketCursors); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					return nil
				}
				c := binary.BigEndian.Uint64(v)
				r := SinkReport{Name: string(k), Cursor: c}
				if rep.Journal.LastSeq > c {
					r.Backlog = rep.Journal.LastSeq - c
				}
				rep.Sinks = append(rep.Sinks, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	return rep, nil
}

// countSeen counts the distinct keys of a stream's seen index at or after
// its floor, as LoadStream would load them.
func countSeen(b *bolt.Bucket) (int, error) {
	var floor time.Time
	if f := b.Get(keySeenFloor); len(f) == 8 {
		floor = timeFromKey(f)
	}
	keys := map[string]struct{}{}
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			return nil
		}
		return unpackSeen(v, func(e SeenEntry) {
			if !e.Time.Before(floor) {
				keys[e.Key] = struct{}{}
			}
		})
	})
	return len(keys), err
}
