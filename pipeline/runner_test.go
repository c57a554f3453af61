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
	"strings"
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
			var r *pipeline.RejectedError
			if errors.As(err, &p) && !errors.As(err, &r) { // fail keeps what it rejects itself
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

// TestNewSinkStart: a sink added to an existing state file does not replay
// history, unless it says start: earliest; either way its cursor is kept
// from then on.
func TestNewSinkStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		earliest   bool
		wantGot    int
		wantCursor uint64
	}{
		{"end", false, 0, 2},
		{"earliest", true, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := state.Open(filepath.Join(dir, "s.db"), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Commit(state.Commit{Stream: "x", Events: []state.Append{{Data: []byte(`{"a":1}`)}, {Data: []byte(`{"a":2}`)}}}); err != nil {
				t.Fatal(err)
			}
			r := pipeline.NewRunner(st, zap.NewNop(), pipeline.Options{DeadLetterDir: dir})
			late := &memSink{}
			r.AddSink("late", late, pipeline.SinkOptions{StartEarliest: tc.earliest})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if len(late.got) != tc.wantGot {
				t.Fatalf("new sink got %d old events, want %d", len(late.got), tc.wantGot)
			}
			if c, ok, _ := st.Cursor("late"); !ok || c != tc.wantCursor {
				t.Fatalf("new sink cursor = %d %v, want %d", c, ok, tc.wantCursor)
			}
		})
	}
}

// TestRejectedEventsGoToDeadLetter: a sink that refuses single events (too
// large for syslog, say) gets the rest delivered once each, and the refused
// ones are in its dead-letter file with their own reason.
func TestRejectedEventsGoToDeadLetter(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	base := time.Now().UTC()
	s := &scriptStream{id: "t/r"}
	for i := 0; i < 50; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d}`, i))
	}
	calls := 0
	picky := &memSink{}
	picky.fail = func(call int, b []pipeline.Entry) error {
		calls++
		var items []pipeline.Rejection
		var ok []pipeline.Entry
		for i, e := range b {
			if e.Seq%10 == 0 {
				items = append(items, pipeline.Rejection{Index: i, Reason: fmt.Sprintf("event %d too large", e.Seq)})
			} else {
				ok = append(ok, e)
			}
		}
		if call == 1 { // the first attempt only gets through 15 entries
			picky.keep(okBefore(ok, b[14].Seq))
			return pipeline.Rejected(items, pipeline.Partial(15, errors.New("connection reset")))
		}
		picky.keep(ok)
		return pipeline.Rejected(items, nil)
	}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: time.Hour})
	h.runner.AddSink("picky", picky, pipeline.SinkOptions{Batch: 100})
	h.start()
	dl := filepath.Join(h.dir, "dead", "picky.deadletter.jsonl")
	eventually(t, "45 delivered and 5 dead-lettered", func() bool {
		return len(picky.events(t)) == 45 && countLines(dl) == 5
	})
	h.stop(t)
	prev := uint64(0)
	for _, e := range picky.events(t) {
		if e.Seq%10 == 0 || e.Seq <= prev {
			t.Fatalf("delivered seq %d after %d: rejected, duplicated or out of order", e.Seq, prev)
		}
		prev = e.Seq
	}
	if !strings.Contains(firstLine(t, dl), `"error":"event 10 too large"`) {
		t.Errorf("dead-letter line = %s", firstLine(t, dl))
	}
	if got := h.runner.Snapshot().Sinks[0].DeadLettered; got != 5 {
		t.Errorf("dead_lettered = %d, want 5", got)
	}
}

func okBefore(ok []pipeline.Entry, last uint64) []pipeline.Entry {
	var out []pipeline.Entry
	for _, e := range ok {
		if e.Seq <= last {
			out = append(out, e)
		}
	}
	return out
}

// TestDisabledSinkStopsAndKeepsItsEvents: a sink that answers Disabled (410)
// is not called again, shows as disabled, keeps its cursor where it was,
// and the other sinks go on.
func TestDisabledSinkStopsAndKeepsItsEvents(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	base := time.Now().UTC()
	s := &scriptStream{id: "t/d"}
	for i := 0; i < 20; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d}`, i))
	}
	gone := &memSink{fail: func(int, []pipeline.Entry) error { return pipeline.Disabled(errors.New("410 Gone")) }}
	up := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond})
	h.runner.AddSink("gone", gone, pipeline.SinkOptions{Batch: 5})
	h.runner.AddSink("up", up, pipeline.SinkOptions{Batch: 5})
	h.start()
	eventually(t, "healthy sink", func() bool { return len(up.events(t)) == 20 })
	time.Sleep(100 * time.Millisecond) // time for any further (wrong) calls
	snap := h.runner.Snapshot()
	h.stop(t)
	gone.mu.Lock()
	calls := gone.calls
	gone.mu.Unlock()
	if calls != 1 {
		t.Errorf("disabled sink called %d times, want 1", calls)
	}
	for _, sk := range snap.Sinks {
		want := map[string]string{"gone": pipeline.SinkDisabled, "up": pipeline.SinkUp}[sk.Name]
		if sk.State != want {
			t.Errorf("sink %s state %q, want %q", sk.Name, sk.State, want)
		}
		if sk.Name == "gone" && (sk.Cursor != 0 || sk.Lag != 20) {
			t.Errorf("disabled sink cursor %d lag %d, want 0 and 20", sk.Cursor, sk.Lag)
		}
	}
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
