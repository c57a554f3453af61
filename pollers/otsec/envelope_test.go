package otsec

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// The published bodies (research/opswat_api.md, Part 1, 1.3).
const (
	envOK           = `{ "error": false, "errors": [], "data": [ { "siteIp": "10.40.172.144", "sensorIps": [ "10.40.172.172" ] } ] }`
	envUnauthorized = `{"error":true,"errors":[{"code":"NEM-3003-000204","message":"Invalid authentication token"}]}`
	envNginx502     = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	envPortal       = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><TITLE lang=en>\n  Network\n  Access </TITLE></head>\n<body><h1>Sign in</h1></body></html>\n"
)

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		// On success: the data's raw JSON.
		wantData string
		// On failure: substrings of the error, and what it must be.
		wantErr          []string
		wantUnauthorized bool
		wantAPIError     *APIError // Status/Code/Message compared when set
	}{
		{
			name: "published success", status: 200, ctype: "application/json", body: envOK,
			wantData: `[ { "siteIp": "10.40.172.144", "sensorIps": [ "10.40.172.172" ] } ]`,
		},
		{
			name: "success, compact, charset", status: 200, ctype: "application/json; charset=utf-8",
			body:     `{"error":false,"errors":[],"data":{"items":[],"total":0}}`,
			wantData: `{"items":[],"total":0}`,
		},
		{
			name: "success without content type and with surrounding whitespace", status: 200,
			body: "\r\n  {\"error\":false,\"data\":[1]}\n", wantData: `[1]`,
		},
		{name: "data null", status: 200, body: `{"error":false,"errors":[],"data":null}`, wantData: `null`},
		{name: "data a string", status: 200, body: `{"data":"x"}`, wantData: `"x"`},
		{name: "201 is a success", status: 201, body: `{"error":false,"data":[]}`, wantData: `[]`},
		{name: "error flag absent", status: 200, body: `{"errors":[],"data":[2]}`, wantData: `[2]`},
		{
			name: "200 with error true", status: 200, ctype: "application/json",
			body:         `{"error":true,"errors":[{"code":"NEM-3003-000500","message":"Internal error"}],"data":null}`,
			wantErr:      []string{"NEM-3003-000500", "Internal error"},
			wantAPIError: &APIError{Status: 200, Code: "NEM-3003-000500", Message: "Internal error"},
		},
		{
			name: "200 with error true, no details", status: 200, body: `{"error":true}`,
			wantErr: []string{"error"},
		},
		{
			name: "200 with error true, top-level message", status: 200, body: `{"error":true,"message":"site not found"}`,
			wantErr: []string{"site not found"},
		},
		{
			name: "published 401", status: 401, ctype: "application/json", body: envUnauthorized,
			wantErr: []string{"NEM-3003-000204", "Invalid authentication token", "401"}, wantUnauthorized: true,
		},
		{
			name: "401 empty body", status: 401, body: ``,
			wantErr: []string{"401"}, wantUnauthorized: true,
		},
		{
			name: "401 text body", status: 401, ctype: "text/plain", body: "Unauthorized\n",
			wantErr: []string{"401"}, wantUnauthorized: true,
		},
		// A 401 from a proxy in front of the API is still a 401: the
		// operator must be told to check the token.
		{
			name: "401 HTML page", status: 401, ctype: "text/html",
			body:    "<html><head><title>401 Authorization Required</title></head><body>nginx</body></html>",
			wantErr: []string{"401", "HTML", "401 Authorization Required"}, wantUnauthorized: true,
		},
		{
			name: "401 JSON labelled text/html", status: 401, ctype: "text/html", body: envUnauthorized,
			wantErr: []string{"401"}, wantUnauthorized: true,
		},
		{
			name: "502 nginx page", status: 502, ctype: "text/html", body: envNginx502,
			wantErr: []string{"502", "HTML page", `"502 Bad Gateway"`},
		},
		{
			name: "502 nginx page without content type", status: 502, body: envNginx502,
			wantErr: []string{"502", "HTML page", `"502 Bad Gateway"`},
		},
		{
			name: "200 HTML portal", status: 200, ctype: "text/html; charset=utf-8", body: envPortal,
			wantErr: []string{"200", "HTML page", `"Network Access"`},
		},
		{
			name: "200 HTML labelled JSON", status: 200, ctype: "application/json", body: "  <html><body>hi</body></html>",
			wantErr: []string{"200", "HTML page", "no title"},
		},
		{
			name: "503 text", status: 503, ctype: "text/plain", body: "503 Service Temporarily Unavailable\n",
			wantErr:      []string{"503", "Service Temporarily Unavailable"},
			wantAPIError: &APIError{Status: 503, Message: "503 Service Temporarily Unavailable"},
		},
		{
			name: "500 JSON error", status: 500, body: `{"error":true,"errors":[{"code":"NEM-3003-000500","message":"boom"}]}`,
			wantErr:      []string{"500", "NEM-3003-000500", "boom"},
			wantAPIError: &APIError{Status: 500, Code: "NEM-3003-000500", Message: "boom"},
		},
		{
			name: "404 JSON numeric code", status: 404, body: `{"errors":[{"code":404,"message":"not found"}]}`,
			wantErr:      []string{"404", "not found"},
			wantAPIError: &APIError{Status: 404, Code: "404", Message: "not found"},
		},
		{
			name: "400 long text is cut", status: 400, body: strings.Repeat("x", 500) + "TAIL",
			wantErr: []string{"400", "xxxx"},
		},
		{
			name: "503 control characters are made printable", status: 503, body: "a\x00b\x1bc\nd",
			wantAPIError: &APIError{Status: 503, Message: "a b c d"},
		},
		{
			name: "302 redirect", status: 302, body: ``,
			wantErr: []string{"302"}, wantAPIError: &APIError{Status: 302},
		},
		{
			name: "truncated JSON", status: 200, ctype: "application/json",
			body:    `{"error":false,"errors":[],"data":[{"id":1},{"id":`,
			wantErr: []string{"malformed or truncated"},
		},
		{name: "trailing garbage", status: 200, body: `{"data":[]} x`, wantErr: []string{"malformed or truncated"}},
		{name: "empty body", status: 200, body: ``, wantErr: []string{"empty body"}},
		{name: "blank body", status: 200, body: " \r\n\t", wantErr: []string{"empty body"}},
		{name: "JSON array", status: 200, body: `[{"id":1}]`, wantErr: []string{"not an {error, errors, data} envelope"}},
		{name: "JSON string", status: 200, body: `"ok"`, wantErr: []string{"envelope"}},
		{name: "JSON null", status: 200, body: `null`, wantErr: []string{"envelope"}},
		{name: "no data key", status: 200, body: `{"error":false,"errors":[]}`, wantErr: []string{"no data"}},
		{name: "data key nested only", status: 200, body: `{"result":{"data":[]}}`, wantErr: []string{"no data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := DecodeEnvelope(tc.status, tc.ctype, []byte(tc.body))
			if tc.wantErr == nil && tc.wantAPIError == nil {
				if err != nil {
					t.Fatalf("DecodeEnvelope(%d, %q) error %v; want data %s", tc.status, tc.body, err, tc.wantData)
				}
				if !data.Exists() || data.Raw != tc.wantData {
					t.Fatalf("DecodeEnvelope(%d, %q) data = %q (exists %v); want %s", tc.status, tc.body, data.Raw, data.Exists(), tc.wantData)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeEnvelope(%d, %q) = %s, nil; want an error", tc.status, tc.body, data.Raw)
			}
			if data.Exists() {
				t.Errorf("DecodeEnvelope returned data %q with error %v", data.Raw, err)
			}
			msg := err.Error()
			for _, w := range tc.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if got := errors.Is(err, ErrUnauthorized); got != tc.wantUnauthorized {
				t.Errorf("errors.Is(%q, ErrUnauthorized) = %v; want %v", msg, got, tc.wantUnauthorized)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q spans lines", msg)
			}
			if len(msg) > 400 {
				t.Errorf("error is %d bytes long; want a short message: %q", len(msg), msg)
			}
			if w := tc.wantAPIError; w != nil {
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("error %q (%T) is not an *APIError", msg, err)
				}
				if ae.Status != w.Status || ae.Code != w.Code || ae.Message != w.Message {
					t.Errorf("APIError = %+v; want %+v", *ae, *w)
				}
			}
		})
	}
}

func TestDecodeEnvelopeSnippetLength(t *testing.T) {
	// 601 bytes: the 120-byte cut falls inside a two-byte character.
	body := "a" + strings.Repeat("é", 300)
	_, err := DecodeEnvelope(503, "text/plain", []byte(body))
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an *APIError", err)
	}
	if n := len(ae.Message); n == 0 || n > 130 {
		t.Errorf("snippet is %d bytes; want 1..130", n)
	}
	if strings.ContainsRune(ae.Message, '\ufffd') {
		t.Errorf("snippet %q cuts a character in half", ae.Message)
	}
}

func TestDecodeList(t *testing.T) {
	tests := []struct {
		name      string
		data      string // JSON; "" = missing
		wantIDs   []string
		wantTotal int
		wantErr   []string
	}{
		{name: "array", data: `[{"id":"a"},{"id":"b"}]`, wantIDs: []string{"a", "b"}, wantTotal: -1},
		{name: "empty array", data: `[]`, wantIDs: nil, wantTotal: -1},
		{name: "items + total", data: `{"items":[{"id":"a"}],"total":12}`, wantIDs: []string{"a"}, wantTotal: 12},
		{name: "list + totalCount", data: `{"totalCount":3,"list":[{"id":"a"},{"id":"b"},{"id":"c"}]}`, wantIDs: []string{"a", "b", "c"}, wantTotal: 3},
		{name: "rows + count string", data: `{"rows":[{"id":"r"}],"count":"7"}`, wantIDs: []string{"r"}, wantTotal: 7},
		{name: "records + total_count", data: `{"records":[{"id":"x"}],"total_count":" 9 "}`, wantIDs: []string{"x"}, wantTotal: 9},
		{name: "total float integral", data: `{"items":[],"total":5.0}`, wantIDs: nil, wantTotal: 5},
		{name: "total fractional is no total", data: `{"items":[],"total":5.5}`, wantIDs: nil, wantTotal: -1},
		{name: "total negative is no total", data: `{"items":[],"total":-1}`, wantIDs: nil, wantTotal: -1},
		{name: "total not numeric", data: `{"items":[],"total":"many"}`, wantIDs: nil, wantTotal: -1},
		{name: "total first known key wins", data: `{"items":[],"count":2,"total":10}`, wantIDs: nil, wantTotal: 10},
		{name: "no total", data: `{"items":[{"id":"a"}]}`, wantIDs: []string{"a"}, wantTotal: -1},
		{name: "items not a list, rows is", data: `{"items":null,"rows":[{"id":"z"}]}`, wantIDs: []string{"z"}, wantTotal: -1},
		{name: "other known keys", data: `{"content":[{"id":"c"}],"totalElements":1}`, wantIDs: []string{"c"}, wantTotal: 1},
		{name: "null", data: `null`, wantIDs: nil, wantTotal: -1},
		// A missing value reads as null (DecodeEnvelope already refuses an
		// envelope without data).
		{name: "missing", data: ``, wantIDs: nil, wantTotal: -1},
		{
			name: "object without a list", data: `{"page":1,"size":20,"entries":{"a":1}}`,
			wantErr: []string{"page", "size", "entries", "items"},
		},
		{name: "empty object", data: `{}`, wantErr: []string{"without a list"}},
		{name: "string", data: `"none"`, wantErr: []string{"String", "not a list"}},
		{name: "number", data: `3`, wantErr: []string{"not a list"}},
		{name: "bool", data: `false`, wantErr: []string{"not a list"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var data gjson.Result
			if tc.data != "" {
				data = gjson.Parse(tc.data)
			}
			items, total, err := DecodeList(data)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("DecodeList(%s) = %d items, %d, nil; want an error", tc.data, len(items), total)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("DecodeList(%s) error %q does not contain %q", tc.data, err, w)
					}
				}
				if items != nil {
					t.Errorf("DecodeList(%s) returned %d items with its error", tc.data, len(items))
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeList(%s) error %v", tc.data, err)
			}
			var ids []string
			for _, it := range items {
				ids = append(ids, it.Get("id").String())
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") || len(ids) != len(tc.wantIDs) {
				t.Errorf("DecodeList(%s) ids = %q; want %q", tc.data, ids, tc.wantIDs)
			}
			if total != tc.wantTotal {
				t.Errorf("DecodeList(%s) total = %d; want %d", tc.data, total, tc.wantTotal)
			}
		})
	}
}

// TestDecodeEnvelopeThenList runs the two the way the client does, on the
// shapes the vendor document shows and the ones it leaves open.
func TestDecodeEnvelopeThenList(t *testing.T) {
	for _, tc := range []struct {
		body      string
		wantN     int
		wantTotal int
	}{
		{envOK, 1, -1},
		{`{"error":false,"errors":[],"data":{"items":[{"id":1},{"id":2}],"total":"40"}}`, 2, 40},
		{`{"error":false,"errors":[],"data":null}`, 0, -1},
	} {
		data, err := DecodeEnvelope(200, "application/json", []byte(tc.body))
		if err != nil {
			t.Fatalf("DecodeEnvelope(%s): %v", tc.body, err)
		}
		items, total, err := DecodeList(data)
		if err != nil || len(items) != tc.wantN || total != tc.wantTotal {
			t.Errorf("DecodeList(%s) = %d items, total %d, %v; want %d, %d", data.Raw, len(items), total, err, tc.wantN, tc.wantTotal)
		}
	}
}
