package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// readFile is ReadInto with the in-memory tail bypassed: what the journal
// file itself holds.
func readFile(t *testing.T, s *Store, after uint64, max, maxBytes int) []Entry {
	t.Helper()
	s.tail.mu.Lock()
	n := s.tail.n
	s.tail.n = 0
	s.tail.mu.Unlock()
	out, _, err := s.ReadInto(after, max, maxBytes, nil)
	s.tail.mu.Lock()
	s.tail.n = n
	s.tail.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Seq != b[i].Seq || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// TestTailServesWhatTheFileHolds commits runs of events of random sizes
// with a small cache, so chunks are evicted and reused all the time, and
// checks that every read from every position, with batch limits by count
// and by bytes, returns exactly what the file returns, and that reads near
// the end are served from memory. Entries are up to 700 bytes against a
// 20 KiB ring, so entries wrap around its end at every offset.
func TestTailServesWhatTheFileHolds(t *testing.T) {
	s := openTemp(t)
	s.tail.limit = 20 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	var total uint64
	for c := range 60 {
		n := 1 + rng.IntN(40)
		ev := make([]Append, n)
		for i := range ev {
			ev[i].Data = []byte(fmt.Sprintf(`{"c":%d,"i":%d,"pad":"%s"}`, c, i, bytes.Repeat([]byte("x"), rng.IntN(700))))
		}
		first, err := s.Commit(Commit{Stream: "s", Events: ev})
		if err != nil {
			t.Fatal(err)
		}
		if first != total+1 {
			t.Fatalf("commit %d starts at seq %d, want %d", c, first, total+1)
		}
		total += uint64(n)
	}
	h0 := s.tail.hits.Load()
	for after := uint64(0); after <= total; after++ {
		for _, lim := range []struct{ max, bytes int }{{1, 1 << 20}, {7, 1 << 20}, {1000, 500}, {1000, 2000}, {1000, 1 << 30}} {
			got, _, err := s.ReadInto(after, lim.max, lim.bytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := readFile(t, s, after, lim.max, lim.bytes); !sameEntries(got, want) {
				t.Fatalf("read after %d (max %d, %d bytes): %d entries, the file gives %d", after, lim.max, lim.bytes, len(got), len(want))
			}
		}
	}
	if s.tail.hits.Load() == h0 {
		t.Error("no read was served from memory")
	}
	got, _, _ := s.ReadInto(total-1, 10, 1<<20, nil)
	if len(got) != 1 || got[0].Seq != total {
		t.Fatalf("read of the newest entry: %+v", got)
	}
}

// TestTailForgetsWhatLeavesTheJournal evicts the oldest undelivered
// entries under a byte budget, as the dispatcher's budget does, and checks
// that reads no longer see them, from memory or from the file.
func TestTailForgetsWhatLeavesTheJournal(t *testing.T) {
	s := openTemp(t)
	if _, err := s.Commit(Commit{Stream: "s", Events: appends(50, "a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor("sink", 0); err != nil {
		t.Fatal(err)
	}
	res, err := s.Trim(time.Now(), time.Hour, 200, []string{"sink"}, func([]Eviction) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Evicted == 0 {
		t.Fatal("nothing was evicted; the test needs an eviction")
	}
	got, _, err := s.ReadInto(0, 100, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, s, 0, 100, 1<<20); !sameEntries(got, want) {
		t.Fatalf("after eviction the read gives %d entries, the file %d", len(got), len(want))
	}
	if len(got) > 0 && got[0].Seq <= res.Evicted {
		t.Fatalf("read returned evicted seq %d", got[0].Seq)
	}
}

// TestTailAfterAHole empties the cache when a run does not follow the
// cached one, as after a failed commit.
func TestTailAfterAHole(t *testing.T) {
	tc := tailCache{limit: 1 << 20}
	tc.add(1, appends(5, "a"))
	tc.add(9, appends(2, "b")) // seqs 6-8 never reached the cache
	if _, _, ok := tc.read(5, 10, 1<<20, nil); ok {
		t.Fatal("the cache claims seq 6, which it never held")
	}
	got, _, ok := tc.read(8, 10, 1<<20, nil)
	if !ok || len(got) != 2 || got[0].Seq != 9 || string(got[1].Data) != `{"n":"b1"}` {
		t.Fatalf("read after the hole = %+v, %v", got, ok)
	}
}

// TestPageCacheKeptForALaggingSink checks the condition under which the
// state file's cached pages are handed back: only while every sink reads
// from the tail cache, never while one still has to read the file.
func TestPageCacheKeptForALaggingSink(t *testing.T) {
	s := openTemp(t)
	s.tail.limit = 4 << 10
	for range 10 {
		if _, err := s.Commit(Commit{Stream: "s", Events: appends(50, "abcdefghij")}); err != nil {
			t.Fatal(err)
		}
	}
	first := s.tail.first()
	if first <= 1 {
		t.Fatalf("the tail holds everything (first seq %d); the test needs older entries outside it", first)
	}
	for _, c := range []struct {
		cursors map[string]uint64
		want    bool
	}{
		{map[string]uint64{}, true},
		{map[string]uint64{"file": first - 1}, true},
		{map[string]uint64{"file": first - 1, "webhook": first - 2}, false},
		{map[string]uint64{"file": 500, "webhook": 0}, false},
		{map[string]uint64{"file": 500, "webhook": 499}, true},
	} {
		for name, seq := range c.cursors {
			if err := s.SetCursor(name, seq); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.sinksReadFromTail(); got != c.want {
			t.Errorf("cursors %v (tail from %d): sinksReadFromTail = %v, want %v", c.cursors, first, got, c.want)
		}
		s.cursorMu.Lock()
		s.cursors = map[string]uint64{}
		s.cursorMu.Unlock()
	}
}
