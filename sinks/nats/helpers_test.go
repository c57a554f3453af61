package nats

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is an embedded nats-server on 127.0.0.1.
type testServer struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// startServer starts an embedded server. JetStream is on, with a store in a
// fresh temporary directory; edit changes the options first.
func startServer(t testing.TB, edit func(*server.Options)) *testServer {
	t.Helper()
	opts := server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	if edit != nil {
		edit(&opts)
	}
	ts := &testServer{t: t, opts: opts}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	o := ts.opts
	srv, err := server.NewServer(&o)
	if err != nil {
		ts.t.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		ts.t.Fatal("nats-server did not start")
	}
	ts.srv = srv
	// A restart must come back on the same port.
	ts.opts.Port = srv.Addr().(*net.TCPAddr).Port
}

func (ts *testServer) stop() {
	if ts.srv != nil {
		ts.srv.Shutdown()
		ts.srv.WaitForShutdown()
		ts.srv = nil
	}
}

func (ts *testServer) url() string {
	scheme := "nats"
	if ts.opts.TLSConfig != nil {
		scheme = "tls"
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(ts.opts.Port)
}

// client connects a test client (the receiving side).
func (ts *testServer) client(opts ...natsgo.Option) *natsgo.Conn {
	ts.t.Helper()
	nc, err := natsgo.Connect(ts.url(), opts...)
	if err != nil {
		ts.t.Fatalf("test client: %v", err)
	}
	ts.t.Cleanup(nc.Close)
	return nc
}

func (ts *testServer) jetStream(opts ...natsgo.Option) jetstream.JetStream {
	ts.t.Helper()
	js, err := jetstream.New(ts.client(opts...))
	if err != nil {
		ts.t.Fatal(err)
	}
	return js
}

// testConfig is a config for ts with short timeouts.
func testConfig(ts *testServer) Config {
	cfg := DefaultConfig()
	cfg.URL = ts.url()
	cfg.AckTimeout = 5 * time.Second
	cfg.ConnectTimeout = 2 * time.Second
	cfg.ReconnectWait = 50 * time.Millisecond
	return cfg
}

func mustNew(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var kinds = []string{pipeline.KindDeviceAlert, pipeline.KindConnAlert, pipeline.KindSuricataAlert, pipeline.KindDevice, pipeline.KindMDSSFile}

// testEvent builds a realistic event of about 1.2 KB; n makes it unique.
func testEvent(n int) *pipeline.Event {
	kind := kinds[n%len(kinds)]
	product, instance := pipeline.ProductOTSecurity, "plant-a"
	if kind == pipeline.KindMDSSFile {
		product, instance = pipeline.ProductStorageSec, "mdss-hq"
	}
	at := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	started := at.Add(-time.Minute)
	cvss := 7.5
	e := &pipeline.Event{
		ID:            pipeline.EventID(instance+"/10.40.172.144/10.40.172.172/alerts", kind, strconv.Itoa(n), 0),
		Schema:        pipeline.Schema,
		Kind:          kind,
		Seq:           uint64(n + 1),
		Time:          at,
		Observed:      at.Add(3 * time.Second),
		Severity:      []string{pipeline.SeverityLow, pipeline.SeverityMedium, pipeline.SeverityHigh, pipeline.SeverityCritical}[n%4],
		SeverityScore: []int{3, 5, 7, 9}[n%4],
		Message:       fmt.Sprintf("Unauthorized Modbus write to PLC-%d from engineering workstation", n%97),
		Source: pipeline.Source{
			Product: product, Instance: instance, Stream: instance + "/10.40.172.144/10.40.172.172/alerts",
			SiteIP: "10.40.172.144", SensorIP: "10.40.172.172", URL: "https://10.0.0.5:3003",
		},
		Alert: &pipeline.Alert{ID: strconv.Itoa(100000 + n), Type: "policy", Name: "Unauthorized write", Status: "new", Started: &started,
			Reason: "A Modbus function code 16 write was seen from a host not in the engineering group"},
		Device: &pipeline.Device{ID: strconv.Itoa(n % 500), Name: fmt.Sprintf("PLC-%d", n%97), IP: "10.40.12.7", MAC: "00:1d:9c:c7:b0:70",
			Vendor: "Rockwell Automation", Model: "1756-L83E ControlLogix", Type: "PLC", Firmware: "33.011", PurdueLevel: "1", Site: "Plant A"},
		Network: &pipeline.Network{SrcIP: "10.40.20.15", SrcPort: 49812, DstIP: "10.40.12.7", DstPort: 502, Protocol: "modbus", Transport: "tcp"},
		Vulnerability: &pipeline.Vulnerability{CVE: "CVE-2022-1161", CVSS: &cvss, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
			Description: "Programmable controller firmware allows modified code to be written to the controller"},
		Raw: []byte(`{"alertId":` + strconv.Itoa(100000+n) + `,"criticality":"High","protocol":"MODBUS","functionCode":16,"srcIp":"10.40.20.15","dstIp":"10.40.12.7"}`),
	}
	return e
}

// entries returns n entries for events start, start+1, ...; their journal
// seq is the event number plus one.
func entries(t testing.TB, start, n int) []pipeline.Entry {
	t.Helper()
	out := make([]pipeline.Entry, n)
	for i := range out {
		b, err := pipeline.MarshalEvent(testEvent(start + i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = pipeline.Entry{Seq: uint64(start + i + 1), Data: b}
	}
	return out
}

// readStream returns every message of a stream, in stream order.
func readStream(t *testing.T, js jetstream.JetStream, name string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	if want == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		b, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got := 0
		for m := range b.Messages() {
			out = append(out, m)
			got++
		}
		if b.Error() != nil {
			t.Fatalf("fetch: %v", b.Error())
		}
		if got == 0 {
			t.Fatalf("stream %s: read %d of %d messages, then nothing", name, len(out), want)
		}
	}
	return out
}

// checkMessage compares one received message with the entry it came from.
func checkMessage(t *testing.T, where string, subject string, h natsgo.Header, data []byte, e pipeline.Entry, wantSubject string) {
	t.Helper()
	ev, err := pipeline.UnmarshalEvent(e.Data)
	if err != nil {
		t.Fatal(err)
	}
	if subject != wantSubject {
		t.Errorf("%s: subject %q, want %q", where, subject, wantSubject)
	}
	if string(data) != string(e.Data) {
		t.Errorf("%s: body is not the event's JSON", where)
	}
	for k, v := range map[string]string{
		HeaderMsgID:       ev.ID,
		HeaderKind:        ev.Kind,
		HeaderSeverity:    ev.Severity,
		HeaderSeq:         strconv.FormatUint(ev.Seq, 10),
		HeaderSource:      ev.Source.Instance,
		HeaderContentType: "application/json",
	} {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: header %s = %q, want [%q]", where, k, got, v)
		}
	}
}

// defaultSubject is what the default template gives for an event.
func defaultSubject(t *testing.T, e pipeline.Entry) string {
	t.Helper()
	ev, err := pipeline.UnmarshalEvent(e.Data)
	if err != nil {
		t.Fatal(err)
	}
	return "mdbridge." + ev.Kind + "." + strings.ReplaceAll(ev.Source.Instance, ".", "_")
}

// cutProxy sits between a sink and a test server on loopback. Armed with a
// marker, it forwards what the client sends only up to the first
// occurrence of the marker and then stops reading from that client, so a
// batch that contains the marker is cut in flight, whatever the timing:
// the server has at most the messages before it. cut is closed then.
// Until disarmed, it also closes every new connection at once.
type cutProxy struct {
	t       testing.TB
	ln      net.Listener
	backend string
	marker  []byte
	cut     chan struct{}

	mu    sync.Mutex
	armed bool
	conns map[net.Conn]struct{}
}

func newCutProxy(t testing.TB, backend string, marker []byte) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, backend: backend, marker: marker, cut: make(chan struct{}),
		armed: true, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.dropAll()
		wg.Wait()
	})
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

// disarm lets every later connection through untouched.
func (p *cutProxy) disarm() {
	p.mu.Lock()
	p.armed = false
	p.mu.Unlock()
}

// dropAll closes every open connection, both sides.
func (p *cutProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.cut:
		if p.armed {
			return false // cut, not yet disarmed: the "server" is away
		}
	default:
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *cutProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.backend)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(client, server)
		client.Close()
	}()
	p.upstream(client, server)
	server.Close()
	<-done
}

// upstream copies client to server, watching for the marker while armed.
func (p *cutProxy) upstream(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	var tail []byte // the last len(marker)-1 bytes forwarded
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			armed := p.armed
			p.mu.Unlock()
			if armed {
				joined := append(append([]byte(nil), tail...), chunk...)
				if i := bytes.Index(joined, p.marker); i >= 0 {
					if i -= len(tail); i > 0 {
						server.Write(chunk[:i])
					}
					select {
					case <-p.cut:
					default:
						close(p.cut)
					}
					io.Copy(io.Discard, client) // hold the rest back until closed
					return
				}
				if k := len(p.marker) - 1; len(joined) > k {
					tail = append(tail[:0], joined[len(joined)-k:]...)
				} else {
					tail = append(tail[:0], joined...)
				}
			}
			if _, werr := server.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
