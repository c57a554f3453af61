package pipeline_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// xtParse turns a table's JSON text into a gjson.Result; "" stands for a
// missing value.
func xtParse(js string) gjson.Result {
	if js == "" {
		return gjson.Result{}
	}
	return gjson.Parse(js)
}

var xtRef = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC) // epoch 1700000000

func TestParseTime(t *testing.T) {
	tests := []struct {
		name string
		js   string // JSON value; "" = missing
		want time.Time
		// tol is the allowed difference for fractional epochs, which go
		// through float64.
		tol time.Duration
		// errIs is the error the call must match (errors.Is); wantErr asks
		// for any other error.
		errIs   error
		wantErr bool
		// orErr accepts an error instead of want (values beyond what
		// int64 nanoseconds can hold: either right or refused, never
		// wrapped around).
		orErr bool
	}{
		// Epoch seconds, milliseconds, microseconds, nanoseconds.
		{name: "epoch s number", js: `1700000000`, want: xtRef},
		{name: "epoch s string", js: `"1700000000"`, want: xtRef},
		{name: "epoch s string spaces", js: `"  1700000000 "`, want: xtRef},
		{name: "epoch zero", js: `0`, want: time.Unix(0, 0).UTC()},
		{name: "epoch s just below ms threshold", js: `99999999999`, want: time.Unix(99999999999, 0).UTC()},
		{name: "epoch ms number", js: `1700000000123`, want: xtRef.Add(123 * time.Millisecond)},
		{name: "epoch ms string", js: `"1700000000123"`, want: xtRef.Add(123 * time.Millisecond)},
		{name: "epoch ms at threshold", js: `100000000000`, want: time.UnixMilli(100000000000).UTC()},
		{name: "epoch us number", js: `1700000000123456`, want: xtRef.Add(123456 * time.Microsecond)},
		{name: "epoch us string", js: `"1700000000123456"`, want: xtRef.Add(123456 * time.Microsecond)},
		{name: "epoch ns number", js: `1700000000000000000`, want: xtRef},
		{name: "epoch ns number float-exact", js: `1700000000123456768`, want: xtRef.Add(123456768)},
		{name: "epoch ns string", js: `"1700000000000000000"`, want: xtRef},
		{name: "epoch s exponent", js: `1.7e9`, want: xtRef},
		{name: "epoch ms exponent string", js: `"1.7e12"`, want: xtRef},
		// Fractional epochs.
		{name: "fractional s", js: `1700000000.5`, want: xtRef.Add(500 * time.Millisecond)},
		{name: "fractional s string", js: `"1700000000.25"`, want: xtRef.Add(250 * time.Millisecond)},
		{name: "fractional s micro", js: `1700000000.123456`, want: xtRef.Add(123456 * time.Microsecond), tol: time.Microsecond},
		{name: "fractional ms", js: `1700000000123.5`, want: xtRef.Add(123500 * time.Microsecond), tol: time.Microsecond},
		{name: "fractional us", js: `"1700000000123456.5"`, want: xtRef.Add(123456500), tol: time.Microsecond},
		// RFC 3339 with 0-9 fractional digits.
		{name: "rfc3339 Z", js: `"2023-11-14T22:13:20Z"`, want: xtRef},
		{name: "rfc3339 1 digit", js: `"2023-11-14T22:13:20.1Z"`, want: xtRef.Add(100 * time.Millisecond)},
		{name: "rfc3339 2 digits", js: `"2023-11-14T22:13:20.12Z"`, want: xtRef.Add(120 * time.Millisecond)},
		{name: "rfc3339 3 digits", js: `"2023-11-14T22:13:20.123Z"`, want: xtRef.Add(123 * time.Millisecond)},
		{name: "rfc3339 4 digits", js: `"2023-11-14T22:13:20.1234Z"`, want: xtRef.Add(123400 * time.Microsecond)},
		{name: "rfc3339 5 digits", js: `"2023-11-14T22:13:20.12345Z"`, want: xtRef.Add(123450 * time.Microsecond)},
		{name: "rfc3339 6 digits", js: `"2023-11-14T22:13:20.123456Z"`, want: xtRef.Add(123456 * time.Microsecond)},
		{name: "rfc3339 7 digits", js: `"2023-11-14T22:13:20.1234567Z"`, want: xtRef.Add(123456700)},
		{name: "rfc3339 8 digits", js: `"2023-11-14T22:13:20.12345678Z"`, want: xtRef.Add(123456780)},
		{name: "rfc3339 9 digits", js: `"2023-11-14T22:13:20.123456789Z"`, want: xtRef.Add(123456789)},
		{name: "rfc3339 +02:00", js: `"2023-11-15T00:13:20+02:00"`, want: xtRef},
		{name: "rfc3339 -05:30 frac", js: `"2023-11-14T16:43:20.5-05:30"`, want: xtRef.Add(500 * time.Millisecond)},
		{name: "rfc3339 +00:00", js: `"2023-11-14T22:13:20+00:00"`, want: xtRef},
		{name: "rfc3339 surrounding spaces", js: `" 2023-11-14T22:13:20Z "`, want: xtRef},
		// Without a zone, with a space for the T: UTC.
		{name: "space no zone", js: `"2023-11-14 22:13:20"`, want: xtRef},
		{name: "T no zone", js: `"2023-11-14T22:13:20"`, want: xtRef},
		{name: "space no zone frac", js: `"2023-11-14 22:13:20.123"`, want: xtRef.Add(123 * time.Millisecond)},
		{name: "T no zone frac 9", js: `"2023-11-14T22:13:20.123456789"`, want: xtRef.Add(123456789)},
		{name: "space with zone", js: `"2023-11-15 00:13:20+02:00"`, want: xtRef},
		{name: "space with Z", js: `"2023-11-14 22:13:20Z"`, want: xtRef},
		// Missing values.
		{name: "missing", js: "", errIs: pipeline.ErrNoTime},
		{name: "null", js: `null`, errIs: pipeline.ErrNoTime},
		{name: "empty string", js: `""`, errIs: pipeline.ErrNoTime},
		{name: "blank string", js: `"   "`, errIs: pipeline.ErrNoTime},
		// Garbage and wrong types.
		{name: "garbage string", js: `"yesterday"`, wantErr: true},
		{name: "date only", js: `"2023-11-14"`, wantErr: true},
		{name: "bad month", js: `"2023-13-14T22:13:20Z"`, wantErr: true},
		{name: "true", js: `true`, wantErr: true},
		{name: "false", js: `false`, wantErr: true},
		{name: "object", js: `{"t":1700000000}`, wantErr: true},
		{name: "array", js: `[1700000000]`, wantErr: true},
		// Out of range.
		{name: "negative", js: `-1`, wantErr: true},
		{name: "negative s string", js: `"-1700000000"`, wantErr: true},
		{name: "negative fraction", js: `-0.5`, wantErr: true},
		{name: "NaN string", js: `"NaN"`, wantErr: true},
		{name: "Inf string", js: `"+Inf"`, wantErr: true},
		{name: "infinity string", js: `"infinity"`, wantErr: true},
		{name: "number overflow", js: `1e400`, wantErr: true},
		{name: "1e19", js: `1e19`, wantErr: true},
		{name: "1e19 string", js: `"10000000000000000000"`, wantErr: true},
		{name: "huge", js: `1e300`, wantErr: true},
		// Beyond int64 nanoseconds (year 2262) but below the 1e19 cut-off:
		// the right time or an error, never a time in 1677.
		{name: "ns MaxInt64 (rounds up in float64)", js: `9223372036854775807`, want: time.Unix(0, 9223372036854775807).UTC(), tol: time.Microsecond, orErr: true},
		{name: "ns past int64", js: `9500000000000000000`, want: time.Unix(9500000000, 0).UTC(), orErr: true},
		{name: "fractional s past 2262", js: `10000000000.5`, want: time.Unix(10000000000, 5e8).UTC(), orErr: true},
		{name: "fractional ms past 2262", js: `9300000000000.5`, want: time.Unix(9300000000, 500000).UTC(), orErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pipeline.ParseTime(xtParse(tc.js))
			switch {
			case tc.errIs != nil:
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("ParseTime(%s) = %v, %v; want error %v", tc.js, got, err, tc.errIs)
				}
				return
			case tc.wantErr:
				if err == nil {
					t.Fatalf("ParseTime(%s) = %v, nil; want an error", tc.js, got)
				}
				if errors.Is(err, pipeline.ErrNoTime) {
					t.Fatalf("ParseTime(%s) error %v is ErrNoTime; want a parse error (the value is present)", tc.js, err)
				}
				return
			case tc.orErr && err != nil:
				return
			}
			if err != nil {
				t.Fatalf("ParseTime(%s) error %v; want %v", tc.js, err, tc.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("ParseTime(%s) location = %v; want UTC", tc.js, got.Location())
			}
			// (Not got.Sub(want): it saturates for times centuries apart.)
			if got.Before(tc.want.Add(-tc.tol)) || got.After(tc.want.Add(tc.tol)) {
				t.Errorf("ParseTime(%s) = %v; want %v (off by %v, tolerance %v)",
					tc.js, got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano), got.Sub(tc.want), tc.tol)
			}
		})
	}
}

// TestParseTimeNanosExact: an integral nanosecond epoch has 19 digits, more
// than float64 holds; the value must not be rounded to a multiple of 256 ns.
func TestParseTimeNanosExact(t *testing.T) {
	want := xtRef.Add(123456789)
	for _, js := range []string{`1700000000123456789`, `"1700000000123456789"`} {
		got, err := pipeline.ParseTime(gjson.Parse(js))
		if err != nil {
			t.Fatalf("ParseTime(%s) error %v", js, err)
		}
		if !got.Equal(want) {
			t.Errorf("ParseTime(%s) = %s; want %s (lost %v to float64 rounding)",
				js, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano), want.Sub(got))
		}
	}
}

func TestExtractor(t *testing.T) {
	fields := pipeline.FieldPaths{
		"id":   {"alertId", "id", "_id"},
		"ip":   {"device.ip", "ipv4", "ip"},
		"time": {"alertStarted", "startTime"},
		"name": {"name"},
		"deep": {"a.b.c"},
		"dup":  {"name"}, // shares a path with "name"
		"sev":  {"criticality", "severity.level"},
	}
	tests := []struct {
		name   string
		record string
		want   map[string]string // field → Raw; absent = zero Result
	}{
		{
			name:   "first path wins even when a later one comes first in the record",
			record: `{"_id":"c","id":"b","alertId":"a"}`,
			want:   map[string]string{"id": `"a"`},
		},
		{
			name:   "second path when the first is missing",
			record: `{"_id":"c","id":"b"}`,
			want:   map[string]string{"id": `"b"`},
		},
		{
			name:   "null values are skipped",
			record: `{"alertId":null,"id":null,"_id":7}`,
			want:   map[string]string{"id": `7`},
		},
		{
			name:   "all null gives zero",
			record: `{"alertId":null,"id":null,"_id":null,"name":null}`,
			want:   map[string]string{},
		},
		{
			name:   "nested path first in the list beats a top-level key",
			record: `{"ipv4":"10.0.0.2","ip":"10.0.0.3","device":{"ip":"10.0.0.1"}}`,
			want:   map[string]string{"ip": `"10.0.0.1"`},
		},
		{
			name:   "nested path null falls back to the next",
			record: `{"ip":"10.0.0.3","ipv4":"10.0.0.2","device":{"ip":null}}`,
			want:   map[string]string{"ip": `"10.0.0.2"`},
		},
		{
			name:   "nested path missing falls back",
			record: `{"device":{"name":"x"},"ip":"10.0.0.3"}`,
			want:   map[string]string{"ip": `"10.0.0.3"`},
		},
		{
			name:   "top-level key before a nested fallback",
			record: `{"severity":{"level":"High"},"criticality":"Low"}`,
			want:   map[string]string{"sev": `"Low"`},
		},
		{
			name:   "nested fallback when the top-level key is null",
			record: `{"criticality":null,"severity":{"level":"High"}}`,
			want:   map[string]string{"sev": `"High"`},
		},
		{
			name:   "deep dotted path",
			record: `{"a":{"b":{"c":[1,2]}}}`,
			want:   map[string]string{"deep": `[1,2]`},
		},
		{
			name:   "deep dotted path through a non-object",
			record: `{"a":{"b":5}}`,
			want:   map[string]string{},
		},
		{
			name:   "two fields share one path",
			record: `{"name":"pump 1"}`,
			want:   map[string]string{"name": `"pump 1"`, "dup": `"pump 1"`},
		},
		{
			name:   "object and array values are returned raw",
			record: `{"alertId":{"x":1},"alertStarted":[1,2]}`,
			want:   map[string]string{"id": `{"x":1}`, "time": `[1,2]`},
		},
		{
			name:   "false and zero are values, not absent",
			record: `{"alertId":0,"name":false}`,
			want:   map[string]string{"id": `0`, "name": `false`, "dup": `false`},
		},
		{
			name:   "duplicate key: the first occurrence, like gjson.Get",
			record: `{"name":"first","name":"second"}`,
			want:   map[string]string{"name": `"first"`, "dup": `"first"`},
		},
		{
			name:   "escaped key",
			record: `{"n\u0061me":"esc"}`,
			want:   map[string]string{"name": `"esc"`, "dup": `"esc"`},
		},
		{
			name:   "dotted key is not a nested path",
			record: `{"device.ip":"10.9.9.9"}`,
			want:   map[string]string{},
		},
		{name: "empty object", record: `{}`, want: map[string]string{}},
		{name: "array record", record: `[{"id":1}]`, want: map[string]string{}},
		{name: "string record", record: `"id"`, want: map[string]string{}},
		{name: "null record", record: `null`, want: map[string]string{}},
		{name: "empty record", record: ``, want: map[string]string{}},
	}
	x := pipeline.NewExtractor(fields)
	if x.Len() != len(fields) {
		t.Fatalf("Len() = %d; want %d", x.Len(), len(fields))
	}
	out := make([]gjson.Result, x.Len())
	rank := make([]int, x.Len())
	// Fill the buffers with a record that sets every field, to check that
	// Extract resets them.
	prime := `{"alertId":1,"device":{"ip":2},"alertStarted":3,"name":4,"a":{"b":{"c":5}},"criticality":6}`
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.Extract(gjson.Parse(prime), out, rank)
			x.Extract(gjson.Parse(tc.record), out, rank)
			for name := range fields {
				i := x.Index(name)
				if i < 0 {
					t.Fatalf("Index(%q) = -1", name)
				}
				got := out[i]
				want, ok := tc.want[name]
				if !ok {
					if got.Exists() || got.Raw != "" || got.Type != gjson.Null {
						t.Errorf("field %s = %q (type %v); want the zero Result", name, got.Raw, got.Type)
					}
					continue
				}
				if got.Raw != want {
					t.Errorf("field %s = %q; want %q", name, got.Raw, want)
				}
			}
		})
	}
}

func TestExtractorIndexPaths(t *testing.T) {
	fields := pipeline.FieldPaths{"b": {"x", "y.z"}, "a": {"q"}}
	x := pipeline.NewExtractor(fields)
	if got := x.Index("nope"); got != -1 {
		t.Errorf("Index(nope) = %d; want -1", got)
	}
	for name, paths := range fields {
		i := x.Index(name)
		if i < 0 || i >= x.Len() {
			t.Fatalf("Index(%q) = %d; want 0..%d", name, i, x.Len()-1)
		}
		if got := x.Paths(i); !reflect.DeepEqual(got, paths) {
			t.Errorf("Paths(Index(%q)) = %q; want %q", name, got, paths)
		}
	}
	// Stable indices: a second extractor over the same fields agrees.
	y := pipeline.NewExtractor(fields)
	for name := range fields {
		if x.Index(name) != y.Index(name) {
			t.Errorf("Index(%q) differs between extractors: %d vs %d", name, x.Index(name), y.Index(name))
		}
	}
}

func TestFieldPathsMerge(t *testing.T) {
	base := pipeline.FieldPaths{
		"id":   {"alertId", "id"},
		"time": {"alertStarted", "startTime"},
	}
	tests := []struct {
		name      string
		overrides map[string]string
		want      pipeline.FieldPaths
	}{
		{name: "nil", overrides: nil, want: base},
		{name: "empty", overrides: map[string]string{}, want: base},
		{
			name:      "replace the list with one path",
			overrides: map[string]string{"id": "custom.id"},
			want:      pipeline.FieldPaths{"id": {"custom.id"}, "time": {"alertStarted", "startTime"}},
		},
		{
			name:      "override to a path already in the list",
			overrides: map[string]string{"time": "startTime"},
			want:      pipeline.FieldPaths{"id": {"alertId", "id"}, "time": {"startTime"}},
		},
		{
			name:      "new field",
			overrides: map[string]string{"reason": "why"},
			want:      pipeline.FieldPaths{"id": {"alertId", "id"}, "time": {"alertStarted", "startTime"}, "reason": {"why"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := pipeline.FieldPaths{"id": {"alertId", "id"}, "time": {"alertStarted", "startTime"}}
			got := base.Merge(tc.overrides)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Merge(%v) = %v; want %v", tc.overrides, got, tc.want)
			}
			if !reflect.DeepEqual(base, before) {
				t.Errorf("Merge modified its receiver: %v; want %v", base, before)
			}
			got["extra"] = []string{"e"}
			if _, ok := base["extra"]; ok {
				t.Errorf("Merge result aliases the receiver map")
			}
		})
	}

	// The override is exact: the old fallbacks are no longer consulted.
	x := pipeline.NewExtractor(base.Merge(map[string]string{"id": "custom.id"}))
	out := make([]gjson.Result, x.Len())
	rank := make([]int, x.Len())
	x.Extract(gjson.Parse(`{"alertId":"a","custom":{"id":"c"}}`), out, rank)
	if got := out[x.Index("id")].Raw; got != `"c"` {
		t.Errorf("with override, id = %q; want %q", got, `"c"`)
	}
	x.Extract(gjson.Parse(`{"alertId":"a","id":"b"}`), out, rank)
	if got := out[x.Index("id")]; got.Exists() {
		t.Errorf("with override and custom.id absent, id = %q; want the zero Result (no fallback)", got.Raw)
	}
}

func TestStr(t *testing.T) {
	tests := []struct {
		js   string
		want string
	}{
		{`"abc"`, "abc"},
		{`""`, ""},
		{`"a\"b\\c\u00e9"`, `a"b\cé`},
		{`"  padded "`, "  padded "},
		{`42`, "42"},
		{`-1.5`, "-1.5"},
		{`1e3`, "1e3"},
		{`0`, "0"},
		{`true`, "true"},
		{`false`, "false"},
		{`null`, ""},
		{`{"a":1}`, ""},
		{`[1,2]`, ""},
		{``, ""}, // missing
	}
	for _, tc := range tests {
		if got := pipeline.Str(xtParse(tc.js)); got != tc.want {
			t.Errorf("Str(%s) = %q; want %q", tc.js, got, tc.want)
		}
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		js     string
		want   int
		wantOK bool
	}{
		{`42`, 42, true},
		{`0`, 0, true},
		{`-7`, -7, true},
		{`4.0`, 4, true},
		{`1e3`, 1000, true},
		{`1.5`, 0, false},
		{`9007199254740991`, 9007199254740991, true},
		{`9007199254740992`, 0, false}, // 2^53: not exact in float64
		{`1e20`, 0, false},
		{`"42"`, 42, true},
		{`" 42 "`, 42, true},
		{`"-3"`, -3, true},
		{`"4.0"`, 0, false},
		{`"0x10"`, 0, false},
		{`"abc"`, 0, false},
		{`""`, 0, false},
		{`"99999999999999999999999"`, 0, false},
		{`true`, 0, false},
		{`false`, 0, false},
		{`null`, 0, false},
		{`{"a":1}`, 0, false},
		{`[1]`, 0, false},
		{``, 0, false},
	}
	for _, tc := range tests {
		got, ok := pipeline.Int(xtParse(tc.js))
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Int(%s) = %d, %v; want %d, %v", tc.js, got, ok, tc.want, tc.wantOK)
		}
	}
}

// TestParseTimeDoesNotAllocate: timestamps are parsed for every record of
// every poll, re-read ones included; the common forms cost no allocation
// (an RFC 3339 string used to be offered to strconv.ParseFloat first, whose
// refusal allocated an error each time).
func TestParseTimeDoesNotAllocate(t *testing.T) {
	for _, js := range []string{`"2025-03-01T08:00:00.123Z"`, `"2025-03-01T08:00:00+01:00"`, `"1700000000123"`, `1700000000`} {
		r := gjson.Parse(js)
		if _, err := pipeline.ParseTime(r); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = pipeline.ParseTime(r) }); n != 0 {
			t.Errorf("%s: %.0f allocations, want 0", js, n)
		}
	}
}

// BenchmarkExtract pulls the fields the OT Security alert streams map out
// of two records shaped like the simulator's (one device alert, one
// Suricata alert, with quoted names in their messages).
func BenchmarkExtract(b *testing.B) {
	recs := []gjson.Result{
		gjson.Parse(`{"id":1043,"alertStarted":"2026-12-05T08:53:32.144Z","alertEnded":null,"criticality":"Severe","status":"new","type":"dev-offline","name":"Device offline","message":"Device offline: ABB AC500 PM5650 PLC-18 (192.168.10.98, 00:24:59:E3:9D:05) has not been seen on the network for longer than the configured inactivity threshold of 15 minutes.","reason":"Policy \"Device offline\" (criticality Severe) matched on sensor 10.40.172.172 at site 10.40.172.144; the PLC was observed at Purdue level 1 talking to 9 peers.","deviceId":1018,"deviceName":"PLC-18","ipv4":"192.168.10.98","mac":"00:24:59:E3:9D:05","vendor":"ABB","model":"AC500 PM5650","deviceType":"PLC","firmware":"3.5.0","os":"","purdueLevel":"1","siteIp":"10.40.172.144","sensorIp":"10.40.172.172","comment":""}`),
		gjson.Parse(`{"id":1046,"alertStarted":"2026-12-05T08:53:31.721Z","alertEnded":null,"criticality":"Medium","status":"acknowledged","type":"suricata","name":"ET SCAN Potential SSH Scan","signatureId":2001219,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","rev":7,"message":"Suricata rule 2001219 \"ET SCAN Potential SSH Scan\" fired for SSH traffic from PLC-15 (192.168.10.82) to SW-37 (192.168.10.194).","reason":"Classification: Attempted Information Leak; action: alert; rule set ET Open on sensor 10.40.172.172 at site 10.40.172.144.","srcIp":"192.168.10.82","srcPort":61193,"srcMac":"00:80:F4:E8:F1:7A","dstIp":"192.168.10.194","dstPort":22,"dstMac":"00:1B:54:45:E2:7F","protocol":"SSH","transport":"tcp","deviceId":1015,"deviceName":"PLC-15","siteIp":"10.40.172.144","sensorIp":"10.40.172.172","comment":""}`),
	}
	x := pipeline.NewExtractor(pipeline.FieldPaths{
		"id": {"id", "alertId"}, "time": {"alertStarted", "startTime"}, "ended": {"alertEnded"}, "name": {"name", "alertName"},
		"type": {"type"}, "status": {"status"}, "severity": {"criticality", "severity"}, "message": {"message", "description"},
		"reason": {"reason"}, "device_id": {"deviceId", "device.id"}, "device_name": {"deviceName", "device.name"},
		"ip": {"ipv4", "ip"}, "mac": {"mac"}, "vendor": {"vendor"}, "model": {"model"}, "device_type": {"deviceType"},
		"firmware": {"firmware"}, "os": {"os"}, "purdue_level": {"purdueLevel"}, "src_ip": {"srcIp"}, "src_port": {"srcPort"},
		"dst_ip": {"dstIp"}, "dst_port": {"dstPort"}, "protocol": {"protocol"}, "rule_id": {"signatureId"}, "rule_name": {"signature"},
	})
	out := make([]gjson.Result, x.Len())
	rank := make([]int, x.Len())
	msg := x.Index("message")
	b.SetBytes(int64(len(recs[0].Raw) + len(recs[1].Raw)))
	for b.Loop() {
		for _, r := range recs {
			x.Extract(r, out, rank)
			if out[msg].Str == "" {
				b.Fatal("no message")
			}
		}
	}
}
