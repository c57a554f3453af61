package pipeline

import (
	"testing"

	"github.com/tidwall/gjson"
)

var scanSeeds = []string{
	`{}`, `[]`, `{"a":1}`, ` { "a" : "x\"y" , "b":[1,{"c":"]"}], "d":null, "e":true, "f":-1.5e3 } `,
	`[1, "two", {"three":[3]}, [], {}, null]`, `{"k\u00e9y":"v\\"}`, `{"a":"\\\\"}`, `{"a":{"b":{"c":"}"}}}`,
	`{"a"`, `[1,`, `{"a":}`, `"str"`, `123`, ``,
}

// FuzzMembers checks the fast scanner against gjson on valid JSON, and that
// it never panics or loops on anything else.
func FuzzMembers(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		type kv struct{ k, v string }
		var got []kv
		Members(s, func(k string, v gjson.Result) bool { got = append(got, kv{k, v.Raw}); return true })
		elems := Elements(s)
		if !gjson.Valid(s) {
			return
		}
		doc := gjson.Parse(s)
		if doc.IsObject() {
			var want []kv
			doc.ForEach(func(k, v gjson.Result) bool { want = append(want, kv{k.Str, v.Raw}); return true })
			if len(got) != len(want) {
				t.Fatalf("%q: %d members, gjson %d", s, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%q: member %d = %q, gjson %q", s, i, got[i], want[i])
				}
			}
		}
		if doc.IsArray() {
			want := doc.Array()
			if len(elems) != len(want) {
				t.Fatalf("%q: %d elements, gjson %d", s, len(elems), len(want))
			}
			for i := range want {
				if elems[i].Raw != want[i].Raw || elems[i].Type != want[i].Type {
					t.Fatalf("%q: element %d = %q (%v), gjson %q (%v)", s, i, elems[i].Raw, elems[i].Type, want[i].Raw, want[i].Type)
				}
				if want[i].Type == gjson.String && elems[i].Str != want[i].Str {
					t.Fatalf("%q: element %d text %q, gjson %q", s, i, elems[i].Str, want[i].Str)
				}
			}
		}
	})
}

func TestMembersTable(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`{"a":1,"b":"x","c":[1,2],"d":{"e":null}}`, `a=1;b="x";c=[1,2];d={"e":null};`},
		{` {"q":"a\"b","r":"]}"} `, `q="a\"b";r="]}";`},
		{`{}`, ``},
		{`[1]`, ``},
	}
	for _, tc := range tests {
		got := ""
		Members(tc.in, func(k string, v gjson.Result) bool { got += k + "=" + v.Raw + ";"; return true })
		if got != tc.want {
			t.Errorf("Members(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// stringEndBytewise is the plain loop stringEnd must agree with.
func stringEndBytewise(s string, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return len(s)
}

// FuzzStringEnd checks the eight-bytes-at-a-time string scanner against the
// byte loop from every start position, on any input: quotes and
// backslashes at every offset of a word, escapes straddling words, bytes
// at or above 0x80 (where a careless bit trick finds false matches).
func FuzzStringEnd(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Add(`"abcdefg"`)
	f.Add(`"abcdefgh\"ijklmnop\\"qr`)
	f.Add("\"\x80\x81\xff\x22\x5c\x5c\xa2\xdc\xff\xff\xff\xff\xff\xff\xff\xff\"")
	f.Add(`"0123456\\\"89abcdef"`)
	f.Fuzz(func(t *testing.T, s string) {
		for i := 0; i < len(s); i++ {
			if got, want := stringEnd(s, i), stringEndBytewise(s, i); got != want {
				t.Fatalf("stringEnd(%q, %d) = %d, byte loop %d", s, i, got, want)
			}
		}
	})
}

// BenchmarkStringEnd scans the string values of a realistic alert record.
func BenchmarkStringEnd(b *testing.B) {
	rec := `{"id":1161,"alertStarted":"2026-12-04T19:23:59.221Z","message":"Firmware changed: Hirschmann RSP35 SW-22 (192.168.10.115, 00:80:63:4B:03:92) reports a firmware version that differs from the one recorded at onboarding; no approved patch request covers the change.","reason":"Policy \"Firmware changed\" (criticality High) matched on sensor 10.40.172.172 at site 10.40.172.144; the Switch was observed at Purdue level 2 talking to 12 peers.","deviceName":"SW-22","ipv4":"192.168.10.115"}`
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		n := 0
		for i := 0; i < len(rec); i++ {
			if rec[i] == '"' {
				i = stringEnd(rec, i) - 1
				n++
			}
		}
		if n == 0 {
			b.Fatal("no strings")
		}
	}
}

// FuzzAppendJSONContent holds the eight-bytes-at-a-time escaper to the
// byte loop on any input: control characters, quotes, backslashes and
// multi-byte (and broken) UTF-8 at every offset of a word.
func FuzzAppendJSONContent(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Add("plain ascii text that is longer than a word")
	f.Add("tab\there, newline\nthere, quote\" and backslash\\ and \x01\x1f\x7f")
	f.Add("caf\u00e9 \u2028 \u2029 \xff\xfe broken \xe2\x80 end")
	f.Add("12345678\"2345678\\2345678\x002345678\xc3\xa9")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendJSONContent(nil, s), appendJSONContent(nil, s, false); string(got) != string(want) {
			t.Fatalf("AppendJSONContent(%q) = %q, byte loop %q", s, got, want)
		}
	})
}

// FuzzUnquote holds unquote to gjson's decoding of the same token, on
// valid JSON strings (escapes of every kind, surrogate pairs, lone and
// unpaired surrogates) and on any other quoted input, where it must not
// panic.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{
		`plain`, ``, `\"`, `a\\b`, `Policy \"Firmware changed\" (High)`, `\/\b\f\n\r\t`,
		`\u00e9\u4e2d`, `\ud83d\ude00`, `\ud83d`, `\ude00x`, `\ud83d\u0041`, `\ud83dx\ude00`,
		`end\\`, `\u0000`, "caf\xc3\xa9 \\\"x\\\"", `\u12`, `\q`, "a\x01\\nb",
	} { // string bodies: the fuzz function adds the quotes
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw := `"` + s + `"`
		got := unquote(raw)
		if !gjson.Valid(raw) {
			return // only: no panic
		}
		if want := gjson.Parse(raw).Str; got != want {
			t.Fatalf("unquote(%s) = %q, gjson %q", raw, got, want)
		}
	})
}

// BenchmarkUnquote decodes the two escaped strings of a realistic alert.
func BenchmarkUnquote(b *testing.B) {
	strs := []string{
		`"Suricata rule 2001219 \"ET SCAN Potential SSH Scan\" fired for SSH traffic from PLC-15 (192.168.10.82) to SW-37 (192.168.10.194)."`,
		`"Policy \"Device offline\" (criticality Severe) matched on sensor 10.40.172.172 at site 10.40.172.144; the PLC was observed at Purdue level 1 talking to 9 peers."`,
	}
	for b.Loop() {
		for _, s := range strs {
			if unquote(s) == "" {
				b.Fatal("empty")
			}
		}
	}
}
