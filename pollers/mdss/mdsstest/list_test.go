package mdsstest_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

// listPage decodes a list answer of the default shape.
func listPage(t *testing.T, a answer) ([]map[string]any, int) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var p struct {
		Items []map[string]any `json:"items"`
		Total *int             `json:"total"`
	}
	if err := json.Unmarshal(a.body, &p); err != nil || p.Items == nil || p.Total == nil {
		t.Fatalf("not a list page (%v): %.300s", err, a.body)
	}
	return p.Items, *p.Total
}

func idsOf(recs []map[string]any) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r["id"].(string)
	}
	return out
}

// backlog is a server with n finished scans from seed 1, on a manual clock.
func backlog(t *testing.T, n int, o mdsstest.Options) (*mdsstest.Server, *mdsstest.Clock) {
	t.Helper()
	clk := mdsstest.NewClock(t0)
	o.Now = clk.Now
	if o.Seed == 0 {
		o.Seed = 1
	}
	s := mdsstest.NewServer(o)
	t.Cleanup(s.Close)
	s.Backfill(n, 24*time.Hour)
	clk.Advance(time.Hour)
	s.Tick()
	return s, clk
}

func TestRouting(t *testing.T) {
	s, _ := backlog(t, 3, mdsstest.Options{})
	scan := s.Scans()[0]
	file := s.Files(scan.ID)[0]
	tests := []struct {
		method, path string
		status       int
		allow        string // the Allow header; "-": none, and a 404 that needs credentials
	}{
		{"GET", "/api/scan/0/10", 200, ""},
		{"GET", "/API/Scan/0/10", 200, ""},
		{"GET", "/api/scan/0/10/", 200, ""},
		{"GET", "/api/scan/" + scan.ID, 200, ""},
		{"GET", "/api/Scan/" + strings.ToUpper(scan.ID), 200, ""},
		{"GET", "/api/file/0/10?scanId=" + scan.ID, 200, ""},
		{"GET", "/api/File/" + file.ID, 200, ""},
		{"GET", "/api/scan/" + file.ID, 404, "-"}, // no such record: after credentials
		{"GET", "/api/file/" + scan.ID, 404, "-"},
		{"GET", "/api/scan", 404, ""},
		{"GET", "/api/scan/0/10/extra", 404, ""},
		{"GET", "/api/scan//10", 404, ""},
		{"GET", "/api/storage/all", 404, ""},
		{"GET", "/scan/0/10", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/api/user/whoami", 404, ""},
		{"POST", "/api/scan/0/10", 405, "GET"},
		{"DELETE", "/api/file/" + file.ID, 405, "GET"},
		{"PUT", "/api/user/logout", 405, "POST"},
		{"GET", "/api/user/refreshToken", 405, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			a := req(t, s, tt.method, tt.path, "", "ApiKey: "+mdsstest.DefaultAPIKey)
			if a.status != tt.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.status)
			}
			allow := strings.TrimPrefix(tt.allow, "-")
			if a.header.Get("Allow") != allow {
				t.Errorf("Allow %q, want %q", a.header.Get("Allow"), allow)
			}
			if !json.Valid(a.body) || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Errorf("body %q, Content-Type %q", a.body, a.header.Get("Content-Type"))
			}
			if tt.status != 200 && !strings.Contains(string(a.body), `"message":`) {
				t.Errorf("error body %s", a.body)
			}
			// Routing comes before credentials.
			if (tt.status == 404 || tt.status == 405) && tt.allow != "-" {
				if b := req(t, s, tt.method, tt.path, ""); b.status != tt.status {
					t.Errorf("without credentials: %d", b.status)
				}
			}
		})
	}
}

func TestPaging(t *testing.T) {
	s, _ := backlog(t, 25, mdsstest.Options{})
	bad := []string{"-1/10", "0/0", "0/-5", "0/1001", "x/10", "0/ten", "1.5/10", "0/1e3"}
	for _, p := range bad {
		a := get(t, s, "/api/scan/"+p)
		if a.status != 400 || !strings.Contains(string(a.body), `"message":`) {
			t.Errorf("scan %s: %d %s", p, a.status, a.body)
		}
		if a := get(t, s, "/api/file/"+p+"?scanId="+s.Scans()[0].ID); a.status != 400 {
			t.Errorf("file %s: %d", p, a.status)
		}
	}
	all, total := listPage(t, get(t, s, "/api/scan/0/1000"))
	if total != 25 || len(all) != 25 {
		t.Fatalf("total %d, %d items", total, len(all))
	}
	// Newest start first.
	var starts []string
	for _, sc := range all {
		starts = append(starts, sc["startTime"].(string))
	}
	parsed := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339Nano, s); return tm }
	if !slices.IsSortedFunc(starts, func(a, b string) int { return parsed(b).Compare(parsed(a)) }) {
		t.Errorf("not newest first: %v", starts)
	}
	for _, size := range []int{1, 7, 10, 25} {
		var got []string
		for start := 0; ; start += size {
			page, tot := listPage(t, get(t, s, fmt.Sprintf("/api/scan/%d/%d", start, size)))
			if tot != 25 {
				t.Errorf("total %d", tot)
			}
			got = append(got, idsOf(page)...)
			if len(page) < size {
				break
			}
		}
		if !slices.Equal(got, idsOf(all)) {
			t.Errorf("pages of %d: %d ids, not the full list", size, len(got))
		}
	}
	if page, tot := listPage(t, get(t, s, "/api/scan/500/10")); len(page) != 0 || tot != 25 {
		t.Errorf("past the end: %d items, total %d", len(page), tot)
	}
	// Files of one scan, in order, paged.
	sc := s.Scans()[3]
	want := s.Files(sc.ID)
	var got []string
	for start := 0; ; start += 2 {
		page, tot := listPage(t, get(t, s, fmt.Sprintf("/api/file/%d/2?scanId=%s", start, sc.ID)))
		if tot != len(want) {
			t.Errorf("file total %d, want %d", tot, len(want))
		}
		got = append(got, idsOf(page)...)
		if len(page) < 2 {
			break
		}
	}
	var wantIDs []string
	for _, f := range want {
		wantIDs = append(wantIDs, f.ID)
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("file ids\n got %v\nwant %v", got, wantIDs)
	}
}

func TestFileFilters(t *testing.T) {
	s, _ := backlog(t, 40, mdsstest.Options{ThreatRate: 0.3})
	scans := s.Scans()
	var all []mdsstest.File
	for _, sc := range scans {
		all = append(all, s.Files(sc.ID)...)
	}
	count := func(f func(mdsstest.File) bool) int {
		n := 0
		for _, x := range all {
			if f(x) {
				n++
			}
		}
		return n
	}
	two := scans[0].ID + "," + strings.ToUpper(scans[1].ID)
	tests := []struct {
		query string
		want  int
	}{
		{"", len(all)},
		{"scanId=" + scans[0].ID, scans[0].TotalFiles},
		{"scanId=" + two, scans[0].TotalFiles + scans[1].TotalFiles},
		{"scanId=nothing", 0},
		{"result=1", count(func(f mdsstest.File) bool { return f.Result == mdsstest.ResultBlocked })},
		{"result=Blocked", count(func(f mdsstest.File) bool { return f.Result == mdsstest.ResultBlocked })},
		{"processingState=1,canceled", count(func(f mdsstest.File) bool {
			return f.ProcessingState == mdsstest.StateFailed || f.ProcessingState == mdsstest.StateCanceled
		})},
		{"scanAllResultI=1,21", count(func(f mdsstest.File) bool { return f.ScanAllResultI == 1 || f.ScanAllResultI == 21 })},
		{"storageId=" + s.Storages()[1].ID, count(func(f mdsstest.File) bool { return f.StorageID == s.Storages()[1].ID })},
		{"result=1&scanAllResultI=20", count(func(f mdsstest.File) bool { return f.Result == mdsstest.ResultBlocked && f.ScanAllResultI == 20 })},
		{"unknownParam=3", len(all)},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if tt.want > 1000 {
				t.Fatalf("test wants %d files, more than a page", tt.want)
			}
			page, total := listPage(t, get(t, s, "/api/file/0/1000?"+tt.query))
			if total != tt.want || len(page) != tt.want {
				t.Errorf("total %d, %d items, want %d", total, len(page), tt.want)
			}
		})
	}
	for _, q := range []string{"result=maybe", "processingState=9x", "scanAllResultI=infected"} {
		if a := get(t, s, "/api/file/0/10?"+q); a.status != 400 {
			t.Errorf("%s: %d", q, a.status)
		}
	}
}

// keysOf returns the member names of a JSON object, in order.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %.100s", raw)
	}
	var keys []string
	for dec.More() {
		tok, _ := dec.Token()
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestRecordShapes(t *testing.T) {
	s, _ := backlog(t, 1, mdsstest.Options{})
	sc, files := s.AddScan(mdsstest.ScanSpec{Storage: "finance-share", Name: "Nightly finance", ScanType: 1, Files: 3, Threats: []int{1}})
	scanKeys := []string{"id", "name", "status", "scanType", "storageId", "storageName", "startTime", "stopTime", "totalFiles", "blockedFiles", "infectedFiles"}
	a := get(t, s, "/api/scan/"+sc.ID)
	if got := keysOf(t, a.body); !slices.Equal(got, scanKeys) {
		t.Errorf("scan keys %v", got)
	}
	var scan map[string]any
	json.Unmarshal(a.body, &scan)
	want := map[string]any{"id": sc.ID, "name": "Nightly finance", "status": "Completed", "scanType": 1.0,
		"storageName": "finance-share", "storageId": s.Storages()[0].ID,
		"startTime": mdsstest.FormatTime(sc.StartTime), "stopTime": mdsstest.FormatTime(sc.StopTime),
		"totalFiles": 3.0, "blockedFiles": 1.0, "infectedFiles": 1.0}
	for k, v := range want {
		if scan[k] != v {
			t.Errorf("scan %s = %v, want %v", k, scan[k], v)
		}
	}

	var threat mdsstest.File
	for _, f := range files {
		if f.Result == mdsstest.ResultBlocked {
			threat = f
		}
	}
	a = get(t, s, "/api/file/"+threat.ID)
	fileKeys := []string{"id", "scanId", "storageId", "storageName", "name", "path", "size", "md5", "sha1", "sha256",
		"processingState", "result", "scanCompletedTime", "remediations", "scanResult"}
	if got := keysOf(t, a.body); !slices.Equal(got, fileKeys) {
		t.Errorf("file keys %v", got)
	}
	var file struct {
		ID                string `json:"id"`
		ScanID            string `json:"scanId"`
		ProcessingState   int    `json:"processingState"`
		Result            int    `json:"result"`
		Size              int64  `json:"size"`
		MD5, SHA1, SHA256 string
		Remediations      []int  `json:"remediations"`
		ScanCompletedTime string `json:"scanCompletedTime"`
		ScanResult        struct {
			ScanResults struct {
				ScanAllResultI int    `json:"scanAllResultI"`
				ScanAllResultA string `json:"scanAllResultA"`
				TotalAvs       int    `json:"totalAvs"`
				ScanDetails    []struct {
					EngineName, ThreatFound, EngID string
					ScanResultI, ScanTime          int
					DefTime                        string
				} `json:"scanDetails"`
			} `json:"scanResults"`
		} `json:"scanResult"`
	}
	if err := json.Unmarshal(a.body, &file); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	r := file.ScanResult.ScanResults
	if file.ScanID != sc.ID || file.ProcessingState != 3 || file.Result != 1 || r.ScanAllResultI != 1 || r.ScanAllResultA != "Infected" ||
		r.TotalAvs != len(r.ScanDetails) || r.TotalAvs < 4 || len(file.Remediations) == 0 || file.Size != threat.Size ||
		len(file.MD5) != 32 || len(file.SHA1) != 40 || len(file.SHA256) != 64 || file.ScanCompletedTime != mdsstest.FormatTime(threat.ScanCompletedTime) {
		t.Errorf("file %s", a.body)
	}
	detected := 0
	for _, d := range r.ScanDetails {
		if d.ThreatFound != "" && d.ScanResultI == 1 {
			detected++
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT00:00:00\.000Z$`).MatchString(d.DefTime) || d.EngID == "" {
			t.Errorf("engine %+v", d)
		}
	}
	if detected == 0 || len(threat.Threats()) == 0 {
		t.Errorf("no engine names the threat: %s", a.body)
	}
}

func TestEnumsAndShapes(t *testing.T) {
	spec := mdsstest.ScanSpec{Storage: "hr-documents", Files: 2, Threats: []int{8}, Outcome: mdsstest.ScanCancelled}
	tests := []struct {
		name     string
		opts     mdsstest.Options
		list     string // regexp the scan list body must match
		scan     string // the scan's status member
		file     string // regexp the blocked file's members must match
		fileOnly string // regexp that must not match the file
	}{
		{"defaults", mdsstest.Options{}, `^\{"items":\[\{.*\],"total":1\}$`, `"status":"Cancelled"`,
			`"processingState":3,"result":1,"scanCompletedTime":"[^"]+","remediations":\[(\d+,)*\d+\],"scanResult":\{"scanResults":\{"scanAllResultI":8,`, ""},
		{"names", mdsstest.Options{EnumsAsNames: true, ScanStatusAsInt: true}, `^\{"items":`, `"status":"Cancelled"`,
			`"processingState":"Available","result":"Blocked",.*"remediations":\[("[A-Za-z]+",)*"Blocked[A-Za-z]+"\]`, ""},
		{"scan status as int", mdsstest.Options{ScanStatusAsInt: true}, `^\{"items":`, `"status":2`, `"processingState":3,"result":1,`, ""},
		{"array", mdsstest.Options{ListShape: "array"}, `^\[\{.*\}\]$`, `"status":"Cancelled"`, `"result":1`, `"total"`},
		{"other keys", mdsstest.Options{ListKey: "scans", TotalKey: "totalCount"}, `^\{"scans":\[.*\],"totalCount":1\}$`, `"status":"Cancelled"`, `"result":1`, ""},
		{"flat result", mdsstest.Options{FlatResult: true}, `^\{"items":`, `"status":"Cancelled"`,
			`"remediations":\[[^\]]*\],"scanAllResultI":8,"scanAllResultA":"Blocklisted","totalAvs":\d+\}$`, `scanResult`},
		{"epoch ms", mdsstest.Options{TimeFormat: "epoch_ms"}, `"startTime":\d{13},"stopTime":\d{13}`, `"status":"Cancelled"`,
			`"scanCompletedTime":\d{13},`, ""},
		{"epoch s", mdsstest.Options{TimeFormat: "epoch_s"}, `"startTime":\d{10},"stopTime":\d{10}`, `"status":"Cancelled"`,
			`"scanCompletedTime":\d{10},`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := mdsstest.NewClock(t0)
			tt.opts.Now = clk.Now
			s := mdsstest.NewServer(tt.opts)
			defer s.Close()
			sc, files := s.AddScan(spec)
			list := get(t, s, "/api/scan/0/10")
			if !regexp.MustCompile(tt.list).Match(list.body) {
				t.Errorf("scan list %s", list.body)
			}
			if one := get(t, s, "/api/scan/"+sc.ID); !strings.Contains(string(one.body), tt.scan) {
				t.Errorf("scan %s, want %s", one.body, tt.scan)
			}
			var blocked string
			for _, f := range files {
				if f.Result == mdsstest.ResultBlocked {
					blocked = f.ID
				}
			}
			f := get(t, s, "/api/file/"+blocked)
			if !regexp.MustCompile(tt.file).Match(f.body) {
				t.Errorf("file %s\nwant %s", f.body, tt.file)
			}
			if tt.fileOnly != "" && (regexp.MustCompile(tt.fileOnly).Match(f.body) || regexp.MustCompile(tt.fileOnly).Match(list.body)) {
				t.Errorf("%s present: %s", tt.fileOnly, f.body)
			}
		})
	}
}

func TestTimesHaveVaryingDigits(t *testing.T) {
	s, _ := backlog(t, 30, mdsstest.Options{})
	digits := map[int]int{}
	re := regexp.MustCompile(`"(startTime|stopTime|scanCompletedTime)":"([^"]+)"`)
	check := func(body []byte, want map[string]time.Time) {
		for _, m := range re.FindAllSubmatch(body, -1) {
			v := string(m[2])
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil || !strings.HasSuffix(v, "Z") {
				t.Errorf("time %q: %v", v, err)
			}
			if _, frac, ok := strings.Cut(strings.TrimSuffix(v, "Z"), "."); ok {
				digits[len(frac)]++
			} else {
				digits[0]++
			}
			if w, ok := want[v]; ok && !w.Equal(tm) {
				t.Errorf("%q parses to %v, stored %v", v, tm, w)
			}
		}
	}
	want := map[string]time.Time{}
	for _, sc := range s.Scans() {
		want[mdsstest.FormatTime(sc.StartTime)] = sc.StartTime
		want[mdsstest.FormatTime(sc.StopTime)] = sc.StopTime
		for _, f := range s.Files(sc.ID) {
			want[mdsstest.FormatTime(f.ScanCompletedTime)] = f.ScanCompletedTime
		}
	}
	check(get(t, s, "/api/scan/0/1000").body, want)
	check(get(t, s, "/api/file/0/1000").body, want)
	if digits[3] == 0 || digits[5] == 0 || digits[6] == 0 {
		t.Errorf("fraction digits seen: %v; want 3, 5 and 6", digits)
	}
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2025, 8, 6, 13, 27, 14, 953181000, time.UTC), "2025-08-06T13:27:14.953181Z"},
		{time.Date(2025, 8, 6, 13, 27, 20, 126840000, time.UTC), "2025-08-06T13:27:20.12684Z"},
		{time.Date(2020, 4, 11, 0, 0, 0, 0, time.UTC), "2020-04-11T00:00:00.000Z"},
		{time.Date(2026, 11, 23, 9, 58, 12, 500000000, time.FixedZone("CET", 3600)), "2026-11-23T08:58:12.500Z"},
		{time.Date(2026, 11, 23, 9, 58, 12, 123456789, time.UTC), "2026-11-23T09:58:12.123456Z"},
	} {
		if got := mdsstest.FormatTime(tt.t); got != tt.want {
			t.Errorf("FormatTime(%v) = %s, want %s", tt.t, got, tt.want)
		}
	}
}
