package pipeline

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The functions here walk JSON that has already been validated (the whole
// response body passes gjson.Valid first). They find where values end
// without building anything, which is several times faster than a general
// parser on the hot path of reading thousands of records per poll. On
// invalid input they never panic or loop; they return short or empty
// results.

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// The word-at-a-time scans below (stringEnd, AppendJSONContent) read eight
// bytes at once and flag the bytes they must look at with the usual bit
// tricks. Only the lowest flagged byte is certain: a borrow can flag bytes
// above it, so callers jump to the lowest one and check bytes one by one
// from there.
const (
	wordOnes  = 0x0101010101010101
	wordHighs = 0x8080808080808080
)

// word reads the eight bytes of s at i (i+8 <= len(s)).
func word(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// bytesEqual flags the bytes of w equal to c.
func bytesEqual(w uint64, c byte) uint64 {
	x := w ^ (uint64(c) * wordOnes)
	return (x - wordOnes) &^ x & wordHighs
}

// bytesBelow flags the bytes of w below c (c <= 0x80).
func bytesBelow(w uint64, c byte) uint64 {
	return (w - uint64(c)*wordOnes) &^ w & wordHighs
}

// firstFlagged is the index within a word of its lowest flagged byte.
func firstFlagged(flags uint64) int { return bits.TrailingZeros64(flags) >> 3 }

// stringEnd returns the index just past the closing quote of the string
// starting at s[i] == '"', or len(s). It skips words without a quote or a
// backslash, which is what makes the long free-text values of alerts
// (messages, reasons) cheap; the last few bytes and every escape take the
// byte loop.
func stringEnd(s string, i int) int {
	for i++; i < len(s); {
		if i+8 <= len(s) {
			w := word(s, i)
			flags := bytesEqual(w, '"') | bytesEqual(w, '\\')
			if flags == 0 {
				i += 8
				continue
			}
			i += firstFlagged(flags)
		}
		switch s[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(s)
}

// valueEnd returns the index just past the value starting at s[i].
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return len(s)
	}
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i = stringEnd(s, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(s)
	default:
		for i < len(s) {
			switch s[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return len(s)
	}
}

// forEachMember calls fn with each member of the object in obj: its raw key
// (with quotes) and raw value. It stops when fn returns false.
func forEachMember(obj string, fn func(rawKey, rawVal string) bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		ke := stringEnd(obj, i)
		key := obj[i:ke]
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		ve := valueEnd(obj, i)
		if ve <= i || !fn(key, obj[i:ve]) {
			return
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// arrayElements returns the raw elements of the array in arr.
func arrayElements(arr string) []string {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return nil
	}
	var out []string
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return out
	}
	for i < len(arr) {
		ve := valueEnd(arr, i)
		if ve <= i {
			return out
		}
		out = append(out, arr[i:ve])
		i = skipSpace(arr, ve)
		if i >= len(arr) || arr[i] != ',' {
			return out
		}
		i = skipSpace(arr, i+1)
	}
	return out
}

// unquote returns the text of a raw JSON string (with its quotes).
func unquote(raw string) string {
	if len(raw) < 2 || raw[0] != '"' {
		return gjson.Parse(raw).Str // not a string token: whatever gjson makes of it
	}
	body := raw[1 : len(raw)-1]
	i := strings.IndexByte(body, '\\')
	if i < 0 {
		return body
	}
	return unescape(body, i)
}

// unescape decodes the escapes of a JSON string's body, the first of which
// is at i. It copies the runs between escapes whole into one allocation,
// returned without a second copy; alert messages quote rule and policy
// names, so a third of a record's strings take this path, where gjson's
// byte-by-byte decoding took 4% of the bridge's CPU on a live load. On the
// validated JSON this file walks, it decodes as gjson does (FuzzUnquote).
func unescape(body string, i int) string {
	out := make([]byte, 0, len(body))
	for ; i >= 0; i = strings.IndexByte(body, '\\') {
		out = append(out, body[:i]...)
		var r rune
		r, body, _ = DecodeEscape(body[i+1:])
		out = utf8.AppendRune(out, r)
	}
	return bytesToString(append(out, body...))
}

// DecodeEscape decodes one JSON escape; s starts just after its backslash.
// It returns the character, the rest of s, and whether the escape is well
// formed. A \u escape of a high surrogate takes the low surrogate escaped
// right after it along; a lone or unpaired surrogate is U+FFFD (and well
// formed). A letter JSON does not define stands for itself, and a \u
// without four hex digits is U+FFFD, both not well formed.
func DecodeEscape(s string) (r rune, rest string, ok bool) {
	if s == "" {
		return utf8.RuneError, s, false
	}
	switch c := s[0]; c {
	case '"', '\\', '/':
		return rune(c), s[1:], true
	case 'b':
		return '\b', s[1:], true
	case 'f':
		return '\f', s[1:], true
	case 'n':
		return '\n', s[1:], true
	case 'r':
		return '\r', s[1:], true
	case 't':
		return '\t', s[1:], true
	case 'u':
	default:
		return rune(c), s[1:], false
	}
	r, ok = hex4(s[1:])
	if !ok {
		return utf8.RuneError, s[1:], false
	}
	s = s[5:]
	if utf16.IsSurrogate(r) {
		if r < 0xDC00 && len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
			if lo, ok := hex4(s[2:]); ok && lo >= 0xDC00 && lo < 0xE000 {
				return utf16.DecodeRune(r, lo), s[6:], true
			}
		}
		return utf8.RuneError, s, true
	}
	return r, s, true
}

// hex4 reads the four hex digits at the start of s.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := range 4 {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// bytesToString returns b as a string without copying; b must not change
// afterwards.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// resultOf describes a raw JSON value as a gjson.Result.
func resultOf(raw string) gjson.Result {
	if raw == "" {
		return gjson.Result{}
	}
	switch raw[0] {
	case '"':
		return gjson.Result{Type: gjson.String, Raw: raw, Str: unquote(raw)}
	case 't':
		return gjson.Result{Type: gjson.True, Raw: raw}
	case 'f':
		return gjson.Result{Type: gjson.False, Raw: raw}
	case 'n':
		return gjson.Result{Type: gjson.Null, Raw: raw}
	case '{', '[':
		return gjson.Result{Type: gjson.JSON, Raw: raw}
	}
	n, _ := strconv.ParseFloat(raw, 64)
	return gjson.Result{Type: gjson.Number, Raw: raw, Num: n}
}

// Members calls fn with each member of a JSON object: its key and value.
// The JSON must be valid; see the package notes above.
func Members(obj string, fn func(key string, val gjson.Result) bool) {
	forEachMember(obj, func(k, v string) bool { return fn(unquote(k), resultOf(v)) })
}

// RawMembers calls fn with each member of a JSON object as raw text: the
// key with its quotes, and the value. The JSON must be valid.
func RawMembers(obj string, fn func(rawKey, rawVal string) bool) { forEachMember(obj, fn) }

// Elements returns the elements of a JSON array as results. The JSON must
// be valid.
func Elements(arr string) []gjson.Result { return results(arrayElements(arr)) }

// validElements checks the array starting at s[i] == '[' and returns its
// raw elements and the index just past it, in one walk. With a matcher, an
// element it recognises is taken without being read, and known holds the
// matcher's tag of every element (-1: read and checked in full).
func validElements(s string, i int, match ElementMatcher) (elems []string, known []int32, end int, ok bool) {
	i = skipSpace(s, i+1)
	if match != nil {
		known = []int32{}
	}
	if i < len(s) && s[i] == ']' {
		return []string{}, known, i + 1, true
	}
	for {
		ve, tag := 0, int32(-1)
		if match != nil {
			if n, t := match(s[i:]); n > 0 && n <= len(s)-i {
				ve, tag = i+n, t
			}
		}
		if tag < 0 {
			if ve, ok = validValue(s, i); !ok {
				return nil, nil, ve, false
			}
		}
		elems = append(elems, s[i:ve])
		if match != nil {
			known = append(known, tag)
		}
		var more bool
		if i, more, ok = afterValue(s, ve, ']'); !ok {
			return nil, nil, i, false
		}
		if !more {
			return elems, known, i, true
		}
	}
}

// validMembers checks the object starting at s[i] == '{' and returns the
// index just past it. For each member it calls value with the unquoted key
// and where the value starts; value checks the value (reading what it
// wants of it) and returns the index just past it.
func validMembers(s string, i int, value func(key string, v int) (int, bool)) (int, bool) {
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		rawKey, v, ok := keyAndValue(s, i)
		if !ok {
			return v, false
		}
		ve, ok := value(unquote(rawKey), v)
		if !ok {
			return ve, false
		}
		var more bool
		if i, more, ok = afterValue(s, ve, '}'); !ok || !more {
			return i, ok
		}
	}
}

// afterValue reads what follows a member or an element ending at s[i]: a
// comma (more; the index of the next one) or the container's closing byte
// (the index just past it).
func afterValue(s string, i int, closing byte) (next int, more, ok bool) {
	i = skipSpace(s, i)
	switch {
	case i < len(s) && s[i] == ',':
		return skipSpace(s, i+1), true, true
	case i < len(s) && s[i] == closing:
		return i + 1, false, true
	}
	return i, false, false
}

// ListScan is what ScanListEnvelope found in one walk of an envelope.
type ListScan struct {
	// Error is the envelope's "error" member (the last one, as with
	// repeated keys everywhere here); it does not exist when absent.
	Error gjson.Result
	// Items are the records of the last "data" member: data itself when
	// it is an array, else the array under the best-ranked list key of the
	// data object; HasList says one was found.
	Items   []gjson.Result
	HasList bool
	// Total is the best-ranked non-negative integer under a total key of
	// that data object, -1 when there is none.
	Total int
	// Known is set when the scan had an ElementMatcher: for each item, the
	// tag the matcher gave it, or -1 for an item read and checked in full.
	Known []int32
}

// ElementMatcher recognises list elements a caller has read before, so that
// a scan can pass over them without reading them again. It gets the text
// from the start of an element to the end of the body and returns the
// length of the known element that starts there and the caller's tag for it
// (>= 0), or n == 0 when it knows none. It must answer n > 0 only for the
// exact bytes of a complete JSON value it has seen valid, followed (after
// any space) by ',' or ']': the scan then gives the same result as one that
// reads the element.
type ElementMatcher func(rest string) (n int, tag int32)

// ScanListEnvelope validates body, which should be a JSON object such as
// {"error": false, "data": {"items": [...], "total": N}}, and reads it in
// the same walk, splitting the record list as it passes over it. The
// envelope's members, the data object's and the list's elements taken in
// separate walks after a validation pass read the list, nearly the whole
// body, four times. ok is false when body is not valid JSON or not an
// object (the result is then empty); a valid body gives what ValidJSON,
// Members and Elements would. listRank and totalRank give a data member's
// key its rank (lower is better, negative: not a candidate).
//
// match, when not nil, recognises elements of the record list that are
// passed over without being read, which is what makes re-reading a lookback
// window of records seen at the last poll cheap; everything else in the
// body is checked as without it.
func ScanListEnvelope(body []byte, listRank, totalRank func(key string) int, match ElementMatcher) (ListScan, bool) {
	invalid := ListScan{Total: -1}
	obj := unsafe.String(unsafe.SliceData(body), len(body))
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return invalid, false
	}
	res := ListScan{Total: -1}
	end, ok := validMembers(obj, i, func(key string, v int) (int, bool) {
		if key != "data" {
			ve, ok := validValue(obj, v)
			if ok && key == "error" {
				res.Error = resultOf(obj[v:ve])
			}
			return ve, ok
		}
		res.Items, res.HasList, res.Total, res.Known = nil, false, -1, nil // the last data member counts
		switch {
		case v < len(obj) && obj[v] == '[':
			elems, known, ve, ok := validElements(obj, v, match)
			res.Items, res.Known, res.HasList = results(elems), known, ok
			return ve, ok
		case v < len(obj) && obj[v] == '{':
			return scanListObject(obj, v, listRank, totalRank, match, &res)
		}
		return validValue(obj, v)
	})
	if !ok || skipSpace(obj, end) != len(obj) {
		return invalid, false
	}
	return res, true
}

// scanListObject validates and reads the data object at obj[i] == '{' for
// ScanListEnvelope and returns the index just past it.
func scanListObject(obj string, i int, listRank, totalRank func(string) int, match ElementMatcher, res *ListScan) (int, bool) {
	bestList, bestTotal := -1, -1
	return validMembers(obj, i, func(key string, v int) (int, bool) {
		if r := listRank(key); r >= 0 && (bestList < 0 || r < bestList) && v < len(obj) && obj[v] == '[' {
			elems, known, ve, ok := validElements(obj, v, match)
			if ok {
				res.Items, res.Known, res.HasList, bestList = results(elems), known, true, r
			}
			return ve, ok
		}
		ve, ok := validValue(obj, v)
		if r := totalRank(key); ok && r >= 0 && (bestTotal < 0 || r < bestTotal) {
			if n, isInt := Int(resultOf(obj[v:ve])); isInt && n >= 0 {
				res.Total, bestTotal = n, r
			}
		}
		return ve, ok
	})
}

// results describes raw JSON values as gjson results.
func results(raws []string) []gjson.Result {
	out := make([]gjson.Result, len(raws))
	for i, r := range raws {
		out[i] = resultOf(r)
	}
	return out
}
