package pipeline_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
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

// benchListBody is a list answer of 1,000 alerts of about 400 bytes, which
// differ in their ids.
func benchListBody() []byte {
	var sb strings.Builder
	sb.WriteString(`{"error":false,"errors":[],"data":{"items":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":` + strconv.Itoa(10000+i) + `,"alertStarted":"2025-03-01T08:00:00.123Z","name":"Modbus write to a PLC from an unknown host",` +
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
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ok := pipeline.ScanListEnvelope(b, rankOf("items", "data"), rankOf("total"), nil)
		want := gjson.ValidBytes(b) && gjson.ParseBytes(b).IsObject()
		if ok != want {
			t.Fatalf("ScanListEnvelope(%q) ok = %v, want %v", b, ok, want)
		}
	})
}

func BenchmarkScanListEnvelope(b *testing.B) {
	body := benchListBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if res, ok := pipeline.ScanListEnvelope(body, rankOf("items"), rankOf("total"), nil); !ok || len(res.Items) != 1000 || res.Total != 1000 {
			b.Fatalf("ok %v, %d items, total %d", ok, len(res.Items), res.Total)
		}
	}
}

// FuzzScanListEnvelopeMatching: a scan with an ElementMatcher that keeps its
// contract (it recognises only the exact bytes of valid values it was given,
// followed by ',' or ']') gives what a scan without one gives, and tags each
// recognised item with the value it equals. The matcher knows the elements
// of the body's own list and of a second list, so that it meets bodies whose
// known parts are surrounded by anything the fuzzer makes.
func FuzzScanListEnvelopeMatching(f *testing.F) {
	for _, s := range [][2]string{
		{`{"data":{"items":[{"id":1},{"id":2}],"total":2}}`, `[{"id":2},{"id":1}]`},
		{`{"data":[{"id":1} , {"id":1},3,"x"]}`, `[3,"x"]`},
		{`{"data":{"items":[{"id":1}{"id":2}]}}`, `[{"id":1}]`},
		{`{"data":{"items":[12,3]}}`, `[1,12]`},
		{`{"data":{"items":[{"id":1},{"id":2]}}`, `[{"id":1}]`},
		{`{"data":{"items":[{"a":"]"},{"a":"\"]"}]},"error":false}`, `[{"a":"]"}]`},
		{`{"data":[],"x":[{"y":1}]}`, `[{"y":1}]`},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, b []byte, other string) {
		listRank, totalRank := rankOf("items", "list"), rankOf("total")
		want, wantOK := pipeline.ScanListEnvelope(b, listRank, totalRank, nil)
		var known []string
		for _, it := range want.Items {
			known = append(known, it.Raw)
		}
		if gjson.Valid(other) && gjson.Parse(other).IsArray() {
			for _, e := range gjson.Parse(other).Array() {
				known = append(known, e.Raw)
			}
		}
		match := func(rest string) (int, int32) {
			for i, k := range known {
				if !strings.HasPrefix(rest, k) {
					continue
				}
				j := len(k)
				for j < len(rest) && strings.IndexByte(" \t\r\n", rest[j]) >= 0 {
					j++
				}
				if j < len(rest) && (rest[j] == ',' || rest[j] == ']') {
					return len(k), int32(i)
				}
			}
			return 0, -1
		}
		got, ok := pipeline.ScanListEnvelope(b, listRank, totalRank, match)
		if ok != wantOK || got.HasList != want.HasList || got.Total != want.Total || len(got.Items) != len(want.Items) {
			t.Fatalf("%q: matching scan ok %v, list %v, total %d, %d items; plain scan %v, %v, %d, %d",
				b, ok, got.HasList, got.Total, len(got.Items), wantOK, want.HasList, want.Total, len(want.Items))
		}
		if !ok || !got.HasList {
			return
		}
		if len(got.Known) != len(got.Items) {
			t.Fatalf("%q: %d tags for %d items", b, len(got.Known), len(got.Items))
		}
		for i := range got.Items {
			if got.Items[i].Raw != want.Items[i].Raw {
				t.Fatalf("%q: item %d is %q, plain scan %q", b, i, got.Items[i].Raw, want.Items[i].Raw)
			}
			if k := got.Known[i]; k >= 0 && known[k] != got.Items[i].Raw {
				t.Fatalf("%q: item %d %q tagged as known %q", b, i, got.Items[i].Raw, known[k])
			}
		}
	})
}

// BenchmarkScanListEnvelopeMatching: the same body as
// BenchmarkScanListEnvelope, with every record but the first 100 known (a
// poll that re-reads a lookback of 900 records and finds 100 new ones).
func BenchmarkScanListEnvelopeMatching(b *testing.B) {
	body := benchListBody()
	res, ok := pipeline.ScanListEnvelope(body, rankOf("items"), rankOf("total"), nil)
	if !ok {
		b.Fatal("bench body does not scan")
	}
	// A matcher that knows lengths and hashes in list order, as the OT
	// poller's does.
	var lens []int
	var hashes []uint64
	for _, it := range res.Items[100:] {
		lens, hashes = append(lens, len(it.Raw)), append(hashes, xxhash.Sum64String(it.Raw))
	}
	next := 0
	match := func(rest string) (int, int32) {
		if next < len(lens) {
			n := lens[next]
			if n < len(rest) && (rest[n] == ',' || rest[n] == ']') && xxhash.Sum64String(rest[:n]) == hashes[next] {
				next++
				return n, int32(next - 1)
			}
		}
		return 0, -1
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		next = 0
		if res, ok := pipeline.ScanListEnvelope(body, rankOf("items"), rankOf("total"), match); !ok || len(res.Items) != 1000 || res.Known[999] != 899 {
			b.Fatalf("ok %v, %d items", ok, len(res.Items))
		}
	}
}

// rankOf ranks a key by its place among keys (-1: not among them), as the
// OT poller's list and total keys are ranked.
func rankOf(keys ...string) func(string) int {
	return func(k string) int {
		for i, x := range keys {
			if x == k {
				return i
			}
		}
		return -1
	}
}
