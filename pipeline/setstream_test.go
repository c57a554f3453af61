package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

// inventory is a SetStream over a map of devices a test edits.
type inventory struct {
	mu          sync.Mutex
	id          string
	devs        map[string]string // key -> raw JSON
	times       map[string]time.Time
	gap         int // >0: polls are cut short and say so
	fail        error
	removeAfter time.Duration
}

func newInventory(id string, removeAfter time.Duration) *inventory {
	return &inventory{id: id, devs: map[string]string{}, times: map[string]time.Time{}, removeAfter: removeAfter}
}

func (v *inventory) ID() string                 { return v.id }
func (v *inventory) RemoveAfter() time.Duration { return v.removeAfter }

func (v *inventory) put(key, raw string, t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.devs[key], v.times[key] = raw, t
}

func (v *inventory) del(key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.devs, key)
}

func (v *inventory) Poll(context.Context, pipeline.Position) (pipeline.Batch, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail != nil {
		return pipeline.Batch{}, v.fail
	}
	keys := make([]string, 0, len(v.devs))
	for k := range v.devs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if v.gap > 0 && len(keys) > 0 {
		keys = keys[1:] // the cap cut the first one off
	}
	b := pipeline.Batch{Gap: v.gap, Normalize: func(r *pipeline.Record) error {
		r.Event = &pipeline.Event{Kind: pipeline.KindDevice, Time: r.Time, Severity: "info", SeverityScore: 1,
			Source: pipeline.Source{Product: pipeline.ProductOTSecurity, Instance: "t"},
			Device: &pipeline.Device{ID: r.Key, Action: r.Action}, Raw: json.RawMessage(r.Raw)}
		return nil
	}}
	for _, k := range keys {
		raw := v.devs[k]
		b.Records = append(b.Records, pipeline.Record{Key: k, Time: v.times[k], Hash: pipeline.ContentHash([]byte(raw)), Raw: []byte(raw)})
	}
	return b, nil
}

// actions lists "key:action:revision" of the device events a sink got.
func actions(t *testing.T, m *memSink) []string {
	var out []string
	for _, e := range m.events(t) {
		if e.Device != nil {
			out = append(out, fmt.Sprintf("%s:%s:%d", e.Device.ID, e.Device.Action, e.Revision))
		}
	}
	return out
}

func waitActions(t *testing.T, m *memSink, want ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := actions(t, m)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("device events = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSetStreamInventory walks a device inventory through additions, a
// change, a removal and a return, across a restart, and checks each shows
// up exactly once with the right action.
func TestSetStreamInventory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	inv := newInventory("t/devices", 300*time.Millisecond)
	t0 := time.Now().Add(-time.Hour).UTC()
	inv.put("a", `{"id":"a","ip":"10.0.0.1"}`, t0)
	inv.put("b", `{"id":"b","ip":"10.0.0.2","fw":"1.0"}`, time.Time{}) // no time: still added
	sink := &memSink{}
	run := func(steps func()) {
		st, err := state.Open(path, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		r := pipeline.NewRunner(st, zap.NewNop(), pipeline.Options{DeadLetterDir: filepath.Join(dir, "dead")})
		r.AddSource(onePoller{[]pipeline.Stream{inv}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Lookback: time.Millisecond})
		r.AddSink("mem", sink, pipeline.SinkOptions{StartEarliest: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		steps()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(func() {
		waitActions(t, sink, "a:added:0", "b:added:0")
		inv.put("b", `{"id":"b","ip":"10.0.0.2","fw":"2.0"}`, time.Time{})
		waitActions(t, sink, "a:added:0", "b:added:0", "b:changed:1")
		// A poll cut short by the page cap does not make "a" look removed.
		inv.mu.Lock()
		inv.gap = 5
		inv.mu.Unlock()
		time.Sleep(600 * time.Millisecond)
		waitActions(t, sink, "a:added:0", "b:added:0", "b:changed:1")
		inv.mu.Lock()
		inv.gap = 0
		inv.mu.Unlock()
		inv.del("a")
		waitActions(t, sink, "a:added:0", "b:added:0", "b:changed:1", "a:removed:1")
	})
	// After a restart nothing is emitted again, and "a" is still removed.
	inv.put("c", `{"id":"c"}`, t0)
	run(func() {
		waitActions(t, sink, "a:added:0", "b:added:0", "b:changed:1", "a:removed:1", "c:added:0")
		time.Sleep(100 * time.Millisecond)
		inv.put("a", `{"id":"a","ip":"10.0.0.9"}`, t0)
		waitActions(t, sink, "a:added:0", "b:added:0", "b:changed:1", "a:removed:1", "c:added:0", "a:added:2")
	})
	evs := sink.events(t)
	var removed, changed *pipeline.Event
	for i := range evs {
		switch {
		case evs[i].Device.Action == "removed":
			removed = &evs[i]
		case evs[i].Device.Action == "changed":
			changed = &evs[i]
		}
	}
	if string(removed.Raw) != `{"id":"a","ip":"10.0.0.1"}` {
		t.Errorf("removal carries raw %s, want the device as last seen", removed.Raw)
	}
	if c, ok := changed.Changes["fw"]; !ok || jsonOf(c.Old) != `"1.0"` || jsonOf(c.New) != `"2.0"` || len(changed.Changes) != 1 {
		t.Errorf("changes = %v, want only fw 1.0 -> 2.0", changed.Changes)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		if e.Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
	}
}

// TestSetStreamBaseline checks that start: now on a set stream takes the
// current set in silently and reports only what comes later.
func TestSetStreamBaseline(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	inv := newInventory("t/devices", 0)
	old := time.Now().Add(-48 * time.Hour).UTC()
	inv.put("old", `{"id":"old"}`, old)
	inv.put("timeless", `{"id":"timeless"}`, time.Time{})
	inv.put("fresh", `{"id":"fresh"}`, time.Now().Add(time.Minute).UTC())
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{inv}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Start: time.Now().UTC()})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	h.start()
	waitActions(t, sink, "fresh:added:0")
	inv.put("old", `{"id":"old","fw":"2"}`, old) // a baseline record that changes is reported
	inv.put("later", `{"id":"later"}`, old)      // appears after the first poll: new, whatever its time
	deadline := time.Now().Add(15 * time.Second)
	for len(actions(t, sink)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := actions(t, sink)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint([]string{"fresh:added:0", "later:added:0", "old:changed:1"}) {
		t.Fatalf("device events = %v", got)
	}
}

// TestPush checks pushed records: durable when Push returns, deduplicated
// against polled copies both ways, and never moving the watermark.
func TestPush(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	s := &scriptStream{id: "t/files"}
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	s.set("polled", base, `{"id":"polled"}`)
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond, Lookback: time.Hour})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	rec := func(key string, t time.Time) pipeline.Batch {
		raw := fmt.Sprintf(`{"id":%q}`, key)
		return pipeline.Batch{Records: []pipeline.Record{{Key: key, Time: t, Hash: pipeline.ContentHash([]byte(raw)), Raw: []byte(raw),
			Event: &pipeline.Event{Kind: pipeline.KindMDSSFile, Time: t, Severity: "high", SeverityScore: 8,
				Source: pipeline.Source{Product: pipeline.ProductStorageSec, Instance: "t"}, Raw: json.RawMessage(raw)}}}}
	}
	// A push that arrives before the stream runs waits for it.
	pushed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := h.runner.Push(ctx, "t/files", rec("early", base.Add(time.Hour)))
		if err == nil && n != 1 {
			err = fmt.Errorf("early push made %d events, want 1", n)
		}
		pushed <- err
	}()
	time.Sleep(50 * time.Millisecond)
	h.start()
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the polled and the early pushed event", func() bool { return len(sink.events(t)) == 2 })
	ctx := context.Background()
	// The polled record pushed again, and the early one pushed again: nothing new.
	for _, k := range []string{"polled", "early"} {
		tm := base
		if k == "early" {
			tm = base.Add(time.Hour)
		}
		if n, err := h.runner.Push(ctx, "t/files", rec(k, tm)); err != nil || n != 0 {
			t.Fatalf("re-push of %s: %d events, %v", k, n, err)
		}
	}
	// A record pushed first and then polled is delivered once.
	if n, err := h.runner.Push(ctx, "t/files", rec("both", base.Add(time.Second))); err != nil || n != 1 {
		t.Fatalf("push: %d, %v", n, err)
	}
	s.set("both", base.Add(time.Second), `{"id":"both"}`)
	time.Sleep(150 * time.Millisecond) // several polls
	snap := h.runner.Snapshot()
	if len(snap.Streams) != 1 || !snap.Streams[0].Watermark.Equal(base.Add(time.Second)) {
		t.Errorf("watermark = %v, want the newest polled record %v (the pushed one is an hour later)", snap.Streams, base.Add(time.Second))
	}
	h.stop(t)
	evs := sink.events(t)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3 (polled, early, both): %+v", len(evs), evs)
	}
	// Unknown streams fail once ctx ends.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.runner.Push(short, "t/nope", rec("x", base)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("push to an unknown stream: %v, want a deadline error", err)
	}
}

// TestHeartbeat checks bridge.heartbeat events: one per period per stream,
// numbered in the stream's sequence, counting the period's records and
// events, and medium with the last error when polls failed.
func TestHeartbeat(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	inv := newInventory("t/devices", 0)
	inv.put("a", `{"id":"a"}`, time.Now().UTC())
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{inv}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond, Product: pipeline.ProductOTSecurity, URL: "https://em.example:3003"})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	h.start()
	hbs := func() []pipeline.Event {
		var out []pipeline.Event
		for _, e := range sink.events(t) {
			if e.Kind == pipeline.KindHeartbeat {
				out = append(out, e)
			}
		}
		return out
	}
	eventually(t, "a heartbeat", func() bool { return len(hbs()) >= 1 })
	inv.mu.Lock()
	inv.fail = errors.New("503 Service Unavailable")
	inv.mu.Unlock()
	eventually(t, "a heartbeat of a failing period", func() bool {
		b := hbs()
		return len(b) >= 2 && b[len(b)-1].Heartbeat.LastError != ""
	})
	h.stop(t)
	b := hbs()
	first, last := b[0], b[len(b)-1]
	if first.Heartbeat.Events != 1 || first.Heartbeat.Records == 0 || first.Severity != "info" || first.Heartbeat.PolledUntil == nil {
		t.Errorf("first heartbeat = %+v %+v", first, first.Heartbeat)
	}
	if last.Severity != "medium" || last.Heartbeat.LastError != "503 Service Unavailable" || last.Heartbeat.Events != 0 {
		t.Errorf("failing heartbeat = %+v %+v", last, last.Heartbeat)
	}
	if first.Source.Stream != "t/devices" || first.Source.Instance != "t" || first.Source.Product != pipeline.ProductOTSecurity || first.Source.URL == "" {
		t.Errorf("heartbeat source = %+v", first.Source)
	}
	for i, e := range sink.events(t) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d (%s) has seq %d: heartbeats must share the stream's sequence", i, e.Kind, e.Seq)
		}
	}
	ids := map[string]bool{}
	for _, e := range b {
		if ids[e.ID] {
			t.Errorf("duplicate heartbeat id %s", e.ID)
		}
		ids[e.ID] = true
	}
}

// TestChangesLeaveOutVolatileFields checks that a batch's Volatile fields
// are not listed in a revision's changes.
func TestChangesLeaveOutVolatileFields(t *testing.T) {
	h := newHarness(t, pipeline.Options{})
	inv := &volatileInventory{inventory: newInventory("t/devices", 0)}
	inv.put("a", `{"id":"a","fw":"1","lastSeen":1}`, time.Now().UTC())
	sink := &memSink{}
	h.runner.AddSource(onePoller{[]pipeline.Stream{inv}}, pipeline.SourceOptions{Interval: 20 * time.Millisecond})
	h.runner.AddSink("mem", sink, pipeline.SinkOptions{})
	h.start()
	waitActions(t, sink, "a:added:0")
	inv.put("a", `{"id":"a","fw":"2","lastSeen":2}`, time.Now().UTC())
	waitActions(t, sink, "a:added:0", "a:changed:1")
	h.stop(t)
	ch := sink.events(t)[1].Changes
	if _, ok := ch["fw"]; !ok || len(ch) != 1 {
		t.Fatalf("changes = %v, want only fw", ch)
	}
}

type volatileInventory struct{ *inventory }

func (v *volatileInventory) Poll(ctx context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	b, err := v.inventory.Poll(ctx, pos)
	b.Volatile = map[string]bool{"lastSeen": true}
	return b, err
}
