package mdss

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
)

// listServer serves fixed scan and file lists with path-style paging.
type listServer struct {
	mu        sync.Mutex
	scans     []string
	files     map[string][]string
	total     bool // add "total"
	requests  map[string]int
	fileLists int
}

func (l *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests == nil {
		l.requests = map[string]int{}
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // api, scan|file, start, count
	if len(parts) != 4 {
		http.NotFound(w, r)
		return
	}
	start, _ := strconv.Atoi(parts[2])
	count, _ := strconv.Atoi(parts[3])
	var all []string
	switch parts[1] {
	case "scan":
		all = l.scans
	case "file":
		id := r.URL.Query().Get("scanId")
		l.requests[id]++
		l.fileLists++
		all = l.files[id]
	}
	page := all[min(start, len(all)):min(start+count, len(all))]
	body := "[" + strings.Join(page, ",") + "]"
	if l.total {
		body = fmt.Sprintf(`{"items":%s,"total":%d}`, body, len(all))
	}
	_, _ = w.Write([]byte(body))
}

func testPoller(t *testing.T, l *listServer, mutate func(*Config)) (*Poller, *observer.ObservedLogs) {
	t.Helper()
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.URL = srv.URL + "/"
	cfg.APIKey = "k3y-value"
	cfg.PageSize = 2
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	p, err := New("storage", cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

func scanJSON(id, status string, stop time.Time, extra string) string {
	s := fmt.Sprintf(`{"id":%q,"name":"scan %s","status":%s,"storageName":"share"`, id, id, status)
	if !stop.IsZero() {
		s += fmt.Sprintf(`,"stopTime":%q`, stop.UTC().Format(time.RFC3339Nano))
	}
	return s + extra + "}"
}

func stream(t *testing.T, p *Poller, name string) pipeline.Stream {
	t.Helper()
	sts, _ := p.Streams(context.Background())
	for _, s := range sts {
		if s.ID() == StreamID("storage", name) {
			return s
		}
	}
	t.Fatalf("no stream %s", name)
	return nil
}

func TestScanStream(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	l := &listServer{scans: []string{
		scanJSON("s3", `"Completed"`, base.Add(3*time.Minute), `,"totalFiles":10,"blockedFiles":2,"infectedFiles":1`),
		scanJSON("s1", `"Failed"`, base.Add(time.Minute), ""),
		scanJSON("old", `"Completed"`, base.Add(-time.Hour), ""),
		scanJSON("run", `0`, time.Time{}, `,"stopTime":null`),
		scanJSON("s2", `2`, base.Add(2*time.Minute), `,"totalFiles":"5"`),
		`{"name":"no id","status":"Completed"}`,
		scanJSON("odd", `"Paused"`, base, ""),
		scanJSON("s1", `"Failed"`, base.Add(time.Minute), ""), // the page shifted: seen twice
	}}
	p, logs := testPoller(t, l, nil)
	st := stream(t, p, StreamScans)
	pos := pipeline.Position{Floor: base}
	b, err := st.Poll(context.Background(), pos)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range b.Records {
		keys = append(keys, r.Key)
		if r.Event == nil || r.Event.Kind != pipeline.KindMDSSScan || !r.Event.Time.Equal(r.Time) || r.Event.Source.Stream != "storage/scans" ||
			r.Event.Source.Product != pipeline.ProductStorageSec || r.Event.Source.URL != p.publicURL || string(r.Event.Raw) != string(r.Raw) {
			t.Errorf("record %s: event %+v", r.Key, r.Event)
		}
		if _, err := pipeline.MarshalEvent(r.Event); err != nil {
			t.Errorf("record %s: %v", r.Key, err)
		}
	}
	if strings.Join(keys, ",") != "s1,s2,s3" || b.Gap != 0 {
		t.Fatalf("keys %v gap %d; want s1,s2,s3 oldest first", keys, b.Gap)
	}
	ev := b.Records[2].Event
	if ev.Severity != "high" || ev.SeverityScore != 7 || ev.Message != "Scan scan s3 completed: 10 files, 2 blocked, 1 infected (share)" ||
		ev.Scan.Status != StatusCompleted || *ev.Scan.Files != 10 || ev.Scan.Started != nil {
		t.Errorf("s3 event %+v %+v", ev, ev.Scan)
	}
	if ev := b.Records[0].Event; ev.Severity != "medium" || ev.Message != "Scan scan s1 failed (share)" {
		t.Errorf("s1 event %+v", ev)
	}
	if ev := b.Records[1].Event; ev.Severity != "info" || ev.Scan.Status != StatusCancelled || *ev.Scan.Files != 5 {
		t.Errorf("s2 event %+v", ev)
	}
	if b.Records[0].Hash != ScanHash("s1", StatusFailed) {
		t.Error("hash is not ScanHash(id, status)")
	}
	if p.Skipped() != 2 {
		t.Errorf("skipped %d, want 2 (no id, unknown status)", p.Skipped())
	}
	warn := logs.FilterMessage("broken records left out of this poll (they are read again next poll)")
	if warn.Len() != 1 || warn.All()[0].Level != zapcore.WarnLevel || !strings.Contains(fmt.Sprint(warn.All()[0].ContextMap()["first"]), "set sources.storage.fields.scans.id") {
		t.Fatalf("warnings %v", warn.All())
	}
	// The same poll again: counted again, logged at debug.
	if _, err := st.Poll(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
	if all := logs.FilterMessage(warn.All()[0].Message).All(); len(all) != 2 || all[1].Level != zapcore.DebugLevel || p.Skipped() != 4 {
		t.Errorf("second poll: %d log lines, level %v, skipped %d", len(all), all[len(all)-1].Level, p.Skipped())
	}
}

func TestListPaging(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var scans []string
	for i := range 9 {
		scans = append(scans, scanJSON("s"+strconv.Itoa(i), `"Completed"`, base.Add(time.Duration(i)*time.Minute), ""))
	}
	for _, tt := range []struct {
		name     string
		total    bool
		maxPages int
		records  int
		gap      int
	}{
		{"all, no total", false, 100, 9, 0},
		{"all, total", true, 100, 9, 0},
		{"capped, no total", false, 3, 6, 1},
		{"capped, total", true, 3, 6, 3},
		{"exactly", true, 5, 9, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &listServer{scans: scans, total: tt.total}
			p, _ := testPoller(t, l, func(c *Config) { c.MaxPages = tt.maxPages })
			b, err := stream(t, p, StreamScans).Poll(context.Background(), pipeline.Position{})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Records) != tt.records || b.Gap != tt.gap {
				t.Errorf("%d records, gap %d; want %d, %d", len(b.Records), b.Gap, tt.records, tt.gap)
			}
		})
	}
}

func fileJSON(id string, result, code int, completed time.Time) string {
	s := fmt.Sprintf(`{"id":%q,"name":"%s.exe","result":%d,"scanResult":{"scanResults":{"scanAllResultI":%d,"totalAvs":3}}`, id, id, result, code)
	if !completed.IsZero() {
		s += fmt.Sprintf(`,"scanCompletedTime":%q`, completed.Format(time.RFC3339Nano))
	}
	return s + "}"
}

func TestFileStream(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	long, short := now.Add(-20*time.Minute), now.Add(-15*time.Minute)
	l := &listServer{
		scans: []string{
			scanJSON("long", `"Completed"`, long, ""),
			scanJSON("short", `"Completed"`, short, ""),
			scanJSON("clean", `"Completed"`, now.Add(-30*time.Minute), ""),
			scanJSON("before-floor", `"Completed"`, now.Add(-3*time.Hour), ""),
			scanJSON("running", `"InProgress"`, time.Time{}, ""),
		},
		files: map[string][]string{
			"long": {
				fileJSON("l-early", 1, 1, long.Add(-50*time.Minute)),
				fileJSON("l-clean", 0, 0, long.Add(-40*time.Minute)),
				fileJSON("l-pua", 0, 22, long.Add(-30*time.Minute)),
				`{"id":"l-notime","result":"Blocked","scanAllResultI":12}`,
				`{"name":"no id","result":1}`,
			},
			"short":        {fileJSON("s-sens", 0, 20, short.Add(-time.Minute)), fileJSON("s-unsup", 0, 23, short)},
			"clean":        {fileJSON("c-1", 0, 0, now), fileJSON("c-2", 0, 7, now), fileJSON("c-3", 0, 10, now)},
			"before-floor": {fileJSON("b-1", 1, 1, now)},
		},
	}
	p, _ := testPoller(t, l, func(c *Config) { c.Lookback = 10 * time.Minute })
	st := stream(t, p, StreamFiles)
	floor := now.Add(-time.Hour)
	b, err := st.Poll(context.Background(), pipeline.Position{Floor: floor})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range b.Records {
		got = append(got, r.Key)
		ev := r.Event
		if ev.Kind != pipeline.KindMDSSFile || ev.Scan == nil || ev.Source.Stream != "storage/files" {
			t.Errorf("%s: event %+v", r.Key, ev)
		}
		if r.Hash != FileHash(ev.File.Verdict, ev.File.ResultCode, ev.File.Result) {
			t.Errorf("%s: hash is not FileHash(verdict, result)", r.Key)
		}
	}
	// Ordered by scan stop time (the records' Time), then file time.
	if strings.Join(got, ",") != "l-early,l-pua,l-notime,s-sens" {
		t.Fatalf("records %v", got)
	}
	for _, r := range b.Records[:3] {
		if !r.Time.Equal(long) {
			t.Errorf("%s: record time %s, want the scan's stop %s", r.Key, r.Time, long)
		}
	}
	if e := b.Records[2].Event; !e.Time.Equal(long) || e.Severity != "low" || e.Message != "Encrypted Archive file l-notime blocked (scan scan long)" {
		t.Errorf("l-notime: time %s (want the scan's stop), severity %s, message %q", e.Time, e.Severity, e.Message)
	}
	if e := b.Records[0].Event; !e.Time.Equal(long.Add(-50*time.Minute)) || e.Severity != "high" || e.Scan.ID != "long" || e.Scan.Name != "scan long" {
		t.Errorf("l-early: %+v", e)
	}
	if e := b.Records[3].Event; e.Severity != "medium" || e.File.Verdict != VerdictAllowed {
		t.Errorf("s-sens: %+v", e)
	}
	if p.Skipped() != 1 {
		t.Errorf("skipped %d, want 1", p.Skipped())
	}

	// Polling again: the clean scan settled long ago and is not listed
	// again; scans with threats are, until their records are known to be
	// committed (the watermark passed them); a scan with a broken file
	// record always is (three requests: five files in pages of two).
	l.mu.Lock()
	before := map[string]int{}
	for k, v := range l.requests {
		before[k] = v
	}
	l.mu.Unlock()
	if _, err := st.Poll(context.Background(), pipeline.Position{Floor: floor}); err != nil { // no commit happened
		t.Fatal(err)
	}
	if _, err := st.Poll(context.Background(), pipeline.Position{Watermark: short, Floor: short.Add(-time.Hour)}); err != nil { // committed
		t.Fatal(err)
	}
	if _, err := st.Poll(context.Background(), pipeline.Position{Watermark: short, Floor: short.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, want := range map[string]int{"clean": 0, "short": 2, "long": 9, "before-floor": 0} {
		if n := l.requests[id] - before[id]; n != want {
			t.Errorf("scan %s: file list read %d more times, want %d", id, n, want)
		}
	}
}

func TestThreatResultsConfigurable(t *testing.T) {
	now := time.Now().UTC()
	l := &listServer{
		scans: []string{scanJSON("a", `"Completed"`, now, "")},
		files: map[string][]string{"a": {fileJSON("f1", 0, 1, now), fileJSON("f3", 0, 3, now), fileJSON("f4", 1, 4, now)}},
	}
	p, _ := testPoller(t, l, func(c *Config) { c.ThreatResults = []int{3} })
	b, err := stream(t, p, StreamFiles).Poll(context.Background(), pipeline.Position{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range b.Records {
		got = append(got, r.Key)
	}
	if strings.Join(got, ",") != "f3,f4" {
		t.Errorf("records %v; want f3 (code 3 configured) and f4 (blocked)", got)
	}
}

func TestFileListErrorFailsThePoll(t *testing.T) {
	now := time.Now().UTC()
	l := &listServer{scans: []string{scanJSON("a", `"Completed"`, now, "")}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/file/") {
			w.WriteHeader(503)
			return
		}
		l.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.URL, cfg.APIKey = srv.URL, "k3y-value"
	p, err := New("storage", cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream(t, p, StreamFiles).Poll(context.Background(), pipeline.Position{})
	if err == nil || !strings.Contains(err.Error(), "GET /api/file/0/100?scanId=a: HTTP 503") {
		t.Fatalf("error %v", err)
	}
}
