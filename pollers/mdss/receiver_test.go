package mdss

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

const (
	hookSecret   = "planted-hook-s3cret"
	fileInfected = `{"FileId":"f-1","FileName":"a.exe","FilePath":"in/a.exe","FileStatus":"Blocked","CoreScanResult":"Infected","FileState":"Available","RemediationResult":["BlockedMoved: Applied"],"ScanCompletedTimeStamp":"2026-11-23T10:20:24.97499Z","WorkflowName":"Default Workflow","Rules":["r"],"ExceptionDetails":"","RemediationErrors":[],"WebhookNotificationType":"FileScanned"}`
	fileClean    = `{"FileId":"f-2","FileName":"b.txt","FilePath":"in/b.txt","FileStatus":"Allowed","CoreScanResult":"No Threat Detected","FileState":"Available","RemediationResult":["AllowedKept: Applied"],"ScanCompletedTimeStamp":"2026-11-23T10:20:24.9Z","WorkflowName":"Default Workflow","Rules":[],"ExceptionDetails":"","RemediationErrors":[],"WebhookNotificationType":"FileScanned"}`
	scanDone     = `{"ScanId":"s-1","ScanName":"nightly","StartTime":"2026-11-23T10:00:00.953181Z","StopTime":"2026-11-23T10:27:20.12684Z","Status":"Completed","WebhookNotificationType":"ScanCompleted"}`
	scanRunning  = `{"ScanId":"s-2","ScanName":"nightly","StartTime":"2026-11-23T10:00:00Z","StopTime":null,"Status":"InProgress","WebhookNotificationType":"ScanCompleted"}`
)

// TestReceiver posts notifications to a receiver in front of a real runner
// and state file, and checks the answers and what the journal holds.
func TestReceiver(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	core, logs := observer.New(zap.DebugLevel)
	runner := pipeline.NewRunner(st, zap.New(core), pipeline.Options{DeadLetterDir: t.TempDir()})
	cfg := DefaultReceiverConfig()
	cfg.Secret = hookSecret
	cfg.MaxBodyBytes = 2048
	cfg.Timeout = 300 * time.Millisecond
	rc := NewReceiver("push", cfg, nil, zap.New(core))
	runner.AddSource(rc, pipeline.SourceOptions{Interval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(rc.Handler(runner))
	defer srv.Close()

	bearer := "Bearer " + hookSecret
	tests := []struct {
		name       string
		method     string
		auth       string
		body       string
		wantCode   int
		wantInBody string
	}{
		{"no credentials", "POST", "", fileInfected, 401, "unauthorized"},
		{"wrong secret", "POST", "Bearer nope", fileInfected, 401, "unauthorized"},
		{"secret without Bearer", "POST", hookSecret, fileInfected, 401, "unauthorized"},
		{"GET", "GET", bearer, "", 405, "method"},
		{"HTML", "POST", bearer, "<html>502</html>", 400, "not a JSON object"},
		{"array", "POST", bearer, "[1,2]", 400, "not a JSON object"},
		{"too big", "POST", bearer, `{"x":"` + strings.Repeat("a", 4096) + `"}`, 413, "larger than 2048"},
		{"unknown type", "POST", bearer, `{"WebhookNotificationType":"ScanStarted"}`, 400, "unknown WebhookNotificationType"},
		{"blocked file without id", "POST", bearer, `{"WebhookNotificationType":"FileScanned","FileStatus":"Blocked"}`, 400, ""},
		{"clean file", "POST", bearer, fileClean, 200, "ignored"},
		{"unfinished scan", "POST", bearer, scanRunning, 200, "ignored"},
		{"infected file", "POST", bearer, fileInfected, 200, "stored: 1 new"},
		{"infected file again (PUT)", "PUT", bearer, fileInfected, 200, "stored: 0 new"},
		{"scan", "POST", bearer, scanDone, 200, "stored: 1 new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+cfg.Path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(b.String(), tc.wantInBody) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, b.String(), tc.wantCode, tc.wantInBody)
			}
		})
	}
	entries, err := st.Read(0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, gjson.GetBytes(e.Data, "kind").Str+" "+gjson.GetBytes(e.Data, "source.stream").Str+" "+
			gjson.GetBytes(e.Data, "file.id").Str+gjson.GetBytes(e.Data, "scan.id").Str)
	}
	want := []string{"mdss.file push/files f-1", "mdss.scan push/scans s-1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("journal = %q, want %q", got, want)
	}
	accepted, ignored, rejected, failed := rc.Counts()
	if accepted != 3 || ignored != 2 || rejected != 9 || failed != 0 {
		t.Errorf("counts = %d accepted, %d ignored, %d rejected, %d failed", accepted, ignored, rejected, failed)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+" "+strings.Join(fieldStrings(e.Context), " "), hookSecret) {
			t.Errorf("log line carries the secret: %s", e.Message)
		}
	}
}

func fieldStrings(fs []zap.Field) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.String)
		if f.Interface != nil {
			if e, ok := f.Interface.(error); ok {
				out = append(out, e.Error())
			}
		}
	}
	return out
}

// TestReceiverNotStored checks that a notification the journal cannot take
// in time is answered 503, never 200.
func TestReceiverNotStored(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runner := pipeline.NewRunner(st, zap.NewNop(), pipeline.Options{DeadLetterDir: t.TempDir()})
	cfg := DefaultReceiverConfig()
	cfg.Secret, cfg.Source, cfg.Timeout = hookSecret, "storage", 200*time.Millisecond
	// The source "storage" is never started: its streams do not exist.
	rc := NewReceiver("push", cfg, nil, zap.NewNop())
	srv := httptest.NewServer(rc.Handler(runner))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+cfg.Path, strings.NewReader(fileInfected))
	req.Header.Set("Authorization", "Bearer "+hookSecret)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if _, _, _, failed := rc.Counts(); failed != 1 {
		t.Errorf("failed = %d, want 1", failed)
	}
}

func TestReceiverConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ReceiverConfig)
		want string
	}{
		{"ok", func(c *ReceiverConfig) { c.Secret = "x" }, ""},
		{"no secret", func(c *ReceiverConfig) {}, "secret:"},
		{"both secrets", func(c *ReceiverConfig) { c.Secret, c.SecretFile = "x", "/f" }, "secret_file:"},
		{"bad listen", func(c *ReceiverConfig) { c.Secret, c.Listen = "x", "9480" }, "listen:"},
		{"bad path", func(c *ReceiverConfig) { c.Secret, c.Path = "x", "hook" }, "path:"},
		{"bad header", func(c *ReceiverConfig) { c.Secret, c.Header = "x", "X Key" }, "header:"},
		{"half TLS", func(c *ReceiverConfig) { c.Secret, c.TLS.CertFile = "x", "c.pem" }, "tls:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultReceiverConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
