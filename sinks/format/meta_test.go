package format

import (
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestPeekMeta(t *testing.T) {
	when := time.Date(2026, 11, 23, 10, 0, 0, 123000000, time.UTC)
	e := &pipeline.Event{ID: "abc", Schema: pipeline.Schema, Kind: pipeline.KindDeviceAlert, Seq: 42, Time: when,
		Observed: when, Severity: "high", SeverityScore: 7, Message: `a "quoted" line`,
		Source: pipeline.Source{Product: pipeline.ProductOTSecurity, Instance: "plant-a", Stream: "s1", SiteIP: "10.0.0.1", SensorIP: "10.0.0.2"},
		Raw:    []byte(`{"id":"x","source":{"instance":"evil"}}`)}
	data, err := pipeline.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	m, err := PeekMeta(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{ID: "abc", Kind: pipeline.KindDeviceAlert, Seq: 42, Time: when, Severity: "high", SeverityScore: 7,
		Product: pipeline.ProductOTSecurity, Instance: "plant-a", Stream: "s1", SiteIP: "10.0.0.1", SensorIP: "10.0.0.2"}
	if m != want {
		t.Fatalf("PeekMeta = %+v\nwant %+v", m, want)
	}
	for _, bad := range []string{"", "[]", `{"id":"a"}`, `{"id":"a","kind":"k","time":"yesterday","source":{}}`} {
		if _, err := PeekMeta([]byte(bad)); err == nil {
			t.Errorf("PeekMeta(%q): no error", bad)
		}
	}
}
