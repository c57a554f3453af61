//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

const fileModesChild = "MDBTEST_FILEMODES_CHILD"

// TestFileModes checks that everything the bridge and the demo create is
// private to the user running them: files 0600 and directories 0700. The
// state file, the dead-letter file, the file sink's output and its rotated
// files, and the demo's output, all in directories that do not exist yet.
// It runs with umask 0, so the modes must come from the code and not from
// a friendly umask. The umask is process-wide, so the checks run in a
// child process (this test binary again) and never beside other tests.
func TestFileModes(t *testing.T) {
	if os.Getenv(fileModesChild) == "1" {
		fileModesChecks(t)
		return
	}
	if testing.Short() {
		t.Skip("runs the bridge and the demo for a few seconds")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileModes$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fileModesChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFileModes") {
		t.Fatalf("the umask-0 child failed (%v):\n%s", err, out)
	}
	t.Logf("child:\n%s", grepLines(string(out), "modes:"))
}

// fileModesChecks is the child's part: umask 0, run, look at every mode.
func fileModesChecks(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	ot := otsectest.NewServer(otsectest.Options{Token: "t0ken-for-modes"})
	defer ot.Close()
	site := ot.Sites()[0]
	ot.Add("device_alerts", site.SiteIP, site.SensorIPs[0], 300)
	reject := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "no", http.StatusBadRequest) // permanent: to dead-letter
	}))
	defer reject.Close()

	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %[1]s/state/deep/s.db }
admin: { listen: "127.0.0.1:0" }
sources:
  plant-a: { type: otsecurity, url: %[2]q, token: t0ken-for-modes, interval: 200ms, streams: [device_alerts],
             sites: [{ site_ip: %[3]q, sensor_ip: %[4]q }] }
sinks:
  archive: { type: file, path: %[1]s/out/deep/events.jsonl, max_bytes: 4KiB, max_files: 3, start: earliest, batch: 10 }
  reject: { type: webhook, url: %[5]q, start: earliest, batch: 50 }
`, dir, ot.URL, site.SiteIP, site.SensorIPs[0], reject.URL))
	br := startInProcess(t, cfg)
	waitFor(t, br, 60*time.Second, "every event delivered or dead-lettered", func() (bool, string) {
		st := br.status(t)
		a, r := st.sink(t, "archive"), st.sink(t, "reject")
		return a.Delivered >= 300 && r.DeadLettered >= 300, fmt.Sprintf("archive delivered %d, reject dead-lettered %d", a.Delivered, r.DeadLettered)
	})
	br.stop(t)
	if code := run(context.Background(), []string{"demo", "--for", "2s", "--backlog", "5", "--dir", filepath.Join(dir, "demo", "new")},
		io.Discard, io.Discard); code != 0 {
		t.Fatalf("demo exited %d", code)
	}

	var files, dirs int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.IsDir():
			dirs++
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("directory %s: mode %04o, want 0700", rel, got)
			}
		case fi.Mode().IsRegular():
			files++
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("file %s: mode %04o, want 0600", rel, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"state/deep/s.db", "state/deep/deadletter/reject.deadletter.jsonl",
		"out/deep/events.jsonl", "out/deep/events.jsonl.1", "demo/new/events.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("expected %s to exist: %v", want, err)
		}
	}
	t.Logf("modes: %d files 0600 and %d directories 0700 under umask 0", files, dirs)
}
