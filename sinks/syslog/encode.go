package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// EnterpriseNumber is the private enterprise number in the SD-ID of the
// structured data element, "mdbridge@32473". 32473 is the number IANA
// reserves for documentation and examples (RFC 5612): mdbridge has no PEN
// of its own. Receivers match the SD-ID as a string, so a registered number
// can replace it here later.
const EnterpriseNumber = 32473

// SDID is the SD-ID of the element carrying id, seq, source and stream:
// "mdbridge@" and EnterpriseNumber.
const SDID = "mdbridge@32473"

// Header field limits (RFC 5424 §6; RFC 3164 §4.1.3 for the tag).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxTag      = 32
)

// Syslog severities (RFC 5424 §6.2.1).
const (
	sevCrit    = 2
	sevErr     = 3
	sevWarning = 4
	sevNotice  = 5
	sevInfo    = 6
)

// Severity maps an event severity to the syslog severity: critical → 2
// (crit), high → 3 (err), medium → 4 (warning), low → 5 (notice), info and
// anything unknown → 6 (info).
func Severity(s string) int {
	switch s {
	case pipeline.SeverityCritical:
		return sevCrit
	case pipeline.SeverityHigh:
		return sevErr
	case pipeline.SeverityMedium:
		return sevWarning
	case pipeline.SeverityLow:
		return sevNotice
	}
	return sevInfo
}

const (
	layout5424 = "2006-01-02T15:04:05.999999Z07:00"
	layout3164 = "Jan _2 15:04:05"
)

// encoder renders one event as one syslog message (no framing). The parts
// that never change are sanitised once, in newEncoder.
type encoder struct {
	rfc3164  bool
	facility int
	f        format.Formatter
	// static is " HOSTNAME APP-NAME PROCID " (rfc5424) or " HOSTNAME TAG["
	// (rfc3164).
	static []byte
}

func newEncoder(protocol string, facility int, hostname, appName string, pid int, f format.Formatter) *encoder {
	e := &encoder{rfc3164: protocol == RFC3164, facility: facility, f: f}
	b := []byte{' '}
	if e.rfc3164 {
		// go-syslog and rsyslog end the RFC 3164 hostname at ':'.
		b = appendField(b, hostname, maxHostname, "-", true)
		b = append(b, ' ')
		b = appendField(b, appName, maxTag, "mdbridge", true)
		b = append(b, '[')
	} else {
		b = appendField(b, hostname, maxHostname, "-", false)
		b = append(b, ' ')
		b = appendField(b, appName, maxAppName, "-", false)
		b = append(b, ' ')
		b = appendField(b, strconv.Itoa(pid), maxProcID, "-", false)
		b = append(b, ' ')
	}
	e.static = b
	return e
}

// errRender marks an event that cannot be rendered at all; it is rejected.
var errRender = errors.New("cannot render event")

// appendMessage appends the syslog message of the event whose schema-v1
// JSON is data. On error dst is returned with its original length.
//
// RFC 5424:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [mdbridge@32473 id="…" seq="…" source="…" stream="…"] MSG
//
// RFC 3164:
//
//	<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[ID.SEQ]: MSG
func (e *encoder) appendMessage(dst, data []byte) ([]byte, error) {
	m, err := format.PeekMeta(data)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", errRender, err)
	}
	start := len(dst)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(e.facility*8+Severity(m.Severity)), 10)
	dst = append(dst, '>')
	t := m.Time.UTC()
	if e.rfc3164 {
		dst = t.AppendFormat(dst, layout3164)
		dst = append(dst, e.static...)
		dst = appendField(dst, m.ID, maxProcID, "-", true)
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, m.Seq, 10)
		dst = append(dst, ']', ':', ' ')
	} else {
		dst = append(dst, '1', ' ')
		if y := t.Year(); m.Time.IsZero() || y < 0 || y > 9999 {
			dst = append(dst, '-')
		} else {
			dst = t.AppendFormat(dst, layout5424)
		}
		dst = append(dst, e.static...)
		dst = appendField(dst, m.Kind, maxMsgID, "-", false)
		dst = append(dst, " ["...)
		dst = append(dst, SDID...)
		dst = append(dst, ` id="`...)
		dst = appendParamValue(dst, m.ID)
		dst = append(dst, `" seq="`...)
		dst = strconv.AppendUint(dst, m.Seq, 10)
		dst = append(dst, '"')
		if m.Instance != "" {
			dst = append(dst, ` source="`...)
			dst = appendParamValue(dst, m.Instance)
			dst = append(dst, '"')
		}
		if m.Stream != "" {
			dst = append(dst, ` stream="`...)
			dst = appendParamValue(dst, m.Stream)
			dst = append(dst, '"')
		}
		dst = append(dst, "] "...)
	}
	n := len(dst)
	dst, err = e.f.Append(dst, data)
	if err != nil {
		return dst[:start], fmt.Errorf("%w: format %s: %w", errRender, e.f.Name(), err)
	}
	if len(dst) == n {
		dst = dst[:n-1] // an empty MSG: drop the space before it
	}
	if e.f.JSON() && bytes.IndexByte(dst[n:], 0x7f) >= 0 {
		dst = escapeDEL(dst, n)
	}
	return dst, nil
}

// escapeDEL rewrites each DEL byte (0x7f) after dst[from] as the JSON escape
// \u007f. JSON encoders leave DEL raw, but RFC 3164 allows only printable
// characters in MSG and receivers mangle it (rsyslog writes "#177"); in a
// JSON text DEL can only stand inside a string, where the escape means the
// same.
func escapeDEL(dst []byte, from int) []byte {
	body := bytes.Clone(dst[from:])
	dst = dst[:from]
	for {
		i := bytes.IndexByte(body, 0x7f)
		if i < 0 {
			return append(dst, body...)
		}
		dst = append(dst, body[:i]...)
		dst = append(dst, `\u007f`...)
		body = body[i+1:]
	}
}

// headerSafe reports whether s is printable US-ASCII without spaces, as
// RFC 5424 header fields must be.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// appendField appends s as a header field: at most limit bytes, each byte
// outside printable US-ASCII (and, when strict3164, each '[', ']' and ':',
// which end the RFC 3164 tag) replaced by '_', a multi-byte character by a
// single '_'. An empty s appends empty.
func appendField(dst []byte, s string, limit int, empty string, strict3164 bool) []byte {
	if s == "" {
		return append(dst, empty...)
	}
	n := 0
	for i := 0; i < len(s) && n < limit; n++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			dst = append(dst, '_')
			continue
		case c < 33 || c > 126:
			c = '_'
		case strict3164 && (c == '[' || c == ']' || c == ':'):
			c = '_'
		}
		dst = append(dst, c)
		i++
	}
	return dst
}

// appendParamValue appends s as an RFC 5424 PARAM-VALUE: '"', '\' and ']'
// escaped with a backslash; control characters (which would break newline
// framing and many receivers) replaced by a space; invalid UTF-8 replaced by
// U+FFFD. Other UTF-8 is kept as it is.
func appendParamValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == ']':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, ' ')
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
