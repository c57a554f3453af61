package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trimmedStore writes n events of about 1 KB in commits of 500 to stream
// "s", delivers all but the last keep of them to sink "archive" and
// trims the delivered ones away, then closes the file.
func trimmedStore(t *testing.T, path string, n, keep int) {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pad := strings.Repeat("x", 1000)
	wm := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for c := 0; c < n; c += 500 {
		var ev []Append
		for i := c; i < min(c+500, n); i++ {
			ev = append(ev, Append{Data: fmt.Appendf(nil, `{"id":"e%d","seq":%d,"pad":%q}`, i, i+1, pad),
				Seen: &SeenEntry{Time: wm.Add(time.Duration(i) * time.Second), Key: fmt.Sprint(i)}})
		}
		st := StreamState{Watermark: wm.Add(time.Duration(len(ev)+c) * time.Second), LastSeq: uint64(c + len(ev)), Started: true}
		if _, err := s.Commit(Commit{Stream: "s", State: st, Events: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCursor("archive", uint64(n-keep)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trim(time.Now().Add(time.Hour), time.Minute, 0, []string{"archive"}, nil); err != nil {
		t.Fatal(err)
	}
}

func inspectFile(t *testing.T, path string) Report {
	t.Helper()
	s, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Check(); len(p) != 0 {
		t.Errorf("check of %s: %v", path, p)
	}
	return rep
}

// TestCompact: after the journal was trimmed, compaction in place shrinks
// the file, keeps it 0600, and the result opens (read-write too) with the
// same streams, cursors and journal.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	trimmedStore(t, path, 5000, 10)
	want := inspectFile(t, path)
	if want.Journal.Entries != 10 || want.Journal.FirstSeq != 4991 {
		t.Fatalf("the trim left %+v, want the last 10 entries", want.Journal)
	}
	before, after, err := Compact(path, "", Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if before < 5000*1000 || after != fi.Size() || after*4 > before {
		t.Errorf("before %d after %d (file now %d), want a file of 5 MB shrunk to under a quarter", before, after, fi.Size())
	}
	t.Logf("compacted %d bytes to %d", before, after)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.compact-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	got := inspectFile(t, path)
	if got.Journal != want.Journal || fmt.Sprint(got.Streams) != fmt.Sprint(want.Streams) || fmt.Sprint(got.Sinks) != fmt.Sprint(want.Sinks) {
		t.Errorf("after compaction:\n%+v\nwant\n%+v", got, want)
	}
	if got.PageSize != want.PageSize {
		t.Errorf("page size %d, want the original %d", got.PageSize, want.PageSize)
	}
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("a bridge cannot open the compacted file: %v", err)
	}
	defer s.Close()
	if _, err := s.Commit(Commit{Stream: "s", Events: appends(1, "")}); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Read(4990, 100, 1<<20); len(e) != 11 || e[0].Seq != 4991 || e[10].Seq != 5001 {
		t.Errorf("journal after compaction and a commit: %d entries from %v", len(e), e)
	}
}

func TestCompactToOut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	trimmedStore(t, path, 1000, 5)
	orig, _ := os.ReadFile(path)
	out := filepath.Join(dir, "copy.db")
	before, after, err := Compact(path, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(path); string(now) != string(orig) || before != int64(len(orig)) || after >= before {
		t.Errorf("source changed (%v) or sizes %d -> %d not shrunk", string(now) != string(orig), before, after)
	}
	if rep := inspectFile(t, out); rep.Journal.Entries != 5 || len(rep.Sinks) != 1 {
		t.Errorf("the copy holds %+v", rep)
	}
	if _, _, err := Compact(path, out, Options{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("compacting onto an existing file: %v, want a refusal", err)
	}
}

// TestCompactRefusesWhileLocked: a running bridge holds the file, and
// compaction gives up after the lock timeout, leaving no file behind.
func TestCompactRefusesWhileLocked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	trimmedStore(t, path, 10, 0)
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, err = Compact(path, "", Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "stop the bridge first") {
		t.Fatalf("err = %v, want ErrLocked telling to stop the bridge", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files in the directory: %v, want only the state file", entries)
	}
}

// TestOpenWaitingThroughCompaction: a bridge that starts during a
// compaction waits for the lock of the old file; when it gets it, the
// compacted file has been renamed over the path, and it must open that one.
func TestOpenWaitingThroughCompaction(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	trimmedStore(t, path, 10, 0)
	reader, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan *Store, 1)
	go func() {
		s, err := Open(path, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	time.Sleep(200 * time.Millisecond) // the bridge now waits for the lock
	// What Compact does while it holds the lock: a new file at the path.
	next := filepath.Join(dir, "next.db")
	ns, err := Open(next, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.SetCursor("new-file", 1); err != nil {
		t.Fatal(err)
	}
	_ = ns.Close()
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	_ = reader.Close()
	s := <-opened
	if s == nil {
		t.FailNow()
	}
	defer s.Close()
	if _, ok, _ := s.Cursor("new-file"); !ok {
		t.Error("the bridge opened the file that was replaced while it waited")
	}
}
