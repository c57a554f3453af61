package otsectest

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString checks that every valid UTF-8 string the generator
// writes decodes back to itself, after whatever was already in the buffer.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `say "hi"`, `C:\plc\fw.bin`, "tab\there\nnew line\x00\x1f", "ünïcödé ✓", `\"`, `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("the generator only writes valid UTF-8")
		}
		b := appendJSONString([]byte("prefix"), s)
		if string(b[:6]) != "prefix" {
			t.Fatalf("the buffer's start changed: %q", b)
		}
		var got string
		if err := json.Unmarshal(b[6:], &got); err != nil {
			t.Fatalf("%q: not a JSON string: %v (%q)", s, err, b[6:])
		}
		if got != s {
			t.Fatalf("%q came back as %q", s, got)
		}
	})
}
