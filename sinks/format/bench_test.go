package format

import (
	"encoding/json"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

// benchEvent is a device alert as the bridge writes it: every block filled
// in and the upstream record in raw, about 1.2 KB of JSON.
func benchEvent(tb testing.TB) []byte {
	e := *testEvents()["device_alert"]
	e.Raw = json.RawMessage(`{"id":"a-1001","alertType":"dev-unauthorized","criticality":"High","status":"New",` +
		`"alertStarted":"2026-11-23T10:00:00.123Z","deviceId":"d-77","ipv4":"10.0.2.17","mac":"00:1d:9c:aa:bb:cc",` +
		`"siteId":"s-1","sensorId":"n-4","reason":"MAC not in baseline","tags":["line-3"]}`)
	data, err := pipeline.MarshalEvent(&e)
	if err != nil {
		tb.Fatal(err)
	}
	if len(data) < 1100 || len(data) > 1400 {
		tb.Fatalf("bench event is %d bytes, want about 1.2 KB", len(data))
	}
	return data
}

// BenchmarkAppend renders one ~1.2 KB event per op into a reused buffer.
// Besides ns/op (wall clock) it reports cpu-ns/op, the CPU time of the
// benchmark's thread, which the load of other processes does not inflate.
func BenchmarkAppend(b *testing.B) {
	data := benchEvent(b)
	for _, name := range Names {
		b.Run(name, func(b *testing.B) {
			f, err := New(name)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu := threadCPU()
			for b.Loop() {
				if buf, err = f.Append(buf[:0], data); err != nil {
					b.Fatal(err)
				}
			}
			if used, ok := cpu(); ok {
				b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// TestAppendAllocs keeps the formatters from allocating per event on the
// common path (an event whose strings have no JSON escapes).
func TestAppendAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	data := benchEvent(t)
	for _, name := range Names {
		f, _ := New(name)
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			buf, _ = f.Append(buf[:0], data)
		})
		if allocs > 0 {
			t.Errorf("%s: %.1f allocations per event, want 0", name, allocs)
		}
	}
}
