package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCommit measures journal append plus commit (with fsync) of one
// poll's events with their seen entries, at several batch sizes. It reports
// events/s and the state file's growth per event.
func BenchmarkCommit(b *testing.B) {
	event := make([]byte, 1200) // about the size of an OT alert event with raw
	for i := range event {
		event[i] = 'a' + byte(i%26)
	}
	for _, batch := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ev := make([]Append, batch)
			seen := make([]SeenEntry, batch)
			base := time.Now()
			b.ReportAllocs()
			b.SetBytes(int64(batch * len(event)))
			b.ResetTimer()
			n := 0
			for i := 0; i < b.N; i++ {
				for j := range ev {
					n++
					seen[j] = SeenEntry{Time: base.Add(time.Duration(n) * time.Millisecond), Key: fmt.Sprintf("alert-%09d", n), Hash: uint64(n)}
					ev[j] = Append{Data: event, Seen: &seen[j]}
				}
				if _, err := s.Commit(Commit{Stream: "bench", Events: ev, State: StreamState{LastSeq: uint64(n)}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			fi, _ := os.Stat(path)
			events := float64(b.N * batch)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(fi.Size())/events, "file-B/event")
		})
	}
}

// BenchmarkRead measures a dispatcher's read of 1000-entry batches.
func BenchmarkRead(b *testing.B) {
	s := openTemp(b)
	event := make([]byte, 1200)
	for i := 0; i < 100; i++ {
		ev := make([]Append, 1000)
		for j := range ev {
			ev[j] = Append{Data: event}
		}
		if _, err := s.Commit(Commit{Stream: "r", Events: ev}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(1000 * 1200)
	b.ResetTimer()
	var after uint64
	for i := 0; i < b.N; i++ {
		got, err := s.Read(after, 1000, 4<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			after = 0
			continue
		}
		after = got[len(got)-1].Seq
	}
}
