package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fillStore writes two streams (one with a pruned seen index) and two sink
// cursors, then closes the file.
func fillStore(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wm := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	floor := wm.Add(-time.Hour)
	for i, c := range []Commit{
		{Stream: "plant-a/alerts", State: StreamState{Watermark: wm, Floor: floor, LastSeq: 3, Started: true, Gaps: 2},
			Events: []Append{
				{Data: []byte(`{"id":"a1","seq":1}`), Seen: &SeenEntry{Time: wm.Add(-2 * time.Minute), Key: "1"}},
				{Data: []byte(`{"id":"a2","seq":2}`), Seen: &SeenEntry{Time: wm.Add(-time.Minute), Key: "2"}},
				{Data: []byte(`{"id":"a3","seq":3}`), Seen: &SeenEntry{Time: wm, Key: "3"}},
			}},
		{Stream: "plant-a/devices", State: StreamState{Watermark: wm.Add(time.Hour), LastSeq: 1, Started: true},
			Events: []Append{{Data: []byte(`{"id":"d1","seq":1}`), Seen: &SeenEntry{Time: wm, Key: "dev"}}}},
		// A second commit of the alerts stream prunes its two oldest entries.
		{Stream: "plant-a/alerts", State: StreamState{Watermark: wm.Add(time.Minute), Floor: floor, LastSeq: 4, Started: true, Gaps: 2},
			Events:      []Append{{Data: []byte(`{"id":"a4","seq":4}`), Seen: &SeenEntry{Time: wm.Add(time.Minute), Key: "4"}}},
			PruneBefore: wm},
	} {
		if _, err := s.Commit(c); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if err := s.SetCursor("archive", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor("siem", 2); err != nil {
		t.Fatal(err)
	}
}

func TestInspect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fillStore(t, path)
	s, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if rep.SchemaVersion != SchemaVersion || rep.FileSize != fi.Size() || rep.PageSize != pageSize {
		t.Errorf("schema %q size %d page %d, want %q %d %d", rep.SchemaVersion, rep.FileSize, rep.PageSize, SchemaVersion, fi.Size(), pageSize)
	}
	wantBytes := uint64(len(`{"id":"a1","seq":1}`) * 5)
	if j := rep.Journal; j.Entries != 5 || j.Bytes != wantBytes || j.FirstSeq != 1 || j.LastSeq != 5 || j.Commits != 3 || j.Oldest.IsZero() || j.Newest.Before(j.Oldest) {
		t.Errorf("journal = %+v, want 5 entries of %d bytes, seq 1..5, 3 commits", j, wantBytes)
	}
	wm := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	wantStreams := []StreamReport{
		{ID: "plant-a/alerts", Watermark: wm.Add(time.Minute), Floor: wm.Add(-time.Hour), LastSeq: 4, Gaps: 2, Started: true, Seen: 2},
		{ID: "plant-a/devices", Watermark: wm.Add(time.Hour), LastSeq: 1, Started: true, Seen: 1},
	}
	if len(rep.Streams) != len(wantStreams) {
		t.Fatalf("streams = %+v, want %+v", rep.Streams, wantStreams)
	}
	for i, w := range wantStreams {
		g := rep.Streams[i]
		if g.ID != w.ID || !g.Watermark.Equal(w.Watermark) || !g.Floor.Equal(w.Floor) || g.LastSeq != w.LastSeq || g.Gaps != w.Gaps || g.Started != w.Started || g.Seen != w.Seen {
			t.Errorf("stream %d = %+v, want %+v", i, g, w)
		}
	}
	wantSinks := []SinkReport{{Name: "archive", Cursor: 5, Backlog: 0}, {Name: "siem", Cursor: 2, Backlog: 3}}
	if len(rep.Sinks) != 2 || rep.Sinks[0] != wantSinks[0] || rep.Sinks[1] != wantSinks[1] {
		t.Errorf("sinks = %+v, want %+v", rep.Sinks, wantSinks)
	}
}

// TestOpenReadOnly: a read-only open creates nothing, changes no byte of
// the file, cannot write, and fails with ErrLocked while a bridge (a
// read-write Open) holds the file.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "state.db")
	if _, err := OpenReadOnly(missing, Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open of a missing file: %v, want not-exist", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing file's directory was created (%v)", err)
	}

	path := filepath.Join(dir, "state.db")
	fillStore(t, path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(Commit{Stream: "x", Events: appends(1, "")}); err == nil {
		t.Error("a read-only store took a commit")
	}
	if _, err := s.Inspect(); err != nil {
		t.Fatal(err)
	}
	// Two readers at once are fine.
	s2, err := OpenReadOnly(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	_ = s2.Close()
	_ = s.Close()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a read-only open changed the file")
	}

	bridge, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bridge.Close()
	start := time.Now()
	_, err = OpenReadOnly(path, Options{LockTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("read-only open of a held file: %v, want ErrLocked naming %s", err, path)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 5*time.Second {
		t.Errorf("gave up after %v, want about the 300ms lock timeout", waited)
	}
}
