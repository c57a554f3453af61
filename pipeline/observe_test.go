package pipeline_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestObserveDelivery: every Deliver call, the failed one too, is reported
// with its sink and batch size.
func TestObserveDelivery(t *testing.T) {
	var mu sync.Mutex
	calls, events := map[string]int{}, map[string]int{}
	h := newHarness(t, pipeline.Options{ObserveDelivery: func(sink string, d time.Duration, n int) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		mu.Lock()
		calls[sink]++
		events[sink] += n
		mu.Unlock()
	}})
	base := time.Now().UTC()
	s := &scriptStream{id: "t/a"}
	for i := 0; i < 5; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d}`, i))
	}
	flaky := &memSink{fail: func(call int, _ []pipeline.Entry) error {
		if call == 1 {
			return errors.New("connection refused")
		}
		return nil
	}}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: time.Hour})
	h.runner.AddSink("flaky", flaky, pipeline.SinkOptions{Batch: 100})
	h.start()
	eventually(t, "flaky sink to get everything", func() bool { return len(flaky.events(t)) == 5 })
	h.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if calls["flaky"] != flaky.calls || calls["flaky"] < 2 {
		t.Errorf("observed %d calls, the sink saw %d (want at least 2)", calls["flaky"], flaky.calls)
	}
	if events["flaky"] < 10 {
		t.Errorf("observed %d events over the calls, want at least 10 (5 failed, 5 delivered)", events["flaky"])
	}
}
