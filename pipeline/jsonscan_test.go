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
