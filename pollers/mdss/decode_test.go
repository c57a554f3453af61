package mdss

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// The README's shapes, as the seeds of the decoding tests and fuzzers.
const (
	readmeScan = `{"id": "0198f02f-aaaa", "name": "Nightly finance", "status": "Completed",
 "scanType": 1, "storageId": "st-1", "storageName": "finance-share",
 "startTime": "2026-11-23T08:00:00.12345Z", "stopTime": "2026-11-23T09:59:00.5Z",
 "totalFiles": 1520, "blockedFiles": 1, "infectedFiles": 1}`
	readmeFile = `{"id": "file-9a8b", "scanId": "0198f02f-aaaa", "storageId": "st-1", "storageName": "finance-share",
 "name": "invoice.pdf.exe", "path": "in/invoice.pdf.exe", "size": 482113,
 "md5": "9e107d9d372bb6826bd81d3542a419d6", "sha1": "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "sha256": "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
 "processingState": 3, "result": 1,
 "scanCompletedTime": "2026-11-23T09:58:12.5Z",
 "remediations": [6],
 "scanResult": {"scanResults": {"scanAllResultI": 1, "scanAllResultA": "Infected", "totalAvs": 20,
   "scanDetails": [{"engineName": "Ahnlab", "threatFound": "Trojan.X", "scanResultI": 1,
                    "defTime": "2026-11-22T00:00:00.000Z", "scanTime": 2, "engId": "ahnlab_1_linux"},
                   {"engineName": "Avira", "threatFound": "", "scanResultI": 0},
                   {"engineName": "Bitdefender", "threatFound": "Trojan.X", "scanResultI": 1},
                   {"engineName": "Clamav", "threatFound": "Win.Trojan.Y", "scanResultI": 1}]}}}`
	webhookScan = `{"ScanId":"0198f02f-aaaa","ScanName":"Nightly finance","StartTime":"2026-11-23T08:00:00.12345Z",
 "StopTime":"2026-11-23T09:59:00.5Z","Status":"Completed","WebhookNotificationType":"ScanCompleted"}`
	webhookFile = `{"FileId":"file-9a8b","FileName":"invoice.pdf.exe","FilePath":"in/invoice.pdf.exe","FileStatus":"Blocked",
 "CoreScanResult":"Infected","FileState":"Available","RemediationResult":["BlockedMoved: Applied"],
 "ScanCompletedTimeStamp":"2026-11-23T09:58:12.500000Z","WorkflowName":"Default Workflow","Rules":["MetaDefender Storage Security"],
 "ExceptionDetails":"","RemediationErrors":[],"WebhookNotificationType":"FileScanned"}`
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecodeScan(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		status  string
		stopped string // "" for none
		err     string // in the error, "" for none
		problem string // a field left out, "" for none
		check   func(t *testing.T, s *scanRec)
	}{
		{name: "README", json: readmeScan, status: StatusCompleted, stopped: "2026-11-23T09:59:00.5Z", check: func(t *testing.T, s *scanRec) {
			if s.Name != "Nightly finance" || s.Storage != "finance-share" || *s.Files != 1520 || *s.Blocked != 1 || *s.Infected != 1 ||
				!s.Started.Equal(mustTime("2026-11-23T08:00:00.12345Z")) {
				t.Errorf("%+v", s)
			}
		}},
		{name: "webhook PascalCase", json: webhookScan, status: StatusCompleted, stopped: "2026-11-23T09:59:00.5Z"},
		{name: "integer status", json: `{"id":"a","status":3,"stopTime":"2026-01-01T00:00:00Z"}`, status: StatusFailed, stopped: "2026-01-01T00:00:00Z"},
		{name: "numeric string status", json: `{"id":"a","status":"2","stopTime":1767225600000}`, status: StatusCancelled, stopped: "2026-01-01T00:00:00Z"},
		{name: "Canceled spelling", json: `{"id":"a","status":"canceled","stopTime":1767225600}`, status: StatusCancelled, stopped: "2026-01-01T00:00:00Z"},
		{name: "six digits", json: `{"id":"a","status":"Completed","stopTime":"2025-08-06T13:27:14.953181Z"}`, status: StatusCompleted, stopped: "2025-08-06T13:27:14.953181Z"},
		{name: "nine digits", json: `{"id":"a","status":"Completed","stopTime":"2025-08-06T13:27:14.953181123Z"}`, status: StatusCompleted, stopped: "2025-08-06T13:27:14.953181123Z"},
		{name: "in progress, null stop", json: `{"id":"a","status":0,"stopTime":null}`, status: StatusInProgress},
		{name: "in progress, .NET zero stop", json: `{"id":"a","status":"InProgress","stopTime":"0001-01-01T00:00:00"}`, status: StatusInProgress},
		{name: "integer id", json: `{"id":42,"status":"Completed","stopTime":"2026-01-01T00:00:00Z"}`, status: StatusCompleted, stopped: "2026-01-01T00:00:00Z"},
		{name: "unknown status kept", json: `{"id":"a","status":"Paused"}`, status: "Paused"},
		{name: "unknown status number", json: `{"id":"a","status":9}`, status: "9"},
		{name: "missing counts left out", json: `{"id":"a","status":"Completed","stopTime":"2026-01-01T00:00:00Z"}`, status: StatusCompleted,
			stopped: "2026-01-01T00:00:00Z", check: func(t *testing.T, s *scanRec) {
				if s.Files != nil || s.Blocked != nil || s.Infected != nil || s.Started != nil || s.Name != "" {
					t.Errorf("invented values: %+v", s)
				}
			}},
		{name: "wrong-type count left out", json: `{"id":"a","status":"Completed","stopTime":"2026-01-01T00:00:00Z","totalFiles":{"n":1},"infectedFiles":"3"}`,
			status: StatusCompleted, stopped: "2026-01-01T00:00:00Z", problem: "files", check: func(t *testing.T, s *scanRec) {
				if s.Files != nil || s.Infected == nil || *s.Infected != 3 {
					t.Errorf("%+v", s)
				}
			}},
		{name: "no id", json: `{"status":"Completed"}`, err: `scan: id (at id|scanId|ScanId|_id) is missing; set sources.x.fields.scans.id`},
		{name: "object id", json: `{"id":{},"status":"Completed"}`, err: `id (at id|scanId|ScanId|_id) is an object, not a string`},
		{name: "no status", json: `{"id":"a"}`, err: `scan "a": status (at status|scanStatus|Status|state) is missing`},
		{name: "array status", json: `{"id":"a","status":[1]}`, err: `status (at status|scanStatus|Status|state) is an array`},
		{name: "fraction status", json: `{"id":"a","status":1.5}`, err: `status (at status|scanStatus|Status|state) is 1.5`},
		{name: "finished without stop", json: `{"id":"a","status":"Completed"}`, err: `time (at stopTime|StopTime|stoppedAt|endTime|finishedTime|completedTime) is missing on a Completed scan`},
		{name: "finished, bad stop", json: `{"id":"a","status":"Failed","stopTime":"yesterday"}`, err: `scan "a": time (at stopTime`},
		{name: "not an object", json: `[1]`, err: "scan record is an array, not an object"},
	}
	d := newDecoder("x", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := d.decodeScan(gjson.Parse(tt.json))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Status != tt.status {
				t.Errorf("status %q, want %q", s.Status, tt.status)
			}
			switch {
			case tt.stopped == "" && s.Stopped != nil:
				t.Errorf("stopped %v, want none", s.Stopped)
			case tt.stopped != "" && (s.Stopped == nil || !s.Stopped.Equal(mustTime(tt.stopped))):
				t.Errorf("stopped %v, want %s", s.Stopped, tt.stopped)
			}
			if tt.problem != "" && (len(s.Problems) == 0 || s.Problems[0].Field != tt.problem) {
				t.Errorf("problems %v, want %s", s.Problems, tt.problem)
			}
			if tt.problem == "" && len(s.Problems) > 0 {
				t.Errorf("problems %v", s.Problems)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestDecodeFile(t *testing.T) {
	code := func(n int) *int { return &n }
	tests := []struct {
		name    string
		json    string
		verdict string
		code    *int
		result  string
		threat  bool
		err     string
		problem string
		check   func(t *testing.T, f *fileRec)
	}{
		{name: "README", json: readmeFile, verdict: VerdictBlocked, code: code(1), result: "Infected", threat: true, check: func(t *testing.T, f *fileRec) {
			if f.Name != "invoice.pdf.exe" || f.Path != "in/invoice.pdf.exe" || *f.Size != 482113 || f.SHA256 == "" || f.ScanID != "0198f02f-aaaa" ||
				strings.Join(f.Threats, ",") != "Trojan.X,Win.Trojan.Y" || *f.Engines != (pipeline.Engines{Total: 20, Detected: 3}) ||
				strings.Join(f.Remediation, ",") != "BlockedMoved" || !f.Completed.Equal(mustTime("2026-11-23T09:58:12.5Z")) {
				t.Errorf("%+v engines %+v", f, f.Engines)
			}
		}},
		{name: "webhook", json: webhookFile, verdict: VerdictBlocked, code: code(1), result: "Infected", threat: true, check: func(t *testing.T, f *fileRec) {
			if f.Name != "invoice.pdf.exe" || strings.Join(f.Remediation, ",") != "BlockedMoved: Applied" || f.Engines != nil || f.Size != nil {
				t.Errorf("%+v", f)
			}
		}},
		{name: "names for enums, flat result", json: `{"id":"f","result":"Allowed","scanAllResultI":"20","remediations":["Tagging","6"]}`,
			verdict: VerdictAllowed, code: code(20), result: "Sensitive Data Found", threat: true, check: func(t *testing.T, f *fileRec) {
				if strings.Join(f.Remediation, ",") != "Tagging,BlockedMoved" {
					t.Errorf("remediation %q", f.Remediation)
				}
			}},
		{name: "blocked encrypted archive", json: `{"id":"f","result":1,"scanAllResultI":12}`, verdict: VerdictBlocked, code: code(12), result: "Encrypted Archive", threat: true},
		{name: "clean", json: `{"id":"f","result":0,"scanResult":{"scanResults":{"scanAllResultI":0}}}`, verdict: VerdictAllowed, code: code(0), result: "No Threat Detected"},
		{name: "allowed unsupported", json: `{"id":"f","result":0,"scanAllResultI":23}`, verdict: VerdictAllowed, code: code(23), result: "Unsupported File Type"},
		{name: "result name only", json: `{"id":"f","FileStatus":"Allowed","CoreScanResult":"Potentially Unwanted Program"}`, verdict: VerdictAllowed, code: code(22), result: "Potentially Unwanted Program", threat: true},
		{name: "old Core name", json: `{"id":"f","FileStatus":"Blocked","CoreScanResult":"Scan Skipped - Blacklisted"}`, verdict: VerdictBlocked, code: code(8), result: "Scan Skipped - Blacklisted", threat: true},
		{name: "unknown name", json: `{"id":"f","FileStatus":"Allowed","CoreScanResult":"Martian"}`, verdict: VerdictAllowed, result: "Martian"},
		{name: "Core-style engine map", json: `{"id":"f","result":1,"scanResult":{"scanResults":{"scanAllResultI":2,"scanDetails":{"ClamAV":{"threat_found":"Eicar","scan_result_i":1},"Avira":{"threat_found":"","scan_result_i":0}}}}}`,
			verdict: VerdictBlocked, code: code(2), result: "Suspicious", threat: true, check: func(t *testing.T, f *fileRec) {
				if strings.Join(f.Threats, ",") != "Eicar" || *f.Engines != (pipeline.Engines{Total: 2, Detected: 1}) {
					t.Errorf("threats %q engines %+v", f.Threats, f.Engines)
				}
			}},
		{name: "nothing but an id", json: `{"id":"f"}`, check: func(t *testing.T, f *fileRec) {
			if f.Verdict != "" || f.Code != nil || f.Result != "" || f.Engines != nil || f.Completed != nil || f.Size != nil || f.Threats != nil {
				t.Errorf("invented values: %+v", f)
			}
		}},
		{name: "wrong types left out", json: `{"id":"f","result":1,"size":"big","scanAllResultI":{},"scanDetails":"x","remediations":[{}],"scanCompletedTime":true}`,
			verdict: VerdictBlocked, threat: true, problem: "size"},
		{name: "negative size", json: `{"id":"f","size":-1}`, problem: "size"},
		{name: "no id", json: `{"name":"a"}`, err: `file: id (at id|fileId|FileId|_id) is missing; set sources.x.fields.files.id`},
		{name: "bool id", json: `{"id":true}`, check: func(t *testing.T, f *fileRec) {
			if f.ID != "true" {
				t.Errorf("id %q", f.ID)
			}
		}},
		{name: "string", json: `"f"`, err: "file record is a string"},
	}
	d := newDecoder("x", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := d.decodeFile(gjson.Parse(tt.json))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				var fe *FieldError
				if strings.Contains(tt.err, "fields.") && !errors.As(err, &fe) {
					t.Errorf("error %T is not a *FieldError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Verdict != tt.verdict || (f.Code == nil) != (tt.code == nil) || f.Code != nil && *f.Code != *tt.code || f.Result != tt.result {
				t.Errorf("verdict %q code %v result %q; want %q %v %q", f.Verdict, f.Code, f.Result, tt.verdict, tt.code, tt.result)
			}
			if got := f.threat(DefaultThreatResults); got != tt.threat {
				t.Errorf("threat = %v, want %v", got, tt.threat)
			}
			if tt.problem != "" && (len(f.Problems) == 0 || f.Problems[0].Field != tt.problem) {
				t.Errorf("problems %v, want %s first", f.Problems, tt.problem)
			}
			if tt.problem == "" && len(f.Problems) > 0 {
				t.Errorf("problems %v", f.Problems)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestFieldOverrides(t *testing.T) {
	d := newDecoder("storage", map[string]map[string]string{
		StreamScans: {"time": "finishedAt", "id": "meta.uuid"},
		StreamFiles: {"result_code": "verdict.code"},
	})
	s, err := d.decodeScan(gjson.Parse(`{"meta":{"uuid":"u1"},"id":"ignored","status":"Completed","stopTime":"2020-01-01T00:00:00Z","finishedAt":"2026-01-01T00:00:00Z"}`))
	if err != nil || s.ID != "u1" || !s.Stopped.Equal(mustTime("2026-01-01T00:00:00Z")) {
		t.Fatalf("%+v %v", s, err)
	}
	_, err = d.decodeScan(gjson.Parse(`{"meta":{"uuid":"u1"},"status":"Completed","stopTime":"2026-01-01T00:00:00Z"}`))
	if err == nil || !strings.Contains(err.Error(), "time (at finishedAt) is missing on a Completed scan; set sources.storage.fields.scans.time") {
		t.Fatalf("error %v", err)
	}
	f, err := d.decodeFile(gjson.Parse(`{"id":"f","verdict":{"code":21}}`))
	if err != nil || f.Code == nil || *f.Code != 21 {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestHashesMatchAcrossSpellings(t *testing.T) {
	d := newDecoder("x", nil)
	scans := []string{readmeScan, webhookScan, `{"id":"0198f02f-aaaa","status":1,"stopTime":"2026-11-23T09:59:00.5Z"}`}
	var want uint64
	for i, js := range scans {
		s, err := d.decodeScan(gjson.Parse(js))
		if err != nil {
			t.Fatal(err)
		}
		h := ScanHash(s.ID, s.Status)
		if i == 0 {
			want = h
		} else if h != want {
			t.Errorf("scan %d hash differs", i)
		}
	}
	files := []string{readmeFile, webhookFile, `{"id":"file-9a8b","result":"Blocked","scanAllResultI":"1"}`,
		`{"id":"file-9a8b","result":"blocked","CoreScanResult":"infected"}`}
	for i, js := range files {
		f, err := d.decodeFile(gjson.Parse(js))
		if err != nil {
			t.Fatal(err)
		}
		h := FileHash(f.Verdict, f.Code, f.Result)
		if i == 0 {
			want = h
		} else if h != want {
			t.Errorf("file %d hash differs", i)
		}
	}
	if ScanHash("a", StatusCompleted) == ScanHash("a", StatusFailed) || ScanHash("ab", "c") == ScanHash("a", "bc") {
		t.Error("scan hash ignores its input")
	}
	one, two := 1, 2
	if FileHash(VerdictBlocked, &one, "") == FileHash(VerdictBlocked, &two, "") || FileHash(VerdictBlocked, &one, "") == FileHash(VerdictAllowed, &one, "") {
		t.Error("file hash ignores its input")
	}
}

func TestSeverities(t *testing.T) {
	for _, tt := range []struct {
		code    int // -1: unknown
		verdict string
		sev     string
		score   int
	}{
		{1, VerdictBlocked, "high", 8}, {8, VerdictBlocked, "high", 8}, {21, VerdictAllowed, "high", 8},
		{2, VerdictBlocked, "medium", 5}, {18, VerdictBlocked, "medium", 5}, {20, VerdictAllowed, "medium", 5},
		{22, VerdictBlocked, "low", 3}, {12, VerdictBlocked, "low", 3}, {-1, VerdictBlocked, "low", 3},
		{0, VerdictAllowed, "info", 1}, {-1, "", "info", 1}, {3, VerdictAllowed, "info", 1},
	} {
		var c *int
		if tt.code >= 0 {
			c = &tt.code
		}
		if sev, score := FileSeverity(c, tt.verdict); sev != tt.sev || score != tt.score {
			t.Errorf("FileSeverity(%d, %s) = %s %d, want %s %d", tt.code, tt.verdict, sev, score, tt.sev, tt.score)
		}
	}
	n := func(v int64) *int64 { return &v }
	for _, tt := range []struct {
		status   string
		infected *int64
		sev      string
		score    int
	}{
		{StatusFailed, nil, "medium", 5}, {StatusFailed, n(3), "medium", 5}, {StatusCompleted, n(1), "high", 7},
		{StatusCompleted, n(0), "info", 1}, {StatusCompleted, nil, "info", 1}, {StatusCancelled, n(4), "info", 1},
	} {
		if sev, score := ScanSeverity(tt.status, tt.infected); sev != tt.sev || score != tt.score {
			t.Errorf("ScanSeverity(%s, %v) = %s %d, want %s %d", tt.status, tt.infected, sev, score, tt.sev, tt.score)
		}
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]string{
		`"2020-04-11T00:00:00.000Z"`:     "2020-04-11T00:00:00Z",
		`"2025-08-06T13:27:20.12684Z"`:   "2025-08-06T13:27:20.12684Z",
		`"2025-08-06T13:27:14.953181Z"`:  "2025-08-06T13:27:14.953181Z",
		`"2025-08-06T13:27:14.9531811Z"`: "2025-08-06T13:27:14.9531811Z",
		`"2025-08-06T15:27:14.5+02:00"`:  "2025-08-06T13:27:14.5Z",
		`"2025-08-06T13:27:14"`:          "2025-08-06T13:27:14Z",
		`1754486834`:                     "2025-08-06T13:27:14Z",
		`1754486834123`:                  "2025-08-06T13:27:14.123Z",
		`"1754486834123"`:                "2025-08-06T13:27:14.123Z",
		`null`:                           "none",
		`""`:                             "none",
		`"0001-01-01T00:00:00"`:          "none",
		`"0001-01-01T00:00:00.0000000Z"`: "none",
		`"soon"`:                         "error",
		`{}`:                             "error",
		`-5`:                             "error",
	} {
		got, err := ParseTime(gjson.Parse(in))
		switch want {
		case "none":
			if !errors.Is(err, pipeline.ErrNoTime) {
				t.Errorf("ParseTime(%s) = %v, %v; want ErrNoTime", in, got, err)
			}
		case "error":
			if err == nil || errors.Is(err, pipeline.ErrNoTime) {
				t.Errorf("ParseTime(%s) = %v, %v; want an error", in, got, err)
			}
		default:
			if err != nil || !got.Equal(mustTime(want)) || got.Location() != time.UTC {
				t.Errorf("ParseTime(%s) = %v, %v; want %s", in, got, err, want)
			}
		}
	}
}

func TestDecodeListShapes(t *testing.T) {
	for _, tt := range []struct {
		json  string
		n     int
		total int
		err   string
	}{
		{`[{"id":1},{"id":2}]`, 2, -1, ""},
		{`{"items":[{"id":1}],"total":12}`, 1, 12, ""},
		{`{"scans":[{"id":1}],"totalCount":"3"}`, 1, 3, ""},
		{`{"files":[],"count":0}`, 0, 0, ""},
		{`{"entries":[1,2,3]}`, 3, -1, ""},
		{`{"data":[1],"items":[1,2]}`, 2, -1, ""}, // items ranks first
		{`{"records":[1],"total":-4}`, 1, -1, ""},
		{`null`, 0, -1, ""},
		{`{"page":1,"accessToken":"eyJhbGciOi.x.y"}`, 0, -1, `keys: "page", "accessToken"`},
		{`"str"`, 0, -1, "is a string, not a list"},
		{`{"items":{"a":1}}`, 0, -1, "without a list"},
	} {
		items, total, err := DecodeList(gjson.Parse(tt.json))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("DecodeList(%s) error %v, want %q", tt.json, err, tt.err)
			}
			continue
		}
		if err != nil || len(items) != tt.n || total != tt.total {
			t.Errorf("DecodeList(%s) = %d items, total %d, %v; want %d, %d", tt.json, len(items), total, err, tt.n, tt.total)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		`{"accessToken":"abc.def","x":1}`:            `{"accessToken":"[REDACTED]","x":1}`,
		`{"refresh_token": "abc`:                     `{"refresh_token": "[REDACTED]`,
		`{"Password":"hunter2"}`:                     `{"Password":"[REDACTED]"}`,
		`Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.s`: `Bearer [REDACTED]`,
		"my-api-key-123 in text":                     "[REDACTED] in text",
		"tab\there\nnl":                              "tab here nl",
	} {
		if got := sanitize(in, []string{"my-api-key-123"}); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
