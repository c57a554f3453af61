package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/mdbridge/mdbridge/pipeline"
)

// ocsfFormat renders an event as one OCSF 1.3 JSON object: alerts and
// MDSS file verdicts as Detection Finding (2004), OT devices as Device
// Inventory Info (5001), device CVEs as Vulnerability Finding (2002), MDSS
// scans as Scan Activity (6007) and anything else (patch requests,
// heartbeats, kinds added later) as Base Event (0). Fields without an OCSF
// attribute, and source words that an OCSF caption replaced (an alert
// status "acknowledged" shown as "In Progress"), go to `unmapped` under
// their schema-v1 names. The mapping of every field is in README.md.
type ocsfFormat struct{}

func (ocsfFormat) Name() string { return OCSF }
func (ocsfFormat) JSON() bool   { return true }

func (ocsfFormat) Append(dst, data []byte) ([]byte, error) {
	var ev event
	if err := ev.decode(data); err != nil {
		return dst, fmt.Errorf("ocsf: %w", err)
	}
	return appendOCSF(dst, &ev), nil
}

// ocsfVersion is the OCSF schema version written in metadata.version.
const ocsfVersion = "1.3.0"

// ocsfClass is an OCSF event class.
type ocsfClass struct {
	uid      int
	name     string
	category int
	catName  string
}

var (
	classBase          = ocsfClass{0, "Base Event", 0, ""}
	classVulnerability = ocsfClass{2002, "Vulnerability Finding", 2, "Findings"}
	classDetection     = ocsfClass{2004, "Detection Finding", 2, "Findings"}
	classInventory     = ocsfClass{5001, "Device Inventory Info", 5, "Discovery"}
	classScan          = ocsfClass{6007, "Scan Activity", 6, "Application Activity"}
)

// ocsfClassOf picks the class for a kind.
func ocsfClassOf(kind string) ocsfClass {
	switch kind {
	case pipeline.KindDevice:
		return classInventory
	case pipeline.KindCVE:
		return classVulnerability
	case pipeline.KindMDSSScan:
		return classScan
	case pipeline.KindMDSSFile:
		return classDetection
	}
	if strings.HasSuffix(kind, "_alert") {
		return classDetection
	}
	return classBase
}

// OCSF severity_id captions, by id.
var ocsfSeverities = [...]string{"Unknown", "Informational", "Low", "Medium", "High", "Critical"}

// ocsfSeverity maps the event's severity to a severity_id; an unknown name
// falls back to the score.
func ocsfSeverity(name string, score int) int {
	switch name {
	case pipeline.SeverityInfo:
		return 1
	case pipeline.SeverityLow:
		return 2
	case pipeline.SeverityMedium:
		return 3
	case pipeline.SeverityHigh:
		return 4
	case pipeline.SeverityCritical:
		return 5
	}
	switch {
	case score <= 0:
		return 0
	case score <= 2:
		return 1
	case score <= 4:
		return 2
	case score <= 6:
		return 3
	case score <= 8:
		return 4
	}
	return 5
}

// findingStatus maps an alert status to a finding status_id and caption;
// 99 (Other) keeps the source's own word.
func findingStatus(s string) (int, string) {
	eq := func(words ...string) bool {
		for _, w := range words {
			if strings.EqualFold(s, w) {
				return true
			}
		}
		return false
	}
	switch {
	case eq("new", "open", "active"):
		return 1, "New"
	case eq("acknowledged", "in progress", "in_progress", "investigating", "assigned"):
		return 2, "In Progress"
	case eq("suppressed", "ignored", "muted", "dismissed", "false positive", "false_positive"):
		return 3, "Suppressed"
	case eq("resolved", "closed", "fixed", "remediated"):
		return 4, "Resolved"
	case eq("archived"):
		return 5, "Archived"
	}
	return 99, s
}

// scanActivities maps MDSS scan statuses (any case) to a Scan Activity
// activity_id and caption, and a status_id (1 Success, 2 Failure, 0
// Unknown).
var scanActivities = []struct {
	words    []string
	id       int
	caption  string
	statusID int
}{
	{[]string{"completed", "finished", "done"}, 2, "Completed", 1},
	{[]string{"cancelled", "canceled", "stopped", "aborted"}, 3, "Cancelled", 0},
	{[]string{"failed", "error"}, 6, "Error", 2},
	{[]string{"started", "running", "in progress", "inprogress"}, 1, "Started", 0},
	{[]string{"paused"}, 7, "Paused", 0},
}

// scanActivity maps an MDSS scan status; an unknown one is 99 (Other) with
// the status as its caption.
func scanActivity(s string) (int, string, int) {
	if s == "" {
		return 0, "Unknown", 0
	}
	for _, a := range scanActivities {
		for _, w := range a.words {
			if strings.EqualFold(s, w) {
				return a.id, a.caption, a.statusID
			}
		}
	}
	return 99, s, 0
}

// deviceTypes are the OCSF device type_id captions, by id, with the other
// words that mean the same type.
var deviceTypes = []struct {
	id      int
	caption string
	alias   string
}{
	{1, "Server", ""}, {2, "Desktop", "workstation"}, {3, "Laptop", ""}, {4, "Tablet", ""},
	{5, "Mobile", "phone"}, {6, "Virtual", ""}, {7, "IOT", ""}, {8, "Browser", ""},
}

// deviceType maps the device's own type to a type_id and caption; an
// unknown one is 99 (Other) with the device's word as caption.
func deviceType(s string) (int, string) {
	if s == "" {
		return 0, "Unknown"
	}
	for _, t := range deviceTypes {
		if strings.EqualFold(s, t.caption) || t.alias != "" && strings.EqualFold(s, t.alias) {
			return t.id, t.caption
		}
	}
	return 99, s
}

// jw writes a JSON object without reflection, deciding commas itself.
type jw struct {
	b     []byte
	comma bool
}

func (w *jw) k(key string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, key...)
	w.b = append(w.b, '"', ':')
	w.comma = true
}

// kEvent starts a member whose key is taken from the event.
func (w *jw) kEvent(key string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = appendJSONKey(w.b, key)
	w.comma = true
}

func (w *jw) open(key string) {
	w.k(key)
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jw) openArray(key string) {
	w.k(key)
	w.b = append(w.b, '[')
	w.comma = false
}

// elem starts an object inside an array.
func (w *jw) elem() {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jw) close()      { w.b = append(w.b, '}'); w.comma = true }
func (w *jw) closeArray() { w.b = append(w.b, ']'); w.comma = true }

func (w *jw) int(key string, v int64) {
	w.k(key)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// str writes text as a JSON string; nothing when it is empty.
func (w *jw) str(key, s string) {
	if s == "" {
		return
	}
	w.k(key)
	w.b = appendJSONString(w.b, s)
}

// raw writes a raw JSON value from the event; nothing when it is empty or
// null. It reports whether it wrote.
func (w *jw) raw(key, raw string) bool {
	if empty(raw) {
		return false
	}
	w.k(key)
	w.b = appendJSONValue(w.b, raw)
	return true
}

// rawString writes a raw value as a JSON string (a number becomes its
// text).
func (w *jw) rawString(key, raw string) bool {
	if empty(raw) {
		return false
	}
	w.k(key)
	if raw[0] == '"' {
		w.b = appendJSONValue(w.b, raw)
	} else {
		w.b = appendJSONString(w.b, raw)
	}
	return true
}

// rawNumber writes a raw value that should be a number; one that is not
// becomes a string.
func (w *jw) rawNumber(key, raw string) bool {
	if empty(raw) {
		return false
	}
	w.k(key)
	if isJSONNumber(raw) {
		w.b = append(w.b, raw...)
	} else {
		w.b = appendJSONString(w.b, text(raw))
	}
	return true
}

func appendOCSF(dst []byte, ev *event) []byte {
	var used [numFields]bool
	kind := text(ev.kind)
	cls := ocsfClassOf(kind)
	sevID := ocsfSeverity(text(ev.severity), ev.score)

	activity, activityName := 99, kind
	statusID, status := 0, ""
	switch cls {
	case classDetection, classVulnerability:
		activity, activityName = 1, "Create"
		if ev.revision > 0 {
			activity, activityName = 2, "Update"
		}
		if s := text(ev.f[fAlertStatus]); s != "" {
			statusID, status = findingStatus(s)
			if statusID >= 3 && statusID <= 5 {
				activity, activityName = 3, "Close"
			}
			used[fAlertStatus] = strings.EqualFold(status, s)
		}
	case classInventory:
		activity, activityName = 2, "Collect"
	case classScan:
		s := text(ev.f[fScanStatus])
		activity, activityName, statusID = scanActivity(s)
		switch statusID {
		case 1:
			status = "Success"
		case 2:
			status = "Failure"
		}
		used[fScanStatus] = strings.EqualFold(activityName, s)
	}

	w := jw{b: append(dst, '{')}
	w.int("activity_id", int64(activity))
	w.str("activity_name", activityName)
	w.int("category_uid", int64(cls.category))
	w.str("category_name", cls.catName)
	w.int("class_uid", int64(cls.uid))
	w.str("class_name", cls.name)
	w.int("type_uid", int64(cls.uid*100+activity))
	w.k("type_name")
	w.b = append(w.b, '"')
	w.b = pipeline.AppendJSONContent(w.b, cls.name)
	w.b = append(w.b, ':', ' ')
	if activity == 99 {
		w.b = append(w.b, "Other"...)
	} else {
		w.b = pipeline.AppendJSONContent(w.b, activityName)
	}
	w.b = append(w.b, '"')
	w.int("severity_id", int64(sevID))
	w.str("severity", ocsfSeverities[sevID])
	w.int("time", ev.time.UnixMilli())
	w.raw("message", ev.message)
	if statusID != 0 {
		w.int("status_id", int64(statusID))
		w.str("status", status)
	}
	timeField := func(key string, f int) {
		if ms, ok := rawTimeMillis(ev.f[f]); ok {
			w.int(key, ms)
			used[f] = true
		}
	}

	hasDevice := false
	switch cls {
	case classDetection:
		timeField("start_time", fAlertStarted)
		timeField("end_time", fAlertEnded)
		if activity != 3 {
			w.k("is_alert")
			w.b = append(w.b, "true"...)
		}
		ocsfDetectionInfo(&w, ev, &used)
		hasDevice = ocsfDevice(&w, ev, &used)
		ocsfEvidence(&w, ev, &used)
		ocsfMalware(&w, ev, &used)
	case classVulnerability:
		ocsfVulnerability(&w, ev, &used, sevID)
		hasDevice = ocsfDevice(&w, ev, &used)
	case classInventory:
		hasDevice = ocsfDevice(&w, ev, &used)
	case classScan:
		w.open("scan")
		if w.rawString("uid", ev.f[fScanID]) {
			used[fScanID] = true
		}
		if w.raw("name", ev.f[fScanName]) {
			used[fScanName] = true
		}
		w.int("type_id", 0)
		w.str("type", "Unknown")
		w.close()
		timeField("start_time", fScanStarted)
		timeField("end_time", fScanStopped)
		if w.rawNumber("num_files", ev.f[fScanFiles]) {
			used[fScanFiles] = true
		}
		if w.rawNumber("num_detections", ev.f[fScanInfected]) {
			used[fScanInfected] = true
		}
	}

	w.open("metadata")
	w.str("version", ocsfVersion)
	w.open("product")
	w.str("name", productName(text(ev.product)))
	w.str("vendor_name", "OPSWAT")
	w.close()
	w.raw("uid", ev.id)
	w.raw("event_code", ev.kind)
	w.raw("original_time", ev.timeRaw)
	if !ev.observed.IsZero() {
		w.int("logged_time", ev.observed.UnixMilli())
	}
	if k1, k2 := ev.entityKey(); k1 != "" || k2 != "" {
		w.k("correlation_uid")
		w.b = append(w.b, '"')
		w.b = pipeline.AppendJSONContent(w.b, text(ev.instance))
		w.b = append(w.b, '/')
		w.b = pipeline.AppendJSONContent(w.b, kind)
		w.b = append(w.b, '/')
		w.b = pipeline.AppendJSONContent(w.b, k1)
		if k2 != "" {
			w.b = append(w.b, '/')
			w.b = pipeline.AppendJSONContent(w.b, k2)
		}
		w.b = append(w.b, '"')
	}
	w.raw("log_name", ev.stream)
	if hasDevice {
		w.k("profiles")
		w.b = append(w.b, `["host"]`...)
	}
	w.close()

	w.open("unmapped")
	w.rawNumber("seq", ev.seqRaw)
	w.rawNumber("revision", ev.revisionRaw)
	w.raw("kind", ev.kind)
	w.raw("instance", ev.instance)
	w.raw("stream", ev.stream)
	w.raw("site_ip", ev.siteIP)
	w.raw("sensor_ip", ev.sensorIP)
	w.raw("url", ev.url)
	w.raw("severity", ev.severity)
	w.rawNumber("severity_score", ev.scoreRaw)
	w.raw("changes", ev.changes)
	for i := range ev.nb {
		ocsfUnmappedBlock(&w, ev, i, &used)
	}
	w.close()
	return append(w.b, '}')
}

// ocsfDetectionInfo writes finding_info of a Detection Finding.
func ocsfDetectionInfo(w *jw, ev *event, used *[numFields]bool) {
	w.open("finding_info")
	switch {
	case w.rawString("uid", ev.f[fAlertID]):
		used[fAlertID] = true
	case w.rawString("uid", ev.f[fFileID]):
		used[fFileID] = true
	default:
		w.raw("uid", ev.id)
	}
	// The rule's name, when it is the title, is also analytic.name below.
	switch {
	case w.raw("title", ev.f[fAlertName]):
		used[fAlertName] = true
	case w.raw("title", ev.f[fRuleName]):
	case w.raw("title", ev.message):
	default:
		w.raw("title", ev.kind)
	}
	w.raw("desc", ev.message)
	for _, f := range [...]int{fAlertType, fRuleCategory, fFileResult} {
		if !empty(ev.f[f]) && ev.f[f][0] == '"' {
			w.openArray("types")
			w.b = appendJSONValue(w.b, ev.f[f])
			w.closeArray()
			used[f] = true
			break
		}
	}
	if !empty(ev.f[fRuleID]) || !empty(ev.f[fRuleName]) {
		w.open("analytic")
		if w.rawString("uid", ev.f[fRuleID]) {
			used[fRuleID] = true
		}
		if w.raw("name", ev.f[fRuleName]) {
			used[fRuleName] = true
		}
		if !used[fRuleCategory] && w.raw("category", ev.f[fRuleCategory]) {
			used[fRuleCategory] = true
		}
		w.int("type_id", 1)
		w.str("type", "Rule")
		w.close()
	}
	w.close()
}

// ocsfDevice writes the device block as `device` and reports whether there
// was one.
func ocsfDevice(w *jw, ev *event, used *[numFields]bool) bool {
	if !ev.has("device") {
		return false
	}
	w.open("device")
	typ := text(ev.f[fDeviceType])
	id, name := deviceType(typ)
	w.int("type_id", int64(id))
	w.str("type", name)
	used[fDeviceType] = strings.EqualFold(name, typ)
	for _, m := range [...]struct {
		key string
		f   int
	}{{"uid", fDeviceID}, {"name", fDeviceName}, {"ip", fDeviceIP}, {"mac", fDeviceMAC}, {"vendor_name", fDeviceVendor}, {"model", fDeviceModel}} {
		if w.rawString(m.key, ev.f[m.f]) {
			used[m.f] = true
		}
	}
	if !empty(ev.f[fDeviceOS]) {
		w.open("os")
		w.raw("name", ev.f[fDeviceOS])
		w.int("type_id", 0)
		w.str("type", "Unknown")
		w.close()
		used[fDeviceOS] = true
	}
	w.close()
	return true
}

// ocsfEvidence writes the network ends and the file of a Detection Finding
// as its one evidence.
func ocsfEvidence(w *jw, ev *event, used *[numFields]bool) {
	src := [...]int{fNetSrcIP, fNetSrcPort, fNetSrcMAC}
	dst := [...]int{fNetDstIP, fNetDstPort, fNetDstMAC}
	file := [...]int{fFileID, fFileName, fFilePath, fFileSize, fFileMD5, fFileSHA1, fFileSHA256}
	any := func(fs []int) bool {
		for _, f := range fs {
			if !empty(ev.f[f]) {
				return true
			}
		}
		return false
	}
	hasSrc, hasDst, hasConn, hasFile := any(src[:]), any(dst[:]), !empty(ev.f[fNetTransport]), any(file[:])
	if !hasSrc && !hasDst && !hasConn && !hasFile {
		return
	}
	w.openArray("evidences")
	w.elem()
	endpoint := func(key string, fs [3]int) {
		w.open(key)
		for i, k := range [...]string{"ip", "port", "mac"} {
			var ok bool
			if k == "port" {
				ok = w.rawNumber(k, ev.f[fs[i]])
			} else {
				ok = w.raw(k, ev.f[fs[i]])
			}
			if ok {
				used[fs[i]] = true
			}
		}
		w.close()
	}
	if hasSrc {
		endpoint("src_endpoint", src)
	}
	if hasDst {
		endpoint("dst_endpoint", dst)
	}
	if hasConn {
		w.open("connection_info")
		w.k("protocol_name")
		w.b = appendJSONLower(w.b, text(ev.f[fNetTransport]))
		w.int("direction_id", 0)
		w.str("direction", "Unknown")
		w.close()
		used[fNetTransport] = true
	}
	if hasFile {
		w.open("file")
		for _, m := range [...]struct {
			key string
			f   int
		}{{"uid", fFileID}, {"name", fFileName}, {"path", fFilePath}} {
			if w.rawString(m.key, ev.f[m.f]) {
				used[m.f] = true
			}
		}
		if w.rawNumber("size", ev.f[fFileSize]) {
			used[fFileSize] = true
		}
		w.int("type_id", 1)
		w.str("type", "Regular File")
		if any(file[4:]) {
			w.openArray("hashes")
			for i, h := range [...]struct {
				id   int
				name string
			}{{1, "MD5"}, {2, "SHA-1"}, {3, "SHA-256"}} {
				f := file[4+i]
				if empty(ev.f[f]) {
					continue
				}
				w.elem()
				w.int("algorithm_id", int64(h.id))
				w.str("algorithm", h.name)
				w.rawString("value", ev.f[f])
				w.close()
				used[f] = true
			}
			w.closeArray()
		}
		w.close()
	}
	w.close()
	w.closeArray()
}

// ocsfMalware writes the threats a file scan found as `malware`.
func ocsfMalware(w *jw, ev *event, used *[numFields]bool) {
	t := ev.f[fFileThreats]
	if empty(t) || t[0] != '[' || !isScalarArray(t) {
		return
	}
	w.openArray("malware")
	forEachElement(t, func(e string) bool {
		w.elem()
		w.rawString("name", e)
		w.k("classification_ids")
		w.b = append(w.b, "[0]"...)
		w.close()
		return true
	})
	w.closeArray()
	used[fFileThreats] = true
}

// ocsfVulnerability writes finding_info and vulnerabilities of a
// Vulnerability Finding.
func ocsfVulnerability(w *jw, ev *event, used *[numFields]bool, sevID int) {
	cve, desc := ev.f[fVulnCVE], ev.f[fVulnDescription]
	w.open("finding_info")
	k1, k2 := ev.entityKey()
	if k2 != "" {
		w.k("uid")
		w.b = append(w.b, '"')
		w.b = pipeline.AppendJSONContent(w.b, k1)
		w.b = append(w.b, '/')
		w.b = pipeline.AppendJSONContent(w.b, k2)
		w.b = append(w.b, '"')
	} else {
		w.raw("uid", ev.id)
	}
	if !w.raw("title", cve) && !w.raw("title", ev.message) {
		w.raw("title", ev.kind)
	}
	if !w.raw("desc", desc) {
		w.raw("desc", ev.message)
	}
	w.close()
	if empty(cve) {
		return
	}
	w.openArray("vulnerabilities")
	w.elem()
	w.open("cve")
	w.raw("uid", cve)
	if !empty(ev.f[fVulnCVSS]) {
		w.openArray("cvss")
		w.elem()
		w.rawNumber("base_score", ev.f[fVulnCVSS])
		vector := text(ev.f[fVulnVector])
		w.str("vector_string", vector)
		w.str("version", cvssVersion(vector))
		w.close()
		w.closeArray()
		used[fVulnCVSS] = true
		used[fVulnVector] = true
	}
	w.close()
	w.raw("title", cve)
	if w.raw("desc", desc) {
		used[fVulnDescription] = true
	}
	w.str("severity", ocsfSeverities[sevID])
	w.close()
	w.closeArray()
	used[fVulnCVE] = true
}

// cvssVersion reads the CVSS version from a vector string: "CVSS:3.1/..."
// is 3.1, a vector without the prefix is 2.0; none gives "".
func cvssVersion(vector string) string {
	if vector == "" {
		return ""
	}
	if v, ok := strings.CutPrefix(vector, "CVSS:"); ok {
		if i := strings.IndexByte(v, '/'); i > 0 {
			return v[:i]
		}
		return v
	}
	return "2.0"
}

// ocsfUnmappedBlock writes the members of block i that no attribute took,
// under the block's name.
func ocsfUnmappedBlock(w *jw, ev *event, i int, used *[numFields]bool) {
	b := ev.blk[i]
	ms := ev.members(i)
	if b.name == "" {
		for _, m := range ms {
			if !empty(m.val) {
				w.kEvent(m.key)
				w.b = appendJSONValue(w.b, m.val)
			}
		}
		return
	}
	n := 0
	for _, m := range ms {
		if (m.field < 0 || !used[m.field]) && !empty(m.val) {
			n++
		}
	}
	if n == 0 {
		return
	}
	w.kEvent(b.name)
	w.b = append(w.b, '{')
	w.comma = false
	for _, m := range ms {
		if (m.field >= 0 && used[m.field]) || empty(m.val) {
			continue
		}
		w.kEvent(m.key)
		w.b = appendJSONValue(w.b, m.val)
	}
	w.close()
}

// appendJSONKey appends `"key":` for a key taken from the event (the text
// between its quotes, still escaped).
func appendJSONKey(dst []byte, key string) []byte {
	if stringContent(key) == contentClean {
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, '"')
	} else {
		dst = appendJSONString(dst, key)
	}
	return append(dst, ':')
}

// appendJSONValue appends a raw JSON value taken from the event. The event
// is JSON the bridge wrote, so the value is copied as it is; it is checked
// all the same, and a value that is not valid JSON is written as a string,
// so the output is valid JSON whatever the input.
func appendJSONValue(dst []byte, raw string) []byte {
	switch {
	case raw == "":
		return append(dst, "null"...)
	case raw[0] == '"':
		inner := raw[1:]
		if len(inner) > 0 && inner[len(inner)-1] == '"' {
			inner = inner[:len(inner)-1]
			switch stringContent(inner) {
			case contentClean:
				return append(dst, raw...)
			case contentRecode:
				return appendJSONString(dst, text(raw))
			}
		}
		return appendJSONString(dst, inner)
	case raw == "true" || raw == "false" || raw == "null" || isJSONNumber(raw):
		return append(dst, raw...)
	case raw[0] == '{' || raw[0] == '[':
		b := unsafe.Slice(unsafe.StringData(raw), len(raw))
		if !json.Valid(b) {
			break
		}
		if strings.IndexByte(raw, '\n') < 0 && strings.IndexByte(raw, '\r') < 0 {
			return append(dst, raw...)
		}
		var c bytes.Buffer // line breaks between tokens: not from the bridge
		if json.Compact(&c, b) == nil {
			return append(dst, c.Bytes()...)
		}
	}
	return appendJSONString(dst, raw)
}

// Results of stringContent.
const (
	contentClean   = iota // valid, copied as it is
	contentRecode         // valid JSON, but invalid UTF-8 or U+2028/U+2029: decode and encode again
	contentInvalid        // not the inside of a JSON string
)

// stringContent checks s as the inside of a JSON string (between the
// quotes).
func stringContent(s string) int {
	result := contentClean
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"':
			return contentInvalid
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				result = contentRecode
			}
			i += size - 1
		case c == '\\':
			_, rest, ok := pipeline.DecodeEscape(s[i+1:])
			if !ok {
				return contentInvalid
			}
			i = len(s) - len(rest) - 1
		}
	}
	return result
}

// isJSONNumber reports whether s is one JSON number.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = pipeline.AppendJSONContent(dst, s)
	return append(dst, '"')
}

// appendJSONLower appends s in lower case (ASCII) as a JSON string.
func appendJSONLower(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := len(dst)
	dst = pipeline.AppendJSONContent(dst, s)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; c >= 'A' && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return append(dst, '"')
}
