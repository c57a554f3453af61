package otsectest_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

const (
	site   = "10.40.172.144"
	sensor = "10.40.172.172"
)

// answer is one HTTP answer.
type answer struct {
	status int
	ctype  string
	body   []byte
	err    error // reading the body
}

// get sends a GET with the given token ("" for none) and query.
func get(t *testing.T, s *otsectest.Server, token, path string, q url.Values) answer {
	t.Helper()
	u := s.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), b, err}
}

// sensorQuery is the query of a sensor list endpoint with data d.
func sensorQuery(d string) url.Values {
	q := url.Values{"siteIp": {site}, "sensorIp": {sensor}}
	if d != "" {
		q.Set("data", d)
	}
	return q
}

// envelope is the decoded vendor envelope of a list answer (object shape).
type envelope struct {
	Error  bool `json:"error"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Data json.RawMessage `json:"data"`
}

type listData struct {
	Items []map[string]any `json:"items"`
	List  []map[string]any `json:"list"`
	Total *int             `json:"total"`
}

// items decodes an answer of any list shape into its records and total
// (-1 when the shape has none).
func items(t *testing.T, a answer) ([]map[string]any, int) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var e envelope
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("decode: %v: %.200s", err, a.body)
	}
	if e.Error || e.Errors == nil || len(e.Errors) != 0 {
		t.Fatalf("not a success envelope: %.300s", a.body)
	}
	if bytes.HasPrefix(e.Data, []byte("[")) {
		var out []map[string]any
		if err := json.Unmarshal(e.Data, &out); err != nil {
			t.Fatal(err)
		}
		return out, -1
	}
	var d listData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Total == nil {
		t.Fatalf("no total: %.300s", a.body)
	}
	if d.List != nil {
		return d.List, *d.Total
	}
	if d.Items == nil {
		t.Fatalf("no items: %.300s", a.body)
	}
	return d.Items, *d.Total
}

func ids(recs []map[string]any) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = int64(r["id"].(float64))
	}
	return out
}

func TestAuthAndEnvelope(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	wantComponents := `{"error":false,"errors":[],"data":[{"siteIp":"10.40.172.144","sensorIps":["10.40.172.172"]}]}`
	tests := []struct {
		name   string
		setup  func()
		header string
		status int
		body   string
	}{
		{"good token", nil, "Bearer test-token", 200, wantComponents},
		{"scheme is case-insensitive", nil, "bearer test-token", 200, wantComponents},
		{"no header", nil, "", 401, otsectest.UnauthorizedBody},
		{"wrong token", nil, "Bearer nope", 401, otsectest.UnauthorizedBody},
		{"not bearer", nil, "Basic dGVzdC10b2tlbg==", 401, otsectest.UnauthorizedBody},
		{"bare token", nil, "test-token", 401, otsectest.UnauthorizedBody},
		{"expired", s.ExpireToken, "Bearer test-token", 401, otsectest.UnauthorizedBody},
		{"renewed same token", func() { s.SetToken("test-token") }, "Bearer test-token", 200, wantComponents},
		{"old token after rotation", func() { s.SetToken("second") }, "Bearer test-token", 401, otsectest.UnauthorizedBody},
		{"new token after rotation", nil, "Bearer second", 200, wantComponents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			req, _ := http.NewRequest("GET", s.URL+otsectest.PathComponents, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(b) != tt.body {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if got := otsectest.UnauthorizedBody; got != `{"error":true,"errors":[{"code":"NEM-3003-000204","message":"Invalid authentication token"}]}` {
		t.Errorf("401 body drifted from the vendor document: %s", got)
	}
	// 401 also on every other endpoint, before any validation.
	a := get(t, s, "", otsectest.PathDeviceAlerts, url.Values{"data": {"not json"}})
	if a.status != 401 || string(a.body) != otsectest.UnauthorizedBody {
		t.Errorf("sensor endpoint without token: %d %s", a.status, a.body)
	}
}

func TestComponentsAndSites(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{Token: "tk", Sites: []otsectest.Site{
		{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172", "10.40.172.173"}},
		{SiteIP: "10.40.173.144", SensorIPs: []string{"10.40.173.172"}},
	}})
	defer s.Close()
	a := get(t, s, "tk", otsectest.PathComponents, nil)
	want := `{"error":false,"errors":[],"data":[{"siteIp":"10.40.172.144","sensorIps":["10.40.172.172","10.40.172.173"]},{"siteIp":"10.40.173.144","sensorIps":["10.40.173.172"]}]}`
	if string(a.body) != want {
		t.Errorf("components: %s", a.body)
	}
	a = get(t, s, "tk", otsectest.PathSites, nil)
	want = `{"error":false,"errors":[],"data":[{"id":1,"siteIp":"10.40.172.144","name":"Site 1"},{"id":2,"siteIp":"10.40.173.144","name":"Site 2"}]}`
	if string(a.body) != want {
		t.Errorf("sites: %s", a.body)
	}
}

func TestBadRequests(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 5)
	tests := []struct {
		name   string
		method string
		path   string
		q      url.Values
		status int
		code   string
		msg    string // substring of the message
	}{
		{"page 2", "GET", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":20,"page":2}`), 400, otsectest.CodeBadRequest, "page must be 1"},
		{"page 0", "GET", otsectest.PathDevices, sensorQuery(`{"page":0}`), 400, otsectest.CodeBadRequest, "page must be 1"},
		{"page as string", "GET", otsectest.PathConnAlerts, sensorQuery(`{"page":"1"}`), 400, otsectest.CodeBadRequest, "page must be 1"},
		{"page on devices by site", "GET", otsectest.PathDevicesBySite, url.Values{"siteId": {"[1]"}, "data": {`{"page":3}`}}, 400, otsectest.CodeBadRequest, "page must be 1"},
		{"malformed data", "GET", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":`), 400, otsectest.CodeBadRequest, "not valid JSON"},
		{"data not an object", "GET", otsectest.PathDeviceAlerts, sensorQuery(`[1]`), 400, otsectest.CodeBadRequest, "JSON"},
		{"limit zero", "GET", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":0}`), 400, otsectest.CodeBadRequest, "limit"},
		{"limit string", "GET", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":"10"}`), 400, otsectest.CodeBadRequest, "limit"},
		{"bad sortType", "GET", otsectest.PathDeviceAlerts, sensorQuery(`{"sortType":"up"}`), 400, otsectest.CodeBadRequest, "sortType"},
		{"missing siteIp", "GET", otsectest.PathDeviceAlerts, url.Values{"sensorIp": {sensor}}, 400, otsectest.CodeBadRequest, "siteIp"},
		{"unknown sensor", "GET", otsectest.PathDeviceAlerts, url.Values{"siteIp": {site}, "sensorIp": {"10.9.9.9"}}, 400, otsectest.CodeBadRequest, "10.9.9.9"},
		{"missing siteId", "GET", otsectest.PathDevicesBySite, nil, 400, otsectest.CodeBadRequest, "siteId"},
		{"unknown path", "GET", "/neu-exposure/exposure/v1/nothing", nil, 404, otsectest.CodeNotFound, "Not found"},
		{"POST", "POST", otsectest.PathDeviceAlerts, sensorQuery(""), 405, otsectest.CodeMethodNotAllowed, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.ResetRequests()
			u := s.URL + tt.path
			if tt.q != nil {
				u += "?" + tt.q.Encode()
			}
			req, _ := http.NewRequest(tt.method, u, nil)
			req.Header.Set("Authorization", "Bearer test-token")
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e envelope
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("not JSON: %s", b)
			}
			if resp.StatusCode != tt.status || !e.Error || len(e.Errors) != 1 || e.Errors[0].Code != tt.code || !strings.Contains(e.Errors[0].Message, tt.msg) {
				t.Errorf("got %d %s", resp.StatusCode, b)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Status != tt.status || reqs[0].Path != tt.path || reqs[0].Method != tt.method {
				t.Errorf("log: %+v", reqs)
			}
		})
	}
	// The page a client asked for is in the log, so a test can assert that
	// no request ever asked for a page other than 1.
	s.ResetRequests()
	get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":20,"page":2,"sortBy":"alertStarted","sortType":"desc"}`))
	get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":20,"page":1}`))
	var pages []any
	for _, r := range s.Requests() {
		pages = append(pages, r.Data["page"])
	}
	if !slices.Equal(pages, []any{2.0, 1.0}) {
		t.Errorf("logged pages %v", pages)
	}
	if n := s.RequestCount(); n != 2 {
		t.Errorf("RequestCount %d", n)
	}
}

// expected sorts recs by (field, id) as the server must, and cuts to limit.
func expected(recs []map[string]any, field string, desc bool, limit int) []int64 {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b map[string]any) int {
		c := cmp.Compare(fmt.Sprint(a[field]), fmt.Sprint(b[field]))
		if c == 0 {
			c = cmp.Compare(a["id"].(float64), b["id"].(float64))
		}
		if desc {
			return -c
		}
		return c
	})
	if limit < len(recs) {
		recs = recs[:limit]
	}
	return ids(recs)
}

func TestLimitAndSort(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{Seed: 7})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 40)
	recs := s.Records(otsectest.StreamDeviceAlerts, site, sensor)
	newest, _ := time.Parse(time.RFC3339Nano, recs[len(recs)-1]["alertStarted"].(string))
	oldest, _ := time.Parse(time.RFC3339Nano, recs[0]["alertStarted"].(string))
	s.AddAt(otsectest.StreamDeviceAlerts, site, sensor, newest, 4)                     // ties at the newest
	s.AddAt(otsectest.StreamDeviceAlerts, site, sensor, newest.Add(-3*time.Second), 3) // late ties
	s.AddAt(otsectest.StreamDeviceAlerts, site, sensor, oldest, 2)                     // ties at the oldest
	all := s.Records(otsectest.StreamDeviceAlerts, site, sensor)
	if len(all) != 49 || s.Count(otsectest.StreamDeviceAlerts, site, sensor) != 49 {
		t.Fatalf("have %d records", len(all))
	}
	tests := []struct {
		data  string
		field string
		desc  bool
		limit int
	}{
		{`{"limit":10,"page":1,"sortBy":"alertStarted","sortType":"desc"}`, "alertStarted", true, 10},
		{`{"limit":10,"page":1,"sortBy":"alertStarted","sortType":"asc"}`, "alertStarted", false, 10},
		{`{"limit":3,"sortType":"DESC"}`, "alertStarted", true, 3},
		{`{"limit":1000}`, "alertStarted", true, 1000},
		{``, "alertStarted", true, 20},
		{`{}`, "alertStarted", true, 20},
		{`{"sortType":"asc","limit":5}`, "alertStarted", false, 5},
		{`{"limit":15,"sortBy":"deviceName","sortType":"asc"}`, "deviceName", false, 15},
		{`{"limit":15,"sortBy":"deviceName","sortType":"desc"}`, "deviceName", true, 15},
		{`{"limit":49,"sortBy":"id","sortType":"desc"}`, "id", true, 49},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got, total := items(t, get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(tt.data)))
			if total != 49 {
				t.Errorf("total %d, want 49", total)
			}
			var want []int64
			if tt.field == "id" {
				want = ids(all)
				slices.Reverse(want)
			} else {
				want = expected(all, tt.field, tt.desc, tt.limit)
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("ids\n got %v\nwant %v", ids(got), want)
			}
		})
	}
	// The newest five: the four ties come first (ids descending) after the
	// record they tie with.
	got, _ := items(t, get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":5}`)))
	for _, r := range got {
		if r["alertStarted"] != recs[len(recs)-1]["alertStarted"] {
			t.Errorf("not a tie at the newest time: %v", r["alertStarted"])
		}
	}
	if g := ids(got); !slices.IsSortedFunc(g, func(a, b int64) int { return cmp.Compare(b, a) }) {
		t.Errorf("ties not in descending id order: %v", g)
	}
}

func TestSortOnMissingField(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 6)
	recs := s.Records(otsectest.StreamDeviceAlerts, site, sensor)
	rank := map[int64]float64{}
	for i, r := range recs[:3] {
		id := int64(r["id"].(float64))
		rank[id] = float64(10 - i)
		if !s.Update(otsectest.StreamDeviceAlerts, site, sensor, strconv.FormatInt(id, 10), func(m map[string]any) { m["rank"] = rank[id] }) {
			t.Fatal("Update found nothing")
		}
	}
	all := ids(recs)
	for _, tt := range []struct {
		sortType string
		want     []int64
	}{
		// ranked records by rank, then the unranked ones by id; unranked last either way.
		{"asc", []int64{all[2], all[1], all[0], all[3], all[4], all[5]}},
		{"desc", []int64{all[0], all[1], all[2], all[5], all[4], all[3]}},
	} {
		got, _ := items(t, get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"sortBy":"rank","sortType":"`+tt.sortType+`"}`)))
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.sortType, ids(got), tt.want)
		}
	}
}

func TestPropertiesFilter(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDevices, site, sensor, 300)
	recs := s.Records(otsectest.StreamDevices, site, sensor)
	target := recs[123]
	ip, mac := target["ipv4"].(string), target["mac"].(string)
	count := func(f func(map[string]any) bool) int {
		n := 0
		for _, r := range recs {
			if f(r) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name  string
		props string
		want  int
	}{
		{"ipv4 and mac", fmt.Sprintf(`{"ipv4":%q,"mac":%q}`, ip, mac), 1},
		{"ipv4 only", fmt.Sprintf(`{"ipv4":%q,"mac":""}`, ip), count(func(r map[string]any) bool { return r["ipv4"] == ip })},
		{"mac only", fmt.Sprintf(`{"ipv4":"","mac":%q}`, mac), 1},
		{"both empty", `{"ipv4":"","mac":""}`, 300},
		{"no match", `{"ipv4":"192.0.2.1","mac":""}`, 0},
		{"mac of another ip", fmt.Sprintf(`{"ipv4":"192.0.2.1","mac":%q}`, mac), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := `{"limit":1000,"page":1,"sortBy":"discovTime","sortType":"desc","properties":` + tt.props + `}`
			got, total := items(t, get(t, s, "test-token", otsectest.PathDevices, sensorQuery(data)))
			if len(got) != tt.want || total != tt.want {
				t.Fatalf("got %d records, total %d, want %d", len(got), total, tt.want)
			}
			if tt.want == 1 && got[0]["id"] != target["id"] {
				t.Errorf("got %v", got[0])
			}
		})
	}
	// Limit applies after the filter; total counts every match.
	got, total := items(t, get(t, s, "test-token", otsectest.PathDevices, sensorQuery(`{"limit":2,"properties":{"deviceType":"PLC"}}`)))
	wantTotal := count(func(r map[string]any) bool { return r["deviceType"] == "PLC" })
	if len(got) != min(2, wantTotal) || total != wantTotal {
		t.Errorf("got %d, total %d, want total %d", len(got), total, wantTotal)
	}
}

func TestListShapes(t *testing.T) {
	for _, shape := range []string{"", "object", "array", "list"} {
		t.Run(shape, func(t *testing.T) {
			s := otsectest.NewServer(otsectest.Options{ListShape: shape})
			defer s.Close()
			s.Add(otsectest.StreamConnAlerts, site, sensor, 30)
			a := get(t, s, "test-token", otsectest.PathConnAlerts, sensorQuery(`{"limit":7}`))
			var raw struct {
				Data any `json:"data"`
			}
			if err := json.Unmarshal(a.body, &raw); err != nil {
				t.Fatal(err)
			}
			var key string
			switch d := raw.Data.(type) {
			case []any:
				key = "array"
			case map[string]any:
				if _, ok := d["items"]; ok {
					key = "object"
				} else if _, ok := d["list"]; ok {
					key = "list"
				}
				if d["total"] != 30.0 {
					t.Errorf("total %v", d["total"])
				}
			}
			if want := cmp.Or(shape, "object"); key != want {
				t.Errorf("shape %q, want %q: %.200s", key, want, a.body)
			}
			got, _ := items(t, a)
			if len(got) != 7 {
				t.Errorf("%d records", len(got))
			}
		})
	}
}

func TestTimeFormats(t *testing.T) {
	start := time.Date(2026, 11, 23, 8, 52, 43, 123456789, time.UTC)
	tests := []struct {
		format string
		check  func(v any) bool
	}{
		{"", func(v any) bool {
			s, ok := v.(string)
			return ok && regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(s)
		}},
		{"epoch_ms", func(v any) bool { f, ok := v.(float64); return ok && f > 1e12 && f < 1e13 }},
		{"epoch_s", func(v any) bool { f, ok := v.(float64); return ok && f > 1e9 && f < 1e10 }},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			s := otsectest.NewServer(otsectest.Options{TimeFormat: tt.format, Start: start})
			defer s.Close()
			s.Add(otsectest.StreamSuricataAlerts, site, sensor, 200)
			got, _ := items(t, get(t, s, "test-token", otsectest.PathSuricataAlerts, sensorQuery(`{"limit":200,"sortType":"asc"}`)))
			first := got[0]["alertStarted"]
			if !tt.check(first) {
				t.Fatalf("alertStarted %v (%T)", first, first)
			}
			switch tt.format {
			case "":
				if first != "2026-11-23T08:52:43.123Z" {
					t.Errorf("first record %v, want Options.Start", first)
				}
			case "epoch_s":
				if first != float64(start.Unix()) {
					t.Errorf("first record %v", first)
				}
				// Times that are equal at second precision are ties: by id.
				for i := 1; i < len(got); i++ {
					a, b := got[i-1], got[i]
					if a["alertStarted"].(float64) > b["alertStarted"].(float64) ||
						a["alertStarted"] == b["alertStarted"] && a["id"].(float64) > b["id"].(float64) {
						t.Fatalf("out of order at %d: %v %v / %v %v", i, a["alertStarted"], a["id"], b["alertStarted"], b["id"])
					}
				}
			}
		})
	}
}

func TestRecordContent(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	want := map[string][]string{
		otsectest.StreamDeviceAlerts:   {"id", "alertStarted", "alertEnded", "criticality", "status", "type", "name", "message", "reason", "deviceId", "deviceName", "ipv4", "mac", "vendor", "model", "deviceType", "firmware", "os", "purdueLevel", "siteIp", "sensorIp", "comment"},
		otsectest.StreamConnAlerts:     {"id", "alertStarted", "criticality", "srcIp", "srcPort", "srcMac", "dstIp", "dstPort", "dstMac", "protocol", "transport", "deviceId"},
		otsectest.StreamSuricataAlerts: {"id", "alertStarted", "signatureId", "signature", "category", "srcIp", "srcPort", "dstIp", "dstPort", "protocol"},
		otsectest.StreamDevices:        {"id", "name", "ipv4", "mac", "vendor", "model", "deviceType", "firmware", "os", "purdueLevel", "discovTime", "lastSeen", "status"},
		otsectest.StreamCVEs:           {"id", "deviceId", "cveId", "cvss", "cvssVector", "description", "firstSeen"},
		otsectest.StreamPatchRequests:  {"id", "status", "deviceId", "firmwareFrom", "firmwareTo", "requestedBy", "createdAt", "updatedAt"},
	}
	seen := map[float64]string{}
	for stream, keys := range want {
		s.Add(stream, site, sensor, 200)
		size := 0
		for _, r := range s.Records(stream, site, sensor) {
			for _, k := range keys {
				if _, ok := r[k]; !ok {
					t.Fatalf("%s record lacks %q: %v", stream, k, r)
				}
			}
			if other, dup := seen[r["id"].(float64)]; dup {
				t.Fatalf("id %v in %s and %s", r["id"], stream, other)
			}
			seen[r["id"].(float64)] = stream
			b, _ := json.Marshal(r)
			size += len(b)
			if c, ok := r["criticality"]; ok && !slices.Contains([]any{"Low", "Medium", "High", "Severe"}, c) {
				t.Errorf("criticality %v", c)
			}
		}
		if avg := size / 200; strings.HasSuffix(stream, "alerts") && (avg < 600 || avg > 1100) {
			t.Errorf("%s: average record %d bytes, want about 800", stream, avg)
		}
	}
}

func TestUpdate(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 10)
	recs := s.Records(otsectest.StreamDeviceAlerts, site, sensor)
	id := strconv.Itoa(int(recs[4]["id"].(float64)))
	ok := s.Update(otsectest.StreamDeviceAlerts, site, sensor, id, func(m map[string]any) {
		m["status"] = "acknowledged"
		m["alertStarted"] = "2099-01-01T00:00:00.000Z" // the sort position must not move
	})
	if !ok {
		t.Fatal("Update: not found")
	}
	if s.Update(otsectest.StreamDeviceAlerts, site, sensor, "999999999", func(map[string]any) {}) {
		t.Error("Update of a missing id reported true")
	}
	got, _ := items(t, get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":10}`)))
	if got[5]["id"] != recs[4]["id"] || got[5]["status"] != "acknowledged" {
		t.Errorf("updated record at the wrong place or unchanged: %v", got[5])
	}
	after := s.Records(otsectest.StreamDeviceAlerts, site, sensor)
	if after[4]["status"] != "acknowledged" || after[3]["status"] != recs[3]["status"] {
		t.Error("Records does not show the update")
	}
	a := get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":10}`))
	// The record keeps its key order: id and alertStarted first, as rendered.
	i := bytes.Index(a.body, []byte(`{"id":`+id+`,`))
	if i < 0 {
		t.Fatalf("record %s not found in %.300s", id, a.body)
	}
	one := a.body[i : i+bytes.IndexByte(a.body[i:], '}')+1]
	if !bytes.HasPrefix(one, []byte(`{"id":`+id+`,"alertStarted":"2099-01-01T00:00:00.000Z","alertEnded":`)) ||
		!bytes.Contains(one, []byte(`"status":"acknowledged","type":`)) || !json.Valid(one) {
		t.Errorf("key order not kept: %s", one)
	}
}

func TestRemove(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDevices, site, sensor, 5)
	recs := s.Records(otsectest.StreamDevices, site, sensor)
	id := strconv.Itoa(int(recs[2]["id"].(float64)))
	if !s.Remove(otsectest.StreamDevices, site, sensor, id) {
		t.Fatal("Remove: not found")
	}
	if s.Remove(otsectest.StreamDevices, site, sensor, id) || s.Remove(otsectest.StreamDevices, site, sensor, "x") {
		t.Error("Remove of a missing id reported true")
	}
	got, total := items(t, get(t, s, "test-token", otsectest.PathDevices, sensorQuery(`{"limit":10}`)))
	if len(got) != 4 || total != 4 || s.Count(otsectest.StreamDevices, site, sensor) != 4 {
		t.Fatalf("after Remove the list has %d records (total %d), want 4", len(got), total)
	}
	for _, r := range got {
		if r["id"] == recs[2]["id"] {
			t.Errorf("removed record %s still listed", id)
		}
	}
	// Records added later are still the newest.
	s.Add(otsectest.StreamDevices, site, sensor, 1)
	got, _ = items(t, get(t, s, "test-token", otsectest.PathDevices, sensorQuery(`{"limit":1}`)))
	if all := s.Records(otsectest.StreamDevices, site, sensor); got[0]["id"] != all[len(all)-1]["id"] {
		t.Errorf("newest = %v, want the record added last", got[0]["id"])
	}
}

func TestCVEsAndPatchRequests(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamCVEs, site, sensor, 5)
	s.Add(otsectest.StreamPatchRequests, site, sensor, 4)
	for _, path := range []string{otsectest.PathDeviceCVEs, otsectest.PathDeviceCVEsAlt} {
		got, total := items(t, get(t, s, "test-token", path, sensorQuery(`{"limit":250,"page":1,"sortBy":"name","sortType":"desc"}`)))
		if len(got) != 5 || total != 5 {
			t.Fatalf("%s: %d records", path, len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i-1]["name"].(string) < got[i]["name"].(string) {
				t.Errorf("not sorted by name desc: %v", got)
			}
		}
		if !strings.HasPrefix(got[0]["cveId"].(string), "CVE-") {
			t.Errorf("cveId %v", got[0]["cveId"])
		}
	}
	got, _ := items(t, get(t, s, "test-token", otsectest.PathPatchRequests, sensorQuery("")))
	if len(got) != 4 {
		t.Fatalf("%d patch requests", len(got))
	}
	// data={"id":N} picks one record (the document's "Get detail" form).
	one, total := items(t, get(t, s, "test-token", otsectest.PathPatchRequests, sensorQuery(fmt.Sprintf(`{"id":%v}`, got[2]["id"]))))
	if len(one) != 1 || total != 1 || one[0]["id"] != got[2]["id"] {
		t.Errorf("by id: %v", one)
	}
}

func TestDevicesBySite(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{Sites: []otsectest.Site{
		{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172"}},
		{SiteIP: "10.40.173.144", SensorIPs: []string{"10.40.173.172", "10.40.173.173"}},
	}})
	defer s.Close()
	s.Add(otsectest.StreamDevices, "10.40.172.144", "10.40.172.172", 10)
	s.Add(otsectest.StreamDevices, "10.40.173.144", "10.40.173.172", 15)
	s.Add(otsectest.StreamDevices, "10.40.173.144", "10.40.173.173", 12)
	tests := []struct {
		siteID, data string
		n, total     int
	}{
		{"[2]", `{"isAll":false}`, 20, 27},
		{"[2]", `{"isAll":true}`, 27, 27},
		{"[1]", `{"isAll":false}`, 10, 10},
		{"[1,2]", `{"isAll":true}`, 37, 37},
		{"[1,2]", `{"limit":5,"page":1,"sortBy":"discovTime","sortType":"desc"}`, 5, 37},
		{"2", ``, 20, 27},
		{"[9]", `{"isAll":true}`, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.siteID+tt.data, func(t *testing.T) {
			q := url.Values{"siteId": {tt.siteID}}
			if tt.data != "" {
				q.Set("data", tt.data)
			}
			got, total := items(t, get(t, s, "test-token", otsectest.PathDevicesBySite, q))
			if len(got) != tt.n || total != tt.total {
				t.Errorf("got %d of %d, want %d of %d", len(got), total, tt.n, tt.total)
			}
			for i := 1; i < len(got); i++ {
				if got[i-1]["discovTime"].(string) < got[i]["discovTime"].(string) {
					t.Errorf("not newest first at %d", i)
				}
			}
		})
	}
}

func TestTLS(t *testing.T) {
	s := otsectest.NewTLSServer(otsectest.Options{})
	defer s.Close()
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || s.Certificate() == nil {
		t.Fatalf("URL %s, cert %v", s.URL, s.Certificate())
	}
	a := get(t, s, "test-token", otsectest.PathComponents, nil)
	if a.status != 200 {
		t.Errorf("status %d", a.status)
	}
	if plain := otsectest.NewServer(otsectest.Options{}); plain.Certificate() != nil {
		t.Error("plain server has a certificate")
	} else {
		plain.Close()
	}
}

func TestRequestLogBounded(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{MaxRequests: 10})
	defer s.Close()
	for range 25 {
		get(t, s, "test-token", otsectest.PathComponents, nil)
	}
	if n := len(s.Requests()); n < 5 || n > 10 {
		t.Errorf("log holds %d", n)
	}
	if s.RequestCount() != 25 {
		t.Errorf("RequestCount %d", s.RequestCount())
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 || s.RequestCount() != 0 {
		t.Error("ResetRequests left something")
	}
}

func TestGenerator(t *testing.T) {
	base, began := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), time.Now()
	clock := func() time.Time { return base.Add(time.Since(began)) }
	s := otsectest.NewServer(otsectest.Options{Seed: 3, Start: base.Add(-time.Hour), Now: clock})
	defer s.Close()
	streams := []string{otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts, otsectest.StreamSuricataAlerts, otsectest.StreamDevices}
	for _, st := range streams {
		s.Add(st, site, sensor, 10)
	}
	other := s.StartGenerator(1) // a second generator must not keep the first's stop waiting
	stop := s.StartGenerator(4000)
	deadline := time.Now().Add(10 * time.Second)
	total := func() int {
		n := 0
		for _, st := range streams {
			n += s.Count(st, site, sensor)
		}
		return n
	}
	for total() < 40+2000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop() // returns although the other generator still runs
	other()
	n := total()
	time.Sleep(50 * time.Millisecond)
	if total() != n {
		t.Error("records still added after stop")
	}
	if n < 40+2000 {
		t.Fatalf("only %d records after 10s at 4000/s", n)
	}
	ties, late := 0, 0
	for _, st := range streams {
		field := "alertStarted"
		if st == otsectest.StreamDevices {
			field = "discovTime"
		}
		newest := ""
		seen := map[string]bool{}
		for i, r := range s.Records(st, site, sensor) {
			tm := r[field].(string)
			if i >= 10 {
				if seen[tm] {
					ties++
				}
				if tm < newest {
					late++
				}
			}
			seen[tm] = true
			newest = max(newest, tm)
		}
		if s.Count(st, site, sensor) < 200 {
			t.Errorf("%s got only %d records", st, s.Count(st, site, sensor))
		}
	}
	frac := func(k int) float64 { return float64(k) / float64(n-40) }
	if frac(ties) < 0.05 || frac(late) < 0.005 || frac(late) > 0.05 {
		t.Errorf("ties %.3f, late %.3f of %d generated", frac(ties), frac(late), n-40)
	}
}

func TestServeHTTPWithoutListener(t *testing.T) {
	s := otsectest.NewUnstartedHandler(otsectest.Options{Token: "x"})
	defer s.Close()
	if s.URL != "" {
		t.Errorf("URL %q", s.URL)
	}
	s.Add(otsectest.StreamDevices, site, sensor, 3)
	req, _ := http.NewRequest("GET", otsectest.PathDevices+"?"+sensorQuery(`{"limit":2}`).Encode(), nil)
	req.Header.Set("Authorization", "Bearer x")
	w := newRecorder()
	s.ServeHTTP(w, req)
	got, total := items(t, answer{status: w.status, body: w.body.Bytes()})
	if len(got) != 2 || total != 3 {
		t.Errorf("%d of %d", len(got), total)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []otsectest.Options{
		{ListShape: "table"},
		{TimeFormat: "unix"},
		{Sites: []otsectest.Site{{SiteIP: "1.2.3.4"}}},
		{Sites: []otsectest.Site{{SiteIP: "1.2.3.4", SensorIPs: []string{"a", "a"}}}},
		{Streams: []string{"alerts"}},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
	if err := (otsectest.Options{}).Validate(); err != nil {
		t.Error(err)
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) reset()                      { r.status = 0; r.body.Reset(); clear(r.h) }
