package mdsstest_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

func TestDeterministic(t *testing.T) {
	run := func(seed int64) (string, []byte, []byte) {
		clk := mdsstest.NewClock(t0)
		s := mdsstest.NewServer(mdsstest.Options{Seed: seed, Now: clk.Now})
		defer s.Close()
		s.Backfill(10, time.Hour)
		s.AddScan(mdsstest.ScanSpec{Threats: []int{1, 22}})
		s.Generate(3)
		clk.Advance(time.Hour)
		s.Tick()
		var files []mdsstest.File
		for _, sc := range s.Scans() {
			files = append(files, s.Files(sc.ID)...)
		}
		b, _ := json.Marshal(struct {
			S []mdsstest.Scan
			F []mdsstest.File
		}{s.Scans(), files})
		return string(b), get(t, s, "/api/scan/0/1000").body, get(t, s, "/api/file/0/1000").body
	}
	a, la, fa := run(7)
	b, lb, fb := run(7)
	c, _, _ := run(8)
	if a != b || string(la) != string(lb) || string(fa) != string(fb) {
		t.Error("the same seed gave different records")
	}
	if a == c {
		t.Error("different seeds gave the same records")
	}
}

func TestScanLifecycle(t *testing.T) {
	clk := mdsstest.NewClock(t0)
	s := mdsstest.NewServer(mdsstest.Options{Seed: 3, Now: clk.Now, MaxScanDuration: 10 * time.Minute, FilesPerScan: 20})
	defer s.Close()
	started := s.Generate(4)
	for _, sc := range started {
		if sc.Status != mdsstest.ScanInProgress || !sc.StopTime.IsZero() || sc.TotalFiles != 0 {
			t.Errorf("new scan %+v", sc)
		}
		a := get(t, s, "/api/scan/"+sc.ID)
		if !strings.Contains(string(a.body), `"status":"InProgress"`) || !strings.Contains(string(a.body), `"stopTime":null`) {
			t.Errorf("running scan %s", a.body)
		}
	}
	if fin := s.Tick(); len(fin) != 0 {
		t.Errorf("Tick at once finished %d scans", len(fin))
	}
	// A minute in, some files are listed and counted; nothing finished
	// (the shortest scan runs a tenth of MaxScanDuration).
	clk.Advance(time.Minute)
	if fin := s.Tick(); len(fin) != 0 {
		t.Errorf("finished after a minute: %d", len(fin))
	}
	listed := 0
	for _, sc := range s.Scans() {
		files := s.Files(sc.ID)
		if sc.TotalFiles != len(files) || sc.Status != mdsstest.ScanInProgress {
			t.Errorf("scan %+v with %d files listed", sc, len(files))
		}
		for _, f := range files {
			if f.ScanCompletedTime.After(clk.Now()) {
				t.Errorf("file of the future listed: %v", f.ScanCompletedTime)
			}
		}
		page, total := listPage(t, get(t, s, "/api/file/0/1000?scanId="+sc.ID))
		if total != len(files) || len(page) != len(files) {
			t.Errorf("list shows %d of %d", total, len(files))
		}
		listed += len(files)
	}
	if listed == 0 {
		t.Error("no file listed a minute into four scans")
	}
	if len(s.FinishedScans()) != 0 || len(s.ThreatFiles()) != 0 {
		t.Error("finished scans or threats before any scan finished")
	}
	// After MaxScanDuration every scan has finished, in stop order.
	clk.Advance(10 * time.Minute)
	fin := s.Tick()
	if len(fin) != 4 {
		t.Fatalf("finished %d of 4", len(fin))
	}
	if !slices.IsSortedFunc(fin, func(a, b mdsstest.Scan) int { return a.StopTime.Compare(b.StopTime) }) {
		t.Error("not finished in stop order")
	}
	for _, sc := range fin {
		if !sc.Status.Finished() || sc.StopTime.IsZero() || !sc.StopTime.After(sc.StartTime) {
			t.Errorf("finished scan %+v", sc)
		}
		files := s.Files(sc.ID)
		blocked, infected := 0, 0
		for _, f := range files {
			if f.ScanCompletedTime.Before(sc.StartTime) || !f.ScanCompletedTime.Before(sc.StopTime) {
				t.Errorf("file at %v outside its scan %v..%v", f.ScanCompletedTime, sc.StartTime, sc.StopTime)
			}
			if f.Result == mdsstest.ResultBlocked {
				blocked++
			}
			if f.ScanAllResultI == 1 {
				infected++
			}
		}
		if sc.TotalFiles != len(files) || sc.BlockedFiles != blocked || sc.InfectedFiles != infected || len(files) < 10 || len(files) > 30 {
			t.Errorf("scan %+v: %d files, %d blocked, %d infected", sc, len(files), blocked, infected)
		}
	}
	if got := s.FinishedScans(); !reflect.DeepEqual(got, fin) {
		t.Errorf("FinishedScans %v", got)
	}
	if fin := s.Tick(); len(fin) != 0 {
		t.Errorf("a second Tick finished %d", len(fin))
	}
}

func TestAddScan(t *testing.T) {
	clk := mdsstest.NewClock(t0)
	s := mdsstest.NewServer(mdsstest.Options{Seed: 5, Now: clk.Now})
	defer s.Close()

	// Finished on arrival, as described.
	sc, files := s.AddScan(mdsstest.ScanSpec{Name: "Nightly", Storage: "eng-uploads", ScanType: mdsstest.ScanTypeScheduled,
		Outcome: mdsstest.ScanCancelled, Duration: 30 * time.Minute, Files: 6, Threats: []int{1, 12, 20}})
	if sc.Status != mdsstest.ScanCancelled || sc.Name != "Nightly" || sc.StorageName != "eng-uploads" || sc.ScanType != 1 ||
		sc.StopTime.Sub(sc.StartTime).Round(time.Second) != 30*time.Minute || sc.StopTime.After(t0) || t0.Sub(sc.StopTime) > time.Millisecond {
		t.Errorf("scan %+v", sc)
	}
	if len(files) != 6 || sc.TotalFiles != 6 || sc.BlockedFiles != 3 || sc.InfectedFiles != 1 {
		t.Fatalf("%d files, scan %+v", len(files), sc)
	}
	var codes []int
	canceled := 0
	for _, f := range files {
		if f.Result == mdsstest.ResultBlocked {
			codes = append(codes, f.ScanAllResultI)
			if len(f.Remediations) == 0 {
				t.Errorf("blocked file without remediation: %+v", f)
			}
		}
		if f.ProcessingState == mdsstest.StateCanceled {
			canceled++
			if f.ScanAllResultI != 19 || f.Result != mdsstest.ResultAllowed || f.ID == files[0].ID {
				t.Errorf("canceled file %+v", f)
			}
		}
	}
	slices.Sort(codes)
	if !slices.Equal(codes, []int{1, 12, 20}) || canceled != 1 {
		t.Errorf("blocked codes %v, canceled %d", codes, canceled)
	}
	threats := s.ThreatFiles()
	if len(threats) != 3 {
		t.Errorf("ThreatFiles %d, want 3", len(threats))
	}

	// Files are raised to the threats; empty Threats means none.
	_, files = s.AddScan(mdsstest.ScanSpec{Files: 1, Threats: []int{2, 21}})
	if len(files) != 2 {
		t.Errorf("%d files for two threats", len(files))
	}
	_, files = s.AddScan(mdsstest.ScanSpec{Files: 40, Threats: []int{}})
	for _, f := range files {
		if mdsstest.IsThreat(f) {
			t.Errorf("threat in a scan without threats: %+v", f)
		}
	}
	_, files = s.AddScan(mdsstest.ScanSpec{Files: -1})
	if len(files) != 0 {
		t.Errorf("Files -1 gave %d", len(files))
	}

	// A scan that starts now runs until Tick finds it due; its files are
	// listed as their time passes.
	sc, files = s.AddScan(mdsstest.ScanSpec{Start: t0, Duration: time.Minute, Files: 5, Outcome: mdsstest.ScanFailed})
	if sc.Status != mdsstest.ScanInProgress || len(s.Files(sc.ID)) != 0 {
		t.Fatalf("scan starting now: %+v, %d files listed", sc, len(s.Files(sc.ID)))
	}
	if a := get(t, s, "/api/file/"+files[0].ID); a.status != 404 {
		t.Errorf("a file not yet scanned: %d", a.status)
	}
	clk.Advance(30 * time.Second)
	s.Tick()
	if n := len(s.Files(sc.ID)); n < 2 || n > 3 {
		t.Errorf("half-way: %d files listed", n)
	}
	clk.Advance(30 * time.Second)
	fin := s.Tick()
	if len(fin) != 1 || fin[0].Status != mdsstest.ScanFailed {
		t.Fatalf("finished %+v", fin)
	}
	last := s.Files(sc.ID)[4]
	if last.ProcessingState != mdsstest.StateFailed || last.ScanAllResultI != 3 || last.ExceptionDetails == "" {
		t.Errorf("failed scan's last file %+v", last)
	}

	for _, bad := range []mdsstest.ScanSpec{{Storage: "nowhere"}, {Outcome: 7}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddScan(%+v) did not panic", bad)
				}
			}()
			s.AddScan(bad)
		}()
	}
}

func TestGeneratedMix(t *testing.T) {
	s, _ := backlog(t, 300, mdsstest.Options{Seed: 11})
	status := map[mdsstest.ScanStatus]int{}
	types := map[int]int{}
	for _, sc := range s.Scans() {
		status[sc.Status]++
		types[sc.ScanType]++
	}
	if status[mdsstest.ScanCompleted] < 200 || status[mdsstest.ScanCancelled] < 10 || status[mdsstest.ScanFailed] < 10 || status[mdsstest.ScanInProgress] != 0 {
		t.Errorf("statuses %v", status)
	}
	if types[1] < 150 || types[0] < 50 {
		t.Errorf("scan types %v", types)
	}
	codes := map[[2]int]int{} // (result, code)
	total, threats, named := 0, 0, 0
	for _, sc := range s.Scans() {
		for _, f := range s.Files(sc.ID) {
			total++
			codes[[2]int{int(f.Result), f.ScanAllResultI}]++
			if mdsstest.IsThreat(f) {
				threats++
			}
			if f.ScanAllResultI == 1 && len(f.Threats()) > 0 {
				named++
			}
			if f.ScanAllResultA != mdsstest.CoreResultName(f.ScanAllResultI) || f.ScanAllResultA == "" {
				t.Errorf("result %d named %q", f.ScanAllResultI, f.ScanAllResultA)
			}
		}
	}
	if clean := codes[[2]int{0, 0}]; clean < total*6/10 {
		t.Errorf("%d of %d files clean", clean, total)
	}
	if threats < total/10 || threats > total/4 {
		t.Errorf("%d threats of %d files", threats, total)
	}
	for _, c := range []int{1, 2, 8, 18, 20, 21, 22, 12} {
		if codes[[2]int{1, c}] == 0 {
			t.Errorf("no Blocked file with code %d: %v", c, codes)
		}
	}
	for _, c := range []int{7, 10, 23, 20, 19, 3} {
		if codes[[2]int{0, c}] == 0 {
			t.Errorf("no Allowed file with code %d: %v", c, codes)
		}
	}
	if named == 0 {
		t.Error("no engine names a threat")
	}
	if got := len(s.ThreatFiles()); got != threats {
		t.Errorf("ThreatFiles %d, counted %d", got, threats)
	}
}

func TestBackfillIsHistory(t *testing.T) {
	clk := mdsstest.NewClock(t0)
	s := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, MaxScanDuration: 20 * time.Minute})
	defer s.Close()
	scans := s.Backfill(50, 24*time.Hour)
	running := 0
	for _, sc := range scans {
		if sc.StartTime.Before(t0.Add(-24*time.Hour-time.Second)) || sc.StartTime.After(t0) {
			t.Errorf("start %v outside the span", sc.StartTime)
		}
		if sc.Status == mdsstest.ScanInProgress {
			running++
		}
	}
	if running > 2 || len(s.FinishedScans()) != 50-running {
		t.Errorf("%d running, %d finished", running, len(s.FinishedScans()))
	}
}

func TestStartGenerator(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{MaxScanDuration: 300 * time.Millisecond, FilesPerScan: 2})
	defer s.Close()
	stop := s.StartGenerator(50)
	deadline := time.Now().Add(10 * time.Second)
	for len(s.FinishedScans()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d scans, %d finished after 10s", len(s.Scans()), len(s.FinishedScans()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	n := len(s.Scans())
	time.Sleep(250 * time.Millisecond)
	if len(s.Scans()) != n {
		t.Error("scans added after stop")
	}
	stop() // twice is fine
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		o   mdsstest.Options
		msg string
	}{
		{mdsstest.Options{ListShape: "table"}, "ListShape"},
		{mdsstest.Options{TimeFormat: "unix"}, "TimeFormat"},
		{mdsstest.Options{WebhookFileFilter: "threats"}, "WebhookFileFilter"},
		{mdsstest.Options{WebhookMethod: "PATCH"}, "WebhookMethod"},
		{mdsstest.Options{WebhookURL: "ftp://x"}, "WebhookURL"},
		{mdsstest.Options{AccessTTL: -1}, "TTL"},
		{mdsstest.Options{ThreatRate: 2}, "ThreatRate"},
		{mdsstest.Options{Storages: []mdsstest.Storage{{Name: "a"}, {Name: "a"}}}, "repeated"},
		{mdsstest.Options{Storages: []mdsstest.Storage{{ID: "x"}}}, "empty Name"},
		{mdsstest.Options{Users: map[string]string{"": "pw"}}, "user name"},
		{mdsstest.Options{MaxRequests: -1}, "MaxRequests"},
	}
	for _, tt := range tests {
		if err := tt.o.Validate(); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%+v: %v, want %q", tt.o, err, tt.msg)
		}
	}
	if err := (mdsstest.Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewServer accepted bad options")
		}
	}()
	mdsstest.NewUnstartedHandler(mdsstest.Options{ListShape: "table"})
}
