package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestSinkIsolation is DESIGN.md §3's "sinks are isolated" and "at least
// once, per sink, in order per stream", end to end: the bridge runs against a
// fake Enterprise Manager that keeps generating records and delivers to a
// file, a JetStream stream on an embedded nats-server, a TCP syslog receiver
// and a webhook. The webhook then answers 503 and the syslog receiver goes
// away for two minutes (10 s with -short). During that outage the file and
// JetStream must keep up with upstream; after it every event must reach the
// two broken sinks, in order per stream, without loss.
func TestSinkIsolation(t *testing.T) {
	outage := 2 * time.Minute
	if testing.Short() {
		outage = 10 * time.Second
	}
	const (
		token = "isolation-token"
		site  = "10.40.172.144"
		rate  = 400 // records per second, over all streams
		// lagBudget is how far (in seconds of generated records) the file
		// and JetStream may trail upstream. Steady state is about one poll
		// interval (1 s) plus delivery; a sink blocked by the outage would
		// fall behind by the whole outage (10 s or 120 s of records).
		lagBudget = 6
		// journalLagMax bounds a working sink's lag behind the journal
		// (/status): a few polls' worth of records.
		journalLagMax = 3 * rate
	)
	began := time.Now()
	sensors := []string{"10.40.172.172", "10.40.172.173"}
	streams := []string{otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts, otsectest.StreamSuricataAlerts, otsectest.StreamDevices}
	srv := otsectest.NewServer(otsectest.Options{
		Token:       token,
		Sites:       []otsectest.Site{{SiteIP: site, SensorIPs: sensors}},
		Seed:        11,
		Start:       time.Now().Add(-10 * time.Minute),
		Streams:     streams,
		MaxRequests: 1000,
	})
	defer srv.Close()
	for _, st := range streams {
		for _, sensor := range sensors {
			srv.Add(st, site, sensor, 100)
		}
	}
	generated := func() int {
		n := 0
		for _, st := range streams {
			for _, sensor := range sensors {
				n += srv.Count(st, site, sensor)
			}
		}
		return n
	}
	stopGen := srv.StartGenerator(rate)
	defer stopGen()

	dir := t.TempDir()
	js := startJetStream(t, filepath.Join(dir, "nats"))
	sys := startSyslogReceiver(t)
	hook := startWebhookReceiver(t)

	out := filepath.Join(dir, "out", "events.jsonl")
	var sitesYAML strings.Builder
	for _, sensor := range sensors {
		fmt.Fprintf(&sitesYAML, "      - { site_ip: %q, sensor_ip: %q }\n", site, sensor)
	}
	cfg := writeConfig(t, fmt.Sprintf(`state:
  path: %q
admin:
  listen: "127.0.0.1:0"
log:
  level: info
sources:
  plant-a:
    type: otsecurity
    url: %q
    token: %q
    interval: 1s
    lookback: 30s
    streams: [%s]
    sites:
%ssinks:
  archive:
    type: file
    path: %q
    max_bytes: 1TiB       # never rotated: one file holds every event
  bus:
    type: nats
    url: %q
    jetstream: true
    stream: { name: MDBRIDGE }
  siem:
    type: syslog
    address: "tcp://%s"   # rfc5424, octet counting, json: the defaults
  soar:
    type: webhook
    url: %q   # concurrency 1, the default: the only one that keeps order
`, filepath.Join(dir, "state", "mdbridge.db"), srv.URL, token, strings.Join(streams, ", "), sitesYAML.String(),
		out, js.srv.ClientURL(), sys.addr, hook.srv.URL+"/hook"))

	b := startInProcess(t, cfg)
	file := &fileTail{path: out}
	counts := func() (fileN, natsN int) {
		t.Helper()
		if err := file.read(); err != nil {
			t.Fatal(err)
		}
		return len(file.got), js.count(t)
	}

	// Warm up: every sink has taken events before the outage starts.
	waitFor(t, b, 60*time.Second, "every sink to receive its first events", func() (bool, string) {
		f, n := counts()
		s, w := len(sys.rec.snapshot()), len(hook.rec.snapshot())
		return f > 0 && n > 0 && s > 0 && w > 0, fmt.Sprintf("file %d, nats %d, syslog %d, webhook %d", f, n, s, w)
	})

	// The outage.
	hook.down.Store(true)
	sys.stop()
	t.Logf("outage of %v begins: webhook answers 503, syslog receiver closed; %d records generated so far", outage, generated())
	type sample struct {
		at                   time.Duration
		gen, file, nats      int
		fileJLag, natsJLag   uint64
		siemState, soarState string
	}
	var samples []sample
	outStart := time.Now()
	tick := time.NewTicker(time.Second)
	for time.Since(outStart) < outage {
		select {
		case <-b.done:
			t.Fatalf("the bridge stopped during the outage; its log:\n%s", b.logTail(4000))
		case <-tick.C:
		}
		// Sinks first, upstream last: the lag is overstated, never hidden.
		f, n := counts()
		st := b.status(t)
		s := sample{at: time.Since(outStart).Round(time.Second), gen: generated(), file: f, nats: n}
		s.fileJLag, s.natsJLag = st.sink(t, "archive").Lag, st.sink(t, "bus").Lag
		s.siemState, s.soarState = st.sink(t, "siem").State, st.sink(t, "soar").State
		samples = append(samples, s)
	}
	tick.Stop()
	end := b.status(t)
	budget := lagBudget * rate
	worstFile, worstNATS := 0, 0
	for _, s := range samples {
		worstFile, worstNATS = max(worstFile, s.gen-s.file), max(worstNATS, s.gen-s.nats)
		if s.gen-s.file > budget || s.gen-s.nats > budget || s.fileJLag > journalLagMax || s.natsJLag > journalLagMax {
			t.Errorf("at %v into the outage: upstream %d records, file %d (behind by %d), JetStream %d (behind by %d), "+
				"journal lag file %d, nats %d; allowed: %d behind upstream (%d s of records), %d behind the journal",
				s.at, s.gen, s.file, s.gen-s.file, s.nats, s.gen-s.nats, s.fileJLag, s.natsJLag, budget, lagBudget, journalLagMax)
		}
	}
	last := samples[len(samples)-1]
	t.Logf("outage over after %d samples: upstream %d, file %d, JetStream %d; worst lag behind upstream: file %d, JetStream %d (allowed %d); "+
		"syslog lag %d (%s), webhook lag %d (%s), webhook answered %d requests with 503",
		len(samples), last.gen, last.file, last.nats, worstFile, worstNATS, budget,
		end.sink(t, "siem").Lag, end.sink(t, "siem").State, end.sink(t, "soar").Lag, end.sink(t, "soar").State, hook.refused.Load())
	// The outage must have bitten, or the test proves nothing.
	if hook.refused.Load() == 0 {
		t.Errorf("the webhook refused no request during the outage")
	}
	for _, name := range []string{"siem", "soar"} {
		if s := end.sink(t, name); s.State != pipeline.SinkRetrying || s.Lag == 0 {
			t.Errorf("at the end of the outage sink %s is %q with lag %d; want %q and a backlog", name, s.State, s.Lag, pipeline.SinkRetrying)
		}
	}
	for _, name := range []string{"archive", "bus"} {
		if s := end.sink(t, name); s.State != pipeline.SinkUp {
			t.Errorf("at the end of the outage sink %s is %q; want %q", name, s.State, pipeline.SinkUp)
		}
	}

	// Recovery; the generator runs a little longer, then stops so that
	// the end state is known.
	hook.down.Store(false)
	sys.restart(t)
	recovered := time.Now()
	time.Sleep(3 * time.Second) // records keep arriving across the recovery
	stopGen()
	want, wantPerStream := expectedRecords(srv, site, sensors, streams)
	t.Logf("generator stopped: the fake holds %d records", len(want))

	waitFor(t, b, 60*time.Second, "the file to hold every upstream record", func() (bool, string) {
		f, _ := counts()
		return f >= len(want), fmt.Sprintf("file %d of %d", f, len(want))
	})
	fileIDs := file.ids()
	// Done when every sink has every event, or when /status has said for
	// 2 s that every sink is up with nothing left to deliver: what is
	// missing then is lost, and the checks below say what.
	settled := 0
	waitFor(t, b, 150*time.Second, "JetStream, syslog and the webhook to hold every event of the file", func() (bool, string) {
		_, n := counts()
		ms, mw := missingIDs(fileIDs, sys.rec.snapshot()), missingIDs(fileIDs, hook.rec.snapshot())
		idle := true
		for _, s := range b.status(t).Sinks {
			idle = idle && s.Lag == 0 && s.State == pipeline.SinkUp
		}
		if idle {
			settled++
		} else {
			settled = 0
		}
		return (n >= len(fileIDs) && ms == 0 && mw == 0) || settled >= 10,
			fmt.Sprintf("of %d events: JetStream holds %d, syslog misses %d, webhook misses %d", len(fileIDs), n, ms, mw)
	})
	t.Logf("deliveries settled %v after the recovery", time.Since(recovered).Round(100*time.Millisecond))
	b.stop(t)

	// Loss, and the file's seq gap-free per stream (crash_test.go's check).
	rep := checkOutput(t, out, want, wantPerStream)
	if rep.unique != len(want) {
		t.Errorf("the file holds %d distinct events for %d upstream records", rep.unique, len(want))
	}
	// Order per stream and duplicates, sink by sink, against the file.
	if err := file.read(); err != nil {
		t.Fatal(err)
	}
	fileEv := checkArrivals(t, "file", file.got, nil, false)
	checkArrivals(t, "nats", js.all(t), fileEv, false)
	checkArrivals(t, "syslog", sys.rec.snapshot(), fileEv, true)
	checkArrivals(t, "webhook", hook.rec.snapshot(), fileEv, true)
	if bad := sys.rec.errors(); len(bad) > 0 {
		t.Errorf("syslog receiver: %d unparsable messages, first: %s", len(bad), bad[0])
	}
	if bad := hook.rec.errors(); len(bad) > 0 {
		t.Errorf("webhook receiver: %d unparsable requests, first: %s", len(bad), bad[0])
	}
	t.Logf("events %d; arrivals: file %d, JetStream %d, syslog %d, webhook %d; took %v",
		len(fileEv), len(file.got), js.count(t), len(sys.rec.snapshot()), len(hook.rec.snapshot()), time.Since(began).Round(time.Second))
}

// arrival is one event as a sink's far end received it.
type arrival struct {
	ID     string
	Stream string
	Seq    uint64
}

// parseArrival reads the id, source.stream and seq of a schema-v1 event.
func parseArrival(b []byte) (arrival, error) {
	var ev struct {
		ID     string `json:"id"`
		Seq    uint64 `json:"seq"`
		Source struct {
			Stream string `json:"stream"`
		} `json:"source"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return arrival{}, err
	}
	if ev.ID == "" || ev.Seq == 0 || ev.Source.Stream == "" {
		return arrival{}, fmt.Errorf("event lacks id, seq or source.stream: %.200s", b)
	}
	return arrival{ID: ev.ID, Stream: ev.Source.Stream, Seq: ev.Seq}, nil
}

// recorder keeps a receiver's arrivals in the order they came.
type recorder struct {
	mu  sync.Mutex
	got []arrival
	bad []string
}

func (r *recorder) add(a ...arrival) {
	r.mu.Lock()
	r.got = append(r.got, a...)
	r.mu.Unlock()
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) snapshot() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad)
}

// missingIDs counts the ids of want that got lacks.
func missingIDs(want map[string]bool, got []arrival) int {
	have := make(map[string]bool, len(got))
	for _, a := range got {
		have[a.ID] = true
	}
	n := 0
	for id := range want {
		if !have[id] {
			n++
		}
	}
	return n
}

// checkArrivals checks what one sink received, in arrival order: the events
// of each stream first arrive in seq order with no gap (seq 1, 2, 3, ...),
// every repeat is of an event that already arrived, with the same stream
// and seq, and repeats are allowed only when dups is set. When want is
// given (id -> event), the sink must hold exactly its events. It returns
// the distinct events, by id.
func checkArrivals(t *testing.T, sink string, got []arrival, want map[string]arrival, dups bool) map[string]arrival {
	t.Helper()
	const show = 5
	seen := make(map[string]arrival, len(got))
	next := map[string]uint64{} // stream -> the seq its next new event must have
	var repeats, disorder, changed, extra int
	for i, a := range got {
		if prev, ok := seen[a.ID]; ok {
			repeats++
			if prev != a {
				if changed++; changed <= show {
					t.Errorf("%s: arrival %d: event %s came as stream %s seq %d, earlier as stream %s seq %d", sink, i+1, a.ID, a.Stream, a.Seq, prev.Stream, prev.Seq)
				}
			}
			continue
		}
		seen[a.ID] = a
		if w, ok := want[a.ID]; want != nil && (!ok || w != a) {
			if extra++; extra <= show {
				t.Errorf("%s: arrival %d: event %s (stream %s seq %d) is not an event of the file", sink, i+1, a.ID, a.Stream, a.Seq)
			}
		}
		if n := next[a.Stream] + 1; a.Seq != n {
			if disorder++; disorder <= show {
				t.Errorf("%s: arrival %d: the first new event of stream %s after seq %d has seq %d (want %d): out of order or a gap",
					sink, i+1, a.Stream, next[a.Stream], a.Seq, n)
			}
		}
		next[a.Stream] = max(next[a.Stream], a.Seq)
	}
	if repeats > 0 && !dups {
		t.Errorf("%s: %d arrivals repeat an earlier event; this sink must hold each event once", sink, repeats)
	}
	if disorder > 0 || changed > 0 || extra > 0 {
		t.Errorf("%s: %d arrivals out of seq order, %d repeats that differ, %d events not in the file (first %d of each shown)",
			sink, disorder, changed, extra, show)
	}
	if want != nil {
		var missing []string
		for id, w := range want {
			if _, ok := seen[id]; !ok {
				missing = append(missing, fmt.Sprintf("%s seq %d (%s)", w.Stream, w.Seq, id))
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("%s: lost %d of the file's %d events, e.g.:\n  %s", sink, len(missing), len(want),
				strings.Join(missing[:min(len(missing), 20)], "\n  "))
		}
	}
	t.Logf("%s: %d arrivals, %d distinct events, %d repeats", sink, len(got), len(seen), repeats)
	return seen
}

// fileTail reads the complete lines appended to the file sink's output
// since the last read.
type fileTail struct {
	path string
	off  int64
	got  []arrival
}

func (f *fileTail) read() error {
	fh, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil
	}
	f.off += int64(end + 1)
	for line := range bytes.SplitSeq(data[:end], []byte("\n")) {
		a, err := parseArrival(line)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		f.got = append(f.got, a)
	}
	return nil
}

func (f *fileTail) ids() map[string]bool {
	m := make(map[string]bool, len(f.got))
	for _, a := range f.got {
		m[a.ID] = true
	}
	return m
}

// jetStream is an embedded nats-server with JetStream on a loopback port.
// The bridge's nats sink creates the stream (its `stream:` block).
type jetStream struct {
	srv *server.Server
	nc  *natsgo.Conn
	js  jetstream.JetStream
}

const jsStream = "MDBRIDGE"

// startNATSServer starts an embedded nats-server on a free loopback port
// with opts (Host, Port, NoLog and NoSigs are set here) and shuts it down
// when the test ends.
func startNATSServer(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start within 10 s")
	}
	return srv
}

func startJetStream(t *testing.T, storeDir string) *jetStream {
	t.Helper()
	srv := startNATSServer(t, server.Options{JetStream: true, StoreDir: storeDir})
	nc, err := natsgo.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &jetStream{srv: srv, nc: nc, js: js}
}

// count is the stream's message count, 0 before the bridge created it.
func (j *jetStream) count(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := j.js.Stream(ctx, jsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("JetStream stream %s: %v", jsStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("JetStream stream %s info: %v", jsStream, err)
	}
	return int(info.State.Msgs)
}

// all reads every message of the stream in stream order and checks that
// Nats-Msg-Id is the event's id.
func (j *jetStream) all(t *testing.T) []arrival {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	total := j.count(t)
	st, err := j.js.Stream(ctx, jsStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []arrival
	bad := 0
	for len(out) < total {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("JetStream fetch after %d of %d messages: %v", len(out), total, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			a, err := parseArrival(m.Data())
			if err != nil {
				t.Fatalf("JetStream message %d: %v", len(out)+1, err)
			}
			if id := m.Headers().Get(natsgo.MsgIdHdr); id != a.ID {
				if bad++; bad <= 5 {
					t.Errorf("JetStream message %d: Nats-Msg-Id %q, event id %q", len(out)+1, id, a.ID)
				}
			}
			out = append(out, a)
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("JetStream fetch after %d of %d messages: %v", len(out), total, err)
		}
		if n == 0 {
			t.Fatalf("JetStream: no message after %d of %d", len(out), total)
		}
	}
	return out
}

// syslogReceiver is a TCP syslog server on loopback: octet-counted frames
// (RFC 6587), each an RFC 5424 message whose MSG is the event's JSON. It can
// stop and listen again on the same port.
type syslogReceiver struct {
	addr string
	rec  recorder

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startSyslogReceiver(t *testing.T) *syslogReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &syslogReceiver{addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	r.serve(ln)
	t.Cleanup(func() { r.stop(); r.wg.Wait() })
	return r
}

func (r *syslogReceiver) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() {
					r.mu.Lock()
					delete(r.conns, c)
					r.mu.Unlock()
					_ = c.Close()
				}()
				r.read(c)
			}()
		}
	}()
}

// read parses frames until the connection ends.
func (r *syslogReceiver) read(c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	parser := rfc5424.NewParser()
	for {
		head, err := br.ReadString(' ')
		if err != nil {
			if head != "" {
				r.rec.fail("connection ended inside a frame header %q: %v", head, err)
			}
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(head, " "))
		if err != nil || n <= 0 || n > 1<<20 {
			r.rec.fail("bad octet count %q", head)
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			r.rec.fail("connection ended inside a frame of %d bytes: %v", n, err)
			return
		}
		m, err := parser.Parse(frame)
		if err != nil {
			r.rec.fail("not RFC 5424: %v: %.200q", err, frame)
			continue
		}
		sm := m.(*rfc5424.SyslogMessage)
		if sm.Message == nil {
			r.rec.fail("no MSG: %.200q", frame)
			continue
		}
		a, err := parseArrival([]byte(*sm.Message))
		if err != nil {
			r.rec.fail("MSG: %v", err)
			continue
		}
		if sm.StructuredData == nil || (*sm.StructuredData)["mdbridge@32473"]["id"] != a.ID {
			r.rec.fail("structured data does not carry id %s: %v", a.ID, sm.StructuredData)
		}
		r.rec.add(a)
	}
}

// stop closes the listener, so that connecting is refused, and closes every
// connection from its side (FIN). A connection is closed gracefully, as a
// syslog daemon that shuts down does: what the sink wrote before it saw
// the close is still read. Plain TCP syslog has no acknowledgements (RFC
// 6587), so bytes dropped unread by an abortive close would be lost to any
// sender; that is not what this test is about.
func (r *syslogReceiver) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = c.Close()
		}
	}
}

// restart listens again on the same address.
func (r *syslogReceiver) restart(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ln, err = net.Listen("tcp", r.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("syslog receiver: listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// webhookReceiver is an HTTP endpoint that records the events of every
// request it accepts; while down it answers 503 without reading them.
type webhookReceiver struct {
	srv     *httptest.Server
	rec     recorder
	down    atomic.Bool
	refused atomic.Int64
}

func startWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.down.Load() {
			r.refused.Add(1)
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		var events []json.RawMessage
		if err := json.Unmarshal(body, &events); err != nil {
			r.rec.fail("body is not a JSON array: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n, _ := strconv.Atoi(req.Header.Get("Mdbridge-Events")); n != len(events) {
			r.rec.fail("Mdbridge-Events %q for %d events", req.Header.Get("Mdbridge-Events"), len(events))
		}
		as := make([]arrival, 0, len(events))
		for _, e := range events {
			a, err := parseArrival(e)
			if err != nil {
				r.rec.fail("event: %v", err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			as = append(as, a)
		}
		r.rec.add(as...)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// inProcess is `mdbridge run` running in this process.
type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	logs   *syncWriter
	buf    *bytes.Buffer
	admin  string
}

// startInProcess runs `mdbridge run -c cfg` and waits for its admin
// address (the config must set admin.listen, port 0 is fine). A cleanup
// stops it if the test ends while it runs.
func startInProcess(t *testing.T, cfg string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	buf := &bytes.Buffer{}
	b := &inProcess{cancel: cancel, done: make(chan struct{}), buf: buf, logs: &syncWriter{w: buf}}
	go func() {
		defer close(b.done)
		b.code = run(ctx, []string{"run", "-c", cfg}, io.Discard, b.logs)
	}()
	t.Cleanup(func() { cancel(); <-b.done })
	re := regexp.MustCompile(`"admin server listening".*"addr":"([^"]+)"`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.logText()); m != nil {
			b.admin = m[1]
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("mdbridge run exited %d before serving; its log:\n%s", b.code, b.logTail(4000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin address logged within 30 s; the log:\n%s", b.logTail(4000))
		}
	}
}

func (b *inProcess) logText() string {
	b.logs.mu.Lock()
	defer b.logs.mu.Unlock()
	return b.buf.String()
}

func (b *inProcess) logTail(n int) string {
	s := b.logText()
	return s[max(0, len(s)-n):]
}

// stop cancels the run, as SIGTERM does, and wants exit code 0.
func (b *inProcess) stop(t *testing.T) {
	t.Helper()
	b.cancel()
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the bridge did not stop within 30 s; its log:\n%s", b.logTail(4000))
	}
	if b.code != 0 {
		t.Fatalf("the bridge exited %d; its log:\n%s", b.code, b.logTail(4000))
	}
}

// bridgeStatus is /status as a user reads it.
type bridgeStatus pipeline.Snapshot

func (s bridgeStatus) sink(t *testing.T, name string) pipeline.SinkStatus {
	t.Helper()
	for _, k := range s.Sinks {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("/status lists no sink %q: %+v", name, s.Sinks)
	return pipeline.SinkStatus{}
}

func (b *inProcess) status(t *testing.T) bridgeStatus {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + b.admin + "/status")
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st bridgeStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("GET /status: %s: %.500s", resp.Status, body)
	}
	return st
}

// waitFor polls cond every 200 ms until it holds, failing the test after
// limit with cond's last description.
func waitFor(t *testing.T, b *inProcess, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; still: %s\nthe bridge's log ends:\n%s", limit, what, desc, b.logTail(3000))
		}
		select {
		case <-b.done:
			t.Fatalf("the bridge exited (%d) while waiting for %s (%s); its log ends:\n%s", b.code, what, desc, b.logTail(3000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
