package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestFullDisk: the running bridge runs out of room for both its state file
// and its output (RLIMIT_FSIZE, set on the running process, makes every
// write past 256 KiB fail with EFBIG, as a full file system fails with
// ENOSPC),
// while records keep arriving. It must say so in its log, keep running, and
// once there is room again deliver every record exactly once, with no torn
// or repeated line.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mdbridge")
	buildBridge(t, bin)

	const token, site, sensor = "disk-token", "10.40.172.144", "10.40.172.172"
	streams := []string{otsectest.StreamDeviceAlerts, otsectest.StreamSuricataAlerts}
	srv := otsectest.NewServer(otsectest.Options{Token: token, Seed: 5, Streams: streams,
		Sites: []otsectest.Site{{SiteIP: site, SensorIPs: []string{sensor}}}, Start: time.Now().Add(-10 * time.Minute)})
	defer srv.Close()
	for _, st := range streams {
		srv.Add(st, site, sensor, 400)
	}
	stopGen := srv.StartGenerator(100)
	defer stopGen()

	out := filepath.Join(dir, "out", "events.jsonl")
	cfg := filepath.Join(dir, "mdbridge.yaml")
	yaml := fmt.Sprintf(`state: { path: %q }
admin: { listen: "" }
log: { level: info, format: json }
sources:
  plant-a: { type: otsecurity, url: %q, token: %q, interval: 1s, lookback: 30s, streams: [%s], sites: [{ site_ip: %q, sensor_ip: %q }] }
sinks:
  archive: { type: file, path: %q }
`, filepath.Join(dir, "state", "mdbridge.db"), srv.URL, token, strings.Join(streams, ", "), site, sensor, out)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	logPath := filepath.Join(dir, "bridge.log")
	b := startBridge(t, bin, cfg, logPath)
	pid := b.cmd.Process.Pid
	// Once the backlog is out, the disk fills up: no file may grow past
	// 256 KiB, and both are larger by then.
	for start := time.Now(); countLines(out) < 800; {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the backlog did not reach the output; log:\n%s", harness.Tail(logPath, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	limit := func(n uint64) {
		t.Helper()
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: n, Max: unix.RLIM_INFINITY}, nil); err != nil {
			t.Skipf("cannot set the bridge's file size limit: %v", err)
		}
	}
	alive := func(phase string) {
		t.Helper()
		select {
		case <-b.done:
			t.Fatalf("the bridge exited %s (%v); its log:\n%s", phase, b.cmd.ProcessState, harness.Tail(logPath, 4000))
		default:
		}
	}
	// Nothing may grow past 256 KiB (or be written beyond it: the limit
	// counts offsets), and both files are larger by now.
	limit(256 << 10)
	time.Sleep(4 * time.Second)
	alive("while the disk was full")
	logged, _ := os.ReadFile(logPath)
	failedPolls := bytes.Count(logged, []byte(`"poll failed; will retry"`))
	t.Logf("while full: %d poll-failure warnings (one per stream and state change), output %d lines", failedPolls, countLines(out))
	if failedPolls == 0 || !bytes.Contains(logged, []byte("file too large")) {
		t.Fatalf("no poll failure saying a write failed for want of room; its log:\n%s", harness.Tail(logPath, 4000))
	}
	if n := bytes.Count(logged, []byte(`"level":"error"`)); n > 0 {
		t.Errorf("%d error lines: a full disk is a retryable condition; its log:\n%s", n, harness.Tail(logPath, 4000))
	}

	// Room again.
	limit(unix.RLIM_INFINITY)
	time.Sleep(time.Second)
	stopGen()
	want, wantPerStream := expectedRecords(srv, site, []string{sensor}, streams)
	tl := &tailer{path: out, seen: map[string]bool{}}
	deadline := time.Now().Add(60 * time.Second)
	for missingCount(want, tl.seen) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("60 s after the disk had room again the output still misses %d of %d records; log:\n%s",
				missingCount(want, tl.seen), len(want), harness.Tail(logPath, 4000))
		}
		time.Sleep(200 * time.Millisecond)
		if err := tl.read(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-b.done
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("after SIGTERM the bridge exited with %v, want 0; its log:\n%s", b.cmd.ProcessState, harness.Tail(logPath, 4000))
	}
	rep := checkOutput(t, out, want, wantPerStream)
	if rep.dups != 0 {
		t.Errorf("%d duplicate lines: without a crash every event must be written once", rep.dups)
	}
	t.Logf("%d records, %d lines, %d events", len(want), rep.lines, rep.unique)
}
