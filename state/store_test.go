package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "sub", "state.db"), Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appends(n int, prefix string) []Append {
	out := make([]Append, n)
	for i := range out {
		out[i] = Append{Data: []byte(fmt.Sprintf(`{"n":"%s%d"}`, prefix, i))}
	}
	return out
}

func TestOpenModesAndSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "mdbridge.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", p, got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A file written by a future layout is refused with a clear message.
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *boltTx) error { return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("9")) }); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), `schema version "9"`) {
		t.Fatalf("open with schema 9: err = %v, want a schema version error", err)
	}
}

// TestLockedByAnotherProcess holds the file in a child process, as a second
// mdbridge would, and expects a prompt, explicit error.
func TestLockedByAnotherProcess(t *testing.T) {
	if os.Getenv("STATE_HOLD") != "" {
		s, err := Open(os.Getenv("STATE_HOLD"), Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		time.Sleep(10 * time.Second)
		_ = s.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "x.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), "STATE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("child did not hold the file: %q %v", buf, err)
	}
	_, err = Open(path, Options{LockTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrLocked naming %s", err, path)
	}
}

func TestCommitIsAtomicAndReadable(t *testing.T) {
	s := openTemp(t)
	wm := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	ev := appends(3, "a")
	for i := range ev {
		ev[i].Seen = &SeenEntry{Time: wm.Add(time.Duration(i) * time.Second), Key: fmt.Sprint("k", i), Hash: uint64(i + 100)}
	}
	changed := s.Changed()
	first, err := s.Commit(Commit{Stream: "s1", State: StreamState{Watermark: wm, LastSeq: 3, Started: true}, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 {
		t.Fatalf("first seq = %d, want 1", first)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not signalled after append")
	}
	// A failing commit (a stream name bbolt refuses) changes nothing.
	if _, err := s.Commit(Commit{Stream: "", Events: appends(2, "b")}); err == nil {
		t.Fatal("commit with empty stream name succeeded")
	}
	got, err := s.Read(0, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d entries, want 3 (failed commit must leave nothing)", len(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || string(e.Data) != fmt.Sprintf(`{"n":"a%d"}`, i) {
			t.Errorf("entry %d = %d %s", i, e.Seq, e.Data)
		}
	}
	st, seen, err := s.LoadStream("s1")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Watermark.Equal(wm) || st.LastSeq != 3 || !st.Started {
		t.Errorf("stream state = %+v", st)
	}
	if len(seen) != 3 || seen[2].Key != "k2" || seen[2].Hash != 102 || seen[2].JournalSeq != 3 || !seen[2].Time.Equal(wm.Add(2*time.Second)) {
		t.Errorf("seen = %+v", seen)
	}
	// Pruning drops entries older than the limit.
	if _, err := s.Commit(Commit{Stream: "s1", State: st, PruneBefore: wm.Add(1500 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if _, seen, _ = s.LoadStream("s1"); len(seen) != 1 || seen[0].Key != "k2" {
		t.Errorf("after prune seen = %+v, want only k2", seen)
	}
}

func TestReadLimits(t *testing.T) {
	s := openTemp(t)
	if _, err := s.Commit(Commit{Stream: "s", Events: appends(10, "")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		after         uint64
		max, maxBytes int
		wantN         int
		wantFirst     uint64
	}{
		{"all", 0, 100, 1 << 20, 10, 1},
		{"count", 0, 4, 1 << 20, 4, 1},
		{"after", 7, 100, 1 << 20, 3, 8},
		{"bytes", 0, 100, 25, 2, 1},
		{"at least one", 0, 100, 1, 1, 1},
		{"past end", 10, 100, 1 << 20, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Read(tc.after, tc.max, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantN {
				t.Fatalf("got %d entries, want %d", len(got), tc.wantN)
			}
			if tc.wantN > 0 && got[0].Seq != tc.wantFirst {
				t.Fatalf("first seq %d, want %d", got[0].Seq, tc.wantFirst)
			}
		})
	}
}

func TestCursorNeverMovesBack(t *testing.T) {
	s := openTemp(t)
	if _, ok, _ := s.Cursor("a"); ok {
		t.Fatal("new sink has a cursor")
	}
	for _, seq := range []uint64{5, 3, 9} {
		if err := s.SetCursor("a", seq); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok, _ := s.Cursor("a"); !ok || c != 9 {
		t.Fatalf("cursor = %d %v, want 9", c, ok)
	}
	if err := s.SetCursor("b", 0); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := s.Cursor("b"); !ok || c != 0 {
		t.Fatalf("cursor b = %d %v, want 0 and present", c, ok)
	}
	// A cursor that does not move writes nothing.
	pageWrites := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	writes := pageWrites()
	for _, seq := range []uint64{9, 4, 0} {
		if err := s.SetCursor("a", seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCursor("b", 0); err != nil {
		t.Fatal(err)
	}
	if got := pageWrites() - writes; got != 0 {
		t.Errorf("cursors that did not move cost %d page writes", got)
	}
	if err := s.SetCursor("a", 10); err != nil {
		t.Fatal(err)
	}
	if got := pageWrites() - writes; got == 0 {
		t.Error("a cursor that moved wrote nothing")
	}
	if c, _, _ := s.Cursor("a"); c != 10 {
		t.Errorf("cursor a = %d, want 10", c)
	}
}

func TestTrimRetentionAndBudget(t *testing.T) {
	s := openTemp(t)
	if _, err := s.Commit(Commit{Stream: "s", Events: appends(100, "x")}); err != nil {
		t.Fatal(err)
	}
	_ = s.SetCursor("fast", 100)
	_ = s.SetCursor("slow", 40)
	sinks := []string{"fast", "slow"}
	noEvict := func([]Eviction) error { t.Fatal("unexpected eviction"); return nil }

	// Within retention and budget nothing goes.
	res, err := s.Trim(time.Now(), time.Hour, 0, sinks, noEvict)
	if err != nil || res.Deleted != 0 {
		t.Fatalf("trim within retention: %+v %v", res, err)
	}
	// Past retention only what every sink delivered goes.
	res, err = s.Trim(time.Now().Add(2*time.Hour), time.Hour, 0, sinks, noEvict)
	if err != nil || res.Deleted != 40 {
		t.Fatalf("trim past retention: %+v %v, want 40 deleted", res, err)
	}
	st, _ := s.Stats()
	if st.FirstSeq != 41 || st.Entries != 60 {
		t.Fatalf("stats after retention = %+v", st)
	}
	// Over budget: the slow sink's oldest entries are evicted, and its cursor
	// moves past them; the fast sink is not named.
	var evicted []Eviction
	budget := st.Bytes / 2
	res, err = s.Trim(time.Now(), time.Hour, budget, sinks, func(ev []Eviction) error {
		evicted = append(evicted, ev...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = s.Stats()
	if st.Bytes > budget {
		t.Fatalf("journal %d bytes, over budget %d", st.Bytes, budget)
	}
	if len(evicted) == 0 || uint64(len(evicted)) != res.Evicted {
		t.Fatalf("evicted %d, result %+v", len(evicted), res)
	}
	for i, e := range evicted {
		if e.Entry.Seq != uint64(41+i) || len(e.Sinks) != 1 || e.Sinks[0] != "slow" || !bytes.Contains(e.Entry.Data, []byte(`"x`)) {
			t.Fatalf("eviction %d = %+v", i, e)
		}
	}
	if c, _, _ := s.Cursor("slow"); c != evicted[len(evicted)-1].Entry.Seq {
		t.Fatalf("slow cursor %d, want %d", c, evicted[len(evicted)-1].Entry.Seq)
	}
	// A failing evict deletes nothing.
	before, _ := s.Stats()
	if _, err := s.Trim(time.Now(), time.Hour, 1, sinks, func([]Eviction) error { return errors.New("disk full") }); err == nil {
		t.Fatal("trim with failing evict succeeded")
	}
	after, _ := s.Stats()
	if after.Entries != before.Entries {
		t.Fatalf("failing evict deleted %d entries", before.Entries-after.Entries)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(Commit{Stream: "s", State: StreamState{LastSeq: 5}, Events: appends(5, "")}); err != nil {
		t.Fatal(err)
	}
	_ = s.SetCursor("f", 2)
	_ = s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats()
	if err != nil || st.LastSeq != 5 || st.Entries != 5 || st.Cursors["f"] != 2 {
		t.Fatalf("stats after reopen = %+v %v", st, err)
	}
	first, err := s.Commit(Commit{Stream: "s", Events: appends(1, "n")})
	if err != nil || first != 6 {
		t.Fatalf("next seq = %d %v, want 6", first, err)
	}
}

// TestSeqRange: the journal entries committed in a time window, by the
// commit-time index.
func TestSeqRange(t *testing.T) {
	s := openTemp(t)
	var marks []time.Time
	for i := 0; i < 3; i++ {
		marks = append(marks, time.Now())
		time.Sleep(5 * time.Millisecond)
		c := Commit{Stream: "x", Events: []Append{{Data: []byte(`{"a":1}`)}, {Data: []byte(`{"a":2}`)}}}
		if _, err := s.Commit(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	for _, tc := range []struct {
		name         string
		since, until time.Time
		first, last  uint64
		ok           bool
	}{
		{"everything", time.Time{}, time.Time{}, 1, 6, true},
		{"from the second commit", marks[1], time.Time{}, 3, 6, true},
		{"only the second commit", marks[1], marks[2], 3, 4, true},
		{"before anything", time.Time{}, marks[0], 0, 0, false},
		{"after everything", end, time.Time{}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, last, ok, err := s.SeqRange(tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || (ok && (first != tc.first || last != tc.last)) {
				t.Fatalf("SeqRange = %d..%d %v, want %d..%d %v", first, last, ok, tc.first, tc.last, tc.ok)
			}
		})
	}
}

// TestSeenWithoutEvents checks seen entries committed without journal
// events: they load back, two such commits with the same newest time do
// not overwrite each other, and a later revision of the same key wins.
func TestSeenWithoutEvents(t *testing.T) {
	s := openTemp(t)
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	st := StreamState{Started: true}
	for _, keys := range [][]string{{"a", "b"}, {"c"}} {
		var seen []SeenEntry
		for _, k := range keys {
			seen = append(seen, SeenEntry{Time: t0, Key: k, Hash: 7, JournalSeq: 99})
		}
		if _, err := s.Commit(Commit{Stream: "set", State: st, Seen: seen}); err != nil {
			t.Fatal(err)
		}
	}
	ev := appends(1, "x")
	ev[0].Seen = &SeenEntry{Time: t0, Key: "b", Hash: 8, Revision: 1}
	st.LastSeq = 1
	if _, err := s.Commit(Commit{Stream: "set", State: st, Events: ev}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(0, 10, 1<<20); err != nil || len(n) != 1 {
		t.Fatalf("journal holds %d entries (%v), want only the one event", len(n), err)
	}
	_, seen, err := s.LoadStream("set")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]SeenEntry{}
	for _, e := range seen {
		got[e.Key] = e
	}
	if len(got) != 3 {
		t.Fatalf("seen keys = %v, want a, b and c", got)
	}
	if got["a"].JournalSeq != 0 || got["a"].Hash != 7 || got["c"].Hash != 7 {
		t.Errorf("baseline entries = %+v %+v", got["a"], got["c"])
	}
	if got["b"].Revision != 1 || got["b"].Hash != 8 || got["b"].JournalSeq != 1 {
		t.Errorf("b = %+v, want revision 1 with journal seq 1", got["b"])
	}
}
