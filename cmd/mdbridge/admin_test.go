package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// getText returns the status code and body of a GET, or 0 when nothing
// answers.
func getText(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzBeforeState: an admin server without a runner (the state file
// not open yet) is alive but not ready.
func TestReadyzBeforeState(t *testing.T) {
	a, err := startAdmin("127.0.0.1:0", zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	base := "http://" + a.ln.Addr().String()
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusServiceUnavailable, "not ready: state not open yet"},
	}
	for _, tc := range tests {
		code, body := getText(base + tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.wantCode, tc.wantBody)
		}
	}
}

// TestReadyzFollowsTheRunner runs the bridge with a webhook sink whose
// receiver holds the first request, and reads /readyz at each phase: 503
// after the admin server knows the runner but before its sinks started,
// 200 while it runs, 503 "stopping" while a delivery is still finishing
// after the stop was asked for.
func TestReadyzFollowsTheRunner(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add("device_alerts", site.SiteIP, site.SensorIPs[0], 5)

	held := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()

	dir := t.TempDir()
	admin := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts] }
sinks:
  soar: { type: webhook, url: %q }
`, dir, admin, srv.URL, plantedToken, hook.URL))
	cfg, err := configs.Load(path, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	readyz := "http://" + admin + "/readyz"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var beforeCode int
	var beforeBody string
	done := make(chan error, 1)
	go func() {
		done <- runBridge(ctx, cfg, zap.NewNop(), func(*pipeline.Runner) {
			beforeCode, beforeBody = getText(readyz)
		})
	}()

	pollUntil(t, "/readyz to answer 200", func() bool {
		code, _ := getText(readyz)
		return code == http.StatusOK
	})
	if beforeCode != http.StatusServiceUnavailable || !strings.Contains(beforeBody, "not ready: sinks not started yet") {
		t.Errorf("/readyz before the sinks started = %d %q, want 503 %q", beforeCode, beforeBody, "not ready: sinks not started yet")
	}
	select {
	case <-held:
	case <-time.After(15 * time.Second):
		t.Fatal("the webhook receiver never got a request")
	}
	cancel()
	var code int
	var body string
	pollUntil(t, "/readyz to say stopping", func() bool {
		code, body = getText(readyz)
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "not ready: stopping") {
		t.Errorf("/readyz while stopping = %d %q, want 503 %q", code, body, "not ready: stopping")
	}
	unblock()
	if err := <-done; err != nil {
		t.Errorf("runBridge: %v", err)
	}
}

// pollUntil polls cond for up to 15 seconds.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
