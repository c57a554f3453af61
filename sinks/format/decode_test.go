package format

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	tests := []struct {
		name string
		json bool
	}{{JSON, true}, {CEF, false}, {LEEF, false}, {OCSF, true}}
	for _, tt := range tests {
		f, err := New(tt.name)
		if err != nil {
			t.Fatalf("New(%q): %v", tt.name, err)
		}
		if f.Name() != tt.name || f.JSON() != tt.json {
			t.Errorf("New(%q): Name %q JSON %v, want %q %v", tt.name, f.Name(), f.JSON(), tt.name, tt.json)
		}
		if err := Validate(tt.name); err != nil {
			t.Errorf("Validate(%q): %v", tt.name, err)
		}
	}
	if len(tests) != len(Names) {
		t.Errorf("tested %d formats, Names has %d", len(tests), len(Names))
	}
}

// TestAppendRejects checks that input that is not an event is refused with
// an error naming the format, leaving dst as it was.
func TestAppendRejects(t *testing.T) {
	many := `{"id":"a","kind":"k","time":"2026-01-01T00:00:00Z"` + strings.Repeat(`,"b":{}`, maxBlocks+1) + `}`
	wide := `{"id":"a","kind":"k","time":"2026-01-01T00:00:00Z","b":{` +
		strings.Repeat(`"k":1,`, maxMembers) + `"k":1}}`
	tests := []struct{ name, data, want string }{
		{"empty", "", "not a JSON object"},
		{"array", "[]", "not a JSON object"},
		{"no kind", `{"id":"a","time":"2026-01-01T00:00:00Z"}`, "lacks id or kind"},
		{"no id", `{"kind":"k","time":"2026-01-01T00:00:00Z"}`, "lacks id or kind"},
		{"bad time", `{"id":"a","kind":"k","time":"yesterday"}`, "event time"},
		{"no time", `{"id":"a","kind":"k"}`, "event time"},
		{"too many blocks", many, "blocks"},
		{"too many members", wide, "block members"},
	}
	for _, format := range []string{CEF, LEEF, OCSF} {
		f, _ := New(format)
		for _, tt := range tests {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				dst := []byte("keep")
				out, err := f.Append(dst, []byte(tt.data))
				if err == nil {
					t.Fatalf("no error; rendered %q", out)
				}
				if !strings.HasPrefix(err.Error(), format+": ") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q, want %q prefix and %q", err, format+": ", tt.want)
				}
				if string(out) != "keep" {
					t.Errorf("dst became %q", out)
				}
			})
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	const in = "a\\b|c=d\ne\rf\tg\x00h\x7fi\u0085j\u2028k\u2029l\xffm ü"
	tests := []struct {
		mode int
		want string
	}{
		{modeHeader, `a\\b\|c=d e f g h i j k l` + "\uFFFD" + "m ü"},
		{modeCEFValue, `a\\b|c\=d\ne\rf` + "\t" + `g h i j k l` + "\uFFFD" + "m ü"},
		{modeLEEFValue, `a\\b|c\=d\ne\rf\tg h i j k l` + "\uFFFD" + "m ü"},
	}
	for _, tt := range tests {
		if got := string(appendEscaped([]byte(">"), in, tt.mode)); got != ">"+tt.want {
			t.Errorf("mode %d:\n got %q\nwant %q", tt.mode, got, ">"+tt.want)
		}
	}
}

// TestAppendUnescaped decodes JSON string tokens as encoding/json does.
func TestAppendUnescaped(t *testing.T) {
	for _, raw := range []string{
		`"plain"`, `""`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00 smile"`,
		`"lone \ud800 high"`, `"lone \udc00 low"`, `"\ud800\u0041"`, `"end\\"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		want = string(appendEscaped(nil, want, modeCEFValue))
		if got := string(appendUnescaped(nil, raw, modeCEFValue)); got != want {
			t.Errorf("appendUnescaped(%s) = %q, want %q", raw, got, want)
		}
	}
	if got := string(appendUnescaped(nil, "123", modeCEFValue)); got != "123" {
		t.Errorf("number: %q", got)
	}
}

func TestURLHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://10.0.0.5:3003":           "10.0.0.5",
		"https://mdss.example/api":        "mdss.example",
		"http://user:pw@host.example:80/": "host.example",
		"https://[fe80::1]:3003/x":        "fe80::1",
		"https://[::1]":                   "::1",
		"host.example":                    "host.example",
		"/relative/path":                  "",
		"":                                "",
	} {
		if got := urlHost(in); got != want {
			t.Errorf("urlHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendCamel(t *testing.T) {
	for _, tt := range []struct {
		in    string
		upper bool
		want  string
	}{
		{"purdue_level", true, "PurdueLevel"}, {"purdue_level", false, "purdueLevel"},
		{"odd key-name.x", true, "OddKeyNameX"}, {"__", true, ""}, {"a1_b2", false, "a1B2"}, {"ümlaut_x", true, "MlautX"},
	} {
		if got := string(appendCamel(nil, tt.in, tt.upper)); got != tt.want {
			t.Errorf("appendCamel(%q, %v) = %q, want %q", tt.in, tt.upper, got, tt.want)
		}
	}
}

// TestAppendJSONValue checks that values taken from an event are copied
// when they are valid JSON and become strings otherwise.
func TestAppendJSONValue(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{`"ok"`, `"ok"`}, {`"a\u2028b"`, `"a\u2028b"`}, {`12.5e3`, `12.5e3`}, {`true`, `true`},
		{`{"a":[1,2]}`, `{"a":[1,2]}`}, {"{\n \"a\" :\r\n[1, 2]}", `{"a":[1,2]}`}, {`{"a":`, `"{\"a\":"`}, {`01`, `"01"`}, {`"unterminated`, `"unterminated"`},
		{"\"ctl\x01\"", `"ctl\u0001"`}, {`"bad \x"`, `"bad \\x"`},
		{"\"ls \u2028 \\\" \xff\"", `"ls \u2028 \" \ufffd"`}, {`"ok \u2028"`, `"ok \u2028"`},
	} {
		got := appendJSONValue(nil, tt.raw)
		if string(got) != tt.want || !json.Valid(got) {
			t.Errorf("appendJSONValue(%q) = %s (valid %v), want %s", tt.raw, got, json.Valid(got), tt.want)
		}
	}
}

// TestJSONFormat keeps the json format as it was: the event as it is.
func TestJSONFormat(t *testing.T) {
	f, _ := New(JSON)
	for name, data := range eventFiles(t) {
		out, err := f.Append([]byte("x"), data)
		if err != nil || !bytes.Equal(out[1:], data) {
			t.Errorf("%s: json format changed the event (%v)", name, err)
		}
	}
}

// TestFieldNames keeps fieldNames and fieldIndex in step, and the
// precomputed generic keys equal to what genericPair builds.
func TestFieldNames(t *testing.T) {
	for i, n := range fieldNames {
		if got := fieldIndex(n[0], n[1]); got != i {
			t.Errorf("fieldIndex(%q, %q) = %d, want %d", n[0], n[1], got, i)
		}
		for _, p := range []struct {
			keys   *genericKeys
			prefix string
		}{{cefGenericKeys, cefPrefix}, {leefGenericKeys, ""}} {
			w := kvWriter{mode: modeCEFValue}
			w.genericPair(p.prefix, n[0], n[1], "", "1")
			if want := p.keys[i] + "=1"; string(w.b) != want {
				t.Errorf("generic key of %v: %q, genericPair wrote %q", n, want, w.b)
			}
		}
	}
}
