package pipeline_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// FuzzAppendEvent: for any strings and any valid raw JSON the encoder's
// line is valid JSON, one line, and decodes to what encoding/json's
// encoding of the event decodes to.
func FuzzAppendEvent(f *testing.F) {
	seeds := []struct {
		msg, id, name string
		raw           []byte
		ns            int64
		zone          int
		port          int
		cvss          float64
	}{
		{"Unauthorized device", "A-1", "PLC 1", []byte(`{"alertId":"A-1","n":1}`), 1700000000123456789, 0, 502, 9.8},
		{"", "", "", nil, 0, 0, 0, 0},
		{"a\x00b\x1f\x7f", "\n\r\t", "\"\\", []byte("{\n  \"a\": [1,\n 2]\n}\n"), -1, 3600, -1, 0.1},
		{"bad \xff\xfe \xed\xa0\x80 \xc0\xaf", "\u2028\u2029", "\xe2\x82", []byte("\r\n\"x\"\r\n"), math.MaxInt64, -43200, 65535, 10},
		{"</script>&<b>", "设备 𝄞", "\ufffd", []byte(`"\u2028 \ud800 <>&"`), math.MinInt64, 50400, 1 << 40, 1e300},
		{"x", "y", "z", []byte(`[1e400, -0, 1E-7, 0.10]`), 1, 1, 0, -0.0},
		{"m", "i", "n", []byte(`not json`), 2, 2, 2, 2},
		{"m", "i", "n", []byte(" \t{\"a\" : null } "), 3, 3, 3, math.NaN()},
	}
	for _, s := range seeds {
		f.Add(s.msg, s.id, s.name, s.raw, s.ns, s.zone, s.port, s.cvss)
	}
	f.Fuzz(func(t *testing.T, msg, id, name string, raw []byte, ns int64, zone, port int, cvss float64) {
		zone %= 18 * 3600
		loc := time.FixedZone(name, zone)
		tm := time.Unix(0, ns).In(loc)
		e := &pipeline.Event{
			ID: id, Schema: pipeline.Schema, Kind: name, Seq: uint64(ns), Time: tm, Observed: tm.Add(time.Duration(port)),
			Severity: name, SeverityScore: port, Message: msg,
			Source:   pipeline.Source{Product: id, Instance: name, Stream: msg, SiteIP: id, SensorIP: name, URL: msg},
			Revision: port,
			Alert:    &pipeline.Alert{ID: id, Type: name, Name: msg, Status: id, Started: &tm, Reason: msg},
			Device: &pipeline.Device{ID: id, Name: name, IP: msg, MAC: id, Vendor: name, Model: msg, Type: id,
				Firmware: name, OS: msg, PurdueLevel: id, Site: name, Action: msg},
			Network: &pipeline.Network{SrcIP: msg, SrcPort: port, SrcMAC: id, DstIP: name, DstPort: -port,
				DstMAC: msg, Protocol: id, Transport: name},
			Rule:          &pipeline.Rule{ID: id, Name: name, Category: msg},
			Vulnerability: &pipeline.Vulnerability{CVE: id, CVSS: &cvss, CVSSVector: name, Description: msg},
		}
		if port%3 == 0 {
			// Exercise the optional parts left out.
			e.Alert.Started, e.Device, e.Vulnerability.CVSS = nil, nil, nil
		}
		if json.Valid(raw) {
			e.Raw = raw
			e.Changes = map[string]pipeline.Change{name: {Old: msg, New: json.RawMessage(raw)}, id: {Old: json.RawMessage(raw)}}
		} else {
			e.Changes = map[string]pipeline.Change{msg: {Old: id, New: port}}
		}
		got, err := pipeline.AppendEvent(nil, e)
		want, werr := json.Marshal(encUTC(e))
		if werr != nil {
			if err == nil {
				t.Fatalf("AppendEvent succeeded where encoding/json fails (%v):\n%s", werr, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendEvent error %v; encoding/json gives %s", err, want)
		}
		if !json.Valid(got) {
			t.Fatalf("not valid JSON:\n%q", got)
		}
		if bytes.IndexByte(got, '\n') >= 0 || bytes.IndexByte(got, '\r') >= 0 {
			t.Fatalf("not one line:\n%q", got)
		}
		gv, err := encDecode(got)
		if err != nil {
			t.Fatalf("decode: %v\n%q", err, got)
		}
		wv, err := encDecode(want)
		if err != nil {
			t.Fatalf("decode encoding/json output: %v\n%q", err, want)
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Fatalf("AppendEvent and encoding/json disagree:\n got %q\nwant %q", got, want)
		}
	})
}

// FuzzParseTime: no panic; a success is in UTC; an epoch number never gives
// a time before 1970; an RFC 3339 string that time.Parse accepts gives the
// same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"1700000000", "1700000000123", "1700000000123456", "1700000000123456789", "1700000000.5", "1.7e9",
		"2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123456789+02:00", "2023-11-14 22:13:20", "2023-11-14T22:13:20",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-23:59", "", " ", "null", "true", "{}", "[1]", "-1", "NaN",
		"Inf", "1e19", "0x1p40", "99999999999", "100000000000", "99999999999999", "99999999999999999",
		"2023-11-14T22:13:20.Z", "2023-02-30T00:00:00Z", "\"2023-11-14T22:13:20Z\"", "\"1700000000\"",
		// Near the ends of what int64 nanoseconds hold (year 2262).
		"9000000000.5", "9000000000000.5", "9000000000000000000", "9223372036854775000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(what string, r gjson.Result) (time.Time, error) {
			tm, err := pipeline.ParseTime(r)
			if err != nil {
				if !tm.IsZero() {
					t.Errorf("%s: ParseTime(%q) = %v with error %v; want the zero time", what, s, tm, err)
				}
				return tm, err
			}
			if tm.Location() != time.UTC {
				t.Errorf("%s: ParseTime(%q) = %v not in UTC", what, s, tm)
			}
			return tm, nil
		}
		// s as a JSON string value.
		str := gjson.Result{Type: gjson.String, Str: s, Raw: strconv.Quote(s)}
		tm, err := check("string", str)
		if f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil && err == nil && tm.Before(time.Unix(0, 0)) {
			t.Errorf("ParseTime(%q) (epoch %g) = %v, before 1970", s, f, tm)
		}
		if want, perr := time.Parse(time.RFC3339Nano, s); perr == nil {
			if err != nil {
				t.Errorf("ParseTime(%q) error %v; time.Parse(RFC3339Nano) gives %v", s, err, want)
			} else if !tm.Equal(want) {
				t.Errorf("ParseTime(%q) = %v; time.Parse(RFC3339Nano) gives %v", s, tm, want)
			}
		}
		// s as raw JSON (numbers, literals, objects, garbage).
		r := gjson.Parse(s)
		tm, err = check("raw", r)
		if err == nil && r.Type == gjson.Number && tm.Before(time.Unix(0, 0)) {
			t.Errorf("ParseTime(%s) (number) = %v, before 1970", s, tm)
		}
	})
}

// fuzzPlainKey reports whether path is a top-level key that gjson's path
// syntax reads literally.
func fuzzPlainKey(path string) bool {
	return path != "" && utf8.ValidString(path) && !strings.ContainsAny(path, ".#|@*?\\[]{}!~=<>%\"'(),:$")
}

// FuzzExtract: no panic; for a valid JSON object and a plain top-level key
// whose value is present and not null, Extract returns what gjson.Get does,
// whichever rank the key has.
func FuzzExtract(f *testing.F) {
	for _, s := range []struct{ rec, path string }{
		{`{"id":1}`, "id"},
		{`{"id":null,"alertId":"x"}`, "alertId"},
		{`{"a":{"b":1}}`, "a.b"},
		{`{"a":{"b":1}}`, "a"},
		{`{"k":"v","k":"w"}`, "k"},
		{`{"n\u0061me":"esc"}`, "name"},
		{`[{"id":1}]`, "id"},
		{`{"x y":[1,2]}`, "x y"},
		{`{"id":`, "id"},
		{`"str"`, "#"},
		{`{"a":[{"b":1},{"b":2}]}`, "a.#.b"},
		{`{"a":1}`, "@this"},
		{`{"a":1}`, "[a"},
		{``, ``},
	} {
		f.Add([]byte(s.rec), s.path)
	}
	f.Fuzz(func(t *testing.T, record []byte, path string) {
		// The path on its own, and behind a fallback that is never present,
		// and before one that always is.
		x1 := pipeline.NewExtractor(pipeline.FieldPaths{"f": {path}})
		x2 := pipeline.NewExtractor(pipeline.FieldPaths{"f": {"\x00never", path}, "g": {path, "other"}})
		out := make([]gjson.Result, 2)
		rank := make([]int, 2)
		doc := gjson.ParseBytes(record)
		x1.Extract(doc, out[:1], rank[:1])
		got1 := out[0]
		x2.Extract(doc, out, rank)
		got2, got3 := out[x2.Index("f")], out[x2.Index("g")]
		for _, g := range []gjson.Result{got1, got2, got3} {
			if g.Exists() && g.Type == gjson.Null {
				t.Fatalf("Extract returned a null value for %q in %q", path, record)
			}
		}
		if !json.Valid(record) || !doc.IsObject() || !fuzzPlainKey(path) {
			return
		}
		want := gjson.GetBytes(record, path)
		if !want.Exists() || want.Type == gjson.Null {
			return
		}
		for i, g := range []gjson.Result{got1, got2, got3} {
			if g.Raw != want.Raw {
				t.Fatalf("Extract #%d of %q from %q = %q; gjson.Get = %q", i+1, path, record, g.Raw, want.Raw)
			}
		}
	})
}
