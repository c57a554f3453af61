package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// FieldPaths maps a field name (id, time, name, ...) to the paths where a
// record may hold it, most likely first. A path is a top-level key or a
// dotted path into nested objects (gjson syntax).
type FieldPaths map[string][]string

// Merge returns a copy of p in which every override replaces the candidate
// list of its field with that one path: an operator's mapping is exact, not
// a guess among fallbacks.
func (p FieldPaths) Merge(overrides map[string]string) FieldPaths {
	out := make(FieldPaths, len(p))
	for k, v := range p {
		out[k] = v
	}
	for k, v := range overrides {
		out[k] = []string{v}
	}
	return out
}

// Extractor pulls a fixed set of fields out of JSON records in one pass over
// each record's top-level keys; dotted paths are looked up separately.
type Extractor struct {
	names []string
	paths [][]string
	// keys maps each top-level key the paths name to what it means, so that
	// each member of a record costs one map lookup (a second one, for the
	// heads, took a quarter of extraction's time).
	keys   map[string]member
	nested []nestedSlot
	nheads int // first segments of plain dotted paths (member.head < nheads)
}

type slot struct{ field, rank int }

// member is what a top-level key means to an Extractor: the fields it may
// fill, and its index among the heads of dotted paths (-1: none).
type member struct {
	slots []slot
	head  int
}

type nestedSlot struct {
	field, rank int
	path        string
	head        int    // its head's member.head, or -1: look in the whole record
	rest        string // path below the head
}

// NewExtractor compiles the paths of each field.
func NewExtractor(fields FieldPaths) *Extractor {
	x := &Extractor{keys: map[string]member{}}
	key := func(k string) member {
		m, ok := x.keys[k]
		if !ok {
			m.head = -1
		}
		return m
	}
	for name := range fields {
		x.names = append(x.names, name)
	}
	// Sorted names give every field a stable index.
	slices.Sort(x.names)
	for i, name := range x.names {
		x.paths = append(x.paths, fields[name])
		for rank, p := range fields[name] {
			if strings.ContainsAny(p, ".#|@*?") {
				n := nestedSlot{field: i, rank: rank, path: p, head: -1}
				// a.b.c with a plain head: only look when the record has a.
				if head, rest, ok := strings.Cut(p, "."); ok && !strings.ContainsAny(head, "#|@*?\\") && rest != "" {
					m := key(head)
					if m.head < 0 {
						m.head = x.nheads
						x.nheads++
						x.keys[head] = m
					}
					n.head, n.rest = m.head, rest
				}
				x.nested = append(x.nested, n)
				continue
			}
			m := key(p)
			m.slots = append(m.slots, slot{field: i, rank: rank})
			x.keys[p] = m
		}
	}
	return x
}

// Index returns the position of a field in the slice Extract fills, or -1.
func (x *Extractor) Index(name string) int {
	for i, n := range x.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Paths returns the candidate paths of the field at index i, for messages.
func (x *Extractor) Paths(i int) []string { return x.paths[i] }

// Len is the number of fields.
func (x *Extractor) Len() int { return len(x.names) }

// Extract fills out (len(out) == x.Len()) with each field's value from the
// best-ranked path present and not null in record. rank is scratch space of
// the same length. Fields found nowhere are left as the zero Result.
func (x *Extractor) Extract(record gjson.Result, out []gjson.Result, rank []int) {
	x.extract(record, out, rank, false)
}

// ExtractFirst is Extract that stops reading the record as soon as every
// field has been found at its first (most likely) path, which for records
// that lead with their id and time is after a few members.
func (x *Extractor) ExtractFirst(record gjson.Result, out []gjson.Result, rank []int) {
	x.extract(record, out, rank, true)
}

func (x *Extractor) extract(record gjson.Result, out []gjson.Result, rank []int, stopEarly bool) {
	for i := range out {
		out[i] = gjson.Result{}
		rank[i] = math.MaxInt
	}
	var heads []string
	if x.nheads > 0 {
		heads = make([]string, x.nheads)
	}
	best := 0
	if len(x.keys) > 0 {
		forEachMember(record.Raw, func(k, v string) bool {
			m, ok := x.keys[unquote(k)]
			if !ok {
				return true
			}
			if m.head >= 0 {
				heads[m.head] = v
			}
			slots := m.slots
			if len(slots) == 0 || v == "null" {
				return true
			}
			r := resultOf(v)
			for _, s := range slots {
				if s.rank < rank[s.field] {
					if s.rank == 0 {
						best++
					}
					out[s.field], rank[s.field] = r, s.rank
				}
			}
			return !stopEarly || best < len(out) || len(heads) > 0
		})
	}
	x.extractNested(record, heads, out, rank)
}

// extractNested fills fields from dotted paths that rank better than what
// the top-level pass found. A path under a head the record lacks is not
// looked up at all.
func (x *Extractor) extractNested(record gjson.Result, heads []string, out []gjson.Result, rank []int) {
	for _, n := range x.nested {
		if n.rank >= rank[n.field] {
			continue
		}
		var v gjson.Result
		switch {
		case n.head < 0:
			v = record.Get(n.path)
		case heads == nil || heads[n.head] == "":
			continue
		default:
			v = gjson.Get(heads[n.head], n.rest)
		}
		if v.Exists() && v.Type != gjson.Null {
			out[n.field], rank[n.field] = v, n.rank
		}
	}
}

// Str renders a scalar as a string: strings as themselves, numbers and
// booleans as their JSON text; null, missing, objects and arrays give "".
func Str(r gjson.Result) string {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number, gjson.True, gjson.False:
		return r.Raw
	}
	return ""
}

// Int returns an integer from a number or a numeric string, and whether it
// was one.
func Int(r gjson.Result) (int, bool) {
	switch r.Type {
	case gjson.Number:
		if r.Num == math.Trunc(r.Num) && math.Abs(r.Num) < 1<<53 {
			return int(r.Num), true
		}
	case gjson.String:
		if n, err := strconv.Atoi(strings.TrimSpace(r.Str)); err == nil {
			return n, true
		}
	}
	return 0, false
}

// ErrNoTime is returned by ParseTime for a missing or null value.
var ErrNoTime = errors.New("no time value")

// Epoch magnitudes: below 1e11 a number is taken as seconds (that is before
// year 5138), below 1e14 as milliseconds, below 1e17 as microseconds, else
// nanoseconds.
const (
	epochMillisFrom = 1e11
	epochMicrosFrom = 1e14
	epochNanosFrom  = 1e17
)

// ParseTime reads a timestamp given as epoch seconds, milliseconds,
// microseconds or nanoseconds (a number or a numeric string, fractions
// allowed), or as an RFC 3339 string with any number of fractional digits.
// RFC 3339 without a zone, or with a space for the T, is read as UTC.
// The result is in UTC.
func ParseTime(r gjson.Result) (time.Time, error) {
	switch r.Type {
	case gjson.Null:
		return time.Time{}, ErrNoTime
	case gjson.Number:
		return fromEpoch(r.Num, r.Raw)
	case gjson.String:
		s := strings.TrimSpace(r.Str)
		if s == "" {
			return time.Time{}, ErrNoTime
		}
		if maybeNumber(s) {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return fromEpoch(f, s)
			}
		}
		return parseTimeString(s)
	}
	if !r.Exists() {
		return time.Time{}, ErrNoTime
	}
	return time.Time{}, fmt.Errorf("time value %.40s is not a number or a string", r.Raw)
}

// maybeNumber reports whether s has only the bytes a decimal number can
// have, so that a date such as 2025-03-01T08:00:00Z is not first handed to
// strconv.ParseFloat, whose refusal allocates an error on every record.
func maybeNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

func fromEpoch(f float64, raw string) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f >= 1e19 {
		return time.Time{}, fmt.Errorf("time value %.40s is out of range", raw)
	}
	var perSec int64 // units of the epoch per second
	switch {
	case f < epochMillisFrom:
		perSec = 1
	case f < epochMicrosFrom:
		perSec = 1e3
	case f < epochNanosFrom:
		perSec = 1e6
	default:
		perSec = 1e9
	}
	nsPerUnit := 1e9 / perSec
	// Plain decimal text ("1700000000123", "1700000000.25") is read exactly:
	// float64 holds neither 19-digit nanoseconds nor most fractions.
	if ip, frac, ok := splitDecimal(raw); ok {
		if n, err := strconv.ParseUint(ip, 10, 64); err == nil {
			sec := int64(n / uint64(perSec))
			ns := int64(n%uint64(perSec))*nsPerUnit + fracNanos(frac, nsPerUnit)
			return time.Unix(sec, ns).UTC(), nil
		}
	}
	// Exponents and the like: through float64, in seconds so nothing
	// overflows int64 (f < 1e19 gives at most 1e10 seconds).
	sec, fr := math.Modf(f / float64(perSec))
	return time.Unix(int64(sec), int64(math.Round(fr*1e9))).UTC(), nil
}

// splitDecimal splits "123.456" into "123" and "456"; ok is false for
// anything but digits with an optional fraction.
func splitDecimal(s string) (ip, frac string, ok bool) {
	ip, frac, _ = strings.Cut(s, ".")
	if ip == "" {
		return "", "", false
	}
	for _, part := range []string{ip, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", "", false
			}
		}
	}
	return ip, frac, true
}

// fracNanos converts the fraction digits of one epoch unit to nanoseconds
// (truncating below a nanosecond).
func fracNanos(frac string, nsPerUnit int64) int64 {
	if len(frac) > 9 {
		frac = frac[:9]
	}
	frac += "000000000"[:9-len(frac)]
	n, _ := strconv.ParseInt(frac, 10, 64) // billionths of a unit
	return n * nsPerUnit / 1e9
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

func parseTimeString(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time value %.40q is neither RFC 3339 nor an epoch number", s)
}
