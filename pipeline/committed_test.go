package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// committedStream wraps a scriptStream: each batch says it left
// unchanged records out, and notes what the store held when the runner
// called Committed, and whether Release came after it.
type committedStream struct {
	*scriptStream
	unchanged int
	mu        sync.Mutex
	committed []time.Time // the stream's watermark in the store at each Committed
	order     []string
	load      func() time.Time
}

func (s *committedStream) Poll(ctx context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	b, err := s.scriptStream.Poll(ctx, pos)
	if err != nil {
		return b, err
	}
	b.Unchanged = s.unchanged
	b.Committed = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.committed = append(s.committed, s.load())
		s.order = append(s.order, "committed")
	}
	b.Release = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.order = append(s.order, "released")
	}
	return b, nil
}

// TestCommittedComesAfterTheCommit: the runner calls a batch's Committed
// once its records and watermark are in the state file, before Release,
// and counts the records a stream left out as unchanged among those it
// fetched.
func TestCommittedComesAfterTheCommit(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	const id = "t/site/sensor/device_alerts"
	s := &committedStream{scriptStream: &scriptStream{id: id}, unchanged: 4}
	s.load = func() time.Time {
		st, _, err := h.store.LoadStream(id)
		if err != nil {
			t.Errorf("load stream: %v", err)
		}
		return st.Watermark
	}
	s.set("1", base, `{"id":1}`)
	s.set("2", base.Add(time.Second), `{"id":2}`)
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Lookback: time.Hour})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	h.start()
	eventually(t, "two events and three polls", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(sink.events(t)) == 2 && len(s.committed) >= 3
	})
	var st pipeline.StreamStatus
	for _, x := range h.runner.Snapshot().Streams {
		if x.ID == id {
			st = x
		}
	}
	h.stop(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.committed[0].Equal(base.Add(time.Second)) {
		t.Errorf("at the first Committed the stored watermark is %v, want %v", s.committed[0], base.Add(time.Second))
	}
	if got := strings.Join(s.order[:4], ","); got != "committed,released,committed,released" {
		t.Errorf("calls in order %s, want Committed before each Release", got)
	}
	if st.Polls == 0 || st.Records != st.Polls*(2+4) {
		t.Errorf("status: %d polls, %d records fetched; want 6 a poll (2 handed over, 4 unchanged)", st.Polls, st.Records)
	}
}

// TestBackfillRefusesLeftOutRecords: a backfill must see every record of
// its window, so a stream that leaves some out as unchanged ends it with an
// error instead of a silently short answer.
func TestBackfillRefusesLeftOutRecords(t *testing.T) {
	s := &committedStream{scriptStream: &scriptStream{id: "t/site/sensor/device_alerts"}, unchanged: 3, load: func() time.Time { return time.Time{} }}
	s.set("1", time.Now().Add(-time.Minute), `{"id":1}`)
	_, err := pipeline.Backfill(context.Background(), onePoller{[]pipeline.Stream{s}}, nil, time.Now().Add(-time.Hour), time.Time{},
		func(*pipeline.Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "left 3 records out") {
		t.Fatalf("backfill error %v, want one saying the stream left 3 records out", err)
	}
}
