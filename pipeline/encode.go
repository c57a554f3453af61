package pipeline

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendEvent appends e as one line of schema-v1 JSON (no newline) to buf.
// It writes the same document encoding/json would for Event, without
// reflection, because it runs once per event on the hot path. Raw must be
// valid JSON; it is copied as is unless it holds line breaks, in which case
// it is compacted so the event stays on one line.
func AppendEvent(buf []byte, e *Event) ([]byte, error) {
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, e.ID)
	buf = append(buf, `,"schema":`...)
	buf = appendString(buf, e.Schema)
	buf = append(buf, `,"kind":`...)
	buf = appendString(buf, e.Kind)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendUint(buf, e.Seq, 10)
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, e.Time)
	buf = append(buf, `,"observed":`...)
	buf = appendTime(buf, e.Observed)
	buf = append(buf, `,"severity":`...)
	buf = appendString(buf, e.Severity)
	buf = append(buf, `,"severity_score":`...)
	buf = strconv.AppendInt(buf, int64(e.SeverityScore), 10)
	if e.Message != "" {
		buf = append(buf, `,"message":`...)
		buf = appendString(buf, e.Message)
	}
	buf = append(buf, `,"source":{"product":`...)
	buf = appendString(buf, e.Source.Product)
	buf = append(buf, `,"instance":`...)
	buf = appendString(buf, e.Source.Instance)
	buf = appendOptString(buf, "stream", e.Source.Stream)
	buf = appendOptString(buf, "site_ip", e.Source.SiteIP)
	buf = appendOptString(buf, "sensor_ip", e.Source.SensorIP)
	buf = appendOptString(buf, "url", e.Source.URL)
	buf = append(buf, `},"revision":`...)
	buf = strconv.AppendInt(buf, int64(e.Revision), 10)
	var err error
	if len(e.Changes) > 0 {
		buf = append(buf, `,"changes":`...)
		if buf, err = appendMarshal(buf, e.Changes); err != nil {
			return buf, err
		}
	}
	if a := e.Alert; a != nil {
		buf = append(buf, `,"alert":{`...)
		n := len(buf)
		buf = appendOptString(buf, "id", a.ID)
		buf = appendOptString(buf, "type", a.Type)
		buf = appendOptString(buf, "name", a.Name)
		buf = appendOptString(buf, "status", a.Status)
		buf = appendOptTime(buf, "started", a.Started)
		buf = appendOptTime(buf, "ended", a.Ended)
		buf = appendOptString(buf, "reason", a.Reason)
		buf = closeObject(buf, n)
	}
	if d := e.Device; d != nil {
		buf = append(buf, `,"device":{`...)
		n := len(buf)
		buf = appendOptString(buf, "id", d.ID)
		buf = appendOptString(buf, "name", d.Name)
		buf = appendOptString(buf, "ip", d.IP)
		buf = appendOptString(buf, "mac", d.MAC)
		buf = appendOptString(buf, "vendor", d.Vendor)
		buf = appendOptString(buf, "model", d.Model)
		buf = appendOptString(buf, "type", d.Type)
		buf = appendOptString(buf, "firmware", d.Firmware)
		buf = appendOptString(buf, "os", d.OS)
		buf = appendOptString(buf, "purdue_level", d.PurdueLevel)
		buf = appendOptString(buf, "site", d.Site)
		buf = appendOptString(buf, "action", d.Action)
		buf = closeObject(buf, n)
	}
	if nw := e.Network; nw != nil {
		buf = append(buf, `,"network":{`...)
		n := len(buf)
		buf = appendOptString(buf, "src_ip", nw.SrcIP)
		buf = appendOptInt(buf, "src_port", nw.SrcPort)
		buf = appendOptString(buf, "src_mac", nw.SrcMAC)
		buf = appendOptString(buf, "dst_ip", nw.DstIP)
		buf = appendOptInt(buf, "dst_port", nw.DstPort)
		buf = appendOptString(buf, "dst_mac", nw.DstMAC)
		buf = appendOptString(buf, "protocol", nw.Protocol)
		buf = appendOptString(buf, "transport", nw.Transport)
		buf = closeObject(buf, n)
	}
	if r := e.Rule; r != nil {
		buf = append(buf, `,"rule":{`...)
		n := len(buf)
		buf = appendOptString(buf, "id", r.ID)
		buf = appendOptString(buf, "name", r.Name)
		buf = appendOptString(buf, "category", r.Category)
		buf = closeObject(buf, n)
	}
	if e.Vulnerability != nil {
		buf = append(buf, `,"vulnerability":`...)
		if buf, err = appendMarshal(buf, e.Vulnerability); err != nil {
			return buf, err
		}
	}
	for _, b := range [...]struct {
		key string
		set bool
		v   any
	}{
		{`,"patch":`, e.Patch != nil, e.Patch},
		{`,"file":`, e.File != nil, e.File},
		{`,"scan":`, e.Scan != nil, e.Scan.utc()},
		{`,"heartbeat":`, e.Heartbeat != nil, e.Heartbeat.utc()},
	} {
		if !b.set {
			continue
		}
		buf = append(buf, b.key...)
		if buf, err = appendMarshal(buf, b.v); err != nil {
			return buf, err
		}
	}
	if len(e.Raw) > 0 {
		buf = append(buf, `,"raw":`...)
		if bytes.IndexByte(e.Raw, '\n') >= 0 || bytes.IndexByte(e.Raw, '\r') >= 0 {
			var c bytes.Buffer
			if err := json.Compact(&c, e.Raw); err != nil {
				return buf, err
			}
			buf = append(buf, c.Bytes()...)
		} else {
			buf = append(buf, e.Raw...)
		}
	}
	return append(buf, '}'), nil
}

// utcPtr returns t in UTC, or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// utc returns a copy of s with its times in UTC (nil stays nil).
func (s *Scan) utc() *Scan {
	if s == nil {
		return nil
	}
	c := *s
	c.Started, c.Stopped = utcPtr(s.Started), utcPtr(s.Stopped)
	return &c
}

// utc returns a copy of h with its time in UTC (nil stays nil).
func (h *Heartbeat) utc() *Heartbeat {
	if h == nil {
		return nil
	}
	c := *h
	c.PolledUntil = utcPtr(h.PolledUntil)
	return &c
}

// closeObject ends an object opened at n, dropping the comma the first
// optional member wrote.
func closeObject(buf []byte, n int) []byte {
	if len(buf) > n && buf[n] == ',' {
		copy(buf[n:], buf[n+1:])
		buf = buf[:len(buf)-1]
	}
	return append(buf, '}')
}

func appendMarshal(buf []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	return append(buf, b...), nil
}

func appendOptString(buf []byte, key, v string) []byte {
	if v == "" {
		return buf
	}
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return appendString(buf, v)
}

func appendOptInt(buf []byte, key string, v int) []byte {
	if v == 0 {
		return buf
	}
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return strconv.AppendInt(buf, int64(v), 10)
}

func appendOptTime(buf []byte, key string, t *time.Time) []byte {
	if t == nil {
		return buf
	}
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return appendTime(buf, *t)
}

func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"')
}

const hexDigits = "0123456789abcdef"

// safeASCII marks the bytes a JSON string carries as they are.
var safeASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped; no HTML escaping.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = AppendJSONContent(buf, s)
	return append(buf, '"')
}

// AppendJSONContent appends s escaped for the inside of a JSON string (no
// quotes), by the rules of appendString. Formats that build JSON by hand
// (OCSF) share it.
//
// Most text needs no escaping, so it skips whole words without a control
// character, a quote, a backslash or a byte of a multi-byte character, and
// leaves the rest to the byte loop.
func AppendJSONContent(buf []byte, s string) []byte { return appendJSONContent(buf, s, true) }

// appendJSONContent is AppendJSONContent; with words false it is the plain
// byte loop, which the tests hold the word skipping to.
func appendJSONContent(buf []byte, s string, words bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		if words && i+8 <= len(s) {
			w := word(s, i)
			flags := bytesBelow(w, 0x20) | bytesEqual(w, '"') | bytesEqual(w, '\\') | w&wordHighs
			if flags == 0 {
				i += 8
				continue
			}
			i += firstFlagged(flags)
		}
		c := s[i]
		if safeASCII[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}
