package mdsstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

// receiver is a webhook endpoint that records what it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

type received struct {
	method string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Method, r.Header.Clone(), b})
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

var (
	scanCompletedKeys = []string{"ScanId", "ScanName", "StartTime", "StopTime", "Status", "WebhookNotificationType"}
	fileScannedKeys   = []string{"FileId", "FileName", "FilePath", "FileStatus", "CoreScanResult", "FileState",
		"RemediationResult", "ScanCompletedTimeStamp", "WorkflowName", "Rules", "ExceptionDetails", "RemediationErrors",
		"WebhookNotificationType"}
)

func TestWebhooks(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		method string
		status int
	}{
		{"all files", "", "", 200},
		{"blocked files", "blocked", "", 204},
		{"PUT, receiver fails", "all", "PUT", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.status)
			clk := mdsstest.NewClock(t0)
			s := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, WebhookURL: rc.URL + "/hooks/mdss",
				WebhookHeaders:    map[string]string{"X-Auth-Token": "s3cret", "Authorization": "Bearer hook"},
				WebhookFileFilter: tt.filter, WebhookMethod: tt.method})
			defer s.Close()
			sc, files := s.AddScan(mdsstest.ScanSpec{Name: "second-scan", Files: 5, Threats: []int{1, 21}, Outcome: mdsstest.ScanFailed})
			var want []mdsstest.File
			for _, f := range files {
				if tt.filter != "blocked" || f.Result == mdsstest.ResultBlocked {
					want = append(want, f)
				}
			}
			got := rc.received()
			if len(got) != len(want)+1 {
				t.Fatalf("received %d, want %d", len(got), len(want)+1)
			}
			method := "POST"
			if tt.method != "" {
				method = tt.method
			}
			for i, r := range got {
				if r.method != method || r.header.Get("X-Auth-Token") != "s3cret" || r.header.Get("Authorization") != "Bearer hook" ||
					r.header.Get("Content-Type") != "application/json" {
					t.Errorf("request %d: %s %v", i, r.method, r.header)
				}
			}
			for i, f := range want {
				if keys := keysOf(t, got[i].body); !slices.Equal(keys, fileScannedKeys) {
					t.Errorf("FileScanned keys %v", keys)
				}
				var n mdsstest.FileScannedNotification
				json.Unmarshal(got[i].body, &n)
				if n.FileID != f.ID || n.FileName != f.Name || n.FilePath != f.Path || n.FileStatus != f.Result.String() ||
					n.CoreScanResult != f.ScanAllResultA || n.FileState != f.ProcessingState.String() ||
					n.ScanCompletedTimeStamp != mdsstest.FormatTime(f.ScanCompletedTime) || n.WorkflowName != "Default Workflow" ||
					!slices.Equal(n.Rules, mdsstest.Rules) || n.RemediationErrors == nil || n.WebhookNotificationType != "FileScanned" {
					t.Errorf("FileScanned %s for %+v", got[i].body, f)
				}
				if f.Result == mdsstest.ResultBlocked && (len(n.RemediationResult) == 0 || !strings.HasPrefix(n.RemediationResult[len(n.RemediationResult)-1], "Blocked")) {
					t.Errorf("blocked file's RemediationResult %v", n.RemediationResult)
				}
				if f.ProcessingState == mdsstest.StateFailed && (n.FileState != "Failed" || n.ExceptionDetails == "") {
					t.Errorf("failed file %s", got[i].body)
				}
			}
			last := got[len(got)-1].body
			if keys := keysOf(t, last); !slices.Equal(keys, scanCompletedKeys) {
				t.Errorf("ScanCompleted keys %v", keys)
			}
			var n mdsstest.ScanCompletedNotification
			json.Unmarshal(last, &n)
			if n != (mdsstest.ScanCompletedNotification{ScanID: sc.ID, ScanName: "second-scan", StartTime: mdsstest.FormatTime(sc.StartTime),
				StopTime: mdsstest.FormatTime(sc.StopTime), Status: "Failed", WebhookNotificationType: "ScanCompleted"}) {
				t.Errorf("ScanCompleted %s", last)
			}
			// Each notification was attempted once, and its status kept.
			att := s.Webhooks()
			if len(att) != len(got) {
				t.Fatalf("%d attempts for %d deliveries", len(att), len(got))
			}
			for i, a := range att {
				if a.Status != tt.status || a.Err != "" || string(a.Body) != string(got[i].body) || !a.At.Equal(t0) {
					t.Errorf("attempt %d: %+v", i, a)
				}
			}
			if att[len(att)-1].Type != mdsstest.WebhookScanCompleted || att[len(att)-1].ID != sc.ID || att[0].Type != mdsstest.WebhookFileScanned {
				t.Errorf("attempt types %s, %s", att[0].Type, att[len(att)-1].Type)
			}
		})
	}
}

func TestWebhookVendorExample(t *testing.T) {
	// An allowed file with no remediation is "AllowedKept: Applied", as in
	// the vendor's example.
	rc := newReceiver(t, 200)
	s := mdsstest.NewServer(mdsstest.Options{WebhookURL: rc.URL, Seed: 2})
	defer s.Close()
	s.AddScan(mdsstest.ScanSpec{Files: 30, Threats: []int{}})
	for _, r := range rc.received() {
		var n mdsstest.FileScannedNotification
		json.Unmarshal(r.body, &n)
		if n.WebhookNotificationType == "FileScanned" && n.FileStatus == "Allowed" && len(n.RemediationResult) == 1 &&
			n.RemediationResult[0] == "AllowedKept: Applied" && n.FileState == "Available" {
			return
		}
	}
	t.Error("no FileScanned like the vendor's example")
}

func TestWebhooksOnTick(t *testing.T) {
	rc := newReceiver(t, 200)
	clk := mdsstest.NewClock(t0)
	s := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, WebhookURL: rc.URL, WebhookFileFilter: "blocked", Seed: 9})
	defer s.Close()
	s.Backfill(5, time.Hour) // history: no webhooks
	clk.Advance(time.Hour)
	s.Tick()
	if n := len(rc.received()); n != 0 {
		t.Fatalf("history sent %d webhooks", n)
	}
	s.Generate(6)
	clk.Advance(30 * time.Second)
	s.Tick()
	if n := len(rc.received()); n != 0 {
		t.Fatalf("running scans sent %d webhooks", n)
	}
	clk.Advance(time.Hour)
	fin := s.Tick()
	var order []string
	for _, r := range rc.received() {
		var n struct{ WebhookNotificationType, ScanId, FileStatus string }
		json.Unmarshal(r.body, &n)
		if n.WebhookNotificationType == "ScanCompleted" {
			order = append(order, n.ScanId)
		} else if n.FileStatus != "Blocked" {
			t.Errorf("filter blocked sent %s", r.body)
		}
	}
	var want []string
	for _, sc := range fin {
		want = append(want, sc.ID)
	}
	if len(fin) != 6 || !slices.Equal(order, want) {
		t.Errorf("ScanCompleted order %v, want %v", order, want)
	}
}

func TestWebhookUnreachable(t *testing.T) {
	rc := newReceiver(t, 200)
	url := rc.URL
	rc.Close()
	s := mdsstest.NewServer(mdsstest.Options{WebhookURL: url})
	defer s.Close()
	s.AddScan(mdsstest.ScanSpec{Files: 2})
	att := s.Webhooks()
	if len(att) != 3 {
		t.Fatalf("%d attempts, want 3 (no retries)", len(att))
	}
	for _, a := range att {
		if a.Status != 0 || a.Err == "" {
			t.Errorf("attempt %+v", a)
		}
	}
}
