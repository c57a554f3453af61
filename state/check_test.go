package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func seqKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

// TestCheck damages a sound file in one way per case, with bbolt directly,
// and wants Check to name the damage (and nothing on the sound file).
func TestCheck(t *testing.T) {
	put := func(bucket string, k, v []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(k, v) }
	}
	del := func(bucket string, k []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Delete(k) }
	}
	tests := []struct {
		name   string
		damage func(*bolt.Tx) error
		want   []string // problems, as printed
	}{
		{"sound", nil, nil},
		{"journal value not JSON", put("journal", seqKey(2), []byte(`{"id":"a2","seq":`)),
			[]string{"journal: seq 2 is not a valid event: unexpected end of JSON input"}},
		{"journal value without id", put("journal", seqKey(3), []byte(`{"seq":3,"kind":"x"}`)),
			[]string{"journal: seq 3 is an event without an id"}},
		{"journal value without seq", put("journal", seqKey(3), []byte(`{"id":"a3","xx":"y"}`)),
			[]string{"journal: seq 3 is an event without a seq"}},
		{"cursor past the end", put("cursors", []byte("siem"), seqKey(99)),
			[]string{`cursors: sink "siem": cursor 99 is past the journal's last seq 5`}},
		{"journal key past the counter", put("journal", seqKey(9), []byte(`{"id":"x","seq":9}`)),
			[]string{"journal: seq 6 to 8 are missing in the middle of the journal", "journal: seq 9 is past the sequence counter 5",
				"journal: the entry counter says 5, the journal holds 6"}},
		{"hole in the journal", del("journal", seqKey(3)), []string{"journal: seq 3 is missing in the middle of the journal"}},
		{"short journal key", put("journal", []byte{1}, []byte(`{"id":"x","seq":1}`)), []string{"journal: key 01 is 1 bytes long, want 8"}},
		{"entry counter", put("meta", []byte("journal_count"), seqKey(7)), []string{"journal: the entry counter says 7, the journal holds 5"}},
		{"byte counter", put("meta", []byte("journal_bytes"), seqKey(7)), []string{"journal: the byte counter says 7, the journal holds 95"}},
		{"schema version", put("meta", []byte("schema_version"), []byte("9")), []string{`schema: schema version is "9"; this mdbridge reads "1"`}},
		{"bucket missing", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("cursors")) }, []string{`schema: bucket "cursors" is missing`}},
		{"commit time missing", del("jtime", seqKey(1)), []string{"time index: journal entries 1 to 3 have no commit time (the first commit starts at 4)"}},
		{"stale commit time", put("jtime", seqKey(0), seqKey(1)), []string{"time index: 1 entries for commits no longer in the journal (its oldest entry is seq 1)"}},
		{"commit time past the counter", put("jtime", seqKey(6), seqKey(1)), []string{"time index: a commit starts at seq 6, past the sequence counter 5"}},
		{"stream state", put("streams", []byte("plant-a/devices"), []byte("{")), []string{`streams: stream "plant-a/devices": state is not valid`}},
		{"seen value cut short", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("seen")).Bucket([]byte("plant-a/alerts")).Put(make([]byte, 16), []byte{1, 2, 3})
		}, []string{`seen: stream "plant-a/alerts": value of key 00000000000000000000000000000000: short seen entry`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			fillStore(t, path)
			if tc.damage != nil {
				db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Update(tc.damage); err != nil {
					t.Fatal(err)
				}
				_ = db.Close()
			}
			s, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var got []string
			for _, p := range s.Check() {
				got = append(got, p.String())
			}
			if len(tc.want) == 0 && len(got) != 0 {
				t.Fatalf("problems in a sound file:\n%s", strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				if !containsPrefix(got, w) {
					t.Errorf("no problem %q among:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// TestCheckDamagedPage overwrites one page of the file with garbage, as a
// disk error would, and wants bbolt's own check to report it rather than
// the process crashing.
func TestCheckDamagedPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fillStore(t, path)
	pgid := damagePage(t, path)

	s, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var bbolt []string
	for _, p := range s.Check() {
		if p.Area == "bbolt" {
			bbolt = append(bbolt, p.String())
		}
	}
	if len(bbolt) == 0 {
		t.Fatalf("no bbolt problem reported for garbage on page %d", pgid)
	}
	t.Logf("found: %s", fmt.Sprint(bbolt))
	if _, err := s.Inspect(); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("Inspect of a damaged file: %v, want an error saying it is damaged", err)
	}
}

// damagePage writes garbage over the page of a bucket of the filled store
// at path (the journal's, or the seen index's when the journal is inline)
// and returns its id.
func damagePage(t *testing.T, path string) uint64 {
	t.Helper()
	pgid, size := bucketPage(t, path)
	writeGarbage(t, path, pgid, size)
	return pgid
}

// bucketPage finds the page damagePage damages, and the page size.
func bucketPage(t *testing.T, path string) (pgid uint64, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		pgid = uint64(tx.Bucket([]byte("journal")).Root())
		if pgid == 0 {
			pgid = uint64(tx.Bucket([]byte("seen")).Root())
		}
		return nil
	})
	if pgid == 0 {
		t.Fatal("no bucket with a page of its own")
	}
	return pgid, db.Info().PageSize
}

// writeGarbage overwrites the start of page pgid.
func writeGarbage(t *testing.T, path string, pgid uint64, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	garbage := []byte(strings.Repeat("\xfe", 64))
	if _, err := f.WriteAt(garbage, int64(pgid)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// TestOpenDamagedFile: opening a file with a damaged page for writing is
// an error that names the file and says what to do, not bbolt's panic in a
// goroutine of its own (which no recover can catch).
func TestOpenDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fillStore(t, path)
	damagePage(t, path)
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("Open of a damaged file succeeded")
	}
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "state check") {
		t.Fatalf("Open: %q, want ErrDamaged naming the file and mdbridge state check", err)
	}
	// The file is left as it was: read-only tools still open it.
	ro, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("OpenReadOnly after the refused Open: %v", err)
	}
	ro.Close()
}

// TestDamagedFileGivesErrors: a page damaged while the bridge runs makes
// its reads return an error that says so (ErrDamaged) instead of bbolt's
// panic taking the process down, and the store stays usable for what is
// intact. (A commit that meets the damage cannot be saved: see view.)
func TestDamagedFileGivesErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fillStore(t, path)
	pgid, size := bucketPage(t, path)
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeGarbage(t, path, pgid, size)
	calls := map[string]func() error{
		"LoadStream alerts":  func() error { _, _, err := s.LoadStream("plant-a/alerts"); return err },
		"LoadStream devices": func() error { _, _, err := s.LoadStream("plant-a/devices"); return err },
		"Read":               func() error { _, err := s.Read(0, 100, 1<<20); return err },
		"Streams":            func() error { _, err := s.Streams(); return err },
		"Stats":              func() error { _, err := s.Stats(); return err },
	}
	damaged := 0
	for name, call := range calls {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			err = call()
		}()
		switch {
		case err == nil:
		case errors.Is(err, ErrDamaged):
			damaged++
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "state check") {
				t.Errorf("%s: %q should name the file and point at mdbridge state check", name, err)
			}
		default:
			t.Errorf("%s: %v, want nil or ErrDamaged", name, err)
		}
	}
	if damaged == 0 {
		t.Error("no call met the damaged page")
	}
	if _, _, err := s.Cursor("archive"); err != nil {
		t.Errorf("Cursor, on an intact page, after the damage was met: %v", err)
	}
}
