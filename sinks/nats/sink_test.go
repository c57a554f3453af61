package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestCorePublish delivers batches with core NATS and checks that a
// subscriber receives every event, in order, on the right subject, with the
// right headers and body.
func TestCorePublish(t *testing.T) {
	tests := []struct {
		name      string
		template  string
		batches   []int
		subjectOf func(ev *pipeline.Event) string
	}{
		{name: "default subject", batches: []int{1, 10, 300},
			subjectOf: func(ev *pipeline.Event) string { return "mdbridge." + ev.Kind + "." + ev.Source.Instance }},
		{name: "every placeholder", template: "x.{product}.{source}.{severity}.{site_ip}.{sensor_ip}.{kind}", batches: []int{25},
			subjectOf: func(ev *pipeline.Event) string {
				return "x." + ev.Source.Product + "." + ev.Source.Instance + "." + ev.Severity + "." +
					ev.Source.SiteIP + "." + ev.Source.SensorIP + "." + ev.Kind
			}},
		{name: "stream placeholder inside a token", template: "events.s-{stream}", batches: []int{3},
			// The stream id holds '/': allowed in a token, kept.
			subjectOf: func(ev *pipeline.Event) string { return "events.s-" + ev.Source.Stream }},
		{name: "fixed subject", template: "all.events", batches: []int{5, 5},
			subjectOf: func(*pipeline.Event) string { return "all.events" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) { o.JetStream = false })
			nc := ts.client()
			sub, err := nc.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(ts)
			if tt.template != "" {
				cfg.Subject = tt.template
			}
			s := mustNew(t, cfg)
			var all []pipeline.Entry
			for _, n := range tt.batches {
				b := entries(t, len(all), n)
				if err := s.Deliver(context.Background(), b); err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				all = append(all, b...)
			}
			// A marker sent after Deliver returned must come after every
			// event: Deliver returns once the server has them all.
			if err := nc.Publish("zz.marker", nil); err != nil {
				t.Fatal(err)
			}
			for i, e := range all {
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("message %d of %d: %v", i+1, len(all), err)
				}
				ev, _ := pipeline.UnmarshalEvent(e.Data)
				checkMessage(t, fmt.Sprintf("message %d", i+1), m.Subject, m.Header, m.Data, e, tt.subjectOf(ev))
			}
			if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != "zz.marker" {
				t.Errorf("after the events: %v %v, want the marker", m, err)
			}
		})
	}
}

// jsConfig is a JetStream config for ts with a stream block named EVENTS.
func jsConfig(ts *testServer) Config {
	cfg := testConfig(ts)
	cfg.JetStream = true
	cfg.Stream = &StreamConfig{Name: "EVENTS"}
	return cfg
}

// checkStream compares a stream's messages with the entries, in order.
func checkStreamHolds(t *testing.T, js jetstream.JetStream, name string, want []pipeline.Entry) {
	t.Helper()
	msgs := readStream(t, js, name)
	if len(msgs) != len(want) {
		t.Fatalf("stream %s holds %d messages, want %d", name, len(msgs), len(want))
	}
	for i, m := range msgs {
		checkMessage(t, fmt.Sprintf("stream message %d", i+1), m.Subject(), m.Headers(), m.Data(), want[i], defaultSubject(t, want[i]))
	}
}

// TestJetStreamPublish delivers batches with JetStream; the stream then
// holds exactly the events, in order, with subjects and headers.
func TestJetStreamPublish(t *testing.T) {
	tests := []struct {
		name       string
		batches    []int
		maxPending int
	}{
		{name: "one event", batches: []int{1}},
		{name: "several batches", batches: []int{10, 1, 250}},
		{name: "window smaller than a batch", batches: []int{300, 7}, maxPending: 16},
		{name: "window of one", batches: []int{20}, maxPending: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil)
			cfg := jsConfig(ts)
			if tt.maxPending > 0 {
				cfg.MaxPending = tt.maxPending
			}
			s := mustNew(t, cfg)
			var all []pipeline.Entry
			for _, n := range tt.batches {
				b := entries(t, len(all), n)
				if err := s.Deliver(context.Background(), b); err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				all = append(all, b...)
			}
			checkStreamHolds(t, ts.jetStream(), "EVENTS", all)
		})
	}
}

// TestJetStreamDuplicates delivers the same events again (a batch retried
// after a crash, or overlapping batches): the stream stores each once and
// Deliver reports success, in fast batches and with one acknowledgement per
// event.
func TestJetStreamDuplicates(t *testing.T) {
	tests := []struct {
		name    string
		batches [][2]int // start, count
		want    int      // distinct events
		restart bool     // a new sink (a restarted bridge) sends the second batch
	}{
		{name: "same batch twice", batches: [][2]int{{0, 100}, {0, 100}}, want: 100},
		{name: "overlapping batches", batches: [][2]int{{0, 60}, {40, 60}, {0, 100}}, want: 100},
		{name: "resent by a new sink", batches: [][2]int{{0, 50}, {0, 50}}, want: 50, restart: true},
		// A batch of one is a fast batch that commits at its first message.
		{name: "one event again", batches: [][2]int{{0, 5}, {4, 1}, {0, 1}}, want: 5},
		{name: "old events after new ones", batches: [][2]int{{0, 50}, {0, 1}, {49, 1}, {0, 100}}, want: 100},
	}
	for _, mode := range []string{BatchPublishOn, BatchPublishOff} {
		for _, tt := range tests {
			t.Run("batch_publish="+mode+"/"+tt.name, func(t *testing.T) {
				ts := startServer(t, nil)
				cfg := jsConfig(ts)
				cfg.BatchPublish = mode
				s := mustNew(t, cfg)
				if s.batched != (mode == BatchPublishOn) {
					t.Fatalf("sink batched=%v with batch_publish %s", s.batched, mode)
				}
				for i, b := range tt.batches {
					if tt.restart && i == 1 {
						// A new connection, the same ids.
						_ = s.Close()
						s = mustNew(t, cfg)
					}
					if err := s.Deliver(context.Background(), entries(t, b[0], b[1])); err != nil {
						t.Fatalf("Deliver %d: %v", i, err)
					}
				}
				if mode == BatchPublishOn && (!s.batched || s.perEvent) {
					t.Errorf("after the duplicates: batched=%v, per event=%v; want fast batches still", s.batched, s.perEvent)
				}
				checkStreamHolds(t, ts.jetStream(), "EVENTS", entries(t, 0, tt.want))
			})
		}
	}
}

// TestMissingStream: with jetstream on and no stream block, New fails with
// an error naming the subjects when no stream captures them, and succeeds
// when one does. A stream that captures only part of them is a warning, and
// events outside it fail.
func TestMissingStream(t *testing.T) {
	tests := []struct {
		name     string
		existing []string // subjects of a stream made beforehand; nil: none
		template string
		wantErr  string
		partial  bool // only part captured: a warning, and Deliver fails
	}{
		{name: "no stream at all", wantErr: "no JetStream stream captures the sink's subjects mdbridge.>"},
		{name: "stream on other subjects", existing: []string{"other.>"}, wantErr: "no JetStream stream captures the sink's subjects mdbridge.>"},
		{name: "custom template", template: "ot.events.{kind}", existing: []string{"mdbridge.>"}, wantErr: "subjects ot.events.> (subject template ot.events.{kind})"},
		{name: "stream exists", existing: []string{"mdbridge.>"}},
		{name: "stream covers the template exactly", existing: []string{"ot.events.>"}, template: "ot.events.{kind}"},
		// Kinds hold a '.', so mdbridge.{kind}.{source} has four tokens.
		{name: "stream captures only three tokens", existing: []string{"mdbridge.*.*"}, partial: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil)
			if tt.existing != nil {
				if _, err := ts.jetStream().CreateStream(context.Background(), jetstream.StreamConfig{Name: "PRE", Subjects: tt.existing}); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(ts)
			cfg.JetStream = true
			cfg.AckTimeout = time.Second
			if tt.template != "" {
				cfg.Subject = tt.template
			}
			core, logs := observer.New(zap.WarnLevel)
			s, err := New(cfg, zap.New(core))
			if tt.wantErr != "" {
				if err == nil {
					_ = s.Close()
					t.Fatal("New succeeded without a stream")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			if got := logs.FilterMessageSnippet("capture only part").Len(); got != map[bool]int{false: 0, true: 1}[tt.partial] {
				t.Errorf("%d warnings about a partial capture, want partial=%v", got, tt.partial)
			}
			err = s.Deliver(context.Background(), entries(t, 0, 3))
			if tt.partial != (err != nil) {
				t.Fatalf("Deliver: %v", err)
			}
		})
	}
}

// TestStreamBlock: a stream block creates the stream with its settings, or
// updates an existing one to them.
func TestStreamBlock(t *testing.T) {
	tests := []struct {
		name     string
		existing *jetstream.StreamConfig
		block    StreamConfig
		want     jetstream.StreamConfig
	}{
		{name: "defaults", block: StreamConfig{Name: "EVENTS"},
			want: jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}, Storage: jetstream.FileStorage, Replicas: 1,
				MaxBytes: -1, Duplicates: 2 * time.Minute}},
		{name: "every key", block: StreamConfig{Name: "OT", Subjects: []string{"mdbridge.ot.>", "mdbridge.mdss.>"}, Storage: StorageMemory,
			Replicas: 1, MaxAge: 24 * time.Hour, MaxBytes: 64 << 20, DuplicateWindow: 10 * time.Minute},
			want: jetstream.StreamConfig{Name: "OT", Subjects: []string{"mdbridge.ot.>", "mdbridge.mdss.>"}, Storage: jetstream.MemoryStorage,
				Replicas: 1, MaxAge: 24 * time.Hour, MaxBytes: 64 << 20, Duplicates: 10 * time.Minute}},
		{name: "update an existing stream",
			existing: &jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}, MaxAge: time.Hour, Duplicates: time.Minute},
			block:    StreamConfig{Name: "EVENTS", MaxAge: 48 * time.Hour, DuplicateWindow: 5 * time.Minute},
			want: jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}, Storage: jetstream.FileStorage, Replicas: 1,
				MaxAge: 48 * time.Hour, MaxBytes: -1, Duplicates: 5 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil)
			js := ts.jetStream()
			if tt.existing != nil {
				if _, err := js.CreateStream(context.Background(), *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(ts)
			cfg.JetStream = true
			block := tt.block
			cfg.Stream = &block
			s := mustNew(t, cfg)
			st, err := js.Stream(context.Background(), tt.want.Name)
			if err != nil {
				t.Fatalf("stream %s after New: %v", tt.want.Name, err)
			}
			got := st.CachedInfo().Config
			if strings.Join(got.Subjects, " ") != strings.Join(tt.want.Subjects, " ") || got.Storage != tt.want.Storage ||
				got.Replicas != tt.want.Replicas || got.MaxAge != tt.want.MaxAge || got.MaxBytes != tt.want.MaxBytes ||
				got.Duplicates != tt.want.Duplicates {
				t.Errorf("stream config: subjects %v storage %v replicas %d max_age %s max_bytes %d duplicates %s\nwant subjects %v storage %v replicas %d max_age %s max_bytes %d duplicates %s",
					got.Subjects, got.Storage, got.Replicas, got.MaxAge, got.MaxBytes, got.Duplicates,
					tt.want.Subjects, tt.want.Storage, tt.want.Replicas, tt.want.MaxAge, tt.want.MaxBytes, tt.want.Duplicates)
			}
			if err := s.Deliver(context.Background(), entries(t, 0, 5)); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if n := len(readStream(t, js, tt.want.Name)); n != 5 {
				t.Errorf("stream holds %d messages, want 5", n)
			}
		})
	}
}

// bigEntry returns an entry whose event carries size bytes of raw data.
func bigEntry(t *testing.T, n, size int) pipeline.Entry {
	t.Helper()
	ev := testEvent(n)
	ev.Raw = []byte(`{"blob":"` + strings.Repeat("z", size) + `"}`)
	b, err := pipeline.MarshalEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Entry{Seq: uint64(n + 1), Data: b}
}

// TestRejected: events the server will never take are reported one by one
// with pipeline.Rejected, and the rest of the batch is delivered.
func TestRejected(t *testing.T) {
	tests := []struct {
		name      string
		jetstream bool
		maxMsg    int32 // stream max_msg_size; 0: none
		bad       map[int]string
		reason    string
	}{
		{name: "core: over max_payload", bad: map[int]string{3: "big", 7: "big"}, reason: "max_payload"},
		{name: "jetstream: over max_payload", jetstream: true, bad: map[int]string{0: "big", 9: "big"}, reason: "max_payload"},
		{name: "jetstream: over the stream's max_msg_size", jetstream: true, maxMsg: 3000, bad: map[int]string{4: "medium"}, reason: "message size exceeds maximum"},
		{name: "core: not JSON", bad: map[int]string{2: "garbage"}, reason: "not schema-v1 JSON"},
		{name: "jetstream: lacks an id", jetstream: true, bad: map[int]string{5: "noid"}, reason: "lacks id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) { o.MaxPayload = 8 << 10 })
			js := ts.jetStream()
			if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}, MaxMsgSize: tt.maxMsg}); err != nil {
				t.Fatal(err)
			}
			nc := ts.client()
			sub, err := nc.SubscribeSync("mdbridge.>")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(ts)
			cfg.JetStream = tt.jetstream
			s := mustNew(t, cfg)

			batch := entries(t, 0, 10)
			for i, kind := range tt.bad {
				switch kind {
				case "big":
					batch[i] = bigEntry(t, i, 9<<10)
				case "medium":
					batch[i] = bigEntry(t, i, 3000)
				case "garbage":
					batch[i].Data = []byte("not json")
				case "noid":
					batch[i].Data = []byte(`{"kind":"ot.device","seq":1,"source":{"instance":"x"}}`)
				}
			}
			err = s.Deliver(context.Background(), batch)
			var rej *pipeline.RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("Deliver: %v, want a RejectedError", err)
			}
			if rej.Err != nil {
				t.Errorf("the other events: %v, want delivered (nil)", rej.Err)
			}
			if len(rej.Items) != len(tt.bad) {
				t.Fatalf("%d rejections, want %d: %v", len(rej.Items), len(tt.bad), err)
			}
			for _, it := range rej.Items {
				if _, ok := tt.bad[it.Index]; !ok {
					t.Errorf("entry %d rejected, want only %v", it.Index, tt.bad)
				}
				if !strings.Contains(it.Reason, tt.reason) || !strings.Contains(it.Reason, "seq "+strconv.FormatUint(batch[it.Index].Seq, 10)) {
					t.Errorf("reason %q should say %q and name the seq", it.Reason, tt.reason)
				}
			}
			var want []pipeline.Entry
			for i, e := range batch {
				if _, bad := tt.bad[i]; !bad {
					want = append(want, e)
				}
			}
			if tt.jetstream {
				checkStreamHolds(t, js, "EVENTS", want)
				return
			}
			for i, e := range want {
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				checkMessage(t, fmt.Sprintf("message %d", i), m.Subject, m.Header, m.Data, e, defaultSubject(t, e))
			}
		})
	}
}

// TestPartial: a stream that takes only the first events (discard new, at
// most 5 messages) makes Deliver report the leading run with Partial; the
// rest then fails as a whole.
func TestPartial(t *testing.T) {
	ts := startServer(t, nil)
	js := ts.jetStream()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"},
		MaxMsgs: 5, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(ts)
	cfg.JetStream = true
	s := mustNew(t, cfg)
	batch := entries(t, 0, 8)
	err := s.Deliver(context.Background(), batch)
	var p *pipeline.PartialError
	if !errors.As(err, &p) || p.Done != 5 {
		t.Fatalf("Deliver: %v, want Partial(5)", err)
	}
	if !strings.Contains(err.Error(), "3 of 8 events not acknowledged") || !strings.Contains(err.Error(), "entry seq 6") {
		t.Errorf("error %q should count the failures and name the first", err)
	}
	err = s.Deliver(context.Background(), batch[p.Done:])
	if err == nil || errors.As(err, &p) || pipeline.IsPermanent(err) {
		t.Fatalf("retry of the rest: %v, want a plain retryable error", err)
	}
	checkStreamHolds(t, js, "EVENTS", batch[:5])
}

// TestDeliverAfterCloseAndCanceled: a canceled context and a closed sink
// give retryable errors and publish nothing.
func TestDeliverAfterCloseAndCanceled(t *testing.T) {
	ts := startServer(t, nil)
	s := mustNew(t, jsConfig(ts))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, entries(t, 0, 3)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := s.Deliver(context.Background(), entries(t, 0, 3))
	if !errors.Is(err, natsgo.ErrConnectionClosed) || pipeline.IsPermanent(err) {
		t.Errorf("after Close: %v, want a retryable error wrapping ErrConnectionClosed", err)
	}
	if n := len(readStream(t, ts.jetStream(), "EVENTS")); n != 0 {
		t.Errorf("stream holds %d messages, want 0", n)
	}
}

// freePort returns a port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerDownAtNew: New succeeds with no server; Deliver fails with a
// retryable error until the server is up, then delivers, creating the
// stream on the way.
func TestServerDownAtNew(t *testing.T) {
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%v", js), func(t *testing.T) {
			port := freePort(t)
			cfg := DefaultConfig()
			cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
			cfg.ReconnectWait = 50 * time.Millisecond
			cfg.ConnectTimeout = time.Second
			cfg.JetStream = js
			if js {
				cfg.Stream = &StreamConfig{Name: "EVENTS"}
			}
			core, logs := observer.New(zap.InfoLevel)
			s, err := New(cfg, zap.New(core))
			if err != nil {
				t.Fatalf("New with the server down: %v", err)
			}
			defer s.Close()
			if logs.FilterMessageSnippet("not reachable at startup").Len() != 1 {
				t.Errorf("want one warning about the server being down, got %v", logs.All())
			}
			batch := entries(t, 0, 20)
			err = s.Deliver(context.Background(), batch)
			if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "not connected") {
				t.Fatalf("Deliver with the server down: %v, want a retryable 'not connected' error", err)
			}

			ts := startServer(t, func(o *server.Options) { o.Port = port; o.JetStream = js })
			var sub *natsgo.Subscription
			if !js {
				nc := ts.client()
				if sub, err = nc.SubscribeSync(">"); err != nil {
					t.Fatal(err)
				}
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for err = s.Deliver(context.Background(), batch); err != nil; err = s.Deliver(context.Background(), batch) {
				if time.Now().After(deadline) {
					t.Fatalf("Deliver once the server is up: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if js {
				checkStreamHolds(t, ts.jetStream(), "EVENTS", batch)
			} else {
				for i, e := range batch {
					m, err := sub.NextMsg(5 * time.Second)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					checkMessage(t, fmt.Sprintf("message %d", i), m.Subject, m.Header, m.Data, e, defaultSubject(t, e))
				}
			}
			if logs.FilterMessage("NATS connection up").Len() != 1 {
				t.Errorf("want one 'connection up' line, got %v", logs.All())
			}
		})
	}
}

// TestRestartMidRun restarts the JetStream server (same store, same port)
// while a loop delivers batches of 500 events the way the dispatcher does:
// retrying a failed batch, and only its rest after a Partial. The restart
// always cuts batch restartAt part way. At the end the stream holds every
// event exactly once. It runs with fast batches and with one
// acknowledgement per event.
func TestRestartMidRun(t *testing.T) {
	for _, mode := range []string{BatchPublishOn, BatchPublishOff} {
		t.Run("batch_publish="+mode, func(t *testing.T) { testRestartMidRun(t, mode) })
	}
}

func testRestartMidRun(t *testing.T, mode string) {
	const (
		batches   = 20
		batchSize = 500
		restartAt = 6 // restart once this many batches are in
	)
	ts := startServer(t, nil)
	// The sink reaches the server through a proxy that stops forwarding at
	// the id of an event a third into batch restartAt, so the restart cuts
	// that batch in flight however fast the batches go.
	cutAt := testEvent(restartAt*batchSize + batchSize/3).ID
	proxy := newCutProxy(t, strings.TrimPrefix(ts.url(), "nats://"), []byte(cutAt))
	cfg := jsConfig(ts)
	cfg.URL = proxy.url()
	cfg.AckTimeout = 2 * time.Second
	cfg.BatchPublish = mode
	core, logs := observer.New(zap.InfoLevel)
	s, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	js := ts.jetStream()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		<-proxy.cut
		ts.stop()
		proxy.dropAll()
		time.Sleep(300 * time.Millisecond)
		ts.start()
		proxy.disarm()
	}()
	failures, partials, batchedFailures, firstFailed := 0, 0, 0, -1
	logged := map[string]bool{}
	for b := range batches {
		batch := entries(t, b*batchSize, batchSize)
		deadline := time.Now().Add(30 * time.Second)
		for len(batch) > 0 {
			err := s.Deliver(context.Background(), batch)
			if err == nil {
				break
			}
			failures++
			if firstFailed < 0 {
				firstFailed = b
			}
			if strings.Contains(err.Error(), "batched publish") {
				batchedFailures++
			}
			if msg := err.Error(); !logged[msg[strings.LastIndex(msg, ":")+1:]] {
				logged[msg[strings.LastIndex(msg, ":")+1:]] = true
				t.Logf("batch %d (%d left): %v", b, len(batch), err)
			}
			var p *pipeline.PartialError
			if errors.As(err, &p) {
				partials++
				batch = batch[p.Done:]
			}
			if pipeline.IsPermanent(err) || errors.As(err, new(*pipeline.RejectedError)) {
				t.Fatalf("batch %d: %v, want a retryable error", b, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %d still failing: %v", b, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	<-restarted
	if firstFailed != restartAt {
		t.Fatalf("first failure in batch %d, want %d: the restart must cut that batch", firstFailed, restartAt)
	}
	t.Logf("%d failed attempts, %d partial, %d of a fast batch", failures, partials, batchedFailures)
	if batched := mode == BatchPublishOn; batched != (batchedFailures > 0) || batched != s.batched {
		t.Errorf("%d failures of a fast batch, sink batched=%v; want fast batches only with batch_publish %s", batchedFailures, s.batched, BatchPublishOn)
	}

	msgs := readStream(t, js, "EVENTS")
	if len(msgs) != batches*batchSize {
		t.Errorf("stream holds %d messages, want %d", len(msgs), batches*batchSize)
	}
	wantIDs := make(map[string]uint64, batches*batchSize)
	for i := range batches * batchSize {
		wantIDs[testEvent(i).ID] = uint64(i + 1)
	}
	seen := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		id := m.Headers().Get(HeaderMsgID)
		seq, ok := wantIDs[id]
		switch {
		case !ok:
			t.Fatalf("unknown Nats-Msg-Id %q", id)
		case seen[id]:
			t.Fatalf("event %s (seq %d) stored twice", id, seq)
		case m.Headers().Get(HeaderSeq) != strconv.FormatUint(seq, 10):
			t.Fatalf("event %s: Mdbridge-Seq %s, want %d", id, m.Headers().Get(HeaderSeq), seq)
		}
		seen[id] = true
	}
	if len(seen) != len(wantIDs) {
		t.Errorf("%d distinct events stored, want %d", len(seen), len(wantIDs))
	}
	if n := logs.FilterMessageSnippet("connection lost").Len(); n != 1 {
		t.Errorf("%d 'connection lost' lines, want 1", n)
	}
	if n := logs.FilterMessageSnippet("connection restored").Len(); n != 1 {
		t.Errorf("%d 'connection restored' lines, want 1", n)
	}
}

// TestPermissionViolation: with core NATS the server drops a message the
// user may not publish and says so asynchronously; Deliver must not report
// such a batch as delivered.
func TestPermissionViolation(t *testing.T) {
	ts := startServer(t, func(o *server.Options) {
		o.JetStream = false
		o.Users = []*server.User{{Username: "bridge", Password: "pw",
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"mdbridge.ot.>"}}}}}
	})
	cfg := testConfig(ts)
	cfg.User, cfg.Password = "bridge", "pw"
	core, logs := observer.New(zap.InfoLevel)
	s, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ot := entries(t, 0, 4) // kinds 0-3 are OT Security kinds
	if err := s.Deliver(context.Background(), ot); err != nil {
		t.Fatalf("allowed subjects: %v", err)
	}
	for range 3 {
		err := s.Deliver(context.Background(), entries(t, 0, 10)) // includes mdss.file
		if err == nil || !strings.Contains(err.Error(), "server refused a publish") || pipeline.IsPermanent(err) {
			t.Fatalf("denied subject: %v, want a retryable 'server refused' error", err)
		}
	}
	if n := logs.FilterMessageSnippet("server reported an error").Len(); n > 1 {
		t.Errorf("%d log lines for the same violation, want at most 1", n)
	}
}

// TestPrepareDoesNotAllocate: once warm, rendering a batch (bodies,
// subjects, headers) allocates nothing per event.
func TestPrepareDoesNotAllocate(t *testing.T) {
	s := prepareOnly(t)
	batch := entries(t, 0, 1000)
	s.prepare(batch)
	if allocs := testing.AllocsPerRun(20, func() { s.prepare(batch) }); allocs != 0 {
		t.Errorf("prepare allocates %.0f times per batch of %d, want 0", allocs, len(batch))
	}
	f := s.prepare(batch)
	for i := range batch {
		if f.status[i] != stPending {
			t.Fatalf("entry %d: status %d (%v), want prepared", i, f.status[i], f.errs[i])
		}
		m := f.slots[i].msg
		checkMessage(t, fmt.Sprintf("message %d", i), m.Subject, m.Header, m.Data, batch[i], defaultSubject(t, batch[i]))
	}
}

// TestStreamDeletedWhileRunning: when the stream disappears, the next
// batch fails; with a stream block the sink creates it again and the retry
// succeeds, without one the retry fails saying that no stream captures the
// subjects.
func TestStreamDeletedWhileRunning(t *testing.T) {
	for _, block := range []bool{true, false} {
		t.Run(fmt.Sprintf("stream block=%v", block), func(t *testing.T) {
			ts := startServer(t, nil)
			js := ts.jetStream()
			cfg := testConfig(ts)
			cfg.JetStream = true
			cfg.AckTimeout = time.Second
			if block {
				cfg.Stream = &StreamConfig{Name: "EVENTS"}
			} else if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>"}}); err != nil {
				t.Fatal(err)
			}
			s := mustNew(t, cfg)
			if err := s.Deliver(context.Background(), entries(t, 0, 3)); err != nil {
				t.Fatal(err)
			}
			if err := js.DeleteStream(context.Background(), "EVENTS"); err != nil {
				t.Fatal(err)
			}
			batch := entries(t, 3, 3)
			if err := s.Deliver(context.Background(), batch); !errors.Is(err, jetstream.ErrNoStreamResponse) {
				t.Fatalf("Deliver after the stream was deleted: %v, want no stream response", err)
			}
			err := s.Deliver(context.Background(), batch)
			// nats-server (2.15) removes an emptied account directory in
			// a goroutine after a stream is deleted; a stream created at
			// that moment fails with "error creating store for stream"
			// (10049). The dispatcher retries such an error with backoff,
			// so the test does the same, for that error only.
			for try := 0; block && isStoreCreateFailure(err) && try < 20; try++ {
				t.Logf("retry %d after the server's transient store error: %v", try+1, err)
				time.Sleep(50 * time.Millisecond)
				err = s.Deliver(context.Background(), batch)
			}
			if !block {
				if err == nil || !strings.Contains(err.Error(), "no JetStream stream captures") {
					t.Fatalf("retry without a stream block: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("retry with a stream block: %v", err)
			}
			checkStreamHolds(t, js, "EVENTS", batch)
		})
	}
}

// isStoreCreateFailure reports whether err is nats-server's JetStream API
// error 10049, a store that could not be created.
func isStoreCreateFailure(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.ErrorCode(10049)
}
