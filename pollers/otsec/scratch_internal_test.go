package otsec

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestReleaseEmptiesScratchEvent: an alert stream builds its events in
// scratch space whose strings point into the response body; once the
// runner releases the batch, the scratch must hold none of them, or where
// bodies are heap buffers every stream would keep its last body alive.
func TestReleaseEmptiesScratchEvent(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 3, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site := srv.Sites()[0]
	cfg := DefaultConfig()
	cfg.URL, cfg.Token, cfg.Timeout = srv.URL, "test-token", 5*time.Second
	p, err := New("plant-a", cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(p, StreamDeviceAlerts, site.SiteIP, site.SensorIPs[0])
	srv.Add(StreamDeviceAlerts, site.SiteIP, site.SensorIPs[0], 5)
	b, err := s.Poll(context.Background(), pipeline.Position{Floor: time.Now().Add(-2 * time.Hour)})
	if err != nil || len(b.Records) != 5 {
		t.Fatalf("poll: %d records, %v", len(b.Records), err)
	}
	rec := b.Records[0]
	if err := b.Normalize(&rec); err != nil || rec.Event == nil || rec.Event.Message == "" {
		t.Fatalf("normalize: %v, event %+v", err, rec.Event)
	}
	b.Release()
	if sc := &s.ev; sc.ev.Alert != nil || sc.ev.Message != "" || sc.alert != (pipeline.Alert{}) || sc.dev != (pipeline.Device{}) {
		t.Errorf("the scratch event still holds the last record after Release: %+v", sc.ev)
	}
}
