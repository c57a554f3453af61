package otsec

import (
	"errors"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzDecodeEnvelope: no panic; a nil error always comes with data that
// exists (and only for a 2xx status); an error never comes with data; a 401
// always wraps ErrUnauthorized.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := []struct {
		status int
		ctype  string
		body   string
	}{
		{200, "application/json", envOK},
		{200, "application/json", `{"error":false,"errors":[],"data":{"items":[{"id":1}],"total":"1"}}`},
		{200, "", `{"error":true,"errors":[{"code":"NEM-3003-000500","message":"Internal error"}]}`},
		{401, "application/json", envUnauthorized},
		{401, "", ""},
		{502, "text/html", envNginx502},
		{200, "text/html; charset=utf-8", envPortal},
		{503, "text/plain", "503 Service Temporarily Unavailable\n"},
		{200, "application/json", `{"error":false,"errors":[],"data":[{"id":`},
		{200, "", ""},
		{200, "", `[1,2]`},
		{200, "", `{"error":false}`},
		{204, "", `{"data":null}`},
		{0, "", `{"data":1}`},
		{-1, "\xff", "\x00<"},
		{999, "application/problem+json", `{"errors":{"0":{"code":1}},"message":"m"}`},
		{200, "", `{"data":[1],"data":[2]}`},
		{200, "", "\ufeff{\"data\":[]}"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.ctype, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		orig := string(body)
		data, err := DecodeEnvelope(status, ctype, body)
		if string(body) != orig {
			t.Fatalf("DecodeEnvelope modified the body")
		}
		if err == nil {
			if !data.Exists() {
				t.Fatalf("DecodeEnvelope(%d, %q, %q) = missing data, nil error", status, ctype, body)
			}
			if status < 200 || status > 299 {
				t.Fatalf("DecodeEnvelope(%d, %q, %q) succeeded for a non-2xx status", status, ctype, body)
			}
			if !gjson.Valid(data.Raw) {
				t.Fatalf("DecodeEnvelope(%d, %q, %q) data %q is not valid JSON", status, ctype, body, data.Raw)
			}
			// The data goes on to DecodeList.
			_, _, _ = DecodeList(data)
		} else if data.Exists() {
			t.Fatalf("DecodeEnvelope(%d, %q, %q) = data %q with error %v", status, ctype, body, data.Raw, err)
		}
		if status == 401 && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("DecodeEnvelope(401, %q, %q) error %v does not wrap ErrUnauthorized", ctype, body, err)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("empty error message")
		}
	})
}

// FuzzDecodeList: no panic; a valid array gives all its elements and no total;
// the total is -1 or not negative; an error never comes with items.
func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{
		`[{"id":1},{"id":2}]`, `[]`, `{"items":[{"id":1}],"total":12}`, `{"list":[],"totalCount":"3"}`,
		`{"rows":[1],"count":" 4 "}`, `{"records":[null],"total":-2}`, `{"page":1}`, `null`, `"str"`, `3`, `true`,
		`{"items":{"a":1}}`, ``, `{"items":[`, `[1,`, `{"total":1e300,"items":[]}`, `{"data":[[]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		data := gjson.ParseBytes(body)
		items, total, err := DecodeList(data)
		if total < -1 {
			t.Fatalf("DecodeList(%q) total = %d", body, total)
		}
		if err != nil {
			if items != nil {
				t.Fatalf("DecodeList(%q) = %d items with error %v", body, len(items), err)
			}
			return
		}
		// DecodeList gets data that DecodeEnvelope checked; on malformed
		// JSON gjson's element count is not defined.
		if data.IsArray() && gjson.ValidBytes(body) {
			n := 0
			data.ForEach(func(_, _ gjson.Result) bool { n++; return true })
			if len(items) != n || total != -1 {
				t.Fatalf("DecodeList(%q) = %d items, total %d; want %d, -1", body, len(items), total, n)
			}
		}
		for i, it := range items {
			if !it.Exists() {
				t.Fatalf("DecodeList(%q) item %d does not exist", body, i)
			}
		}
	})
}

// FuzzDecodeListBody: the one-walk decoding of a list answer gives exactly
// what DecodeEnvelope followed by DecodeList gives: the same records (raw
// text and type), the same total, the same error text.
func FuzzDecodeListBody(f *testing.F) {
	for _, s := range []string{
		envOK,
		`{"error":false,"errors":[],"data":{"items":[{"id":1},{"id":2,"s":"a\"]}"}],"total":"2"}}`,
		`{"error":false,"data":[{"id":1}, 2, "x", [3], null]}`,
		`{"data":{"list":[1],"items":[2],"total":5,"count":6}}`,
		`{"data":{"items":[1],"items":[2],"totalCount":-1,"count":"7"}}`,
		`{"data":{"items":{"a":1},"rows":[3]}}`,
		`{"data":{"items":[1]},"data":{"rows":[2]}}`,
		`{"data":{"items":[1]},"data":null}`,
		`{"data":[1],"error":true,"errors":[{"code":"X","message":"m"}]}`,
		`{"data":{"page":1}}`, `{"data":{}}`, `{"data":"x"}`, `{"data":null}`, `{"error":false}`,
		`{"d\u0061ta":{"it\u0065ms":[1],"tot\u0061l":2}}`,
		` { "data" : { "items" : [ 1 , 2 ] , "total" : 2 } } `,
		`{"data":{"items":[],"total":1e300}}`, `{"data":[]}`, `[1]`, `{"data":[1`, ``,
	} {
		f.Add(200, "application/json", []byte(s))
	}
	f.Add(500, "", []byte(`{"data":[1]}`))
	f.Add(200, "text/html", []byte(`{"data":[1]}`))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		items, _, total, err := decodeListBody(status, ctype, body, nil)
		var wantItems []gjson.Result
		wantTotal := -1
		data, wantErr := DecodeEnvelope(status, ctype, body)
		if wantErr == nil {
			wantItems, wantTotal, wantErr = DecodeList(data)
		}
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("decodeListBody(%d, %q, %q) error %v, two steps give %v", status, ctype, body, err, wantErr)
		}
		if err != nil {
			return
		}
		if total != wantTotal || len(items) != len(wantItems) {
			t.Fatalf("decodeListBody(%q) = %d items, total %d; two steps give %d, %d", body, len(items), total, len(wantItems), wantTotal)
		}
		for i := range items {
			if items[i].Raw != wantItems[i].Raw || items[i].Type != wantItems[i].Type {
				t.Fatalf("decodeListBody(%q) item %d = %q, two steps give %q", body, i, items[i].Raw, wantItems[i].Raw)
			}
		}
	})
}
