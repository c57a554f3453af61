package nats

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mdbridge/mdbridge/sinks/format"
)

// Placeholders lists the names the subject template may use, each written
// in braces: {kind} is the event kind, {source} the source instance (its
// configured name), {stream} the source stream, {severity}, {product},
// {site_ip} and {sensor_ip} the event fields of those names.
var Placeholders = []string{"kind", "source", "stream", "severity", "product", "site_ip", "sensor_ip"}

// field is one placeholder, as an index into Placeholders.
type field uint8

const (
	fieldKind field = iota
	fieldSource
	fieldStream
	fieldSeverity
	fieldProduct
	fieldSiteIP
	fieldSensorIP
)

// value returns the field's value in m.
func (f field) value(m *format.Meta) string {
	switch f {
	case fieldKind:
		return m.Kind
	case fieldSource:
		return m.Instance
	case fieldStream:
		return m.Stream
	case fieldSeverity:
		return m.Severity
	case fieldProduct:
		return m.Product
	case fieldSiteIP:
		return m.SiteIP
	case fieldSensorIP:
		return m.SensorIP
	}
	return ""
}

// part is a literal piece of the template or a placeholder.
type part struct {
	lit     string
	field   field
	isField bool
}

// template is a parsed subject template.
type template struct {
	src   string
	parts []part
	used  []field // distinct placeholders, in order of first use
}

// maxTemplate bounds the template's length; a subject is a short thing.
const maxTemplate = 1024

// parseTemplate parses and checks a subject template. The literal text
// must be a valid subject by itself: no whitespace, no wildcards, no empty
// tokens once every placeholder stands for one token.
func parseTemplate(s string) (*template, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	if len(s) > maxTemplate {
		return nil, fmt.Errorf("is longer than %d bytes", maxTemplate)
	}
	t := &template{src: s}
	rest := s
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("%q has a } without its {", s)
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return nil, fmt.Errorf("%q has a { without its }", s)
		}
		name := rest[open+1 : open+1+end]
		f, ok := lookupField(name)
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {%s})", name, strings.Join(Placeholders, "}, {"))
		}
		t.parts = append(t.parts, part{field: f, isField: true})
		seen := false
		for _, u := range t.used {
			seen = seen || u == f
		}
		if !seen {
			t.used = append(t.used, f)
		}
		rest = rest[open+1+end+1:]
	}
	// The shape check: with every placeholder one plain token, the result
	// must be a subject one can publish to.
	var b strings.Builder
	for _, p := range t.parts {
		if p.isField {
			b.WriteString("x")
		} else {
			b.WriteString(p.lit)
		}
	}
	if err := checkPublishSubject(b.String()); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return t, nil
}

func lookupField(name string) (field, bool) {
	for i, p := range Placeholders {
		if p == name {
			return field(i), true
		}
	}
	return 0, false
}

// render appends the subject for m to dst. Placeholder values are made
// safe: a byte that a subject token cannot hold (space and other control
// characters, '*', '>') becomes '_', and an empty token (an empty value, or
// a value with a leading, trailing or doubled '.') becomes "_". A '.'
// inside a value stays: it adds levels to the subject, so that kind
// ot.device_alert gives mdbridge.ot.device_alert.plant-a.
func (t *template) render(dst []byte, m *format.Meta) []byte {
	dot := true // the previous byte ended a token (or we are at the start)
	put := func(s string) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '.':
				if dot {
					dst = append(dst, '_')
				}
				dst = append(dst, '.')
				dot = true
				continue
			case c <= ' ' || c == 0x7f || c == '*' || c == '>':
				c = '_'
			}
			dst = append(dst, c)
			dot = false
		}
	}
	for _, p := range t.parts {
		if !p.isField {
			put(p.lit)
			continue
		}
		v := p.field.value(m)
		if v == "" {
			v = "_"
		}
		put(v)
	}
	if dot {
		dst = append(dst, '_')
	}
	return dst
}

// key appends the values the template uses, each length-prefixed, to dst:
// events with equal keys get equal subjects.
func (t *template) key(dst []byte, m *format.Meta) []byte {
	for _, f := range t.used {
		v := f.value(m)
		n := len(v)
		for n >= 0x80 {
			dst = append(dst, byte(n)|0x80)
			n >>= 7
		}
		dst = append(dst, byte(n))
		dst = append(dst, v...)
	}
	return dst
}

// capture is the filter that captures every subject the template can
// produce: its literal leading tokens followed by ">" ("mdbridge.>" for
// mdbridge.{kind}.{source}), the subject itself when the template has no
// placeholder, and ">" when it starts with one.
func (t *template) capture() string {
	if len(t.used) == 0 {
		return t.src
	}
	lead := ""
	if !t.parts[0].isField {
		lead = t.parts[0].lit
	}
	i := strings.LastIndexByte(lead, '.')
	if i < 0 {
		return ">"
	}
	return lead[:i+1] + ">"
}

// checkPublishSubject reports why s is not a subject one can publish to.
func checkPublishSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case tok == "":
			return errors.New("has an empty token (a leading, trailing or doubled '.')")
		case strings.ContainsAny(tok, "*>"):
			return errors.New("has a wildcard ('*' or '>'), which cannot be published to")
		case strings.IndexFunc(tok, isSpaceOrControl) >= 0:
			return errors.New("has whitespace or a control character")
		}
	}
	return nil
}

// checkFilter reports why s is not a valid stream subject (wildcards
// allowed as whole tokens, '>' only last).
func checkFilter(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token", s)
		case tok == ">" && i != len(toks)-1:
			return fmt.Errorf("%q has '>' before the last token", s)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("%q has a wildcard inside a token", s)
		case strings.IndexFunc(tok, isSpaceOrControl) >= 0:
			return fmt.Errorf("%q has whitespace or a control character", s)
		}
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// covers reports whether stream subject filter captures every subject that
// matches pattern (which may hold wildcards itself).
func covers(filter, pattern string) bool {
	f := strings.Split(filter, ".")
	p := strings.Split(pattern, ".")
	for i, ft := range f {
		if ft == ">" {
			return i < len(p)
		}
		if i >= len(p) {
			return false
		}
		switch pt := p[i]; {
		case pt == ">":
			return false
		case ft == "*":
		case ft != pt:
			return false
		}
	}
	return len(f) == len(p)
}

// overlaps reports whether some subject matches both a and b.
func overlaps(a, b string) bool {
	at := strings.Split(a, ".")
	bt := strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
	return len(at) == len(bt)
}
