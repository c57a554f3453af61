package otsec

import (
	"unsafe"

	"math"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

func testPoller(mutate func(*Config)) *Poller {
	cfg := DefaultConfig()
	cfg.URL, cfg.Token = "https://em.example:3003", "t"
	if mutate != nil {
		mutate(&cfg)
	}
	return &Poller{name: "p", cfg: cfg, log: zap.NewNop(), publicURL: cfg.URL, bodies: pipeline.NewBufferPool(1, 1<<20)}
}

func TestCVSSSeverity(t *testing.T) {
	for _, c := range []struct {
		score any // nil: none
		sev   string
		n     int
	}{
		{nil, "info", 1}, {0.0, "info", 1}, {0.1, "low", 3}, {3.9, "low", 3}, {4.0, "medium", 5}, {6.9, "medium", 5},
		{7.0, "high", 7}, {8.9, "high", 7}, {9.0, "critical", 9}, {10.0, "critical", 9},
	} {
		var p *float64
		if c.score != nil {
			f := c.score.(float64)
			p = &f
		}
		if sev, n := CVSSSeverity(p); sev != c.sev || n != c.n {
			t.Errorf("CVSSSeverity(%v) = %s %d, want %s %d", c.score, sev, n, c.sev, c.n)
		}
	}
}

func TestParseCVSS(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{`9.8`, 9.8, true}, {`"7.5"`, 7.5, true}, {`" 5.9 (Medium)"`, 5.9, true}, {`10`, 10, true}, {`0`, 0, true},
		{`8.149999`, 8.1, true}, {`11`, 0, false}, {`-1`, 0, false}, {`"high"`, 0, false}, {`""`, 0, false},
		{`null`, 0, false}, {`{"baseScore":9}`, 0, false}, {`"."`, 0, false}, {`true`, 0, false},
	} {
		got, ok := parseCVSS(gjson.Parse(c.in))
		if ok != c.ok || got != c.want {
			t.Errorf("parseCVSS(%s) = %v %v, want %v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestSetRecordKeys(t *testing.T) {
	p := testPoller(nil)
	cases := []struct {
		stream, item, key, err string
	}{
		{StreamDevices, `{"id":17,"mac":"aa:bb","ipv4":"10.0.0.1"}`, "id:17", ""},
		{StreamDevices, `{"mac":"aa:bb:cc:dd:ee:ff","ipv4":"10.0.0.1"}`, "mac:AA:BB:CC:DD:EE:FF", ""},
		{StreamDevices, `{"ipv4":"10.0.0.1","discovTime":1700000000000}`, "ip:10.0.0.1", ""},
		{StreamDevices, `{"name":"x"}`, "", "fields.devices.id"},
		{StreamDevices, `{"id":1,"discovTime":"yesterday"}`, "", "fields.devices.time"},
		{StreamCVEs, `{"id":5,"deviceId":17,"cveId":"CVE-2021-22681"}`, "id:17/CVE-2021-22681", ""},
		{StreamCVEs, `{"mac":"aa","cve":"CVE-1"}`, "mac:AA/CVE-1", ""},
		{StreamCVEs, `{"deviceId":17}`, "", "fields.cves.device_id or .cve"},
		{StreamPatchRequests, `{"id":3,"status":"pending"}`, "3", ""},
		{StreamPatchRequests, `{"status":"pending"}`, "", "fields.patch_requests.id"},
		{StreamPatchRequests, `[1]`, "", "not an object"},
	}
	for _, c := range cases {
		s := newSetStream(p, c.stream, "10.0.0.5", "10.0.0.6", 0)
		recs, err := s.records([]gjson.Result{gjson.Parse(c.item)})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: error %v, want one naming %s", c.stream, c.item, err, c.err)
			}
			continue
		}
		if err != nil || len(recs) != 1 || recs[0].Key != c.key {
			t.Errorf("%s %s: %v %v, want key %s", c.stream, c.item, recs, err, c.key)
		}
	}
	// Volatile keys do not change the hash; anything else does.
	s := newSetStream(p, StreamDevices, "a", "b", 0)
	h := func(item string) uint64 {
		recs, err := s.records([]gjson.Result{gjson.Parse(item)})
		if err != nil {
			t.Fatal(err)
		}
		return recs[0].Hash
	}
	if h(`{"id":1,"ipv4":"1","lastSeen":1}`) != h(`{"id":1,"ipv4":"1","lastSeen":2}`) ||
		h(`{"id":1,"ipv4":"1"}`) == h(`{"id":1,"ipv4":"2"}`) {
		t.Error("the content hash does not skip exactly the volatile keys")
	}
	// A key listed twice is taken once, as first listed (newest first), and
	// the records come out oldest first.
	recs, _ := s.records([]gjson.Result{gjson.Parse(`{"id":2}`), gjson.Parse(`{"id":1,"ipv4":"b"}`), gjson.Parse(`{"id":1,"ipv4":"a"}`)})
	if len(recs) != 2 || recs[0].Key != "id:1" || !strings.Contains(string(recs[0].Raw), `"b"`) {
		t.Errorf("records = %v", recs)
	}
}

func TestSetMessages(t *testing.T) {
	p := testPoller(nil)
	dev := newSetStream(p, StreamDevices, "s", "n", 0)
	old := `{"id":1,"name":"PLC-01","ipv4":"10.0.0.1","mac":"aa","vendor":"Siemens","model":"S7","firmware":"1","lastSeen":1}`
	now := `{"id":1,"name":"PLC-01","ipv4":"10.0.0.2","mac":"aa","vendor":"Siemens","model":"S7","firmware":"2","lastSeen":2}`
	for _, c := range []struct{ action, raw, want string }{
		{pipeline.ActionAdded, old, "Device added: PLC-01 (10.0.0.1, aa, Siemens S7)"},
		{pipeline.ActionChanged, now, "Device changed: PLC-01 (10.0.0.2, aa, Siemens S7): firmware, ipv4"},
		{pipeline.ActionRemoved, old, "Device removed: PLC-01 (10.0.0.1, aa, Siemens S7)"},
		{pipeline.ActionRemoved, `{}`, "Device removed: 1"},
	} {
		rec := &pipeline.Record{Key: "id:1", Raw: []byte(c.raw), Action: c.action}
		if c.action == pipeline.ActionChanged {
			withPrevious(rec, old)
		}
		if err := dev.build(rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event.Message != c.want || rec.Event.Device.Action != c.action || rec.Event.Device.ID != "1" {
			t.Errorf("%s: message %q device %+v, want %q", c.action, rec.Event.Message, rec.Event.Device, c.want)
		}
	}
	// The previous revision has left the journal: the change is still
	// reported, without field names.
	rec := &pipeline.Record{Key: "id:9", Raw: []byte(`{"id":9,"name":"X"}`), Action: pipeline.ActionChanged}
	_ = dev.build(rec)
	if rec.Event.Message != "Device changed: X" {
		t.Errorf("message %q", rec.Event.Message)
	}

	pr := newSetStream(p, StreamPatchRequests, "s", "n", 0)
	pending := `{"id":3,"status":"pending","deviceName":"PLC-01","firmwareFrom":"1","firmwareTo":"2","requestedBy":"j.doe","createdAt":"2026-11-01T00:00:00Z","updatedAt":"2026-11-01T00:00:00Z"}`
	approved := strings.Replace(strings.Replace(pending, "pending", "approved", 1), `"updatedAt":"2026-11-01T00:00:00Z"`, `"updatedAt":"2026-11-02T00:00:00Z"`, 1)
	rec = &pipeline.Record{Key: "3", Raw: []byte(pending), Action: pipeline.ActionAdded, Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	_ = pr.build(rec)
	if want := "Patch request 3 for PLC-01: 1 -> 2 (pending, requested by j.doe)"; rec.Event.Message != want {
		t.Errorf("message %q, want %q", rec.Event.Message, want)
	}
	rec = &pipeline.Record{Key: "3", Raw: []byte(approved), Action: pipeline.ActionChanged, Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	withPrevious(rec, pending)
	_ = pr.build(rec)
	if want := "Patch request 3 for PLC-01: 1 -> 2, status pending -> approved"; rec.Event.Message != want {
		t.Errorf("message %q, want %q", rec.Event.Message, want)
	}
	if !rec.Event.Time.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) || rec.Event.Severity != "info" {
		t.Errorf("revision time %v severity %s, want the update time, info", rec.Event.Time, rec.Event.Severity)
	}

	cv := newSetStream(p, StreamCVEs, "s", "n", 0)
	rec = &pipeline.Record{Key: "id:1/CVE-1", Raw: []byte(`{"deviceId":1,"deviceName":"PLC-01","cveId":"CVE-1","cvss":"9.8"}`), Action: pipeline.ActionAdded}
	_ = cv.build(rec)
	if e := rec.Event; e.Message != "CVE-1 (CVSS 9.8) on PLC-01" || e.Severity != "critical" || e.SeverityScore != 9 || e.Device.ID != "1" {
		t.Errorf("CVE event %q %s %d %+v", e.Message, e.Severity, e.SeverityScore, e.Device)
	}
	rec = &pipeline.Record{Key: "id:1/CVE-2", Raw: []byte(`{"deviceId":1,"cveId":"CVE-2"}`), Action: pipeline.ActionAdded}
	_ = cv.build(rec)
	if e := rec.Event; e.Message != "CVE-2 on 1" || e.Severity != "info" || e.Vulnerability.CVSS != nil {
		t.Errorf("CVE event without CVSS: %q %s %+v", e.Message, e.Severity, e.Vulnerability)
	}
}

// withPrevious does what the runner does before Normalize for a record
// whose earlier revision is in the journal.
func withPrevious(rec *pipeline.Record, old string) {
	rec.Previous = []byte(old)
	rec.Changes = pipeline.DiffRecords([]byte(old), rec.Raw)
	for k := range volatileKeys {
		delete(rec.Changes, k)
	}
}

func TestConfigSetStreamKeys(t *testing.T) {
	valid := func(mutate func(*Config)) error {
		c := DefaultConfig()
		c.URL, c.Token = "https://em.example:3003", "t"
		mutate(&c)
		return c.Validate()
	}
	for _, c := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"all streams", func(c *Config) { c.Streams = SupportedStreams }, ""},
		{"twice", func(c *Config) { c.Streams = []string{StreamCVEs, StreamCVEs} }, `streams[1]: stream "cves" is listed twice`},
		{"remove_after", func(c *Config) { c.RemoveAfter = -time.Second }, "remove_after: must not be negative"},
		{"remove_after 0", func(c *Config) { c.RemoveAfter = 0 }, ""},
		{"heartbeat", func(c *Config) { c.Heartbeat = 10 * time.Millisecond }, "heartbeat: must be 0 (off) or at least 1s"},
		{"heartbeat on", func(c *Config) { c.Heartbeat = 10 * time.Second }, ""},
		{"site ids", func(c *Config) {
			c.Sites = []Site{{SiteIP: "a", SensorIP: "1", SiteID: 1}, {SiteIP: "a", SensorIP: "2", SiteID: 1}, {SiteIP: "b", SensorIP: "3"}}
		}, ""},
		{"site id differs", func(c *Config) {
			c.Sites = []Site{{SiteIP: "a", SensorIP: "1", SiteID: 1}, {SiteIP: "a", SensorIP: "2", SiteID: 2}}
		}, "sites[1].site_id: site a is listed with site_id 1 and 2"},
		{"site id reused", func(c *Config) {
			c.Sites = []Site{{SiteIP: "a", SensorIP: "1", SiteID: 1}, {SiteIP: "b", SensorIP: "2", SiteID: 1}}
		}, "sites[1].site_id: site_id 1 is already the id of site a"},
		{"site id negative", func(c *Config) { c.Sites = []Site{{SiteIP: "a", SensorIP: "1", SiteID: -1}} }, "sites[0].site_id: must be a positive"},
		{"cve fields", func(c *Config) {
			c.Fields = map[string]map[string]string{StreamCVEs: {"cvss": "score.base", "cve": "cve"}}
		}, ""},
		{"patch fields", func(c *Config) {
			c.Fields = map[string]map[string]string{StreamPatchRequests: {"status": "state", "firmware_to": "to"}}
		}, ""},
		{"field of another stream", func(c *Config) { c.Fields = map[string]map[string]string{StreamCVEs: {"firmware_to": "x"}} }, "fields.cves.firmware_to: unknown field"},
		{"empty path", func(c *Config) { c.Fields = map[string]map[string]string{StreamDevices: {"id": " "}} }, "fields.devices.id: must be a field path"},
	} {
		err := valid(c.mutate)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if got := OverridableFields(StreamCVEs); !strings.Contains(strings.Join(got, ","), "cvss_vector") {
		t.Errorf("OverridableFields(cves) = %v", got)
	}
}

// FuzzSetRecord: any JSON list item either fails with an error or becomes a
// record with a key whose event builds for every action, with a CVSS only in
// 0–10 and the severity its mapping gives.
func FuzzSetRecord(f *testing.F) {
	for _, s := range []string{
		`{"id":17,"name":"PLC","ipv4":"10.0.0.1","mac":"aa","discovTime":"2026-11-01T00:00:00.123Z","lastSeen":1}`,
		`{"id":5,"deviceId":17,"cveId":"CVE-2021-22681","cvss":10,"cvssVector":"CVSS:3.1/AV:N","firstSeen":1700000000000}`,
		`{"deviceId":"x","cve":"CVE-1","cvss":"9.8 (Critical)"}`, `{"mac":"a","cve":"c","cvss":1e308}`,
		`{"id":3,"status":"approved","firmwareFrom":"1","firmwareTo":"2","createdAt":1,"updatedAt":"bad"}`,
		`{"id":{"a":1}}`, `{"id":null,"mac":[],"ipv4":""}`, `[]`, `"x"`, `{}`, `{"cvss":"-0"}`, `{"id":1,"discovTime":-1e20}`,
	} {
		for _, stream := range []string{StreamDevices, StreamCVEs, StreamPatchRequests} {
			f.Add(stream, s)
		}
	}
	p := testPoller(nil)
	streams := map[string]*setStream{}
	for _, name := range []string{StreamDevices, StreamCVEs, StreamPatchRequests} {
		streams[name] = newSetStream(p, name, "s", "n", 0)
	}
	f.Fuzz(func(t *testing.T, stream, item string) {
		s := streams[stream]
		if s == nil || !gjson.Valid(item) {
			return // list items come from a body DecodeEnvelope checked
		}
		recs, err := s.records([]gjson.Result{gjson.Parse(item)})
		if err != nil {
			if recs != nil {
				t.Fatalf("records with an error")
			}
			return
		}
		if len(recs) != 1 || recs[0].Key == "" {
			t.Fatalf("%s %s: records %v", stream, item, recs)
		}
		raw := []byte(item)
		for _, action := range []string{pipeline.ActionAdded, pipeline.ActionChanged, pipeline.ActionRemoved} {
			rec := pipeline.Record{Key: recs[0].Key, Time: recs[0].Time, Hash: recs[0].Hash, Raw: raw, Action: action}
			if action == pipeline.ActionChanged {
				withPrevious(&rec, `{"status":"old","id":1}`)
			}
			if err := s.build(&rec); err != nil || rec.Event == nil {
				t.Fatalf("%s %s %s: %v", stream, item, action, err)
			}
			ev := rec.Event
			if ev.Kind != s.spec.kind || ev.Message == "" {
				t.Fatalf("%s %s: kind %s message %q", stream, item, ev.Kind, ev.Message)
			}
			if v := ev.Vulnerability; v != nil {
				if v.CVSS != nil && (math.IsNaN(*v.CVSS) || *v.CVSS < 0 || *v.CVSS > 10) {
					t.Fatalf("CVSS %v", *v.CVSS)
				}
				if sev, n := CVSSSeverity(v.CVSS); ev.Severity != sev || ev.SeverityScore != n {
					t.Fatalf("severity %s %d for CVSS %v", ev.Severity, ev.SeverityScore, v.CVSS)
				}
			}
			if _, err := pipeline.AppendEvent(nil, ev); err != nil {
				t.Fatalf("%s %s: event does not encode: %v", stream, item, err)
			}
		}
	})
}

// TestSetRecordKeysOutliveTheBody: the runner keeps a set stream's keys
// while the record is in the set, but the body they were read from goes
// back to the pool after the poll and is overwritten by the next answer.
// Every key must be a copy, not a view into the body.
func TestSetRecordKeysOutliveTheBody(t *testing.T) {
	p := testPoller(nil)
	for _, c := range []struct{ stream, item, key string }{
		{StreamDevices, `{"id":17,"mac":"aa:bb","ipv4":"10.0.0.1"}`, "id:17"},
		{StreamCVEs, `{"deviceId":17,"cveId":"CVE-2021-22681"}`, "id:17/CVE-2021-22681"},
		{StreamPatchRequests, `{"id":3141,"status":"pending"}`, "3141"},
		{StreamPatchRequests, `{"id":"PR-77","status":"pending"}`, "PR-77"},
	} {
		body := []byte(c.item)
		s := newSetStream(p, c.stream, "10.0.0.5", "10.0.0.6", 0)
		recs, err := s.records([]gjson.Result{gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))})
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s %s: %v %v", c.stream, c.item, recs, err)
		}
		for i := range body {
			body[i] = 'X' // the next answer lands in the same buffer
		}
		if recs[0].Key != c.key {
			t.Errorf("%s: key %q after the body was reused, want %q", c.stream, recs[0].Key, c.key)
		}
	}
}
