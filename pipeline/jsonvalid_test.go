package pipeline_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestValidJSON(t *testing.T) {
	for _, c := range []struct {
		js   string
		want bool
	}{
		{`{"error":false,"data":{"items":[{"id":1,"m":"a \"quoted\" \\ text\u00e9 long enough for words"}],"total":1}}`, true},
		{` [ 1 , -0.5e+3 , "x" , true , false , null , { } , [ ] ] `, true},
		{`"` + strings.Repeat("abcdefgh", 20) + `"`, true},
		{`"` + strings.Repeat("abcdefgh", 20) + "\x01" + `"`, false}, // a control byte inside a word
		{`"` + strings.Repeat("abcdefgh", 20) + `\q"`, false},
		{`"\u12G4"`, false},
		{"\"\xff\xfe\"", true}, // bytes are not checked as UTF-8, as with gjson
		{``, false}, {` `, false}, {`{`, false}, {`[1,]`, false}, {`{"a":1,}`, false}, {`{"a" 1}`, false},
		{`01`, false}, {`-`, false}, {`1.`, false}, {`1e`, false}, {`tru`, false}, {`nul`, false},
		{`[1] [2]`, false}, {`{"a":1}}`, false}, {`[}`, false}, {`{]`, false},
		{strings.Repeat("[", 1_000_000), false},
		{strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000), true},
	} {
		if got := pipeline.ValidJSON([]byte(c.js)); got != c.want {
			t.Errorf("ValidJSON(%.60q) = %v, want %v", c.js, got, c.want)
		}
	}
}

// FuzzValidJSON: ValidJSON accepts exactly what gjson.ValidBytes accepts.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2,{"b":null}],"c":"d\"e\\f\u0041","g":-1.5e-7}`, `[]`, `{}`, `""`, `0`, `-0`, `1E+2`,
		`[1,]`, `{"a":1,}`, `[01]`, `"\x"`, "\"a\tb\"", `[true,false,null]`, `{"a":}`, `[-]`, ` `, `"abcdefghijklmnop\"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := pipeline.ValidJSON(b), gjson.ValidBytes(b); got != want {
			t.Fatalf("ValidJSON(%q) = %v, gjson.ValidBytes = %v", b, got, want)
		}
	})
}

// benchListBody is a list answer of 1,000 alerts of about 400 bytes.
func benchListBody() []byte {
	var sb strings.Builder
	sb.WriteString(`{"error":false,"errors":[],"data":{"items":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":12345,"alertStarted":"2025-03-01T08:00:00.123Z","name":"Modbus write to a PLC from an unknown host",` +
			`"reason":"A host that was never seen on this network wrote to holding registers 40001-40010 of the PLC","severity":"high",` +
			`"srcIp":"10.40.172.11","dstIp":"10.40.172.200","srcPort":50123,"dstPort":502,"protocol":"modbus","status":"open"}`)
	}
	sb.WriteString(`],"total":1000}}`)
	return []byte(sb.String())
}

func BenchmarkValidJSON(b *testing.B) {
	body := benchListBody()
	for _, c := range []struct {
		name string
		fn   func([]byte) bool
	}{{"mdbridge", pipeline.ValidJSON}, {"gjson", gjson.ValidBytes}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !c.fn(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// FuzzScanListEnvelope: the walk that reads an envelope accepts a body
// exactly when it is valid JSON (gjson's judgement) and an object.
func FuzzScanListEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"error":false,"data":{"items":[{"id":1}],"total":1}}`, `{"data":[1,2]}`, `{"data":[1,]}`, `{"data":{"items":[1}}`,
		`{}`, ` { } `, `{"a":1}x`, `[1]`, `{"data":{"items":[1],"total":"2"},"error":true}`, `{"data" :[ ] , "x":{"y":[{}]}}`,
	} {
		f.Add([]byte(s))
	}
	rank := func(keys ...string) func(string) int {
		return func(k string) int {
			for i, x := range keys {
				if x == k {
					return i
				}
			}
			return -1
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ok := pipeline.ScanListEnvelope(b, rank("items", "data"), rank("total"))
		want := gjson.ValidBytes(b) && gjson.ParseBytes(b).IsObject()
		if ok != want {
			t.Fatalf("ScanListEnvelope(%q) ok = %v, want %v", b, ok, want)
		}
	})
}

func BenchmarkScanListEnvelope(b *testing.B) {
	body := benchListBody()
	rank := func(want string) func(string) int {
		return func(k string) int {
			if k == want {
				return 0
			}
			return -1
		}
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if res, ok := pipeline.ScanListEnvelope(body, rank("items"), rank("total")); !ok || len(res.Items) != 1000 || res.Total != 1000 {
			b.Fatalf("ok %v, %d items, total %d", ok, len(res.Items), res.Total)
		}
	}
}
