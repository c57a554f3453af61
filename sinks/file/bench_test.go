package file

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDeliver measures batches of 1000 events of 1.2 KB; one op is one
// batch. Rotation happens as it would in production (default max_bytes).
// Besides events/s it reports the process's CPU time (user + system) per
// 1000 events, which on a shared machine says more than the wall clock:
// most of the sink's cost is system time in write and fsync.
func BenchmarkDeliver(b *testing.B) {
	const (
		batchSize = 1000
		eventSize = 1200
	)
	for _, c := range []struct{ sync, direct string }{
		{SyncBatch, DirectAuto}, {SyncBatch, DirectOff}, {SyncNone, DirectAuto},
	} {
		b.Run("sync="+c.sync+"/direct_io="+c.direct, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(b.TempDir(), "events.jsonl")
			cfg.Sync = c.sync
			cfg.DirectIO = c.direct
			cfg.MaxFiles = 2
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := entries(0, batchSize, eventSize)
			ctx := context.Background()
			b.SetBytes(batchSize * (eventSize + 1))
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if err := s.Deliver(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*batchSize/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/1000ev")
		})
	}
}

// processCPU is the process's user plus system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
