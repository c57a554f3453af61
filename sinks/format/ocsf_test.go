package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decodeJSON decodes b keeping numbers as json.Number.
func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if d.More() {
		t.Fatalf("more than one JSON value in %s", b)
	}
	return m
}

// at returns the value at a dotted path ("evidences.0.file.name") as text,
// and whether it exists.
func at(v any, path string) (string, bool) {
	for p := range strings.SplitSeq(path, ".") {
		if p == "" {
			break
		}
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool, nil:
		return fmt.Sprint(x), true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

func ms(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// TestOCSF checks the class, activity and the main attributes of each test
// event's OCSF rendering (paths into the decoded JSON), plus the invariants
// every rendering keeps: valid JSON, type_uid = class_uid*100 + activity_id,
// the severity caption of severity_id, metadata.uid = event id, time.
func TestOCSF(t *testing.T) {
	const absent = "<absent>"
	tests := []struct {
		event string
		want  map[string]string
	}{
		{"device_alert", map[string]string{
			"class_uid": "2004", "category_uid": "2", "activity_id": "1", "severity_id": "4", "status_id": "1",
			"status": "New", "is_alert": "true", "start_time": ms("2026-11-23T10:00:00.123456789Z"),
			"finding_info.uid": "a-1001", "finding_info.title": "Unauthorized device",
			"finding_info.desc": "Unauthorized device PLC-7 joined the network", "finding_info.types.0": "dev-unauthorized",
			"device.uid": "d-77", "device.ip": "10.0.2.17", "device.mac": "00:1d:9c:aa:bb:cc", "device.type_id": "99",
			"device.type": "PLC", "device.vendor_name": "Rockwell", "device.model": "1756-L73", "device.os.name": "VxWorks",
			"evidences.0.src_endpoint.ip": "10.0.2.17", "evidences.0.dst_endpoint.ip": "10.0.2.1",
			"evidences.0.dst_endpoint.port": "44818", "evidences.0.connection_info.protocol_name": "tcp",
			"metadata.product.name": "MetaDefender OT Security", "metadata.product.vendor_name": "OPSWAT",
			"metadata.correlation_uid": "plant-a/ot.device_alert/a-1001", "metadata.profiles.0": "host",
			"metadata.logged_time": ms("2026-11-23T10:02:00.123456789Z"), "metadata.event_code": "ot.device_alert",
			"unmapped.seq": "41", "unmapped.revision": "0", "unmapped.stream": "plant-a/10.0.0.5/10.0.1.7/device_alerts",
			"unmapped.device.firmware": "33.011", "unmapped.alert.reason": "MAC not in baseline",
			"unmapped.network.protocol": "ENIP", "raw_data": absent, "unmapped.raw": absent,
			"unmapped.alert.status": absent, "unmapped.device.type": absent,
		}},
		{"conn_alert", map[string]string{
			"class_uid": "2004", "activity_id": "1", "status_id": "2", "status": "In Progress",
			"end_time": ms("2026-11-23T10:01:30.123456789Z"), "evidences.0.src_endpoint.port": "50432",
			"evidences.0.dst_endpoint.mac": "00:1d:9c:aa:bb:cc", "device.name": "HMI-2", "severity": "Medium",
			"unmapped.alert.status": "acknowledged",
		}},
		{"suricata_alert", map[string]string{
			"class_uid": "2004", "severity_id": "5", "severity": "Critical", "finding_info.uid": "s-3003",
			"finding_info.title":        "ET EXPLOIT Modbus write to coil",
			"finding_info.types.0":      "Attempted Administrator Privilege Gain",
			"finding_info.analytic.uid": "2029145", "finding_info.analytic.type_id": "1",
			"evidences.0.src_endpoint.ip": "203.0.113.9", "device": absent, "metadata.profiles": absent,
		}},
		{"device", map[string]string{
			"class_uid": "5001", "category_uid": "5", "activity_id": "2", "activity_name": "Collect",
			"type_uid": "500102", "severity_id": "1", "severity": "Informational", "device.uid": "d-77",
			"device.name": "PLC-7", "unmapped.device.action": "added", "unmapped.device.purdue_level": "1",
			"unmapped.device.site": "Line 3",
		}},
		{"cve", map[string]string{
			"class_uid": "2002", "category_uid": "2", "activity_id": "1", "finding_info.uid": "d-77/CVE-2022-1161",
			"finding_info.title": "CVE-2022-1161", "vulnerabilities.0.cve.uid": "CVE-2022-1161",
			"vulnerabilities.0.cve.cvss.0.base_score": "9.8", "vulnerabilities.0.cve.cvss.0.version": "3.1",
			"vulnerabilities.0.cve.cvss.0.vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
			"vulnerabilities.0.desc":                     "Logix controllers allow modified code to be executed",
			"vulnerabilities.0.severity":                 "Critical", "device.ip": "10.0.2.17",
		}},
		{"revision", map[string]string{
			"class_uid": "2004", "activity_id": "3", "activity_name": "Close", "type_uid": "200403", "status_id": "4",
			"is_alert": absent, "unmapped.revision": "2", "unmapped.changes.status.new": "resolved",
			"unmapped.changes.alertEnded.old": "<nil>",
		}},
		{"awkward", map[string]string{
			"message":               "pipe | backslash \\ equals = newline\nreturn\rtab\tquote \" ünïcödé ✓ 中文 \u2028 end",
			"metadata.uid":          `id|with\pipe=eq`,
			"metadata.product.name": "odd|product\\name", "unmapped.stream": "s\tx",
			"unmapped.device.site": "Zürich \"north\" hall", "unmapped.device.firmware": "v1\nv2",
			"finding_info.uid": `id|with\pipe=eq`, "evidences": absent, "unmapped.rule": absent,
			"metadata.correlation_uid": "inst=1 two/ot.device_alert/10.0.2.99",
		}},
		{"mdss_file", map[string]string{
			"class_uid": "2004", "severity_id": "4", "finding_info.uid": "file-9a8b", "finding_info.types.0": "Infected",
			"evidences.0.file.name": "invoice.pdf.exe", "evidences.0.file.path": `\\fs01\finance\in\invoice.pdf.exe`,
			"evidences.0.file.size": "482113", "evidences.0.file.hashes.0.algorithm_id": "1",
			"evidences.0.file.hashes.2.value": "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
			"malware.0.name":                  "Trojan.GenericKD.4711", "malware.1.name": "Win32/Agent.XYZ",
			"metadata.product.name": "MetaDefender Storage Security", "unmapped.file.verdict": "Blocked",
			"unmapped.file.engines.detected": "5", "unmapped.scan.id": "scan-77",
		}},
		{"mdss_scan", map[string]string{
			"class_uid": "6007", "category_uid": "6", "activity_id": "2", "type_uid": "600702", "status_id": "1",
			"scan.uid": "scan-77", "scan.name": "Nightly finance", "num_files": "1520", "num_detections": "1",
			"start_time": ms("2026-11-23T08:00:00Z"), "end_time": ms("2026-11-23T09:59:00Z"),
			"unmapped.scan.storage": "finance-share", "unmapped.scan.blocked": "1",
		}},
		{"patch_request", map[string]string{
			"class_uid": "0", "activity_id": "99", "activity_name": "ot.patch_request", "type_uid": "99",
			"unmapped.patch.requested_by": "j.doe@plant.example", "unmapped.changes.status.old": "pending",
			"metadata.correlation_uid": "plant-a/ot.patch_request/pr-55",
		}},
		{"heartbeat", map[string]string{
			"class_uid": "0", "severity_id": "3", "unmapped.heartbeat.gaps": "2",
			"unmapped.heartbeat.last_error": "GET /api/v1/alerts: 503 Service Unavailable",
		}},
		{"unknown_kind", map[string]string{
			"class_uid": "0", "severity_id": "2", "unmapped.severity": "unusual", "unmapped.tenant": "acme",
			"unmapped.flags.1": "b=c", "unmapped.widget.limits.high": "9|9", "unmapped.widget.history.1.v": "y",
			"unmapped.widget.none": absent, "unmapped.widget.empty": absent, "unmapped.widget.tags": absent,
			"message": absent, "metadata.correlation_uid": absent,
		}},
	}
	events := eventFiles(t)
	f, err := New(OCSF)
	if err != nil {
		t.Fatal(err)
	}
	if !f.JSON() {
		t.Error("ocsf: JSON() = false")
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.event] = true
		t.Run(tt.event, func(t *testing.T) {
			data, ok := events[tt.event]
			if !ok {
				t.Fatalf("no testdata/events/%s.json", tt.event)
			}
			out, err := f.Append(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
			got := decodeJSON(t, out)
			in := decodeJSON(t, data)
			checkOCSFInvariants(t, in, got)
			for path, want := range tt.want {
				g, ok := at(got, path)
				switch {
				case want == absent && ok:
					t.Errorf("%s = %q, want it absent", path, g)
				case want != absent && (!ok || g != want):
					t.Errorf("%s = %q (present %v), want %q", path, g, ok, want)
				}
			}
			if t.Failed() {
				t.Logf("rendering: %s", out)
			}
		})
	}
	for name := range events {
		if !seen[name] {
			t.Errorf("testdata/events/%s.json has no case in TestOCSF", name)
		}
	}
}

func checkOCSFInvariants(t testing.TB, in, got map[string]any) {
	t.Helper()
	num := func(path string) int {
		s, ok := at(got, path)
		if !ok {
			t.Fatalf("%s is missing", path)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s = %q: %v", path, s, err)
		}
		return n
	}
	if c, a, tu := num("class_uid"), num("activity_id"), num("type_uid"); tu != c*100+a {
		t.Errorf("type_uid %d, want class_uid*100+activity_id = %d", tu, c*100+a)
	}
	num("category_uid")
	sev := num("severity_id")
	if s, _ := at(got, "severity"); sev < 0 || sev > 5 || s != ocsfSeverities[sev] {
		t.Errorf("severity %q for severity_id %d", s, sev)
	}
	id, _ := at(in, "id")
	if g, _ := at(got, "metadata.uid"); g != id {
		t.Errorf("metadata.uid = %q, want the event id %q", g, id)
	}
	tm, _ := at(in, "time")
	if g, _ := at(got, "time"); g != ms(tm) {
		t.Errorf("time = %s, want %s", g, ms(tm))
	}
	if g, _ := at(got, "metadata.original_time"); g != tm {
		t.Errorf("metadata.original_time = %q, want %q", g, tm)
	}
	if g, _ := at(got, "metadata.version"); g != ocsfVersion {
		t.Errorf("metadata.version = %q", g)
	}
}

// TestOCSFCarriesEveryField checks that every scalar of every block of
// every test event is somewhere in its OCSF rendering (as text, in lower
// case, or as milliseconds for a time), and that the raw record is not.
func TestOCSFCarriesEveryField(t *testing.T) {
	f, _ := New(OCSF)
	for name, data := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			out, err := f.Append(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			values := ocsfValues(decodeJSON(t, out))
			checkCarried(t, data, values, string(out))
		})
	}
}

// ocsfValues returns the text of every scalar in a decoded rendering, and
// of every array as its joined scalars and as JSON.
func ocsfValues(v any) []string {
	var values []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			var parts []string
			for _, e := range x {
				walk(e)
				if s, ok := at(e, ""); ok {
					parts = append(parts, s)
				}
			}
			values = append(values, strings.Join(parts, ","))
			b, _ := json.Marshal(x)
			values = append(values, string(b))
		default:
			s, _ := at(x, "")
			values = append(values, s)
		}
	}
	walk(v)
	return values
}
