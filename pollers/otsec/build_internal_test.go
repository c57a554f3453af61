package otsec

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestBuildKeepsNoBody checks that building an event leaves build's reused
// scratch space empty: its values point into the response body, and a
// stream that kept them would keep its last body alive between polls (100
// streams held 60 MiB more this way in a 1M-event drain).
func TestBuildKeepsNoBody(t *testing.T) {
	alerts := newStream(testPoller(nil), "device_alerts", "10.0.0.1", "10.0.0.2")
	devices := newSetStream(testPoller(nil), "devices", "10.0.0.1", "10.0.0.2", 0)
	raw := []byte(`{"id":7,"alertStarted":"2026-12-04T10:00:00Z","name":"Firmware changed","deviceName":"SW-22","ipv4":"192.168.10.115"}`)
	for _, c := range []struct {
		name  string
		build func(*pipeline.Record) error
		vals  *[]gjson.Result
	}{
		{"device_alerts", alerts.build, &alerts.vals},
		{"devices", devices.build, &devices.vals},
	} {
		rec := &pipeline.Record{Key: "7", Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Raw: raw, Action: pipeline.ActionAdded}
		if err := c.build(rec); err != nil {
			t.Fatalf("%s: build: %v", c.name, err)
		}
		if rec.Event == nil || len(*c.vals) == 0 {
			t.Fatalf("%s: no event built, or no scratch space used", c.name)
		}
		for i, v := range *c.vals {
			if v.Raw != "" || v.Str != "" {
				t.Errorf("%s: scratch slot %d still holds %q after build", c.name, i, v.Raw)
			}
		}
	}
}
