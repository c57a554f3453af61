package nats

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
)

const unbatchedLine = "does not allow batched publishing"

// TestBatchPublishMode: which path the sink takes for each batch_publish
// value and stream, and what it says about it. A stream without
// allow_batched means one acknowledgement per event with auto (one info
// line, however many batches) and no start with on; a stream block creates
// the stream with allow_batched unless batch_publish is off.
func TestBatchPublishMode(t *testing.T) {
	tests := []struct {
		name        string
		mode        string
		block       bool // a stream block creates the stream
		preAllowed  bool // without a block: the existing stream's allow_batched
		wantBatched bool
		wantAllowed bool // the stream's allow_batched afterwards
		wantInfo    int  // info lines about the fallback
		wantErr     string
	}{
		{name: "auto, stream without allow_batched", mode: BatchPublishAuto, wantInfo: 1},
		{name: "auto, stream with allow_batched", mode: BatchPublishAuto, preAllowed: true, wantBatched: true, wantAllowed: true},
		{name: "on, stream without allow_batched", mode: BatchPublishOn,
			wantErr: "batch_publish is on, but JetStream stream EVENTS does not allow batched publishing (stream setting allow_batched"},
		{name: "off, stream with allow_batched", mode: BatchPublishOff, preAllowed: true, wantAllowed: true},
		{name: "auto, stream block", mode: BatchPublishAuto, block: true, wantBatched: true, wantAllowed: true},
		{name: "off, stream block", mode: BatchPublishOff, block: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil)
			js := ts.jetStream()
			cfg := testConfig(ts)
			cfg.JetStream = true
			cfg.BatchPublish = tt.mode
			if tt.block {
				cfg.Stream = &StreamConfig{Name: "EVENTS"}
			} else if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"},
				AllowBatchPublish: tt.preAllowed}); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			s, err := New(cfg, zap.New(core))
			if tt.wantErr != "" {
				if err == nil {
					_ = s.Close()
					t.Fatal("New succeeded")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			subs := s.nc.NumSubscriptions()
			var all []pipeline.Entry
			for b := range 3 {
				batch := entries(t, b*50, 50)
				if err := s.Deliver(context.Background(), batch); err != nil {
					t.Fatalf("Deliver %d: %v", b, err)
				}
				all = append(all, batch...)
			}
			if s.batched != tt.wantBatched {
				t.Errorf("batched=%v, want %v", s.batched, tt.wantBatched)
			}
			if n := s.nc.NumSubscriptions(); tt.wantBatched && n != subs {
				t.Errorf("%d subscriptions after fast batches, want %d as before them", n, subs)
			}
			if got := logs.FilterMessageSnippet(unbatchedLine).Len(); got != tt.wantInfo {
				t.Errorf("%d info lines %q, want %d", got, unbatchedLine, tt.wantInfo)
			}
			st, err := js.Stream(context.Background(), "EVENTS")
			if err != nil {
				t.Fatal(err)
			}
			if got := st.CachedInfo().Config.AllowBatchPublish; got != tt.wantAllowed {
				t.Errorf("stream allow_batched=%v, want %v", got, tt.wantAllowed)
			}
			checkStreamHolds(t, js, "EVENTS", all)
		})
	}
}

// TestBatchPublishTurnedOff: allow_batched is turned off on the stream
// while the sink runs. With auto the next batch is delivered with one
// acknowledgement per event (and one info line says so); with on and a
// stream block that batch fails, the sink updates the stream back to its
// block's settings and the retry goes as a fast batch.
func TestBatchPublishTurnedOff(t *testing.T) {
	for _, mode := range []string{BatchPublishAuto, BatchPublishOn} {
		t.Run("batch_publish="+mode, func(t *testing.T) {
			ts := startServer(t, nil)
			js := ts.jetStream()
			sc := jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}, AllowBatchPublish: true}
			cfg := testConfig(ts)
			cfg.JetStream = true
			cfg.BatchPublish = mode
			if mode == BatchPublishOn {
				cfg.Stream = &StreamConfig{Name: "EVENTS"}
			} else if _, err := js.CreateStream(context.Background(), sc); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			s, err := New(cfg, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			first := entries(t, 0, 20)
			if err := s.Deliver(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			st, err := js.Stream(context.Background(), "EVENTS")
			if err != nil {
				t.Fatal(err)
			}
			sc = st.CachedInfo().Config
			sc.AllowBatchPublish = false
			if _, err := js.UpdateStream(context.Background(), sc); err != nil {
				t.Fatal(err)
			}

			second := entries(t, 20, 20)
			err = s.Deliver(context.Background(), second)
			if mode == BatchPublishOn {
				if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "batch_publish is on") {
					t.Fatalf("Deliver after allow_batched was turned off: %v, want a retryable error about batch_publish", err)
				}
				err = s.Deliver(context.Background(), second)
			}
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if err := s.Deliver(context.Background(), entries(t, 40, 20)); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			wantBatched, wantInfo := mode == BatchPublishOn, map[bool]int{true: 0, false: 1}[mode == BatchPublishOn]
			if s.batched != wantBatched {
				t.Errorf("batched=%v, want %v", s.batched, wantBatched)
			}
			if got := logs.FilterMessageSnippet(unbatchedLine).Len(); got != wantInfo {
				t.Errorf("%d info lines %q, want %d", got, unbatchedLine, wantInfo)
			}
			checkStreamHolds(t, js, "EVENTS", entries(t, 0, 60))
		})
	}
}

// deliverAll delivers batch the way the dispatcher does: only the rest
// after a Partial, without the rejected entries after a Rejected, the same
// again after another error, until every entry is done or attempts run out.
// It returns the seqs of the rejected entries, the number of failed
// Delivers and the last error (nil when all was done).
func deliverAll(t *testing.T, s *Sink, batch []pipeline.Entry, attempts int) (rejected []uint64, failures int, last error) {
	t.Helper()
	for range attempts {
		err := s.Deliver(context.Background(), batch)
		if err == nil {
			return rejected, failures, nil
		}
		failures++
		if pipeline.IsPermanent(err) {
			t.Fatalf("Deliver: %v, want no permanent error", err)
		}
		var rej *pipeline.RejectedError
		if errors.As(err, &rej) {
			handled, rest := 0, rej.Err
			var partial *pipeline.PartialError
			switch {
			case rej.Err == nil:
				handled = len(batch)
			case errors.As(rej.Err, &partial):
				handled, rest = partial.Done, partial.Err
			}
			for _, it := range rej.Items {
				if it.Index < handled {
					rejected = append(rejected, batch[it.Index].Seq)
				}
			}
			batch = batch[handled:]
			if len(batch) == 0 {
				return rejected, failures, nil
			}
			err = rest
		}
		var partial *pipeline.PartialError
		if errors.As(err, &partial) {
			batch = batch[partial.Done:]
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	return rejected, failures, last
}

// TestBatchedRefusedEvent: an event larger than max_payload is rejected
// before the fast batch is sent. One the stream refuses (larger than its
// max_msg_size) ends the batch there; the sink reports the events before it
// as done and delivers the rest one acknowledgement per event, which finds
// the refused event and rejects it alone. Either way the stream holds every
// other event once, in order, the next batch goes as a fast batch again, and
// no subscription of a fast batch is left behind.
func TestBatchedRefusedEvent(t *testing.T) {
	tests := []struct {
		name   string
		maxMsg int32 // stream max_msg_size; 0: none
		bad    int   // index of the refused event
		size   int
	}{
		{name: "over max_payload", bad: 6, size: 9 << 10},
		{name: "over max_payload, first event", bad: 0, size: 9 << 10},
		{name: "over the stream's max_msg_size", maxMsg: 3000, bad: 6, size: 3000},
		{name: "over the stream's max_msg_size, last event", maxMsg: 3000, bad: 9, size: 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) { o.MaxPayload = 8 << 10 })
			js := ts.jetStream()
			if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"},
				MaxMsgSize: tt.maxMsg, AllowBatchPublish: true}); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(ts)
			cfg.JetStream = true
			cfg.BatchPublish = BatchPublishOn
			s := mustNew(t, cfg)
			subs := s.nc.NumSubscriptions()
			batch := entries(t, 0, 10)
			batch[tt.bad] = bigEntry(t, tt.bad, tt.size)
			rejected, _, err := deliverAll(t, s, batch, 5)
			if err != nil {
				t.Fatalf("not delivered: %v", err)
			}
			if len(rejected) != 1 || rejected[0] != batch[tt.bad].Seq {
				t.Errorf("rejected seqs %v, want [%d]", rejected, batch[tt.bad].Seq)
			}
			next := entries(t, 10, 10)
			if err := s.Deliver(context.Background(), next); err != nil {
				t.Fatalf("next batch: %v", err)
			}
			if !s.batched || s.perEvent {
				t.Errorf("after the refused event: batched=%v, per event=%v; want fast batches again", s.batched, s.perEvent)
			}
			// At most the per-event path's reply subscription more; none
			// of a fast batch.
			if n := s.nc.NumSubscriptions(); n > subs+1 {
				t.Errorf("%d subscriptions on the connection, want at most %d", n, subs+1)
			}
			want := append(append(append([]pipeline.Entry(nil), batch[:tt.bad]...), batch[tt.bad+1:]...), next...)
			checkStreamHolds(t, js, "EVENTS", want)
		})
	}
}

// TestBatchedPartial: a stream that takes only the first 5 events (discard
// new) ends a fast batch of 8 at the sixth; the 5 are reported done (with
// Partial, at the latest on the retry) and the rest keeps failing with a
// retryable error.
func TestBatchedPartial(t *testing.T) {
	ts := startServer(t, nil)
	js := ts.jetStream()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"},
		MaxMsgs: 5, Discard: jetstream.DiscardNew, AllowBatchPublish: true}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(ts)
	cfg.JetStream = true
	cfg.BatchPublish = BatchPublishOn
	s := mustNew(t, cfg)
	batch := entries(t, 0, 8)
	done := 0
	var err error
	for range 3 {
		err = s.Deliver(context.Background(), batch[done:])
		var p *pipeline.PartialError
		if errors.As(err, &p) {
			done += p.Done
		}
	}
	if done != 5 {
		t.Errorf("%d events reported done, want 5", done)
	}
	var p *pipeline.PartialError
	if err == nil || errors.As(err, &p) || pipeline.IsPermanent(err) {
		t.Errorf("the rest: %v, want a plain retryable error", err)
	}
	checkStreamHolds(t, js, "EVENTS", batch[:5])
}
