package nats

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// benchBatch is 1000 realistic events of about 1.2 KB, built with
// pipeline.MarshalEvent.
func benchBatch(b *testing.B) ([]pipeline.Entry, int) {
	b.Helper()
	batch := entries(b, 0, 1000)
	size := 0
	for _, e := range batch {
		size += len(e.Data)
	}
	return batch, size
}

// BenchmarkJetStreamDeliver publishes batches of 1000 events to a
// file-storage stream on an embedded server and waits for every
// acknowledgement; one op is one batch. The same ids repeat from the second
// op on: a duplicate is acknowledged like a new message but not stored, so
// the dedup path is what the later ops measure unless -benchtime=1x; the
// fresh-ids variant gives every op new ids. Each runs as fast batches
// (batch_publish on) and with one acknowledgement per event (off); on a
// shared machine, compare them in runs that alternate the two by name.
func BenchmarkJetStreamDeliver(b *testing.B) {
	for _, bench := range []struct {
		name  string
		fresh bool
		mode  string // batch_publish
	}{
		{"fresh-ids/batched", true, BatchPublishOn},
		{"fresh-ids/per-event", true, BatchPublishOff},
		{"repeated-ids/batched", false, BatchPublishOn},
		{"repeated-ids/per-event", false, BatchPublishOff},
	} {
		fresh := bench.fresh
		b.Run(bench.name, func(b *testing.B) {
			ts := startServer(b, func(o *server.Options) { o.JetStreamMaxStore = 8 << 30 })
			cfg := jsConfig(ts)
			cfg.Stream.MaxBytes = 2 << 30
			cfg.BatchPublish = bench.mode
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch, size := benchBatch(b)
			ids := make([][]byte, len(batch))
			for i := range batch {
				ids[i] = idOf(b, batch[i].Data)
			}
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			n := 0
			cpu0, _ := processCPU()
			for b.Loop() {
				if fresh {
					for i := range batch {
						stampID(ids[i], n)
					}
				}
				if err := s.Deliver(ctx, batch); err != nil {
					b.Fatal(err)
				}
				n++
			}
			reportRates(b, n*len(batch), cpu0)
		})
	}
}

// BenchmarkCoreDeliver publishes batches of 1000 events with core NATS and
// one flush per batch, with a subscriber receiving them.
func BenchmarkCoreDeliver(b *testing.B) {
	ts := startServer(b, func(o *server.Options) { o.JetStream = false })
	nc := ts.client()
	sub, err := nc.Subscribe(">", func(*natsgo.Msg) {})
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	s, err := New(testConfig(ts), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch, size := benchBatch(b)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	n := 0
	cpu0, _ := processCPU()
	for b.Loop() {
		if err := s.Deliver(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRates(b, n*len(batch), cpu0)
}

// reportRates reports events/s and the process's CPU time per event
// (client, embedded server and garbage collector together), which a
// shared, loaded machine disturbs much less than the rate.
func reportRates(b *testing.B, events int, cpu0 time.Duration) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	if cpu1, ok := processCPU(); ok && events > 0 {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(events), "cpu-µs/event")
	}
}

// idOf returns the bytes of the event id inside an event's JSON.
func idOf(b *testing.B, data []byte) []byte {
	b.Helper()
	const key = `"id":"`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		b.Fatal("event without an id")
	}
	id := data[i+len(key):]
	return id[:bytes.IndexByte(id, '"')]
}

// stampID overwrites the last 8 hex digits of an id with n, so every op
// publishes ids the stream has not seen.
func stampID(id []byte, n int) {
	const hex = "0123456789abcdef"
	for i := range 8 {
		id[len(id)-1-i] = hex[(n>>(4*i))&0xf]
	}
}

// prepareOnly is a sink with no connection, for measuring the per-event
// work of Deliver on the bridge's side: reading the event's envelope,
// rendering, subject and headers.
func prepareOnly(tb testing.TB) *Sink {
	tb.Helper()
	tmpl, err := parseTemplate(DefaultSubject)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := format.New("json")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.JetStream = true
	return &Sink{cfg: cfg, tmpl: tmpl, fmt: f, contentType: "application/json",
		subjects: make(map[string]string), cur: newFlight(), wake: make(chan struct{}, 1)}
}

// BenchmarkPrepare measures the sink's own per-event work (no network):
// one op is a batch of 1000 events.
func BenchmarkPrepare(b *testing.B) {
	s := prepareOnly(b)
	batch, size := benchBatch(b)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		s.prepare(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}

// BenchmarkJetStreamBaseline is the reference for BenchmarkJetStreamDeliver:
// the same messages (subject, six headers, body) published with bare
// PublishMsgAsync calls and one wait for all acknowledgements per 1000,
// without the sink. The difference between the two is the sink's cost.
func BenchmarkJetStreamBaseline(b *testing.B) {
	ts := startServer(b, func(o *server.Options) { o.JetStreamMaxStore = 8 << 30 })
	cfg := jsConfig(ts)
	cfg.Stream.MaxBytes = 2 << 30
	setup, err := New(cfg, nil) // creates the stream
	if err != nil {
		b.Fatal(err)
	}
	_ = setup.Close()
	js, err := jetstream.New(ts.client(), jetstream.WithPublishAsyncMaxPending(cfg.MaxPending))
	if err != nil {
		b.Fatal(err)
	}
	s := prepareOnly(b)
	batch, size := benchBatch(b)
	ids := make([][]byte, len(batch))
	for i := range batch {
		ids[i] = idOf(b, batch[i].Data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	n := 0
	cpu0, _ := processCPU()
	for b.Loop() {
		for i := range batch {
			stampID(ids[i], n)
		}
		f := s.prepare(batch)
		for i := range f.slots {
			m := f.slots[i].msg // a copy: the library keeps the pointer
			if _, err := js.PublishMsgAsync(&m); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		n++
	}
	reportRates(b, n*len(batch), cpu0)
}
