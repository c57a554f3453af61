package format

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

// leefLine is a LEEF 2.0 line as parseLEEF reads it.
type leefLine struct {
	header [5]string // vendor, product, version, event id, delimiter
	attrs  map[string]string
}

// parseLEEF is a small LEEF 2.0 reader written for the tests: the header is
// split on unescaped `|`, the delimiter is read from its hex form, the
// attributes are split on it and each at its first unescaped `=`.
func parseLEEF(line string) (leefLine, error) {
	var l leefLine
	rest, ok := strings.CutPrefix(line, "LEEF:2.0|")
	if !ok {
		return l, fmt.Errorf("no LEEF:2.0| prefix in %q", line)
	}
	for i := range l.header {
		var b strings.Builder
		j := 0
		for ; j < len(rest) && rest[j] != '|'; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				if rest[j] != '\\' && rest[j] != '|' {
					return l, fmt.Errorf("header field %d: bad escape \\%c", i, rest[j])
				}
			}
			b.WriteByte(rest[j])
		}
		if j == len(rest) {
			return l, fmt.Errorf("header has %d fields, want 6", i+1)
		}
		l.header[i] = b.String()
		rest = rest[j+1:]
	}
	hex, ok := strings.CutPrefix(l.header[4], "x")
	if !ok {
		return l, fmt.Errorf("delimiter %q is not in hex form", l.header[4])
	}
	d, err := strconv.ParseUint(hex, 16, 8)
	if err != nil {
		return l, fmt.Errorf("delimiter %q: %w", l.header[4], err)
	}
	l.attrs = map[string]string{}
	for _, pair := range strings.Split(rest, string(rune(d))) {
		eq := -1
		for i := 0; i < len(pair); i++ {
			if pair[i] == '\\' {
				i++
				continue
			}
			if pair[i] == '=' {
				eq = i
				break
			}
		}
		if eq <= 0 {
			return l, fmt.Errorf("attribute %q has no key", pair)
		}
		key := pair[:eq]
		if strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			return l, fmt.Errorf("bad key %q", key)
		}
		v, err := unescapeLEEF(pair[eq+1:])
		if err != nil {
			return l, fmt.Errorf("%s: %w", key, err)
		}
		if _, dup := l.attrs[key]; dup {
			return l, fmt.Errorf("key %q twice", key)
		}
		l.attrs[key] = v
	}
	return l, nil
}

func unescapeLEEF(s string) (string, error) {
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
		case 't':
			b.WriteByte('\t')
		default:
			return "", fmt.Errorf("bad escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}

// leefWant is the LEEF mapping of README.md, derived from the event struct.
func leefWant(e *pipeline.Event) leefLine {
	fields := fieldsOf(e)
	l := leefLine{
		header: [5]string{"OPSWAT", normText(productDisplay(e.Source.Product), true), "1", normText(e.Kind, true), "x09"},
		attrs:  map[string]string{},
	}
	used := map[string]bool{}
	set := func(k, v string) {
		if v != "" {
			l.attrs[k] = normText(v, false)
		}
	}
	setField := func(k, block, key string) {
		if v := fields.get(block, key); v != "" {
			set(k, v)
			used[block+"."+key] = true
		}
	}
	set("devTime", e.Time.UTC().Format("Jan 02 2006 15:04:05.000")+" GMT")
	set("devTimeFormat", "MMM dd yyyy HH:mm:ss.SSS z")
	set("sev", strconv.Itoa(min(max(e.SeverityScore, 1), 10)))
	switch {
	case fields.get("alert", "type") != "":
		setField("cat", "alert", "type")
	case fields.get("rule", "category") != "":
		setField("cat", "rule", "category")
	default:
		set("cat", e.Kind)
	}
	for _, m := range [][3]string{{"src", "network", "src_ip"}, {"srcPort", "network", "src_port"},
		{"srcMAC", "network", "src_mac"}, {"dst", "network", "dst_ip"}, {"dstPort", "network", "dst_port"},
		{"dstMAC", "network", "dst_mac"}, {"proto", "network", "transport"}, {"identSrc", "device", "ip"},
		{"identHostName", "device", "name"}, {"identMAC", "device", "mac"}} {
		setField(m[0], m[1], m[2])
	}
	set("mdbridgeId", e.ID)
	set("seq", strconv.FormatUint(e.Seq, 10))
	set("revision", strconv.Itoa(e.Revision))
	set("instance", e.Source.Instance)
	set("stream", e.Source.Stream)
	set("siteIp", e.Source.SiteIP)
	set("sensorIp", e.Source.SensorIP)
	for _, f := range [][2]string{{"alert", "status"}, {"device", "action"}} {
		if fields.get(f[0], f[1]) != "" {
			setField("status", f[0], f[1])
			break
		}
	}
	set("entityId", entity(e))
	set("msg", e.Message)
	if !e.Observed.IsZero() {
		set("observed", e.Observed.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
	}
	if len(e.Changes) > 0 {
		b, _ := json.Marshal(e.Changes)
		set("changes", string(b))
		set("changed", strings.Join(slices.Sorted(maps.Keys(e.Changes)), ","))
	}
	set("sourceUrl", e.Source.URL)
	for _, f := range blockFields(e) {
		if !used[f.block+"."+f.key] {
			c := camel(f.block)
			set(strings.ToLower(c[:1])+c[1:]+camel(f.key), f.val)
		}
	}
	return l
}

func checkLEEF(t testing.TB, e *pipeline.Event, line string) {
	t.Helper()
	if strings.ContainsAny(line, "\n\r\u2028\u2029") {
		t.Fatalf("line break in %q", line)
	}
	got, err := parseLEEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	want := leefWant(e)
	if got.header != want.header {
		t.Errorf("header\n got %q\nwant %q", got.header, want.header)
	}
	for k, w := range want.attrs {
		if g, ok := got.attrs[k]; !ok || g != w {
			t.Errorf("%s = %q (present %v), want %q", k, g, ok, w)
		}
	}
	for k, g := range got.attrs {
		if _, ok := want.attrs[k]; !ok {
			t.Errorf("unexpected %s = %q", k, g)
		}
	}
	if t.Failed() {
		t.Logf("line: %s", line)
	}
}

func renderLEEF(t testing.TB, e *pipeline.Event) string {
	t.Helper()
	data, err := pipeline.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(LEEF)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Append(nil, data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return string(out)
}

// TestLEEFRoundTrip renders each test event, reads it back with the test's
// own parser and checks every header field and attribute against the event
// struct, both ways.
func TestLEEFRoundTrip(t *testing.T) {
	for name, e := range testEvents() {
		t.Run(name, func(t *testing.T) {
			checkLEEF(t, e, renderLEEF(t, e))
		})
	}
}

func TestParseLEEFRejects(t *testing.T) {
	for _, bad := range []string{
		"CEF:0|a|b|c|d|e|f|",
		"LEEF:2.0|a|b|c|d",
		"LEEF:2.0|a|b|c|d|^|k=v",
		"LEEF:2.0|a|b|c|d|x09|novalue",
		"LEEF:2.0|a|b|c|d|x09|k=a\\q",
		"LEEF:2.0|a|b|c|d|x09|k=a\tk=b",
	} {
		if _, err := parseLEEF(bad); err == nil {
			t.Errorf("parseLEEF(%q): no error", bad)
		}
	}
}

// TestLEEFCarriesEveryField is TestCEFCarriesEveryField for LEEF.
func TestLEEFCarriesEveryField(t *testing.T) {
	f, _ := New(LEEF)
	for name, data := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			out, err := f.Append(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseLEEF(string(out))
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, out)
			}
			checkCarried(t, data, slices.Collect(maps.Values(l.attrs)), string(out))
		})
	}
}
