package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

// TestWebhookSurvivesSIGKILL checks the MDSS receiver's promise: a 200 means
// the notification is durable. The bridge is killed with SIGKILL the moment
// the fake MDSS has its 200s and before the next poll, with no sink able to
// deliver; after a restart every notified file and the scan reach a file
// sink that reads the journal from its start, and polling the same scan and
// files adds no second event.
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mdbridge")
	buildBridge(t, bin)

	const apiKey, secret = "push-test-key", "push-test-s3cret"
	hookAddr := freeAddr(t)
	srv := mdsstest.NewServer(mdsstest.Options{APIKey: apiKey, Seed: 7,
		WebhookURL:        "http://" + hookAddr + "/mdss/webhook",
		WebhookHeaders:    map[string]string{"Authorization": "Bearer " + secret},
		WebhookFileFilter: "all"})
	defer srv.Close()

	out := filepath.Join(dir, "out", "events.jsonl")
	// Run 1 delivers nowhere (a webhook sink at a closed port), so what
	// reaches the file sink after the restart can only have come from the
	// journal: the file sink is added in run 2 with start: earliest.
	writeCfg := func(interval, archive string) string {
		p := filepath.Join(dir, "mdbridge.yaml")
		cfg := fmt.Sprintf(`
state: { path: %q }
admin: { listen: "" }
log: { level: debug }
sources:
  storage:
    type: storage_security
    url: %q
    api_key: %q
    interval: %s
    lookback: 1h
  storage-push:
    type: mdss_webhook
    listen: %q
    secret: %q
    source: storage
sinks:
  nowhere: { type: webhook, url: "http://%s/closed" }
%s`, filepath.Join(dir, "state", "mdbridge.db"), srv.URL, apiKey, interval, hookAddr, secret, freeAddr(t), archive)
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Run 1: poll once at start, then not for an hour.
	b := startBridge(t, bin, writeCfg("1h", ""), filepath.Join(dir, "run1.log"))
	waitUntil(t, "the first scan poll", func() bool {
		for _, r := range srv.Requests() {
			if strings.Contains(strings.ToLower(r.Path), "/api/scan/") && r.Status == 200 {
				return true
			}
		}
		return false
	})
	waitUntil(t, "the receiver to listen", func() bool {
		c, err := net.DialTimeout("tcp", hookAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	scan, files := srv.AddScan(mdsstest.ScanSpec{Files: 30, Threats: []int{1, 2, 8, 21}})
	// AddScan returns once MDSS has its answers: kill now.
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v (run log: %s)", err, harness.Tail(filepath.Join(dir, "run1.log"), 20))
	}
	<-b.done
	want := map[string]bool{scan.ID: true}
	for _, f := range files {
		if mdsstest.IsThreat(f) {
			want[f.ID] = true
		}
	}
	if len(want) != 5 {
		t.Fatalf("the fake made %d threat files, want 4", len(want)-1)
	}
	stored := 0
	for _, a := range srv.Webhooks() {
		if a.Status != 200 {
			t.Fatalf("webhook %s %s answered %d %s", a.Type, a.ID, a.Status, a.Err)
		}
		if want[a.ID] {
			stored++
		}
	}
	if stored != len(want) {
		t.Fatalf("%d of the %d notifications that matter were answered 200", stored, len(want))
	}
	if n := len(readEvents(t, out)); n != 0 {
		t.Fatalf("%d events at the file sink before it was configured", n)
	}

	// Run 2: restart while MDSS's API answers nothing but 503s, so the
	// records can only come from the journal the receiver wrote.
	srv.SetFaults(mdsstest.Faults{Status5xx: 1})
	failing := len(srv.Requests())
	b = startBridge(t, bin, writeCfg("200ms", fmt.Sprintf("  archive: { type: file, path: %q, start: earliest }\n", out)), filepath.Join(dir, "run2.log"))
	waitUntil(t, "every notified record at the sink while the API is down", func() bool {
		got := map[string]bool{}
		for _, e := range readEvents(t, out) {
			got[e.key] = true
		}
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})
	for _, r := range srv.Requests()[failing:] {
		if r.Status != 503 {
			t.Fatalf("the API answered %s %s with %d while it should be down", r.Method, r.Path, r.Status)
		}
	}
	// Then the API comes back: polling finds the same scan and files, and
	// must add no second event for them.
	srv.SetFaults(mdsstest.Faults{})
	polls := len(srv.Requests())
	waitUntil(t, "several successful polls", func() bool { return len(srv.Requests()) > polls+10 })
	time.Sleep(500 * time.Millisecond)
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-b.done
	ids := map[string]map[string]bool{} // record key -> event ids
	for _, e := range readEvents(t, out) {
		if ids[e.key] == nil {
			ids[e.key] = map[string]bool{}
		}
		ids[e.key][e.id] = true
	}
	for key := range want {
		if n := len(ids[key]); n != 1 {
			t.Errorf("record %s has %d distinct events at the sink, want exactly 1", key, n)
		}
	}
	if len(ids) != len(want) {
		t.Errorf("sink has events for %d records, want %d", len(ids), len(want))
	}
	t.Logf("killed after %d notifications were answered 200; after restart: %d records at the file sink, each once", stored, len(ids))
}

type sinkEvent struct{ id, key string }

// readEvents reads the file sink's events: id and the scan or file id.
func readEvents(t *testing.T, path string) []sinkEvent {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sinkEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			ID   string `json:"id"`
			File *struct {
				ID string `json:"id"`
			} `json:"file"`
			Scan *struct {
				ID string `json:"id"`
			} `json:"scan"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		key := ""
		switch {
		case e.Kind == "mdss.file" && e.File != nil:
			key = e.File.ID
		case e.Kind == "mdss.scan" && e.Scan != nil:
			key = e.Scan.ID
		}
		out = append(out, sinkEvent{id: e.ID, key: key})
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
