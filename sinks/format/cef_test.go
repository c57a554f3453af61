package format

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// cefLine is a CEF line as parseCEF reads it.
type cefLine struct {
	header [6]string // vendor, product, version, signature id, name, severity
	ext    map[string]string
}

// parseCEF is a small CEF reader written for the tests, independent of the
// encoder: the header is split on unescaped `|`, the extension on the
// unescaped `=` that end keys (a key is the word before such a `=`).
func parseCEF(line string) (cefLine, error) {
	var c cefLine
	rest, ok := strings.CutPrefix(line, "CEF:0|")
	if !ok {
		return c, fmt.Errorf("no CEF:0| prefix in %q", line)
	}
	for i := range c.header {
		var b strings.Builder
		j := 0
		for ; j < len(rest) && rest[j] != '|'; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				if rest[j] != '\\' && rest[j] != '|' {
					return c, fmt.Errorf("header field %d: bad escape \\%c", i, rest[j])
				}
			}
			b.WriteByte(rest[j])
		}
		if j == len(rest) {
			return c, fmt.Errorf("header has %d fields, want 7", i+1)
		}
		c.header[i] = b.String()
		rest = rest[j+1:]
	}
	c.ext = map[string]string{}
	// Positions of the unescaped '=' that end keys.
	var eqs []int
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			i++
		case '=':
			eqs = append(eqs, i)
		}
	}
	keyStart := func(eq int) int { return strings.LastIndexByte(rest[:eq], ' ') + 1 }
	for n, eq := range eqs {
		ks := keyStart(eq)
		key := rest[ks:eq]
		if key == "" || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			return c, fmt.Errorf("bad key %q", key)
		}
		if n == 0 && ks != 0 {
			return c, fmt.Errorf("text before the first key: %q", rest[:ks])
		}
		end := len(rest)
		if n+1 < len(eqs) {
			end = keyStart(eqs[n+1]) - 1
			if end < eq+1 {
				return c, fmt.Errorf("key %q has no separator before the next key", key)
			}
		}
		v, err := unescapeCEF(rest[eq+1 : end])
		if err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		if _, dup := c.ext[key]; dup {
			return c, fmt.Errorf("key %q twice", key)
		}
		c.ext[key] = v
	}
	return c, nil
}

func unescapeCEF(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("dangling backslash in %q", s)
		}
		i++
		switch s[i] {
		case '\\', '=':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("bad escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}

// normText is what a string becomes in a CEF/LEEF value or header, as the
// README says: each invalid UTF-8 byte U+FFFD (as the journal JSON already
// has it); control characters, C1 controls and U+2028/U+2029 a space, except
// in values a line feed, carriage return and tab, which are escaped.
func normText(s string, header bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case (r == '\n' || r == '\r' || r == '\t') && !header:
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029':
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// camel is the generic key part for a snake_case name.
func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// blockFields lists the named block fields of e in schema order, with their
// text (empty when absent).
func blockFields(e *pipeline.Event) []struct{ block, key, val string } {
	var out []struct{ block, key, val string }
	add := func(block, key, val string) {
		out = append(out, struct{ block, key, val string }{block, key, val})
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	port := func(p int) string {
		if p == 0 {
			return ""
		}
		return strconv.Itoa(p)
	}
	if a := e.Alert; a != nil {
		add("alert", "id", a.ID)
		add("alert", "type", a.Type)
		add("alert", "name", a.Name)
		add("alert", "status", a.Status)
		add("alert", "started", ts(a.Started))
		add("alert", "ended", ts(a.Ended))
		add("alert", "reason", a.Reason)
	}
	if d := e.Device; d != nil {
		for _, f := range [][2]string{{"id", d.ID}, {"name", d.Name}, {"ip", d.IP}, {"mac", d.MAC}, {"vendor", d.Vendor},
			{"model", d.Model}, {"type", d.Type}, {"firmware", d.Firmware}, {"os", d.OS},
			{"purdue_level", d.PurdueLevel}, {"site", d.Site}, {"action", d.Action}} {
			add("device", f[0], f[1])
		}
	}
	if n := e.Network; n != nil {
		add("network", "src_ip", n.SrcIP)
		add("network", "src_port", port(n.SrcPort))
		add("network", "src_mac", n.SrcMAC)
		add("network", "dst_ip", n.DstIP)
		add("network", "dst_port", port(n.DstPort))
		add("network", "dst_mac", n.DstMAC)
		add("network", "protocol", n.Protocol)
		add("network", "transport", n.Transport)
	}
	if r := e.Rule; r != nil {
		add("rule", "id", r.ID)
		add("rule", "name", r.Name)
		add("rule", "category", r.Category)
	}
	if v := e.Vulnerability; v != nil {
		add("vulnerability", "cve", v.CVE)
		cvss := ""
		if v.CVSS != nil {
			b, _ := json.Marshal(*v.CVSS)
			cvss = string(b)
		}
		add("vulnerability", "cvss", cvss)
		add("vulnerability", "cvss_vector", v.CVSSVector)
		add("vulnerability", "description", v.Description)
	}
	return out
}

// fieldMap holds the text of each block field of an event by "block.key".
type fieldMap map[string]string

func fieldsOf(e *pipeline.Event) fieldMap {
	m := fieldMap{}
	for _, f := range blockFields(e) {
		m[f.block+"."+f.key] = f.val
	}
	return m
}

// get returns the text of block.key ("" when absent).
func (m fieldMap) get(block, key string) string { return m[block+"."+key] }

func productDisplay(p string) string {
	switch p {
	case pipeline.ProductOTSecurity:
		return "MetaDefender OT Security"
	case pipeline.ProductStorageSec:
		return "MetaDefender Storage Security"
	case "":
		return "mdbridge"
	}
	return p
}

func millis(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// entity is the natural key README.md documents, from the event struct.
func entity(e *pipeline.Event) string {
	fields := fieldsOf(e)
	if id := fields.get("alert", "id"); id != "" {
		return id
	}
	dev := fields.get("device", "id")
	if dev == "" {
		dev = fields.get("device", "mac")
	}
	if dev == "" {
		dev = fields.get("device", "ip")
	}
	if cve := fields.get("vulnerability", "cve"); cve != "" && dev != "" {
		return dev + "/" + cve
	} else if cve != "" {
		return cve
	}
	return dev
}

// cefWant is the CEF mapping of README.md, derived from the event struct
// (not from its JSON) so that it checks the encoder independently.
func cefWant(e *pipeline.Event) cefLine {
	fields := fieldsOf(e)
	sig := e.Kind
	if e.Kind == pipeline.KindSuricataAlert && e.Rule != nil && e.Rule.ID != "" {
		sig = e.Rule.ID
	}
	name := e.Message
	if name == "" {
		name = e.Kind
	}
	c := cefLine{
		header: [6]string{"OPSWAT", normText(productDisplay(e.Source.Product), true), "1", normText(sig, true),
			normText(name, true), strconv.Itoa(min(max(e.SeverityScore, 0), 10))},
		ext: map[string]string{},
	}
	used := map[string]bool{}
	set := func(k, v string) {
		if v != "" {
			c.ext[k] = normText(v, false)
		}
	}
	setField := func(k, block, key string) {
		if v := fields.get(block, key); v != "" {
			set(k, v)
			used[block+"."+key] = true
		}
	}
	label := func(k, label, v string) {
		if v != "" {
			set(k+"Label", label)
			set(k, v)
		}
	}
	set("externalId", e.ID)
	set("rt", strconv.FormatInt(e.Time.UnixMilli(), 10))
	set("cat", e.Kind)
	set("msg", e.Message)
	set("deviceExternalId", e.Source.Instance)
	if u, err := url.Parse(e.Source.URL); err == nil {
		set("dvchost", u.Hostname())
	}
	set("dvc", e.Source.SensorIP)
	label("cs1", "stream", e.Source.Stream)
	label("cs2", "siteIp", e.Source.SiteIP)
	label("cs3", "sensorIp", e.Source.SensorIP)
	for _, f := range [][2]string{{"alert", "status"}, {"device", "action"}} {
		if v := fields.get(f[0], f[1]); v != "" {
			label("cs4", "status", v)
			used[f[0]+"."+f[1]] = true
			break
		}
	}
	if v := fields.get("vulnerability", "cve"); v != "" {
		label("cs5", "cve", v)
		used["vulnerability.cve"] = true
	}
	label("cs6", "entityId", entity(e))
	label("cn1", "seq", strconv.FormatUint(e.Seq, 10))
	label("cn2", "revision", strconv.Itoa(e.Revision))
	if v := fields.get("vulnerability", "cvss"); v != "" {
		label("cfp1", "cvss", v)
		used["vulnerability.cvss"] = true
	}
	if !e.Observed.IsZero() {
		label("deviceCustomDate1", "observed", strconv.FormatInt(e.Observed.UnixMilli(), 10))
	}
	for _, f := range [][2]string{{"alert", "status"}, {"device", "action"}} {
		if v := fields.get(f[0], f[1]); v != "" {
			set("act", v)
			break
		}
	}
	if ms := millis(fields.get("alert", "started")); ms != "" {
		set("start", ms)
		used["alert.started"] = true
	}
	if ms := millis(fields.get("alert", "ended")); ms != "" {
		set("end", ms)
		used["alert.ended"] = true
	}
	setField("reason", "alert", "reason")

	srcIP, dstIP, devIP := fields.get("network", "src_ip"), fields.get("network", "dst_ip"), fields.get("device", "ip")
	devSrc := devIP != "" && devIP == srcIP
	devDst := !devSrc && (devIP == "" || devIP == dstIP || dstIP == "")
	end := func(k, nwKey, devKey string, dev bool) {
		nw, d := fields.get("network", nwKey), fields.get("device", devKey)
		setField(k, "network", nwKey)
		switch {
		case !dev || d == "":
		case nw != "" && nw == d:
			used["device."+devKey] = true
		case nw == "":
			set(k, d)
			used["device."+devKey] = true
		}
	}
	setField("src", "network", "src_ip")
	setField("spt", "network", "src_port")
	end("smac", "src_mac", "mac", devSrc)
	if devSrc {
		setField("shost", "device", "name")
		used["device.ip"] = true
	}
	end("dst", "dst_ip", "ip", devDst)
	setField("dpt", "network", "dst_port")
	end("dmac", "dst_mac", "mac", devDst)
	if devDst {
		setField("dhost", "device", "name")
	}
	setField("proto", "network", "transport")
	setField("app", "network", "protocol")
	if len(e.Changes) > 0 {
		b, _ := json.Marshal(e.Changes)
		set("mdbridgeChanges", string(b))
		set("mdbridgeChanged", strings.Join(slices.Sorted(maps.Keys(e.Changes)), ","))
	}
	set("mdbridgeSourceUrl", e.Source.URL)
	for _, f := range blockFields(e) {
		if !used[f.block+"."+f.key] {
			set("mdbridge"+camel(f.block)+camel(f.key), f.val)
		}
	}
	return c
}

func renderCEF(t testing.TB, e *pipeline.Event) (string, []byte) {
	t.Helper()
	data, err := pipeline.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(CEF)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Append(nil, data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return string(out), data
}

// checkCEF parses line and compares it with the mapping of e.
func checkCEF(t testing.TB, e *pipeline.Event, line string) {
	t.Helper()
	if strings.ContainsAny(line, "\n\r\u2028\u2029") {
		t.Fatalf("line break in %q", line)
	}
	got, err := parseCEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	want := cefWant(e)
	if got.header != want.header {
		t.Errorf("header\n got %q\nwant %q", got.header, want.header)
	}
	for k, w := range want.ext {
		if g, ok := got.ext[k]; !ok || g != w {
			t.Errorf("%s = %q (present %v), want %q", k, g, ok, w)
		}
	}
	for k, g := range got.ext {
		if _, ok := want.ext[k]; !ok {
			t.Errorf("unexpected %s = %q", k, g)
		}
	}
	if t.Failed() {
		t.Logf("line: %s", line)
	}
}

// TestCEFRoundTrip renders each test event, reads it back with the test's
// own parser and checks every header field and extension value against the
// event struct, both ways (nothing missing, nothing extra).
func TestCEFRoundTrip(t *testing.T) {
	for name, e := range testEvents() {
		t.Run(name, func(t *testing.T) {
			line, _ := renderCEF(t, e)
			checkCEF(t, e, line)
		})
	}
}

func TestParseCEFRejects(t *testing.T) {
	for _, bad := range []string{
		"LEEF:2.0|a|b|c|d|x09|",
		"CEF:0|a|b|c|d|e",
		"CEF:0|a|b|c|d|e|f|bad key=x",
		`CEF:0|a|b|c|d|e|f|k=x\q`,
		"CEF:0|a|b|c|d|e|f|lead k=x",
	} {
		if _, err := parseCEF(bad); err == nil {
			t.Errorf("parseCEF(%q): no error", bad)
		}
	}
}

// TestCEFCarriesEveryField checks on every test event, including the
// hand-written kinds of issue 4 and an unknown kind, that every scalar in
// every block reaches the extension (as text, or as milliseconds for a
// time), and that the raw record does not.
func TestCEFCarriesEveryField(t *testing.T) {
	f, _ := New(CEF)
	for name, data := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			out, err := f.Append(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseCEF(string(out))
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, out)
			}
			checkCarried(t, data, slices.Collect(maps.Values(c.ext)), string(out))
		})
	}
}

// leaves returns the text of every scalar and scalar array in the blocks of
// an event (top-level members outside the envelope), to depth 2, and the
// compact JSON of deeper values.
func leaves(t testing.TB, data []byte) []string {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	envelope := map[string]bool{"id": true, "schema": true, "kind": true, "seq": true, "time": true, "observed": true,
		"severity": true, "severity_score": true, "message": true, "source": true, "revision": true, "changes": true, "raw": true}
	var out []string
	var walk func(raw json.RawMessage, depth int)
	walk = func(raw json.RawMessage, depth int) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil && obj != nil {
			if depth > 2 {
				out = append(out, string(raw))
				return
			}
			for _, v := range obj {
				walk(v, depth+1)
			}
			return
		}
		var arr []any
		if json.Unmarshal(raw, &arr) == nil {
			if len(arr) == 0 {
				return
			}
			parts := make([]string, len(arr))
			for i, v := range arr {
				switch v := v.(type) {
				case string:
					parts[i] = v
				case float64, bool:
					parts[i] = fmt.Sprint(v)
				default:
					out = append(out, string(raw))
					return
				}
			}
			out = append(out, strings.Join(parts, ","))
			return
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				out = append(out, s)
			}
			return
		}
		if string(raw) != "null" {
			out = append(out, string(raw))
		}
	}
	for k, v := range top {
		if !envelope[k] {
			walk(v, 1)
		}
	}
	return out
}

func checkCarried(t *testing.T, data []byte, values []string, out string) {
	t.Helper()
	have := map[string]bool{}
	for _, v := range values {
		have[strings.ToLower(v)] = true
	}
	carried := func(s string) bool { return have[strings.ToLower(s)] || have[millis(s)] }
	for _, leaf := range leaves(t, data) {
		if carried(leaf) {
			continue
		}
		// An array of scalars may be spread over several values (OCSF
		// malware[].name).
		parts := strings.Split(leaf, ",")
		if len(parts) > 1 && !slices.ContainsFunc(parts, func(p string) bool { return !carried(p) }) {
			continue
		}
		t.Errorf("value %q of the event is not in the rendering", leaf)
	}
	if strings.Contains(out, "raw is skipped") || strings.Contains(out, "criticality") {
		t.Errorf("the raw record leaked into the rendering: %s", out)
	}
	if t.Failed() {
		t.Logf("rendering: %s", out)
	}
}
