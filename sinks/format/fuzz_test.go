package format

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mdbridge/mdbridge/pipeline"
)

// fuzzKinds are the kinds fuzzEvent builds, by selector.
var fuzzKinds = []string{pipeline.KindDeviceAlert, pipeline.KindConnAlert, pipeline.KindSuricataAlert,
	pipeline.KindDevice, pipeline.KindCVE}

// utf8Bytes replaces each invalid UTF-8 byte with U+FFFD, as
// pipeline.AppendEvent does, so that the test compares the strings the
// journal holds.
func utf8Bytes(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// fuzzEvent builds an event of one of fuzzKinds from fuzzed strings, putting
// them in the header fields, the envelope, every block and the changes.
func fuzzEvent(sel uint8, msg, name, ip, status, txt string, port uint16, score int8, ts int64) *pipeline.Event {
	msg, name, ip, status, txt = utf8Bytes(msg), utf8Bytes(name), utf8Bytes(ip), utf8Bytes(status), utf8Bytes(txt)
	const maxSec = 253402300799 // 9999-12-31T23:59:59Z
	sec := ts % maxSec
	if sec < 0 {
		sec = -sec
	}
	when := time.Unix(sec, ts&0x3fffffff%1e9).UTC()
	kind := fuzzKinds[int(sel)%len(fuzzKinds)]
	e := &pipeline.Event{ID: name + "-id", Schema: pipeline.Schema, Kind: kind, Seq: uint64(port) * 7, Time: when,
		Observed: when.Add(time.Second), Severity: status, SeverityScore: int(score), Message: msg,
		Source: pipeline.Source{Product: txt, Instance: name, Stream: txt, SiteIP: ip, SensorIP: status,
			URL: "https://appliance.example:3003"},
		Revision: int(sel >> 4)}
	if sel&0x10 != 0 {
		e.Changes = map[string]pipeline.Change{txt: {Old: msg, New: nil}, "status": {Old: status, New: name}}
	}
	dev := &pipeline.Device{ID: status, Name: name, IP: ip, MAC: txt, Vendor: msg, Model: txt, Type: status,
		Firmware: txt, OS: name, PurdueLevel: status, Site: msg, Action: status}
	nw := &pipeline.Network{SrcIP: txt, SrcPort: int(port), SrcMAC: status, DstIP: ip, DstPort: int(port) / 2,
		DstMAC: txt, Protocol: name, Transport: status}
	if sel&0x20 != 0 { // the device is the source end
		nw.SrcIP, nw.DstIP = ip, txt
		nw.SrcMAC = txt
	}
	if sel&0x40 != 0 {
		nw = &pipeline.Network{}
	}
	switch kind {
	case pipeline.KindDeviceAlert, pipeline.KindConnAlert, pipeline.KindSuricataAlert:
		e.Alert = &pipeline.Alert{ID: name, Type: txt, Name: msg, Status: status, Started: &when, Reason: txt}
		if sel&0x80 != 0 {
			e.Alert.Ended = &e.Observed
		}
		e.Network = nw
		if kind == pipeline.KindSuricataAlert {
			e.Rule = &pipeline.Rule{ID: txt, Name: name, Category: status}
		} else {
			e.Device = dev
		}
	case pipeline.KindDevice:
		e.Device = dev
	case pipeline.KindCVE:
		cvss := float64(score) / 10
		e.Device = &pipeline.Device{ID: status, Name: name, IP: ip}
		e.Vulnerability = &pipeline.Vulnerability{CVE: txt, CVSS: &cvss, CVSSVector: name, Description: msg}
	}
	return e
}

func addSeeds(f *testing.F) {
	f.Add(uint8(0), "msg", "PLC-7", "10.0.2.17", "new", "v1", uint16(502), int8(7), int64(1795428000))
	f.Add(uint8(0x31), "a|b\\c=d\ne\rf\tg", "x = y", "10.0.0.1", "resolved", "|=\\", uint16(0), int8(-3), int64(-5))
	f.Add(uint8(0xe2), " ", "  ", "", "", "\u2028\u0085\x00\x7f", uint16(65535), int8(127), int64(1<<62))
	f.Add(uint8(0x53), "ü✓中文\xff", "\"q\"", "::1", "acknowledged", `\u0000`, uint16(1), int8(0), int64(0))
	f.Add(uint8(0x24), "", "", "", "", "", uint16(0), int8(1), int64(86400))
}

// FuzzCEF builds events from fuzzed strings and checks that the CEF line
// has no line break and reads back, with the test's own parser, to exactly
// the event's values.
func FuzzCEF(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, sel uint8, msg, name, ip, status, txt string, port uint16, score int8, ts int64) {
		e := fuzzEvent(sel, msg, name, ip, status, txt, port, score, ts)
		line, _ := renderCEF(t, e)
		checkCEF(t, e, line)
	})
}

// FuzzLEEF is FuzzCEF for LEEF 2.0.
func FuzzLEEF(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, sel uint8, msg, name, ip, status, txt string, port uint16, score int8, ts int64) {
		e := fuzzEvent(sel, msg, name, ip, status, txt, port, score, ts)
		checkLEEF(t, e, renderLEEF(t, e))
	})
}

// FuzzOCSF builds events from fuzzed strings and checks that the OCSF
// rendering is one valid JSON object without a raw line break, keeps the
// OCSF invariants and carries every block value of the event.
func FuzzOCSF(f *testing.F) {
	addSeeds(f)
	fm, err := New(OCSF)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sel uint8, msg, name, ip, status, txt string, port uint16, score int8, ts int64) {
		e := fuzzEvent(sel, msg, name, ip, status, txt, port, score, ts)
		data, err := pipeline.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		out, err := fm.Append(nil, data)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("not valid JSON: %s", out)
		}
		if strings.ContainsAny(string(out), "\n\r") {
			t.Fatalf("line break in %s", out)
		}
		in, got := decodeJSON(t, data), decodeJSON(t, out)
		checkOCSFInvariants(t, in, got)
		if m, _ := at(got, "message"); m != e.Message {
			t.Errorf("message = %q, want %q", m, e.Message)
		}
		checkCarried(t, data, ocsfValues(got), string(out))
	})
}

// FuzzAppend feeds arbitrary bytes to every formatter: none may panic, and
// OCSF output must be valid JSON whenever there is output.
func FuzzAppend(f *testing.F) {
	for _, e := range testEvents() {
		data, _ := pipeline.MarshalEvent(e)
		f.Add(data)
	}
	f.Add([]byte(`{"id":"a","kind":"k","time":"2026-01-01T00:00:00Z","b":{"x":"\ud800","y":[1,{"z":"\"}]}}`))
	f.Add([]byte(`{"id":"a","kind":"k","time":"2026-01-01T00:00:00Z","b":{"x":"unterminated`))
	fs := []Formatter{}
	for _, n := range []string{CEF, LEEF, OCSF} {
		fm, _ := New(n)
		fs = append(fs, fm)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fm := range fs {
			out, err := fm.Append(nil, data)
			if err != nil {
				continue
			}
			if strings.ContainsAny(string(out), "\n\r") {
				t.Fatalf("%s: line break in %q", fm.Name(), out)
			}
			if fm.JSON() && !json.Valid(out) {
				t.Fatalf("%s: not valid JSON: %s", fm.Name(), out)
			}
		}
	})
}
