package syslog

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// seqsOf returns the SD seq of each parsed rfc5424 message.
func seqsOf(ps []parsed) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.sd[SDID]["seq"]
	}
	return out
}

// seqStrings returns the seq of each entry's event, as decimal text.
func seqStrings(es []pipeline.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		m, err := format.PeekMeta(e.Data)
		if err != nil {
			panic(err)
		}
		out[i] = strconv.FormatUint(m.Seq, 10)
	}
	return out
}

func TestOversizeAndUnrenderableRejected(t *testing.T) {
	const limit = 2000
	big := func(seq uint64) *pipeline.Event {
		e := testEvent(seq)
		e.Message = strings.Repeat("x", 1000) // the message grows to about 2.5 KB
		return e
	}
	tests := []struct {
		name    string
		scheme  string
		framing string
		// bad marks the entries to reject: "big" for an oversize event,
		// "junk" for data that is not an event.
		kinds []string
	}{
		{"tcp octet counting", SchemeTCP, OctetCounting, []string{"ok", "big", "ok", "big", "big", "ok"}},
		{"tcp newline", SchemeTCP, Newline, []string{"big", "ok", "junk", "ok"}},
		{"udp", SchemeUDP, OctetCounting, []string{"ok", "ok", "big", "junk", "ok"}},
		{"all rejected", SchemeTCP, OctetCounting, []string{"big", "junk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch, wantSent []pipeline.Entry
			var wantRejected []int
			for i, k := range tt.kinds {
				seq := uint64(i + 1)
				var e pipeline.Entry
				switch k {
				case "ok":
					e = entriesOf(t, testEvent(seq))[0]
					wantSent = append(wantSent, e)
				case "big":
					e = entriesOf(t, big(seq))[0]
					wantRejected = append(wantRejected, i)
				case "junk":
					e = pipeline.Entry{Seq: seq, Data: []byte(`{"not":"an event"}`)}
					wantRejected = append(wantRejected, i)
				}
				batch = append(batch, e)
			}

			var udp *udpReceiver
			var tcp *streamReceiver
			var addr string
			if tt.scheme == SchemeUDP {
				udp = newUDPReceiver(t)
				addr = "udp://" + udp.addr()
			} else {
				tcp = newStreamReceiver(t, nil)
				addr = "tcp://" + tcp.addr()
			}
			cfg := testConfig(addr)
			cfg.Framing = tt.framing
			cfg.MaxMessageBytes = limit
			s := mustNew(t, cfg)
			err := s.Deliver(context.Background(), batch)

			var rej *pipeline.RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("Deliver: %v, want a RejectedError", err)
			}
			if rej.Err != nil {
				t.Errorf("the rest of the batch failed: %v", rej.Err)
			}
			var gotIdx []int
			for _, it := range rej.Items {
				gotIdx = append(gotIdx, it.Index)
				if tt.kinds[it.Index] == "big" {
					if !strings.Contains(it.Reason, "max_message_bytes (2000)") || !strings.Contains(it.Reason, "bytes") {
						t.Errorf("reason %q does not name the size and the limit", it.Reason)
					}
				} else if !strings.Contains(it.Reason, "lacks id") {
					t.Errorf("reason %q does not say why the event cannot be rendered", it.Reason)
				}
			}
			if !slices.Equal(gotIdx, wantRejected) {
				t.Fatalf("rejected %v, want %v", gotIdx, wantRejected)
			}

			var got []parsed
			if udp != nil {
				for _, d := range udp.read(t, len(wantSent)) {
					m, err := parseMessage(t, RFC5424, d)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, fromMessage(t, m))
				}
			} else {
				_ = s.Close()
				got = parseStream(t, RFC5424, tt.framing, tcp.wait(t))
			}
			if !slices.Equal(seqsOf(got), seqStrings(wantSent)) {
				t.Errorf("receiver got seqs %v, want %v", seqsOf(got), seqStrings(wantSent))
			}
			for i, p := range got {
				if p.msg != string(wantSent[i].Data) {
					t.Errorf("message %d: body differs from the event (truncated?)", i)
				}
			}
		})
	}
}

// freeAddr returns a loopback TCP address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// listenOn listens on addr, retrying briefly in case the port is in
// TIME_WAIT or briefly taken.
func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen on %s: %v", addr, err)
	return nil
}

func newStreamReceiverAt(t *testing.T, addr string) *streamReceiver {
	t.Helper()
	return startStreamReceiver(t, listenOn(t, addr), nil)
}

func TestReceiverDownThenReconnect(t *testing.T) {
	addr := freeAddr(t)
	cfg := testConfig("tcp://" + addr)
	cfg.DialTimeout = 2 * time.Second
	s := mustNew(t, cfg)
	first := entriesOf(t, seqEvents(1, 3)...)

	// Nobody listens: a retryable error, no rejection, nothing sent.
	err := s.Deliver(context.Background(), first)
	if err == nil {
		t.Fatal("Deliver succeeded with the receiver down")
	}
	var rej *pipeline.RejectedError
	if pipeline.IsPermanent(err) || errors.As(err, &rej) {
		t.Fatalf("err = %v, want a plain retryable error", err)
	}
	if !strings.Contains(err.Error(), "connect") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q should say that connecting to %s failed", err, addr)
	}

	// The receiver comes up: the retry of the same batch gets through.
	rcv := newStreamReceiverAt(t, addr)
	if err := s.Deliver(context.Background(), first); err != nil {
		t.Fatalf("retry after the receiver came up: %v", err)
	}

	// The receiver restarts between batches: the sink notices the closed
	// connection and sends the next batch over a new one, whole, after the
	// earlier batch again (it cannot know whether the receiver read it).
	waitConns(t, rcv, 1)
	rcv.closeLive()
	waitDead(t, s)
	second := entriesOf(t, seqEvents(4, 3)...)
	if err := s.Deliver(context.Background(), second); err != nil {
		t.Fatalf("Deliver after the receiver closed the connection: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := parseStream(t, RFC5424, OctetCounting, rcv.wait(t))
	want := seqStrings(slices.Concat(first, first, second))
	if !slices.Equal(seqsOf(got), want) {
		t.Fatalf("receiver got seqs %v, want %v", seqsOf(got), want)
	}
	if n := rcv.count(); n != 2 {
		t.Errorf("%d connections, want 2 (one reconnect)", n)
	}
}

// waitConns waits until r has accepted n connections.
func waitConns(t *testing.T, r *streamReceiver, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.count() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("receiver accepted %d connections, want %d", r.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDead waits until the sink's watcher has seen its connection close.
func waitDead(t *testing.T, s *Sink) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.mu.Lock()
		dead := s.conn != nil && s.conn.dead.Load()
		s.mu.Unlock()
		if dead {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sink did not notice that the receiver closed the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriteTimeoutAndCancel(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // write_timeout
		ctxTO   time.Duration // 0: no context deadline
		wantErr error
	}{
		{name: "write_timeout", timeout: 200 * time.Millisecond, wantErr: os.ErrDeadlineExceeded},
		{name: "context deadline", timeout: time.Hour, ctxTO: 200 * time.Millisecond, wantErr: context.DeadlineExceeded},
	}
	// 20000 events of 1.5 KB (one event repeated), far more than loopback
	// socket buffers hold while the receiver reads nothing.
	one := marshal(t, testEvent(1))
	batch := make([]pipeline.Entry, 20000)
	for i := range batch {
		batch[i] = pipeline.Entry{Seq: uint64(i + 1), Data: one}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c // never read
				}
				close(accepted)
			}()
			defer func() {
				_ = ln.Close()
				for c := range accepted {
					_ = c.Close()
				}
			}()
			cfg := testConfig("tcp://" + ln.Addr().String())
			cfg.WriteTimeout = tt.timeout
			s := mustNew(t, cfg)
			ctx := context.Background()
			if tt.ctxTO > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTO)
				defer cancel()
			}
			err = s.Deliver(ctx, batch)
			if !errors.Is(err, tt.wantErr) || pipeline.IsPermanent(err) {
				t.Fatalf("err = %v, want a retryable error wrapping %v", err, tt.wantErr)
			}
			s.mu.Lock()
			open := s.conn != nil
			s.mu.Unlock()
			if open {
				t.Error("the connection was kept after a failed write")
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		name       string
		clientCert bool
		serverName string
		wantErr    bool // nothing may reach the receiver
		mustFail   bool // and Deliver must fail (the client itself refuses)
	}{
		{name: "client certificate", clientCert: true},
		{name: "no client certificate", wantErr: true},
		{name: "wrong server name", clientCert: true, serverName: "siem.example", wantErr: true, mustFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newStreamReceiver(t, pki.serverTLS(t, true))
			cfg := testConfig("tls://" + rcv.addr())
			cfg.TLS.CAFile = pki.caFile
			cfg.TLS.ServerName = tt.serverName
			if tt.clientCert {
				cfg.TLS.CertFile, cfg.TLS.KeyFile = pki.certFile, pki.keyFile
			}
			s := mustNew(t, cfg)
			batch := entriesOf(t, seqEvents(1, 5)...)
			err := s.Deliver(context.Background(), batch)
			if tt.wantErr {
				if tt.mustFail && err == nil {
					t.Fatal("Deliver succeeded")
				}
				// TLS 1.3 reports a refused client certificate after the
				// handshake: the first write may still succeed.
				if err == nil {
					_ = s.Close()
					if b := rcv.wait(t); len(b) != 0 {
						t.Fatalf("receiver got %d bytes over a refused connection", len(b))
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			_ = s.Close()
			got := parseStream(t, RFC5424, OctetCounting, rcv.wait(t))
			if !slices.Equal(seqsOf(got), seqStrings(batch)) {
				t.Fatalf("receiver got seqs %v, want %v", seqsOf(got), seqStrings(batch))
			}
		})
	}
}

// newlineFormatter renders an event as two lines, breaking its contract,
// to show that newline framing refuses such a message.
type newlineFormatter struct{}

func (newlineFormatter) Name() string { return "broken" }
func (newlineFormatter) JSON() bool   { return false }
func (newlineFormatter) Append(dst, _ []byte) ([]byte, error) {
	return append(dst, "line one\nline two"...), nil
}

func TestNewlineInMessage(t *testing.T) {
	tests := []struct {
		framing    string
		wantReject bool
	}{
		{Newline, true},
		{OctetCounting, false}, // octet counting carries any byte
	}
	for _, tt := range tests {
		t.Run(tt.framing, func(t *testing.T) {
			rcv := newStreamReceiver(t, nil)
			cfg := testConfig("tcp://" + rcv.addr())
			cfg.Framing = tt.framing
			s := mustNew(t, cfg)
			s.enc.f = newlineFormatter{}
			err := s.Deliver(context.Background(), entriesOf(t, testEvent(1)))
			var rej *pipeline.RejectedError
			if got := errors.As(err, &rej); got != tt.wantReject {
				t.Fatalf("err = %v, want rejected: %v", err, tt.wantReject)
			}
			_ = s.Close()
			b := rcv.wait(t)
			if tt.wantReject && len(b) != 0 {
				t.Errorf("receiver got %q", b)
			}
			if !tt.wantReject {
				got := parseStream(t, RFC5424, OctetCounting, b)
				if len(got) != 1 || got[0].msg != "line one\nline two" {
					t.Errorf("receiver got %+v", got)
				}
			}
		})
	}
}

func TestDeliverAfterCloseAndCanceled(t *testing.T) {
	rcv := newStreamReceiver(t, nil)
	s := mustNew(t, testConfig("tcp://"+rcv.addr()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, entriesOf(t, testEvent(1))); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	if err := s.Deliver(context.Background(), nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := s.Deliver(context.Background(), entriesOf(t, testEvent(1)))
	if !errors.Is(err, net.ErrClosed) || pipeline.IsPermanent(err) {
		t.Errorf("after Close: err = %v, want a retryable error wrapping net.ErrClosed", err)
	}
	if b := rcv.wait(t); len(b) != 0 {
		t.Errorf("receiver got %d bytes, want none (the sink connects lazily)", len(b))
	}
}

func TestDefaultHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	rcv := newUDPReceiver(t)
	cfg := DefaultConfig()
	cfg.Address = "udp://" + rcv.addr()
	s := mustNew(t, cfg)
	if err := s.Deliver(context.Background(), entriesOf(t, testEvent(1))); err != nil {
		t.Fatal(err)
	}
	m, err := parseMessage(t, RFC5424, rcv.read(t, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	want := string(appendField(nil, host, maxHostname, "-", false))
	if got := fromMessage(t, m).host; got != want {
		t.Errorf("hostname %q, want %q (os.Hostname)", got, want)
	}
}

func TestSDIDNamesTheEnterpriseNumber(t *testing.T) {
	if want := "mdbridge@" + strconv.Itoa(EnterpriseNumber); SDID != want {
		t.Fatalf("SDID %q, want %q", SDID, want)
	}
}

func TestSeverityMapping(t *testing.T) {
	tests := []struct {
		severity string
		want     int
	}{
		{pipeline.SeverityCritical, 2}, {pipeline.SeverityHigh, 3}, {pipeline.SeverityMedium, 4},
		{pipeline.SeverityLow, 5}, {pipeline.SeverityInfo, 6}, {"", 6}, {"CRITICAL", 6},
	}
	for _, tt := range tests {
		if got := Severity(tt.severity); got != tt.want {
			t.Errorf("Severity(%q) = %d, want %d", tt.severity, got, tt.want)
		}
	}
}
