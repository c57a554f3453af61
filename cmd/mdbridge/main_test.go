package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

const plantedToken = "tok-Zq81-never-print-me"

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mdbridge.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
sources:
  plant-a: { type: otsecurity, url: "https://10.0.0.5:3003", token: %s }
sinks:
  archive: { type: file, path: %s/out.jsonl }
`, dir, plantedToken, dir))
	bad := writeConfig(t, `
state: { pth: x }
sources:
  plant-a: { type: otsecurity, url: "ftp://x", token: `+plantedToken+`, page_limit: 0 }
sinks:
  archive: { type: file, path: out.jsonl, format: xml }
`)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{"good", []string{"validate", "-c", good}, 0, []string{"plant-a", "[REDACTED]", "page_limit: 200"}, nil},
		{"bad", []string{"validate", "-c", bad}, 1, nil, []string{
			`state: unknown key "pth"`, "sources.plant-a.url", "sources.plant-a.page_limit", "sinks.archive.format",
		}},
		{"missing file", []string{"validate", "-c", filepath.Join(dir, "nope.yaml")}, 1, nil, []string{"nope.yaml"}},
		{"no flag", []string{"validate"}, 2, nil, []string{"-c FILE"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MDBRIDGE_CONFIG", "")
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &out, &errb)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &out)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &errb)
				}
			}
			if strings.Contains(out.String()+errb.String(), plantedToken) {
				t.Errorf("the token was printed:\n%s%s", &out, &errb)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunServesStatusWithoutSecrets runs `mdbridge run` against the fake
// and reads /healthz, /readyz and /status.
func TestRunServesStatusWithoutSecrets(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add("device_alerts", site.SiteIP, site.SensorIPs[0], 20)
	dir := t.TempDir()
	admin := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/state/s.db }
admin: { listen: %q }
log: { level: debug }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %s/out/events.jsonl }
`, dir, admin, srv.URL, plantedToken, dir))
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, io.Discard, &syncWriter{w: &logs}) }()
	var status map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/status")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), plantedToken) {
				t.Fatalf("/status shows the token: %s", body)
			}
			if resp.StatusCode == 200 && json.Unmarshal(body, &status) == nil {
				if k, _ := status["events_by_kind"].(map[string]any); k["ot.device_alert"] == float64(20) {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed 20 device alerts: %v", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + admin + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d:\n%s", code, logs.String())
	}
	if strings.Contains(logs.String(), plantedToken) {
		t.Fatal("the token appears in the logs")
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "events.jsonl"))
	if err != nil || bytes.Count(b, []byte("\n")) != 20 {
		t.Fatalf("output has %d lines (%v), want 20", bytes.Count(b, []byte("\n")), err)
	}
}

// TestDemo runs the demo command as a user would and checks its output.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	code := run(context.Background(), []string{"demo", "--for", "3s", "--dir", dir, "--backlog", "50"}, &syncWriter{w: &out}, io.Discard)
	if code != 0 {
		t.Fatalf("demo exited %d:\n%s", code, &out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(b, []byte("\n"))
	if lines < 16*50 {
		t.Fatalf("demo wrote %d events, want at least the backlog of %d", lines, 16*50)
	}
	for _, want := range []string{"events ->", "events=", "lag=", "output: " + filepath.Join(dir, "events.jsonl")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, &out)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
