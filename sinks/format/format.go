// Package format renders events for sinks. Every sink takes a `format` key
// naming one of Names; the journal holds each event as schema-v1 JSON
// (pipeline.AppendEvent), and a Formatter turns that JSON into the bytes the
// sink sends: the JSON itself, a CEF or LEEF 2.0 line, or an OCSF object.
//
// Formatters are safe for concurrent use and allocate little: Append writes
// into the caller's buffer.
package format

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Format names, as written in a sink's `format` key.
const (
	JSON = "json"
	CEF  = "cef"
	LEEF = "leef"
	OCSF = "ocsf"
)

// Names lists every format, in the order they are documented.
var Names = []string{JSON, CEF, LEEF, OCSF}

// Formatter renders one event.
type Formatter interface {
	// Name is the format's name, one of Names.
	Name() string
	// Append appends the rendering of the event whose schema-v1 JSON is
	// data to dst and returns the extended buffer. The rendering is one
	// line: it never contains a newline. On error dst is returned unchanged
	// in length and the error says why the event cannot be rendered.
	Append(dst, data []byte) ([]byte, error)
	// JSON reports whether the rendering is a JSON object (json, ocsf), so
	// a sink can put it into a JSON array or an NDJSON body as it is.
	JSON() bool
}

// constructors maps a name to its Formatter; the other files register theirs.
var constructors = map[string]func() Formatter{
	JSON: func() Formatter { return jsonFormat{} },
	CEF:  func() Formatter { return cefFormat{} },
	LEEF: func() Formatter { return leefFormat{} },
	OCSF: func() Formatter { return ocsfFormat{} },
}

// New returns the formatter called name, or an error that lists the names.
func New(name string) (Formatter, error) {
	if c, ok := constructors[name]; ok {
		return c(), nil
	}
	return nil, fmt.Errorf("unknown format %q (supported: %s)", name, strings.Join(Names, ", "))
}

// Validate returns an error when name is not a known format. Sink configs
// call it from their Validate.
func Validate(name string) error {
	if !slices.Contains(Names, name) {
		return fmt.Errorf("unknown format %q (supported: %s)", name, strings.Join(Names, ", "))
	}
	if _, ok := constructors[name]; !ok {
		return fmt.Errorf("format %q is not built into this binary", name)
	}
	return nil
}

// jsonFormat is schema v1 as stored in the journal.
type jsonFormat struct{}

func (jsonFormat) Name() string { return JSON }
func (jsonFormat) JSON() bool   { return true }
func (jsonFormat) Append(dst, data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != '{' {
		return dst, errors.New("json: event is not a JSON object")
	}
	return append(dst, data...), nil
}

// Meta is the part of an event that transports put into headers: NATS
// headers and subjects, syslog header fields and structured data, webhook
// ids.
type Meta struct {
	ID            string
	Kind          string
	Seq           uint64
	Time          time.Time
	Severity      string
	SeverityScore int
	Product       string
	Instance      string
	Stream        string
	SiteIP        string
	SensorIP      string
}

// PeekMeta reads Meta from an event's schema-v1 JSON without decoding the
// rest of it: the envelope fields come first, so it stops after `source`.
// The strings point into data (no copy): they are valid while data is.
func PeekMeta(data []byte) (Meta, error) {
	var m Meta
	if len(data) == 0 || data[0] != '{' {
		return m, errors.New("event is not a JSON object")
	}
	s := unsafe.String(unsafe.SliceData(data), len(data))
	var err error
	seen := 0
	pipeline.RawMembers(s, func(k, v string) bool {
		switch k {
		case `"id"`:
			m.ID = rawStr(v)
		case `"kind"`:
			m.Kind = rawStr(v)
		case `"seq"`:
			m.Seq, _ = strconv.ParseUint(v, 10, 64)
		case `"time"`:
			m.Time, err = time.Parse(time.RFC3339Nano, rawStr(v))
		case `"severity"`:
			m.Severity = rawStr(v)
		case `"severity_score"`:
			m.SeverityScore, _ = strconv.Atoi(v)
		case `"source"`:
			pipeline.RawMembers(v, func(k, v string) bool {
				switch k {
				case `"product"`:
					m.Product = rawStr(v)
				case `"instance"`:
					m.Instance = rawStr(v)
				case `"stream"`:
					m.Stream = rawStr(v)
				case `"site_ip"`:
					m.SiteIP = rawStr(v)
				case `"sensor_ip"`:
					m.SensorIP = rawStr(v)
				}
				return true
			})
			seen++
			return false
		}
		return err == nil
	})
	if err != nil {
		return m, fmt.Errorf("event time: %w", err)
	}
	if m.ID == "" || m.Kind == "" || seen == 0 {
		return m, errors.New("event lacks id, kind or source")
	}
	return m, nil
}

// rawStr returns the text of a raw JSON string value; "" for other values.
func rawStr(raw string) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if strings.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	return gjson.Parse(raw).Str
}
