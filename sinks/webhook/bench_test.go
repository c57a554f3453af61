package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

// BenchmarkDeliver posts batches of 500 realistic events of ~1.2 KB
// (pipeline.MarshalEvent), as a signed JSON array, to a loopback server
// that reads and discards the body and answers 204. One op is one batch;
// with the default max_batch_bytes it goes out as three requests at once.
func BenchmarkDeliver(b *testing.B) {
	const batchSize = 500
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	batch := entries(b, 1, batchSize)
	bytesPerBatch := 0
	for _, e := range batch {
		bytesPerBatch += len(e.Data)
	}
	for _, bc := range []struct {
		name string
		gzip bool
	}{{"json_array+signed", false}, {"json_array+signed+gzip", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.URL = srv.URL + "/hook"
			cfg.Secret = pipeline.Secret(secretA)
			cfg.Gzip = bc.gzip
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.SetBytes(int64(bytesPerBatch))
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
