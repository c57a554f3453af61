package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

// scriptStream serves records a test sets, filtered by the floor like a
// real stream.
type scriptStream struct {
	mu   sync.Mutex
	id   string
	recs []pipeline.Record
}

func (s *scriptStream) ID() string { return s.id }

func (s *scriptStream) Poll(_ context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.Record
	for _, r := range s.recs {
		if !r.Time.Before(pos.Floor) {
			ev := *r.Event
			r.Event = &ev
			out = append(out, r)
		}
	}
	return pipeline.Batch{Records: out}, nil
}

func (s *scriptStream) set(key string, t time.Time, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := pipeline.Record{Key: key, Time: t, Hash: pipeline.ContentHash([]byte(raw)), Raw: []byte(raw),
		Event: &pipeline.Event{Kind: pipeline.KindDeviceAlert, Time: t, Severity: "info", SeverityScore: 1,
			Source: pipeline.Source{Product: pipeline.ProductOTSecurity, Instance: "t"}, Raw: json.RawMessage(raw)}}
	for i := range s.recs {
		if s.recs[i].Key == key {
			s.recs[i] = rec
			return
		}
	}
	s.recs = append(s.recs, rec)
}

type onePoller struct{ streams []pipeline.Stream }

func (p onePoller) Name() string { return "t" }
func (p onePoller) Streams(context.Context) ([]pipeline.Stream, error) {
	return p.streams, nil
}

// memSink records deliveries; fail decides the answer to each call.
type memSink struct {
	mu     sync.Mutex
	got    []pipeline.Entry
	calls  int
	fail   func(call int, batch []pipeline.Entry) error
	closed bool
}

func (m *memSink) Deliver(_ context.Context, batch []pipeline.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		if err := m.fail(m.calls, batch); err != nil {
			var p *pipeline.PartialError
			if errors.As(err, &p) {
				m.keep(batch[:p.Done])
			}
			return err
		}
	}
	m.keep(batch)
	return nil
}

// keep copies entries: their data is reused once Deliver returns.
func (m *memSink) keep(batch []pipeline.Entry) {
	for _, e := range batch {
		m.got = append(m.got, pipeline.Entry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
	}
}

func (m *memSink) Close() error { m.mu.Lock(); m.closed = true; m.mu.Unlock(); return nil }

func (m *memSink) events(t *testing.T) []pipeline.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]pipeline.Event, len(m.got))
	for i, e := range m.got {
		if err := json.Unmarshal(e.Data, &out[i]); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	return out
}

type harness struct {
	store  *state.Store
	runner *pipeline.Runner
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, opts pipeline.Options) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if opts.DeadLetterDir == "" {
		opts.DeadLetterDir = filepath.Join(dir, "dead")
	}
	h := &harness{store: st, dir: dir, runner: pipeline.NewRunner(st, zap.NewNop(), opts)}
	t.Cleanup(func() { h.stop(t); _ = st.Close() })
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.runner.Run(ctx) }()
}

func (h *harness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRevisionsAndDedup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newHarness(t, pipeline.Options{})
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	s := &scriptStream{id: "t/site/sensor/device_alerts"}
	s.set("1", base, `{"id":1,"status":"new","x":1}`)
	s.set("2", base.Add(time.Second), `{"id":2,"status":"new"}`)
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Lookback: time.Hour})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	h.start()
	eventually(t, "two events", func() bool { return len(sink.events(t)) == 2 })
	time.Sleep(100 * time.Millisecond) // more polls of unchanged records add nothing
	if n := len(sink.events(t)); n != 2 {
		t.Fatalf("unchanged records re-delivered: %d events", n)
	}
	s.set("1", base, `{"id":1,"status":"acknowledged"}`)
	eventually(t, "a revision", func() bool { return len(sink.events(t)) == 3 })
	h.stop(t)
	evs := sink.events(t)
	rev := evs[2]
	if rev.Revision != 1 || rev.Seq != 3 || rev.ID == evs[0].ID {
		t.Fatalf("revision event = rev %d seq %d id %s (first id %s)", rev.Revision, rev.Seq, rev.ID, evs[0].ID)
	}
	wantChanges := map[string]string{"status": `"new"->"acknowledged"`, "x": `1->null`}
	if len(rev.Changes) != len(wantChanges) {
		t.Fatalf("changes = %v, want %v", rev.Changes, wantChanges)
	}
	for k, want := range wantChanges {
		c := rev.Changes[k]
		got := fmt.Sprintf("%s->%s", jsonOf(c.Old), jsonOf(c.New))
		if got != want {
			t.Errorf("changes[%s] = %s, want %s", k, got, want)
		}
	}
	if !sink.closed {
		t.Error("sink not closed on stop")
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDispatcherRetriesPartialAndPermanent(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	base := time.Now().UTC()
	s := &scriptStream{id: "t/a"}
	for i := 0; i < 30; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d}`, i))
	}
	flaky := &memSink{fail: func(call int, b []pipeline.Entry) error {
		switch call {
		case 1, 2:
			return errors.New("connection refused")
		case 3:
			return pipeline.Partial(10, errors.New("server closed mid-batch"))
		}
		return nil
	}}
	rejecting := &memSink{fail: func(int, []pipeline.Entry) error { return pipeline.Permanent(errors.New("400 bad request")) }}
	healthy := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: time.Hour})
	h.runner.AddSink("flaky", flaky, pipeline.SinkOptions{Batch: 100})
	h.runner.AddSink("rejecting", rejecting, pipeline.SinkOptions{Batch: 100})
	h.runner.AddSink("healthy", healthy, pipeline.SinkOptions{Batch: 100})
	h.start()
	eventually(t, "flaky sink to get everything", func() bool { return len(flaky.events(t)) == 30 })
	eventually(t, "healthy sink to get everything", func() bool { return len(healthy.events(t)) == 30 })
	dl := filepath.Join(h.dir, "dead", "rejecting.deadletter.jsonl")
	eventually(t, "dead-letter file", func() bool { return countLines(dl) == 30 })
	h.stop(t)
	for i, e := range flaky.events(t) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("flaky sink event %d has seq %d: order or duplicates wrong", i, e.Seq)
		}
	}
	if flaky.calls < 4 {
		t.Errorf("flaky sink called %d times, want at least 4", flaky.calls)
	}
	line := firstLine(t, dl)
	var d struct {
		Sink  string          `json:"sink"`
		Error string          `json:"error"`
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal([]byte(line), &d); err != nil || d.Sink != "rejecting" || d.Error == "" || len(d.Event) == 0 {
		t.Fatalf("dead-letter line = %s (%v)", line, err)
	}
	fi, _ := os.Stat(dl)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("dead-letter mode %o, want 600", fi.Mode().Perm())
	}
}

// TestBudgetEvictsOnlyTheStuckSink: a sink that is down long enough to push
// the journal past max_bytes loses its oldest events to dead-letter (counted),
// while a healthy sink gets everything.
func TestBudgetEvictsOnlyTheStuckSink(t *testing.T) {
	const budget = 60 << 10
	h := newHarness(t, pipeline.Options{MaxBytes: budget, TrimInterval: 20 * time.Millisecond, Retention: time.Nanosecond})
	base := time.Now().UTC()
	s := &scriptStream{id: "t/b"}
	down := &memSink{fail: func(int, []pipeline.Entry) error { return errors.New("down") }}
	up := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Lookback: time.Hour})
	h.runner.AddSink("down", down, pipeline.SinkOptions{})
	h.runner.AddSink("up", up, pipeline.SinkOptions{})
	h.start()
	// Records arrive in small polls the healthy sink keeps up with; the
	// journal holds about 110 of them within the budget.
	for i := 0; i < 400; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d,"pad":"%0200d"}`, i, i))
		if i%20 == 19 {
			eventually(t, "healthy sink to keep up", func() bool { return len(up.events(t)) == i+1 })
		}
	}
	dl := filepath.Join(h.dir, "dead", "down.deadletter.jsonl")
	eventually(t, "evictions", func() bool {
		st, _ := h.store.Stats()
		return countLines(dl) > 0 && st.Bytes <= budget
	})
	snap := h.runner.Snapshot()
	for _, sk := range snap.Sinks {
		switch sk.Name {
		case "down":
			if sk.DeadLettered == 0 || sk.DeadLettered != uint64(countLines(dl)) {
				t.Errorf("down: dead-lettered counter %d, file %d lines", sk.DeadLettered, countLines(dl))
			}
		case "up":
			if sk.DeadLettered != 0 {
				t.Errorf("up: dead-lettered %d", sk.DeadLettered)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "dead", "up.deadletter.jsonl")); err == nil {
		t.Error("the healthy sink has a dead-letter file")
	}
}

// TestNewSinkStartsAtJournalEnd: a sink added to an existing state file
// does not replay history.
func TestNewSinkStartsAtJournalEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	st, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(state.Commit{Stream: "x", Events: []state.Append{{Data: []byte(`{"a":1}`)}, {Data: []byte(`{"a":2}`)}}}); err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(st, zap.NewNop(), pipeline.Options{DeadLetterDir: dir})
	late := &memSink{}
	r.AddSink("late", late, pipeline.SinkOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(late.got) != 0 {
		t.Fatalf("a new sink replayed %d old events", len(late.got))
	}
	if c, ok, _ := st.Cursor("late"); !ok || c != 2 {
		t.Fatalf("new sink cursor = %d %v, want 2", c, ok)
	}
	_ = st.Close()
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}

func firstLine(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan()
	return sc.Text()
}
