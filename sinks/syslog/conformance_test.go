package syslog

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/nontransparent"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/mdbridge/mdbridge/pipeline"
)

// parsed is what go-syslog read from one message.
type parsed struct {
	pri    uint8
	ts     *time.Time
	host   string
	app    string
	procid string
	msgid  string
	sd     map[string]map[string]string
	msg    string
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func fromMessage(t *testing.T, m gosyslog.Message) parsed {
	t.Helper()
	switch m := m.(type) {
	case *rfc5424.SyslogMessage:
		p := parsed{pri: *m.Priority, ts: m.Timestamp, host: str(m.Hostname), app: str(m.Appname),
			procid: str(m.ProcID), msgid: str(m.MsgID), msg: str(m.Message)}
		if m.StructuredData != nil {
			p.sd = *m.StructuredData
		}
		return p
	case *rfc3164.SyslogMessage:
		return parsed{pri: *m.Priority, ts: m.Timestamp, host: str(m.Hostname), app: str(m.Appname),
			procid: str(m.ProcID), msgid: str(m.MsgID), msg: str(m.Message)}
	}
	t.Fatalf("unexpected message type %T", m)
	return parsed{}
}

// parseStream parses a TCP byte stream with go-syslog's stream parser for
// the framing (best effort off); every result must be a valid message.
func parseStream(t *testing.T, protocol, framing string, data []byte) []parsed {
	t.Helper()
	if len(data) == 0 {
		return nil
	}
	var out []parsed
	var errs []error
	listener := gosyslog.WithListener(func(r *gosyslog.Result) {
		if r.Error != nil {
			errs = append(errs, r.Error)
			return
		}
		out = append(out, fromMessage(t, r.Message))
	})
	var p gosyslog.Parser
	switch {
	case protocol == RFC5424 && framing == OctetCounting:
		p = octetcounting.NewParser(listener, gosyslog.WithMaxMessageLength(MaxStreamBytes))
	case protocol == RFC3164 && framing == OctetCounting:
		p = octetcounting.NewParserRFC3164(listener, gosyslog.WithMaxMessageLength(MaxStreamBytes))
	case protocol == RFC5424:
		p = nontransparent.NewParser(listener)
	default:
		p = nontransparent.NewParserRFC3164(listener)
	}
	p.Parse(bytes.NewReader(data))
	if len(errs) > 0 {
		t.Fatalf("go-syslog %s/%s: %d errors, first: %v\nstream starts: %s", protocol, framing, len(errs), errs[0], short(string(data)))
	}
	return out
}

// parseMessage parses one message (a UDP datagram) with the RFC's parser.
func parseMessage(t testing.TB, protocol string, b []byte) (gosyslog.Message, error) {
	if protocol == RFC3164 {
		return rfc3164.NewParser().Parse(b)
	}
	return rfc5424.NewParser().Parse(b)
}

// awkward is an event whose header and structured data fields hold what a
// syslog message must escape or cannot carry.
func awkward(seq uint64) *pipeline.Event {
	e := testEvent(seq)
	e.ID = "a]b\"c\\d\ne€"
	e.Kind = "ot.weird kind]\"ü"
	e.Severity = pipeline.SeverityCritical
	e.Source.Instance = `plant "a" \ [x]`
	e.Source.Stream = "line1\nline2\ttab ü"
	e.Message = "msg with ] \" \\ newline\n and ü 日本 \u2028"
	return e
}

func TestConformance(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	type want struct {
		sev      int
		msgid    string // rfc5424 MSGID
		id       string // rfc5424 SD id (unescaped)
		source   string // "" means absent
		stream   string
		procid34 string // rfc3164: the tag's brackets
	}
	mk := func(seq uint64, edit func(*pipeline.Event)) *pipeline.Event {
		e := testEvent(seq)
		if edit != nil {
			edit(e)
		}
		return e
	}
	events := []*pipeline.Event{
		mk(1, nil),
		awkward(2),
		mk(3, func(e *pipeline.Event) {
			e.Kind = strings.Repeat("k", 40)
			e.Severity = pipeline.SeverityMedium
			e.Source.Instance, e.Source.Stream = "", ""
		}),
		mk(4, func(e *pipeline.Event) { e.Severity = pipeline.SeverityLow; e.ID = "id:with[brackets]" }),
		mk(5, func(e *pipeline.Event) { e.Severity = pipeline.SeverityInfo }),
		mk(6, func(e *pipeline.Event) { e.Severity = "bogus" }),
	}
	first := events[0]
	wants := []want{
		{sevErr, pipeline.KindDeviceAlert, first.ID, "plant-a", "device_alerts", first.ID + ".1"},
		{sevCrit, `ot.weird_kind]"_`, "a]b\"c\\d e€", `plant "a" \ [x]`, "line1 line2 tab ü", `a_b"c\d_e_.2`},
		{sevWarning, strings.Repeat("k", 32), events[2].ID, "", "", events[2].ID + ".3"},
		{sevNotice, pipeline.KindDeviceAlert, "id:with[brackets]", "plant-a", "device_alerts", "id_with_brackets_.4"},
		{sevInfo, pipeline.KindDeviceAlert, events[4].ID, "plant-a", "device_alerts", events[4].ID + ".5"},
		{sevInfo, pipeline.KindDeviceAlert, events[5].ID, "plant-a", "device_alerts", events[5].ID + ".6"},
	}

	pki := newPKI(t)
	transports := []struct {
		scheme, framing string
	}{
		{SchemeUDP, OctetCounting}, // framing ignored on udp
		{SchemeTCP, OctetCounting},
		{SchemeTCP, Newline},
		{SchemeTLS, OctetCounting},
		{SchemeTLS, Newline},
	}
	for _, protocol := range []string{RFC5424, RFC3164} {
		for _, tr := range transports {
			t.Run(protocol+"/"+tr.scheme+"/"+tr.framing, func(t *testing.T) {
				batch := entriesOf(t, events...)
				var got []parsed
				switch tr.scheme {
				case SchemeUDP:
					rcv := newUDPReceiver(t)
					cfg := testConfig("udp://" + rcv.addr())
					cfg.Protocol = protocol
					s := mustNew(t, cfg)
					if err := s.Deliver(context.Background(), batch); err != nil {
						t.Fatalf("Deliver: %v", err)
					}
					for i, d := range rcv.read(t, len(batch)) {
						m, err := parseMessage(t, protocol, d)
						if err != nil {
							t.Fatalf("datagram %d does not parse: %v\n%s", i, err, short(string(d)))
						}
						got = append(got, fromMessage(t, m))
					}
				default:
					var rcv *streamReceiver
					if tr.scheme == SchemeTLS {
						rcv = newStreamReceiver(t, pki.serverTLS(t, false))
					} else {
						rcv = newStreamReceiver(t, nil)
					}
					cfg := testConfig(tr.scheme + "://" + rcv.addr())
					cfg.Protocol, cfg.Framing = protocol, tr.framing
					if tr.scheme == SchemeTLS {
						cfg.TLS.CAFile = pki.caFile
					}
					s := mustNew(t, cfg)
					// Two batches over one connection.
					if err := s.Deliver(context.Background(), batch[:2]); err != nil {
						t.Fatalf("Deliver: %v", err)
					}
					if err := s.Deliver(context.Background(), batch[2:]); err != nil {
						t.Fatalf("Deliver: %v", err)
					}
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					got = parseStream(t, protocol, tr.framing, rcv.wait(t))
				}
				if len(got) != len(events) {
					t.Fatalf("received %d messages, want %d", len(got), len(events))
				}
				for i, g := range got {
					w, e := wants[i], events[i]
					if want := uint8(16*8 + w.sev); g.pri != want {
						t.Errorf("message %d: PRI %d, want %d", i, g.pri, want)
					}
					if g.host != "bridge-1" || g.app != "mdbridge" {
						t.Errorf("message %d: hostname %q app %q, want bridge-1 mdbridge", i, g.host, g.app)
					}
					if g.msg != string(batch[i].Data) {
						t.Errorf("message %d: body differs from the event JSON\n got %s\nwant %s", i, short(g.msg), short(string(batch[i].Data)))
					}
					if g.ts == nil {
						t.Errorf("message %d: no timestamp", i)
						continue
					}
					if protocol == RFC3164 {
						ts, want := g.ts.UTC(), e.Time
						if ts.Month() != want.Month() || ts.Day() != want.Day() || ts.Hour() != want.Hour() ||
							ts.Minute() != want.Minute() || ts.Second() != want.Second() {
							t.Errorf("message %d: timestamp %s, want the clock of %s", i, ts, want)
						}
						if g.procid != w.procid34 {
							t.Errorf("message %d: tag brackets %q, want %q", i, g.procid, w.procid34)
						}
						continue
					}
					if want := e.Time.Truncate(time.Microsecond); !g.ts.Equal(want) {
						t.Errorf("message %d: timestamp %s, want %s", i, g.ts, want)
					}
					if g.procid != pid {
						t.Errorf("message %d: PROCID %q, want %s", i, g.procid, pid)
					}
					if g.msgid != w.msgid {
						t.Errorf("message %d: MSGID %q, want %q", i, g.msgid, w.msgid)
					}
					if len(g.sd) != 1 {
						t.Fatalf("message %d: %d SD elements, want 1: %v", i, len(g.sd), g.sd)
					}
					sd, ok := g.sd[SDID]
					if !ok {
						t.Fatalf("message %d: no %s element: %v", i, SDID, g.sd)
					}
					wantSD := map[string]string{"id": w.id, "seq": strconv.FormatUint(e.Seq, 10)}
					if w.source != "" {
						wantSD["source"] = w.source
					}
					if w.stream != "" {
						wantSD["stream"] = w.stream
					}
					if !equalMaps(sd, wantSD) {
						t.Errorf("message %d: SD params %q, want %q", i, sd, wantSD)
					}
				}
			})
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
