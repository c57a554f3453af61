package mdss

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Seeds beyond the README shapes: enums as integers and names, times with
// 0 to 9 fractional digits and as epochs, odd types in every place.
var scanSeeds = []string{
	readmeScan, webhookScan,
	`{"id":"a","status":1,"stopTime":"2026-11-23T09:59:00Z"}`,
	`{"id":"a","status":"3","stopTime":1764000000}`,
	`{"id":"a","status":"Cancelled","stopTime":"1764000000123","startTime":"2026-11-23T09:59:00.1234567Z"}`,
	`{"id":"a","status":0,"stopTime":null}`,
	`{"id":"a","status":"InProgress","stopTime":"0001-01-01T00:00:00"}`,
	`{"id":7,"status":2.0,"stopTime":"2026-11-23T09:59:00.123456789+02:00","totalFiles":"12","infectedFiles":-1}`,
	`{"id":"","status":"Completed"}`, `{"id":{},"status":[]}`, `{"ScanId":"a","Status":"Failed","StopTime":true}`,
	`[]`, `null`, `"x"`, `{"id":"a","status":"Completed","stopTime":"2026-13-45T99:99:99Z"}`,
}

var fileSeeds = []string{
	readmeFile, webhookFile,
	`{"id":"f","result":"Blocked","scanAllResultI":"21","remediations":["6",100,"BlockedMoved: Applied"]}`,
	`{"id":"f","result":0,"scanResult":{"scanResults":{"scanAllResultI":20,"scanDetails":{"ClamAV":{"threat_found":"x","scan_result_i":1}}}}}`,
	`{"id":"f","FileStatus":"Allowed","CoreScanResult":"Potentially Unwanted Program","ScanCompletedTimeStamp":"2025-08-28T10:20:24.974998Z"}`,
	`{"id":"f","size":1e300,"result":1.5,"scanAllResultI":-3,"scanDetails":[1,"x",null,{"threatFound":7}],"remediations":{"a":1}}`,
	`{"id":"f","scanCompletedTime":1764000000123,"totalAvs":"20","scanDetails":[]}`,
	`{"fileId":null}`, `{}`, `1`,
}

func FuzzDecodeScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	d := newDecoder("fuzz", nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !gjson.ValidBytes(data) {
			return // bodies are validated before records are decoded
		}
		s, err := d.decodeScan(gjson.ParseBytes(data))
		if err != nil {
			if s != nil || err.Error() == "" {
				t.Fatalf("decodeScan(%q) = %+v, %v", data, s, err)
			}
			return
		}
		if s.ID == "" || s.Status == "" {
			t.Fatalf("decodeScan(%q) = %+v without id or status", data, s)
		}
		if s.Known != (s.Status == StatusInProgress || Finished(s.Status)) {
			t.Fatalf("decodeScan(%q): status %q known=%v", data, s.Status, s.Known)
		}
		for _, c := range []*int64{s.Files, s.Blocked, s.Infected} {
			if c != nil && *c < 0 {
				t.Fatalf("decodeScan(%q): negative count", data)
			}
		}
		if !Finished(s.Status) {
			return
		}
		if s.Stopped == nil || !s.Stopped.After(dotNetZero) || s.Stopped.Location() != time.UTC {
			t.Fatalf("decodeScan(%q): finished without a stop time: %v", data, s.Stopped)
		}
		ev := scanEvent(s, "fuzz", "fuzz/scans", "")
		if strings.ContainsAny(ev.Message, "\n\r") {
			t.Fatalf("message %q is not one line", ev.Message)
		}
		if _, err := pipeline.MarshalEvent(ev); err != nil {
			t.Fatalf("decodeScan(%q): event does not encode: %v", data, err)
		}
	})
}

func FuzzDecodeFile(f *testing.F) {
	for _, s := range fileSeeds {
		f.Add([]byte(s))
	}
	d := newDecoder("fuzz", nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !gjson.ValidBytes(data) {
			return
		}
		r, err := d.decodeFile(gjson.ParseBytes(data))
		if err != nil {
			if r != nil || err.Error() == "" {
				t.Fatalf("decodeFile(%q) = %+v, %v", data, r, err)
			}
			return
		}
		if r.ID == "" {
			t.Fatalf("decodeFile(%q): no id", data)
		}
		if r.Code != nil && *r.Code < 0 || r.Size != nil && *r.Size < 0 {
			t.Fatalf("decodeFile(%q): negative code or size", data)
		}
		if r.Engines != nil && (r.Engines.Detected < 0 || r.Engines.Total < 0) {
			t.Fatalf("decodeFile(%q): engines %+v", data, r.Engines)
		}
		for _, p := range r.Problems {
			if p.Field == "" || p.Error() == "" {
				t.Fatalf("decodeFile(%q): empty problem", data)
			}
		}
		if FileHash(r.Verdict, r.Code, r.Result) != FileHash(r.Verdict, r.Code, r.Result) {
			t.Fatal("hash is not deterministic")
		}
		ev := fileEvent(r, "scan", time.Unix(1, 0).UTC(), "fuzz", "fuzz/files", "")
		if strings.ContainsAny(ev.Message, "\n\r") {
			t.Fatalf("message %q is not one line", ev.Message)
		}
		if _, err := pipeline.MarshalEvent(ev); err != nil {
			t.Fatalf("decodeFile(%q): event does not encode: %v", data, err)
		}
	})
}

// FuzzDecodeList: no panic; an array gives all its elements and no total;
// the total is -1 or not negative; an error never comes with items.
func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{
		`[` + readmeScan + `]`, `[]`, `{"items":[` + readmeFile + `],"total":1}`, `{"scans":[],"totalCount":"3"}`,
		`{"files":[1],"count":" 4 "}`, `{"records":[null],"total":-2}`, `{"page":1}`, `null`, `"str"`, `3`,
		`{"items":{"a":1}}`, `{"data":[[]],"list":[1]}`, `{"total":1e300,"entries":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !gjson.ValidBytes(body) {
			return
		}
		doc := gjson.ParseBytes(body)
		items, total, err := DecodeList(doc)
		if total < -1 {
			t.Fatalf("DecodeList(%q) total %d", body, total)
		}
		if err != nil {
			if items != nil || err.Error() == "" {
				t.Fatalf("DecodeList(%q) = %d items with error %v", body, len(items), err)
			}
			return
		}
		if doc.IsArray() {
			n := 0
			doc.ForEach(func(_, _ gjson.Result) bool { n++; return true })
			if len(items) != n || total != -1 {
				t.Fatalf("DecodeList(%q) = %d items, total %d; want %d, -1", body, len(items), total, n)
			}
		}
		for i, it := range items {
			if !it.Exists() {
				t.Fatalf("DecodeList(%q) item %d does not exist", body, i)
			}
		}
	})
}

// FuzzParseTime: any JSON value parses to a UTC time after .NET's zero or
// fails; and a time written with any number of fractional digits (0 to 9)
// parses to itself truncated to those digits.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{`"2020-04-11T00:00:00.000Z"`, `"2025-08-06T13:27:20.12684Z"`, `"2025-08-06T13:27:14.953181Z"`,
		`1754486834`, `1754486834123`, `"1754486834123"`, `null`, `""`, `"0001-01-01T00:00:00"`, `"2025-08-06 13:27:14"`,
		`"2025-08-06T13:27:14.5+05:30"`, `-1`, `1e300`, `{}`} {
		f.Add(s, int64(1754486834), uint32(953181123), uint8(6))
	}
	f.Fuzz(func(t *testing.T, js string, sec int64, nanos uint32, digits uint8) {
		if gjson.Valid(js) {
			got, err := ParseTime(gjson.Parse(js))
			if err == nil && (!got.After(dotNetZero) || got.Location() != time.UTC) {
				t.Fatalf("ParseTime(%s) = %v", js, got)
			}
			if err != nil && got != (time.Time{}) {
				t.Fatalf("ParseTime(%s) = %v with error %v", js, got, err)
			}
		}
		sec = 1 + (sec%(1<<34)+(1<<34))%(1<<34) // 1970 .. 2514
		n := int(nanos % 1e9)
		d := int(digits % 10)
		want := time.Unix(sec, int64(n)).UTC()
		s := want.Format("2006-01-02T15:04:05")
		if d > 0 {
			frac := strconv.Itoa(1e9 + n)[1:] // nine digits
			s += "." + frac[:d]
		}
		s += "Z"
		unit := time.Duration(1)
		for range 9 - d {
			unit *= 10
		}
		got, err := ParseTime(gjson.Parse(strconv.Quote(s)))
		if err != nil || !got.Equal(want.Truncate(unit)) {
			t.Fatalf("ParseTime(%q) = %v, %v; want %v", s, got, err, want.Truncate(unit))
		}
	})
}

// FuzzWebhookPayload: no panic; a payload that normalises gives a record
// whose key, hash, stream and time agree with its event, and whose event
// encodes; an error never comes with a record.
func FuzzWebhookPayload(f *testing.F) {
	for _, s := range append(append([]string{webhookScan, webhookFile}, scanSeeds...), fileSeeds...) {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Add(`{"ScanId":"a","Status":2,"StopTime":"2025-08-06T13:27:20.1Z","WebhookNotificationType":"ScanCompleted"}`, true)
	f.Add(`{"FileId":"f","FileStatus":1,"CoreScanResult":"21","ScanCompletedTimeStamp":1754486834,"WebhookNotificationType":"FileScanned"}`, false)
	f.Fuzz(func(t *testing.T, body string, scan bool) {
		var rec pipeline.Record
		var err error
		if scan {
			rec, err = NormalizeScanCompleted("fuzz", []byte(body))
		} else {
			rec, err = NormalizeFileScanned("fuzz", []byte(body))
		}
		if err != nil {
			if rec.Event != nil || rec.Key != "" || err.Error() == "" {
				t.Fatalf("%q: record %+v with error %v", body, rec, err)
			}
			if !gjson.Valid(body) && (errors.Is(err, ErrNotThreat) || errors.Is(err, ErrNotFinished)) {
				t.Fatalf("%q: invalid JSON classified as %v", body, err)
			}
			return
		}
		ev := rec.Event
		if rec.Key == "" || ev == nil || !rec.Time.Equal(ev.Time) || string(rec.Raw) != body || string(ev.Raw) != body {
			t.Fatalf("%q: record %+v", body, rec)
		}
		if scan {
			if ev.Kind != pipeline.KindMDSSScan || ev.Source.Stream != "fuzz/scans" || rec.Hash != ScanHash(rec.Key, ev.Scan.Status) || !Finished(ev.Scan.Status) {
				t.Fatalf("%q: scan record %+v %+v", body, rec, ev.Scan)
			}
		} else {
			fl := ev.File
			if ev.Kind != pipeline.KindMDSSFile || ev.Source.Stream != "fuzz/files" || rec.Hash != FileHash(fl.Verdict, fl.ResultCode, fl.Result) ||
				fl.Verdict != VerdictBlocked && (fl.ResultCode == nil || !isDefaultThreat(*fl.ResultCode)) {
				t.Fatalf("%q: file record %+v %+v", body, rec, fl)
			}
		}
		if _, err := pipeline.MarshalEvent(ev); err != nil {
			t.Fatalf("%q: event does not encode: %v", body, err)
		}
	})
}

func isDefaultThreat(code int) bool {
	for _, c := range DefaultThreatResults {
		if c == code {
			return true
		}
	}
	return false
}
