package syslog

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/nontransparent"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// sdValue is what a receiver must read back from a PARAM-VALUE written by
// appendParamValue: the text with each invalid UTF-8 byte as U+FFFD and
// each control character as a space.
func sdValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

func addSeeds(f *testing.F) {
	f.Add("2259223e3a2c1230cc7b29005de0bfa6", pipeline.KindDeviceAlert, "plant-a", "device_alerts", "a message", "bridge-1", uint64(1), "high")
	f.Add("a]b\"c\\d\ne€", "ot.weird kind]\"ü", `plant "a" \ [x]`, "line1\nline2\ttab ü", "msg ] \" \\ \n ü 日本 \u2028", "hôte name", uint64(0), "critical")
	f.Add("]", "-", "\\", "\"", "", "-", uint64(18446744073709551615), "")
	f.Add("id:with[brackets]", strings.Repeat("k", 40), "\x00\x7f", "\xff\xfe", "\xed\xa0\x80", strings.Repeat("h", 300), uint64(7), "bogus")
}

// fuzzEvent builds the event's journal JSON, or false when it has no ID or
// kind (which the encoder must refuse).
func fuzzEvent(t *testing.T, id, kind, instance, stream, message string, seq uint64, sev string) ([]byte, format.Meta, bool) {
	e := testEvent(1)
	e.ID, e.Kind, e.Source.Instance, e.Source.Stream, e.Message, e.Seq, e.Severity = id, kind, instance, stream, message, seq, sev
	data := marshal(t, e)
	m, err := format.PeekMeta(data)
	if err != nil {
		return data, m, false
	}
	return data, m, true
}

// checkFramings parses msg in both stream framings as well.
func checkFramings(t *testing.T, protocol string, msg []byte) {
	t.Helper()
	var results []*gosyslog.Result
	listener := gosyslog.WithListener(func(r *gosyslog.Result) { results = append(results, r) })
	octet := append(strconv.AppendInt(nil, int64(len(msg)), 10), ' ')
	octet = append(octet, msg...)
	nl := append(bytes.Clone(msg), '\n')
	for _, c := range []struct {
		name string
		p    gosyslog.Parser
		in   []byte
	}{
		{"octet counting", pick(protocol == RFC3164, octetcounting.NewParserRFC3164, octetcounting.NewParser)(listener, gosyslog.WithMaxMessageLength(MaxStreamBytes)), octet},
		{"newline", pick(protocol == RFC3164, nontransparent.NewParserRFC3164, nontransparent.NewParser)(listener), nl},
	} {
		results = results[:0]
		c.p.Parse(bytes.NewReader(c.in))
		if len(results) != 1 || results[0].Error != nil || results[0].Message == nil {
			var err error
			if len(results) > 0 {
				err = results[0].Error
			}
			t.Fatalf("%s %s: %d results, first error %v\n%q", protocol, c.name, len(results), err, msg)
		}
	}
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

func FuzzRFC5424(f *testing.F) {
	addSeeds(f)
	fm, err := format.New(format.JSON)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, kind, instance, stream, message, host string, seq uint64, sev string) {
		data, m, ok := fuzzEvent(t, id, kind, instance, stream, message, seq, sev)
		enc := newEncoder(RFC5424, 16, host, "mdbridge", 4242, fm)
		msg, err := enc.appendMessage([]byte("keep"), data)
		if !ok {
			if err == nil || string(msg) != "keep" {
				t.Fatalf("event without id or kind: err %v, dst %q", err, msg)
			}
			return
		}
		if err != nil {
			t.Fatalf("appendMessage: %v", err)
		}
		msg = msg[len("keep"):]
		p, err := rfc5424.NewParser().Parse(msg)
		if err != nil {
			t.Fatalf("go-syslog: %v\n%q", err, msg)
		}
		sm, ok := p.(*rfc5424.SyslogMessage)
		if !ok {
			t.Fatalf("go-syslog returned no message and no error for %q", msg)
		}
		if got, want := *sm.Priority, uint8(16*8+Severity(m.Severity)); got != want {
			t.Errorf("PRI %d, want %d", got, want)
		}
		wantKind := m.Kind
		if wantKind == "-" {
			wantKind = "" // NILVALUE
		}
		if got := str(sm.MsgID); len(got) > maxMsgID || !headerSafe(got) || (len(m.Kind) <= maxMsgID && headerSafe(m.Kind) && got != wantKind) {
			t.Errorf("MSGID %q for kind %q", got, m.Kind)
		}
		if got := str(sm.Hostname); len(got) > maxHostname || (host != "" && host != "-" && got == "") {
			t.Errorf("HOSTNAME %q for %q", got, host)
		}
		if sm.StructuredData == nil {
			t.Fatalf("no structured data in %q", msg)
		}
		sd := (*sm.StructuredData)[SDID]
		want := map[string]string{"id": sdValue(m.ID), "seq": strconv.FormatUint(seq, 10)}
		if m.Instance != "" {
			want["source"] = sdValue(m.Instance)
		}
		if m.Stream != "" {
			want["stream"] = sdValue(m.Stream)
		}
		if !equalMaps(sd, want) {
			t.Errorf("SD %q, want %q", sd, want)
		}
		if str(sm.Message) != jsonBody(data) {
			t.Errorf("MSG is not the event JSON:\n got %q\nwant %q", str(sm.Message), jsonBody(data))
		}
		checkFramings(t, RFC5424, msg)
	})
}

func FuzzRFC3164(f *testing.F) {
	addSeeds(f)
	fm, err := format.New(format.JSON)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, kind, instance, stream, message, host string, seq uint64, sev string) {
		data, m, ok := fuzzEvent(t, id, kind, instance, stream, message, seq, sev)
		enc := newEncoder(RFC3164, 16, host, "mdbridge", 4242, fm)
		msg, err := enc.appendMessage(nil, data)
		if !ok {
			if err == nil || len(msg) != 0 {
				t.Fatalf("event without id or kind: err %v, dst %q", err, msg)
			}
			return
		}
		if err != nil {
			t.Fatalf("appendMessage: %v", err)
		}
		p, err := rfc3164.NewParser().Parse(msg)
		if err != nil {
			t.Fatalf("go-syslog: %v\n%q", err, msg)
		}
		sm, ok := p.(*rfc3164.SyslogMessage)
		if !ok {
			t.Fatalf("go-syslog returned no message and no error for %q", msg)
		}
		if got, want := *sm.Priority, uint8(16*8+Severity(m.Severity)); got != want {
			t.Errorf("PRI %d, want %d", got, want)
		}
		if got := str(sm.Appname); got != "mdbridge" {
			t.Errorf("tag %q", got)
		}
		procid := str(sm.ProcID)
		idPart, seqPart, cut := cutLast(procid, ".")
		if !cut || seqPart != strconv.FormatUint(seq, 10) {
			t.Errorf("brackets %q do not end in .%d", procid, seq)
		}
		if isPlainID(m.ID) && idPart != m.ID {
			t.Errorf("brackets %q, want the ID %q", procid, m.ID)
		}
		if str(sm.Message) != jsonBody(data) {
			t.Errorf("MSG is not the event JSON:\n got %q\nwant %q", str(sm.Message), jsonBody(data))
		}
		checkFramings(t, RFC3164, msg)
	})
}

// jsonBody is the MSG expected for the event JSON data: the JSON with DEL
// escaped.
func jsonBody(data []byte) string {
	return strings.ReplaceAll(string(data), "\x7f", `\u007f`)
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// isPlainID reports whether id survives the RFC 3164 brackets unchanged.
func isPlainID(id string) bool {
	return len(id) <= maxProcID && headerSafe(id) && !strings.ContainsAny(id, "[]:")
}

// FuzzParamValue checks appendParamValue alone, on any bytes, invalid
// UTF-8 included: the value always parses and reads back as sdValue.
func FuzzParamValue(f *testing.F) {
	for _, s := range []string{"", "plain", `a"b\c]d`, "\\", "]", "\"", "x\ny\r\tz", "\xff", "\xc3", "é日本\U0001F600", "\\]\\\"\\\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		msg := []byte(`<14>1 - - - - - [x@32473 p="`)
		msg = appendParamValue(msg, s)
		msg = append(msg, `"] body`...)
		p, err := rfc5424.NewParser().Parse(msg)
		if err != nil {
			t.Fatalf("go-syslog: %v\n%q", err, msg)
		}
		sm := p.(*rfc5424.SyslogMessage)
		if got, want := (*sm.StructuredData)["x@32473"]["p"], sdValue(s); got != want {
			t.Fatalf("read back %q, want %q", got, want)
		}
		if !utf8.Valid(msg) {
			t.Fatalf("message is not valid UTF-8: %q", msg)
		}
		if bytes.ContainsAny(msg, "\n\r") {
			t.Fatalf("message holds a line break: %q", msg)
		}
	})
}

// FuzzHeaderField checks appendField: the field is always printable ASCII
// within its limit, and a field that already is one is kept.
func FuzzHeaderField(f *testing.F) {
	for _, s := range []string{"", "bridge-1", "a b", "hôte", "\x00", strings.Repeat("x", 300), "[id]:x"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, strict bool) {
		got := string(appendField(nil, s, maxMsgID, "-", strict))
		if got == "" || len(got) > maxMsgID || !headerSafe(got) {
			t.Fatalf("appendField(%q) = %q", s, got)
		}
		if strict && strings.ContainsAny(got, "[]:") {
			t.Fatalf("strict appendField(%q) = %q", s, got)
		}
		if s != "" && len(s) <= maxMsgID && headerSafe(s) && (!strict || !strings.ContainsAny(s, "[]:")) && got != s {
			t.Fatalf("appendField(%q) = %q, want it unchanged", s, got)
		}
	})
}

// FuzzParseAddress checks the address parser: an accepted address has a
// known scheme and a host:port whose port is 1-65535, and reads back the
// same from its canonical form.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"tcp://siem:514", "udp://127.0.0.1:514", "tls://[::1]:6514", "tcp://siem", "http://x:1",
		"siem:514", "tcp://:514", "tcp://u@h:1", "tcp://h:1/", "tcp://h:99999", "tls://h:0", "", "tcp://[::1", "udp://h:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scheme, hostport, err := parseAddress(s)
		if err != nil {
			return
		}
		if scheme != SchemeUDP && scheme != SchemeTCP && scheme != SchemeTLS {
			t.Fatalf("%q: scheme %q", s, scheme)
		}
		host, port, err := net.SplitHostPort(hostport)
		if err != nil || host == "" {
			t.Fatalf("%q: host:port %q: %v", s, hostport, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("%q: port %q", s, port)
		}
		if strings.Contains(hostport, "%") {
			return // an IPv6 zone is dialled as it is but not escaped back into a URL
		}
		s2, hp2, err := parseAddress(scheme + "://" + hostport)
		if err != nil || s2 != scheme || hp2 != hostport {
			t.Fatalf("%q: canonical form %s://%s reads back as %q %q %v", s, scheme, hostport, s2, hp2, err)
		}
	})
}

// FuzzParseFacility checks that an accepted facility is a code 0-23 and
// that every code's number is accepted as itself.
func FuzzParseFacility(f *testing.F) {
	for _, s := range []string{"local0", "LOCAL7", "kern", "23", "24", "-1", "", " daemon ", "+3", "03"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseFacility(s)
		if err != nil {
			return
		}
		if n < 0 || n > 23 {
			t.Fatalf("ParseFacility(%q) = %d", s, n)
		}
		if m, err := ParseFacility(strconv.Itoa(n)); err != nil || m != n {
			t.Fatalf("ParseFacility(%d) = %d, %v", n, m, err)
		}
	})
}
