package format

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/mdbridge/mdbridge/pipeline"
)

// The CEF, LEEF and OCSF formatters share one decoder. It walks the event's
// schema-v1 JSON once (the journal holds only JSON the bridge wrote, so it
// is valid; see objIter) and keeps raw JSON tokens that point
// into the input: nothing is copied and strings are unescaped only when a
// formatter writes them. The `raw` member is skipped, never decoded.
//
// Top-level members that are not part of the envelope are blocks. Every
// member of every block is kept in order, so a block or field this package
// does not know yet (a new kind) is still rendered generically; the members
// of the known blocks also get a field number, so that each format can map
// them to its own standard keys and render the rest generically.

// Known block fields, numbered for the `used` tables of the formatters.
const (
	fAlertID = iota
	fAlertType
	fAlertName
	fAlertStatus
	fAlertStarted
	fAlertEnded
	fAlertReason
	fDeviceID
	fDeviceName
	fDeviceIP
	fDeviceMAC
	fDeviceVendor
	fDeviceModel
	fDeviceType
	fDeviceFirmware
	fDeviceOS
	fDevicePurdueLevel
	fDeviceSite
	fDeviceAction
	fNetSrcIP
	fNetSrcPort
	fNetSrcMAC
	fNetDstIP
	fNetDstPort
	fNetDstMAC
	fNetProtocol
	fNetTransport
	fRuleID
	fRuleName
	fRuleCategory
	fVulnCVE
	fVulnCVSS
	fVulnVector
	fVulnDescription
	fScanID
	fScanName
	fScanStatus
	fScanStarted
	fScanStopped
	fScanStorage
	fScanFiles
	fScanBlocked
	fScanInfected
	fFileID
	fFileName
	fFilePath
	fFileSize
	fFileMD5
	fFileSHA1
	fFileSHA256
	fFileVerdict
	fFileResultCode
	fFileResult
	fFileThreats
	fFileEngines
	fFileRemediation
	fPatchID
	fPatchStatus
	fPatchRequestedBy
	numFields
)

// fieldIndex returns the number of a known block field, or -1.
func fieldIndex(block, key string) int {
	switch block {
	case "alert":
		switch key {
		case "id":
			return fAlertID
		case "type":
			return fAlertType
		case "name":
			return fAlertName
		case "status":
			return fAlertStatus
		case "started":
			return fAlertStarted
		case "ended":
			return fAlertEnded
		case "reason":
			return fAlertReason
		}
	case "device":
		switch key {
		case "id":
			return fDeviceID
		case "name":
			return fDeviceName
		case "ip":
			return fDeviceIP
		case "mac":
			return fDeviceMAC
		case "vendor":
			return fDeviceVendor
		case "model":
			return fDeviceModel
		case "type":
			return fDeviceType
		case "firmware":
			return fDeviceFirmware
		case "os":
			return fDeviceOS
		case "purdue_level":
			return fDevicePurdueLevel
		case "site":
			return fDeviceSite
		case "action":
			return fDeviceAction
		}
	case "network":
		switch key {
		case "src_ip":
			return fNetSrcIP
		case "src_port":
			return fNetSrcPort
		case "src_mac":
			return fNetSrcMAC
		case "dst_ip":
			return fNetDstIP
		case "dst_port":
			return fNetDstPort
		case "dst_mac":
			return fNetDstMAC
		case "protocol":
			return fNetProtocol
		case "transport":
			return fNetTransport
		}
	case "rule":
		switch key {
		case "id":
			return fRuleID
		case "name":
			return fRuleName
		case "category":
			return fRuleCategory
		}
	case "vulnerability":
		switch key {
		case "cve":
			return fVulnCVE
		case "cvss":
			return fVulnCVSS
		case "cvss_vector":
			return fVulnVector
		case "description":
			return fVulnDescription
		}
	case "scan":
		switch key {
		case "id":
			return fScanID
		case "name":
			return fScanName
		case "status":
			return fScanStatus
		case "started":
			return fScanStarted
		case "stopped":
			return fScanStopped
		case "storage":
			return fScanStorage
		case "files":
			return fScanFiles
		case "blocked":
			return fScanBlocked
		case "infected":
			return fScanInfected
		}
	case "file":
		switch key {
		case "id":
			return fFileID
		case "name":
			return fFileName
		case "path":
			return fFilePath
		case "size":
			return fFileSize
		case "md5":
			return fFileMD5
		case "sha1":
			return fFileSHA1
		case "sha256":
			return fFileSHA256
		case "verdict":
			return fFileVerdict
		case "result_code":
			return fFileResultCode
		case "result":
			return fFileResult
		case "threats":
			return fFileThreats
		case "engines":
			return fFileEngines
		case "remediation":
			return fFileRemediation
		}
	case "patch":
		switch key {
		case "id":
			return fPatchID
		case "status":
			return fPatchStatus
		case "requested_by":
			return fPatchRequestedBy
		}
	}
	return -1
}

// fieldNames gives the block and key of each known field; fieldIndex is
// its inverse (TestFieldNames keeps them in step).
var fieldNames = [numFields][2]string{
	fAlertID: {"alert", "id"}, fAlertType: {"alert", "type"}, fAlertName: {"alert", "name"},
	fAlertStatus: {"alert", "status"}, fAlertStarted: {"alert", "started"}, fAlertEnded: {"alert", "ended"},
	fAlertReason: {"alert", "reason"},
	fDeviceID:    {"device", "id"}, fDeviceName: {"device", "name"}, fDeviceIP: {"device", "ip"},
	fDeviceMAC: {"device", "mac"}, fDeviceVendor: {"device", "vendor"}, fDeviceModel: {"device", "model"},
	fDeviceType: {"device", "type"}, fDeviceFirmware: {"device", "firmware"}, fDeviceOS: {"device", "os"},
	fDevicePurdueLevel: {"device", "purdue_level"}, fDeviceSite: {"device", "site"},
	fDeviceAction: {"device", "action"},
	fNetSrcIP:     {"network", "src_ip"}, fNetSrcPort: {"network", "src_port"}, fNetSrcMAC: {"network", "src_mac"},
	fNetDstIP: {"network", "dst_ip"}, fNetDstPort: {"network", "dst_port"}, fNetDstMAC: {"network", "dst_mac"},
	fNetProtocol: {"network", "protocol"}, fNetTransport: {"network", "transport"},
	fRuleID: {"rule", "id"}, fRuleName: {"rule", "name"}, fRuleCategory: {"rule", "category"},
	fVulnCVE: {"vulnerability", "cve"}, fVulnCVSS: {"vulnerability", "cvss"},
	fVulnVector: {"vulnerability", "cvss_vector"}, fVulnDescription: {"vulnerability", "description"},
	fScanID: {"scan", "id"}, fScanName: {"scan", "name"}, fScanStatus: {"scan", "status"},
	fScanStarted: {"scan", "started"}, fScanStopped: {"scan", "stopped"}, fScanStorage: {"scan", "storage"},
	fScanFiles: {"scan", "files"}, fScanBlocked: {"scan", "blocked"}, fScanInfected: {"scan", "infected"},
	fFileID: {"file", "id"}, fFileName: {"file", "name"}, fFilePath: {"file", "path"}, fFileSize: {"file", "size"},
	fFileMD5: {"file", "md5"}, fFileSHA1: {"file", "sha1"}, fFileSHA256: {"file", "sha256"},
	fFileVerdict: {"file", "verdict"}, fFileResultCode: {"file", "result_code"}, fFileResult: {"file", "result"},
	fFileThreats: {"file", "threats"}, fFileEngines: {"file", "engines"},
	fFileRemediation: {"file", "remediation"},
	fPatchID:         {"patch", "id"}, fPatchStatus: {"patch", "status"}, fPatchRequestedBy: {"patch", "requested_by"},
}

// genericKeys holds, per key prefix, the generic key of each known field
// (what genericPair would build letter by letter).
type genericKeys [numFields]string

func makeGenericKeys(prefix string) *genericKeys {
	var k genericKeys
	for i, n := range fieldNames {
		b := append([]byte(prefix), appendCamel(nil, n[0], prefix != "")...)
		k[i] = string(appendCamel(b, n[1], true))
	}
	return &k
}

var (
	cefGenericKeys  = makeGenericKeys(cefPrefix)
	leefGenericKeys = makeGenericKeys("")
)

const (
	// maxMembers bounds the block members of one event (the schema has
	// fewer than 40 per kind); an event with more is refused, with an error
	// that sends it to the dead-letter file rather than losing fields.
	maxMembers = 64
	// maxBlocks bounds the blocks of one event.
	maxBlocks = 16
)

// member is one member of a block: its key (without quotes) and raw value.
type member struct {
	key, val string
	field    int16 // known field number, or -1
}

// block is a top-level member outside the envelope. An object's members
// are mem[first:end]; a scalar or array member is a block with an empty
// name holding one member whose key is the member's name.
type block struct {
	name       string
	first, end int16
}

// event is the decoded view of one schema-v1 event. Every string is a raw
// JSON token pointing into the input (quotes included for strings).
type event struct {
	id, kind, severity, message   string
	timeRaw, observedRaw          string
	seq                           uint64
	seqRaw, scoreRaw, revisionRaw string
	score, revision               int
	time, observed                time.Time

	product, instance, stream, siteIP, sensorIP, url string

	changes string // raw object, or ""

	f   [numFields]string // raw values of the known block fields
	mem [maxMembers]member
	blk [maxBlocks]block
	nm  int
	nb  int
}

var errNotObject = errors.New("event is not a JSON object")

// decode fills ev from data. The strings in ev point into data. It reads
// each byte once: a block's members are recorded as its object is walked,
// and `raw` is skipped by skipValue.
func (ev *event) decode(data []byte) error {
	if len(data) == 0 || data[0] != '{' {
		return errNotObject
	}
	it := objIter{s: unsafe.String(unsafe.SliceData(data), len(data)), i: 1}
	for {
		k, ok := it.nextKey()
		if !ok {
			break
		}
		switch name := unquoteKey(k); name {
		case "id":
			ev.id = it.value()
		case "kind":
			ev.kind = it.value()
		case "seq":
			ev.seqRaw = it.value()
			ev.seq, _ = strconv.ParseUint(ev.seqRaw, 10, 64)
		case "time":
			ev.timeRaw = it.value()
		case "observed":
			ev.observedRaw = it.value()
		case "severity":
			ev.severity = it.value()
		case "severity_score":
			ev.scoreRaw = it.value()
			ev.score, _ = strconv.Atoi(ev.scoreRaw)
		case "message":
			ev.message = it.value()
		case "source":
			ev.decodeSource(it.value())
		case "revision":
			ev.revisionRaw = it.value()
			ev.revision, _ = strconv.Atoi(ev.revisionRaw)
		case "changes":
			if v := it.value(); v != "" && v[0] == '{' {
				ev.changes = v
			}
		case "schema", "raw":
			it.value()
		default:
			if err := ev.addBlock(name, &it); err != nil {
				return err
			}
		}
	}
	if text(ev.id) == "" || text(ev.kind) == "" {
		return errors.New("event lacks id or kind")
	}
	var err error
	if ev.time, err = time.Parse(time.RFC3339Nano, text(ev.timeRaw)); err != nil {
		return fmt.Errorf("event time: %w", err)
	}
	ev.observed, _ = time.Parse(time.RFC3339Nano, text(ev.observedRaw))
	return nil
}

func (ev *event) decodeSource(obj string) {
	it := objIter{s: obj, i: 1}
	for {
		k, ok := it.nextKey()
		if !ok {
			return
		}
		v := it.value()
		switch unquoteKey(k) {
		case "product":
			ev.product = v
		case "instance":
			ev.instance = v
		case "stream":
			ev.stream = v
		case "site_ip":
			ev.siteIP = v
		case "sensor_ip":
			ev.sensorIP = v
		case "url":
			ev.url = v
		}
	}
}

// addBlock records the top-level member name whose value it is at: an
// object's members one by one, anything else as one member.
func (ev *event) addBlock(name string, it *objIter) error {
	if it.i >= len(it.s) || it.s[it.i] != '{' {
		v := it.value()
		if v == "" || v == "null" {
			return nil
		}
		if ev.nb == maxBlocks {
			return fmt.Errorf("event has more than %d blocks", maxBlocks)
		}
		if ev.nm == maxMembers {
			return fmt.Errorf("event has more than %d block members", maxMembers)
		}
		ev.blk[ev.nb] = block{first: int16(ev.nm), end: int16(ev.nm + 1)}
		ev.nb++
		ev.mem[ev.nm] = member{key: name, val: v, field: -1}
		ev.nm++
		return nil
	}
	if ev.nb == maxBlocks {
		return fmt.Errorf("event has more than %d blocks", maxBlocks)
	}
	b := &ev.blk[ev.nb]
	ev.nb++
	*b = block{name: name, first: int16(ev.nm)}
	in := objIter{s: it.s, i: it.i + 1}
	for {
		k, ok := in.nextKey()
		if !ok {
			break
		}
		if ev.nm == maxMembers {
			return fmt.Errorf("event has more than %d block members", maxMembers)
		}
		key := unquoteKey(k)
		val := in.value()
		idx := fieldIndex(name, key)
		if idx >= 0 {
			ev.f[idx] = val
		}
		ev.mem[ev.nm] = member{key: key, val: val, field: int16(idx)}
		ev.nm++
	}
	b.end = int16(ev.nm)
	it.i = in.i
	return nil
}

// members returns the members of block i.
func (ev *event) members(i int) []member {
	b := ev.blk[i]
	return ev.mem[b.first:b.end]
}

// has reports whether the event has a block called name.
func (ev *event) has(name string) bool {
	for i := range ev.nb {
		if ev.blk[i].name == name {
			return true
		}
	}
	return false
}

// productName is the display name of a source.product.
func productName(product string) string {
	switch product {
	case pipeline.ProductOTSecurity:
		return "MetaDefender OT Security"
	case pipeline.ProductStorageSec:
		return "MetaDefender Storage Security"
	case "":
		return "mdbridge"
	}
	return product
}

// statusField is the field that gives an event its status: the alert's
// status, else the device's action, else the patch request's or the scan's
// status. It returns -1 when there is none.
func (ev *event) statusField() int {
	for _, f := range [...]int{fAlertStatus, fDeviceAction, fPatchStatus, fScanStatus} {
		if text(ev.f[f]) != "" {
			return f
		}
	}
	return -1
}

// actField is the field behind CEF act: the alert's status, else the file's
// verdict, else the device's action; -1 when there is none.
func (ev *event) actField() int {
	for _, f := range [...]int{fAlertStatus, fFileVerdict, fDeviceAction} {
		if text(ev.f[f]) != "" {
			return f
		}
	}
	return -1
}

// entityKey returns the record's natural key in up to two parts (EVENTS.md):
// the alert id; for a CVE the device's key and the CVE id; the patch
// request, file or scan id; the device id, else MAC, else IP; for a
// heartbeat the stream.
func (ev *event) entityKey() (string, string) {
	if id := text(ev.f[fAlertID]); id != "" {
		return id, ""
	}
	dev := text(ev.f[fDeviceID])
	if dev == "" {
		dev = text(ev.f[fDeviceMAC])
	}
	if dev == "" {
		dev = text(ev.f[fDeviceIP])
	}
	if cve := text(ev.f[fVulnCVE]); cve != "" {
		if dev == "" {
			return cve, ""
		}
		return dev, cve
	}
	for _, f := range [...]int{fPatchID, fFileID, fScanID} {
		if id := text(ev.f[f]); id != "" {
			return id, ""
		}
	}
	if dev != "" {
		return dev, ""
	}
	if ev.has("heartbeat") {
		return text(ev.stream), ""
	}
	return "", ""
}

// urlHost returns the host of an absolute URL (no port, no credentials).
func urlHost(u string) string {
	for i := 0; i+2 < len(u); i++ {
		if u[i] == ':' && u[i+1] == '/' && u[i+2] == '/' {
			u = u[i+3:]
			break
		}
		if u[i] == '/' {
			return ""
		}
	}
	for i := 0; i < len(u); i++ {
		if u[i] == '/' || u[i] == '?' || u[i] == '#' {
			u = u[:i]
			break
		}
	}
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '@' {
			u = u[i+1:]
			break
		}
	}
	if len(u) > 0 && u[0] == '[' {
		for i := 1; i < len(u); i++ {
			if u[i] == ']' {
				return u[1:i]
			}
		}
		return u
	}
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == ':' {
			return u[:i]
		}
	}
	return u
}

// unquoteKey strips the quotes of a raw member key. Keys in events are
// plain identifiers; one with escapes is kept as it is written.
func unquoteKey(k string) string {
	if len(k) >= 2 && k[0] == '"' {
		return k[1 : len(k)-1]
	}
	return k
}

// text returns the text of a raw JSON value: the unescaped string for a
// string, the token itself for a number or boolean, "" for null, an empty
// string or a missing value. Objects and arrays are returned as raw JSON.
func text(raw string) string {
	if raw == "" || raw == "null" {
		return ""
	}
	if raw[0] == '"' {
		return rawStr(raw)
	}
	return raw
}

// empty reports whether a raw value renders as nothing.
func empty(raw string) bool {
	return raw == "" || raw == "null" || raw == `""` || raw == "[]" || raw == "{}"
}

// rawTimeMillis parses a raw RFC 3339 string as milliseconds since the
// epoch.
func rawTimeMillis(raw string) (int64, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, text(raw))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// isScalarArray reports whether raw is an array whose elements are all
// strings, numbers or booleans.
func isScalarArray(raw string) bool {
	ok := true
	forEachElement(raw, func(e string) bool {
		ok = e != "" && e[0] != '{' && e[0] != '[' && e != "null"
		return ok
	})
	return ok
}

// forEachElement calls fn with each raw element of the JSON array raw.
func forEachElement(raw string, fn func(elem string) bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return
	}
	for i < len(raw) {
		e := skipValue(raw, i)
		if e <= i || !fn(raw[i:e]) {
			return
		}
		i = skipWS(raw, e)
		if i >= len(raw) || raw[i] != ',' {
			return
		}
		i = skipWS(raw, i+1)
	}
}

// objIter walks the members of a JSON object in place. The event JSON is
// valid (the bridge wrote it); on invalid input the walk stops early and
// never panics or loops.
type objIter struct {
	s string
	i int // just after '{', or after the last value read
}

// nextKey moves to the next member and returns its raw key (with quotes),
// leaving i at the value. It returns false at the end of the object, with i
// just past its '}'.
func (it *objIter) nextKey() (string, bool) {
	s := it.s
	i := skipWS(s, it.i)
	if i < len(s) && s[i] == ',' {
		i = skipWS(s, i+1)
	}
	if i >= len(s) || s[i] != '"' {
		if i < len(s) && s[i] == '}' {
			i++
		}
		it.i = i
		return "", false
	}
	ke := stringEnd(s, i)
	key := s[i:ke]
	i = skipWS(s, ke)
	if i >= len(s) || s[i] != ':' {
		it.i = len(s)
		return "", false
	}
	it.i = skipWS(s, i+1)
	return key, true
}

// value returns the raw value at i and moves past it.
func (it *objIter) value() string {
	e := skipValue(it.s, it.i)
	v := it.s[it.i:e]
	it.i = e
	return v
}

// forEachMember calls fn with the raw key (with quotes) and raw value of
// each member of the JSON object obj, until fn returns false.
func forEachMember(obj string, fn func(key, val string) bool) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	it := objIter{s: obj, i: i + 1}
	for {
		k, ok := it.nextKey()
		if !ok || !fn(k, it.value()) {
			return
		}
	}
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// stringSpecial and structural mark the bytes skipValue stops at inside and
// outside strings.
var stringSpecial, structural = func() (str, st [256]bool) {
	str['"'], str['\\'] = true, true
	for _, c := range `"{}[]` {
		st[c] = true
	}
	return str, st
}()

// stringEnd returns the index just past the closing quote of the string
// that starts at s[i], or len(s). (Reading eight bytes at a time measured
// no faster: most strings in events are short.)
func stringEnd(s string, i int) int {
	for i++; i < len(s); i++ {
		if !stringSpecial[s[i]] {
			continue
		}
		if s[i] == '"' {
			return i + 1
		}
		i++
	}
	return len(s)
}

// skipValue returns the index just past the JSON value that starts at s[i]
// (an object or array with everything in it).
func skipValue(s string, i int) int {
	if i >= len(s) {
		return len(s)
	}
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			if !structural[s[i]] {
				i++
				continue
			}
			switch s[i] {
			case '"':
				i = stringEnd(s, i)
				continue
			case '{', '[':
				depth++
			default:
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(s)
	}
	for ; i < len(s); i++ {
		switch s[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(s)
}

// appendUnescaped appends the text of the raw JSON string token raw to dst,
// escaped for the output format by appendEscaped in mode; JSON escapes are
// decoded without allocating. Lone surrogates become U+FFFD.
func appendUnescaped(dst []byte, raw string, mode int) []byte {
	if len(raw) < 2 || raw[0] != '"' {
		return appendEscaped(dst, raw, mode)
	}
	s := raw[1:]
	if s[len(s)-1] == '"' {
		s = s[:len(s)-1]
	}
	var tmp [utf8.UTFMax]byte
	for {
		i := strings.IndexByte(s, '\\')
		if i < 0 {
			return appendEscaped(dst, s, mode)
		}
		dst = appendEscaped(dst, s[:i], mode)
		if i+1 >= len(s) {
			return dst
		}
		var r rune
		r, s, _ = pipeline.DecodeEscape(s[i+1:])
		n := utf8.EncodeRune(tmp[:], r)
		dst = appendEscaped(dst, unsafe.String(&tmp[0], n), mode)
	}
}

// appendCamel appends the letters and digits of s to dst in camel case:
// each run after a separator (anything else, such as `_` or `.`) starts
// with a capital; the first letter is capitalised when upper is set.
func appendCamel(dst []byte, s string, upper bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			upper = true
			continue
		}
		dst = append(dst, c)
		upper = false
	}
	return dst
}

// escape modes of appendEscaped.
const (
	modeHeader    = iota // CEF and LEEF header fields
	modeCEFValue         // CEF extension values
	modeLEEFValue        // LEEF attribute values
)

// safeBytes marks, per mode, the bytes that are written as they are.
var safeBytes = func() (t [3][256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[modeHeader][c] = c != '\\' && c != '|'
		t[modeCEFValue][c] = c != '\\' && c != '='
		t[modeLEEFValue][c] = c != '\\' && c != '='
	}
	t[modeCEFValue]['\t'] = true
	return t
}()

// appendEscaped appends s to dst escaped for mode (README.md, "Escaping"):
// a backslash and the mode's separator get a backslash; in values a line
// feed and a carriage return become \n and \r (and a tab \t in LEEF, whose
// delimiter it is); in headers they become a space. Other control
// characters, C1 controls and U+2028/U+2029 become a space and invalid
// UTF-8 becomes U+FFFD, so a rendering is always one valid UTF-8 line.
func appendEscaped(dst []byte, s string, mode int) []byte {
	safe := &safeBytes[mode]
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, "\uFFFD"...)
			case r < 0xA0 || r == '\u2028' || r == '\u2029':
				dst = append(dst, ' ')
			default:
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			start = i
			continue
		}
		switch {
		case c == '\\' || c == '|' || c == '=':
			dst = append(dst, '\\', c)
		case mode == modeHeader:
			dst = append(dst, ' ')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, ' ')
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// appendValue appends the text of the raw JSON value raw, escaped in mode:
// strings unescaped, numbers and booleans as written, arrays of scalars
// joined with commas, other arrays and objects as compact JSON.
func appendValue(dst []byte, raw string, mode int) []byte {
	if raw == "" {
		return dst
	}
	switch raw[0] {
	case '"':
		return appendUnescaped(dst, raw, mode)
	case '[':
		if !isScalarArray(raw) {
			return appendEscaped(dst, raw, mode)
		}
		n := 0
		forEachElement(raw, func(e string) bool {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendValue(dst, e, mode)
			return true
		})
		return dst
	}
	return appendEscaped(dst, raw, mode)
}

// kvWriter writes the key=value part of a CEF or LEEF line.
type kvWriter struct {
	b    []byte
	sep  byte // between pairs
	mode int  // escape mode of values
	n    int  // pairs written
}

// key starts a pair.
func (w *kvWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, w.sep)
	}
	w.n++
	w.b = append(w.b, k...)
	w.b = append(w.b, '=')
}

// str writes a pair whose value is text; nothing when it is empty.
func (w *kvWriter) str(k, v string) {
	if v == "" {
		return
	}
	w.key(k)
	w.b = appendEscaped(w.b, v, w.mode)
}

// raw writes a pair whose value is a raw JSON value; nothing when it is
// empty or null.
func (w *kvWriter) raw(k, v string) bool {
	if empty(v) {
		return false
	}
	w.key(k)
	w.b = appendValue(w.b, v, w.mode)
	return true
}

// int writes a pair with an integer value.
func (w *kvWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// generic writes the pair of block member m that has no mapping of its
// own: its key is prefix + block + key in camel case (the block starts with
// a capital when there is a prefix), taken from keys for a known field. An
// object value is flattened one level, each member a pair of its own.
func (w *kvWriter) generic(keys *genericKeys, prefix, block string, m member) {
	if empty(m.val) {
		return
	}
	if m.val[0] == '{' {
		forEachMember(m.val, func(k, v string) bool {
			w.genericPair(prefix, block, m.key, unquoteKey(k), v)
			return true
		})
		return
	}
	if m.field >= 0 {
		w.key(keys[m.field])
		w.b = appendValue(w.b, m.val, w.mode)
		return
	}
	w.genericPair(prefix, block, m.key, "", m.val)
}

func (w *kvWriter) genericPair(prefix, block, key, sub, raw string) {
	if empty(raw) {
		return
	}
	mark := len(w.b)
	if w.n > 0 {
		w.b = append(w.b, w.sep)
	}
	w.b = append(w.b, prefix...)
	start := len(w.b)
	w.b = appendCamel(w.b, block, prefix != "")
	w.b = appendCamel(w.b, key, len(w.b) > start || prefix != "")
	w.b = appendCamel(w.b, sub, true)
	if len(w.b) == start && prefix == "" {
		w.b = w.b[:mark]
		return
	}
	w.n++
	w.b = append(w.b, '=')
	w.b = appendValue(w.b, raw, w.mode)
}
