package file

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkDeliver measures batches of 1000 events of 1.2 KB; one op is one
// batch. Rotation happens as it would in production (default max_bytes).
func BenchmarkDeliver(b *testing.B) {
	const (
		batchSize = 1000
		eventSize = 1200
	)
	for _, sync := range []string{SyncBatch, SyncNone} {
		b.Run("sync="+sync, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(b.TempDir(), "events.jsonl")
			cfg.Sync = sync
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
			for b.Loop() {
				if err := s.Deliver(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*batchSize/b.Elapsed().Seconds(), "events/s")
		})
	}
}
