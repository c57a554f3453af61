package pipeline

import "unsafe"

// ValidJSON reports whether b is one JSON value, optionally surrounded by
// whitespace. It accepts exactly what gjson.ValidBytes accepts (RFC 8259
// syntax; string bytes are not checked as UTF-8), which the fuzz test
// holds it to, for two reasons:
//
//   - Speed: response bodies are validated whole before the scanners of
//     this package walk them, and almost all of a body is string bytes.
//     Strings are checked eight bytes at a time for a quote, a backslash
//     or a control byte; gjson looks at each byte.
//   - Depth: it keeps the open containers on a slice instead of the call
//     stack, so a body of a million '[' is refused without the goroutine
//     stack growing with it.
func ValidJSON(b []byte) bool {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	end, ok := validValue(s, skipSpace(s, 0))
	return ok && skipSpace(s, end) == len(s)
}

// validValue checks the JSON value starting at s[i] and returns the index
// just past it: what ValidJSON checks, for one value inside a larger text.
func validValue(s string, i int) (int, bool) {
	var stack [16]byte
	open := stack[:0] // '{' or '[' of each open container, innermost last
	for {
		// A value starts at s[i].
		if i >= len(s) {
			return i, false
		}
		switch c := s[i]; {
		case c == '{' || c == '[':
			i = skipSpace(s, i+1)
			if i < len(s) && s[i] == c+2 { // '}' and ']' are two past '{' and '['
				i++
				break
			}
			open = append(open, c)
			if c == '{' {
				var ok bool
				if i, ok = memberKey(s, i); !ok {
					return i, false
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = validString(s, i+1); !ok {
				return i, false
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = validNumber(s, i); !ok {
				return i, false
			}
		case c == 't' && len(s)-i >= 4 && s[i:i+4] == "true",
			c == 'n' && len(s)-i >= 4 && s[i:i+4] == "null":
			i += 4
		case c == 'f' && len(s)-i >= 5 && s[i:i+5] == "false":
			i += 5
		default:
			return i, false
		}
		// After a value: close containers, or go on to the next value.
		for {
			if len(open) == 0 {
				return i, true
			}
			i = skipSpace(s, i)
			if i >= len(s) {
				return i, false
			}
			top := open[len(open)-1]
			switch c := s[i]; {
			case c == ',':
				i = skipSpace(s, i+1)
				if top == '{' {
					var ok bool
					if i, ok = memberKey(s, i); !ok {
						return i, false
					}
				}
			case c == '}' && top == '{', c == ']' && top == '[':
				open = open[:len(open)-1]
				i++
				continue
			default:
				return i, false
			}
			break
		}
	}
}

// memberKey checks the key and colon of an object member starting at
// s[i] and returns where its value starts.
func memberKey(s string, i int) (int, bool) {
	_, v, ok := keyAndValue(s, i)
	return v, ok
}

// keyAndValue checks the key and colon of an object member starting at
// s[i]; it returns the key as raw JSON (with its quotes) and where the
// value starts.
func keyAndValue(s string, i int) (rawKey string, value int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	ke, ok := validString(s, i+1)
	if !ok {
		return "", ke, false
	}
	j := skipSpace(s, ke)
	if j >= len(s) || s[j] != ':' {
		return "", j, false
	}
	return s[i:ke], skipSpace(s, j+1), true
}

// validString checks a string whose opening quote is just before s[i] and
// returns the index past its closing quote.
func validString(s string, i int) (int, bool) {
	for i < len(s) {
		if i+8 <= len(s) {
			w := word(s, i)
			flags := bytesEqual(w, '"') | bytesEqual(w, '\\') | bytesBelow(w, ' ')
			if flags == 0 {
				i += 8
				continue
			}
			i += firstFlagged(flags)
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1, true
		case c < ' ':
			return i, false
		case c == '\\':
			if i+1 >= len(s) {
				return i, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(s)-i < 6 || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// validNumber checks a number starting at s[i] and returns the index past
// it; what follows is for the caller to judge.
func validNumber(s string, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s) || s[i] < '0' || s[i] > '9':
		return i, false
	case s[i] == '0':
		i++
	default:
		i = digits(i)
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		i = digits(i)
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		i = digits(i)
	}
	return i, true
}
