package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// crashKills is how many times TestCrashSafety SIGKILLs the bridge.
const crashKills = 20

// crashBatch is the dispatcher's batch size (the file sink's default batch):
// the most lines one kill can leave to be delivered again.
const crashBatch = 1000

// TestCrashSafety is DESIGN.md §3's "nothing fetched is lost" and "at least
// once, duplicates only from a batch in flight", checked the way a user
// would: it runs the real binary against a fake Enterprise Manager that keeps
// adding records (ties and late ones included), SIGKILLs it at random
// instants, then lets one last run catch up and stop with SIGTERM, and reads
// the output file.
//
// The kill instants come from a seeded source; the seed is logged, and
// MDBTEST_CRASH_SEED=<seed> repeats the same schedule (the fake's timing,
// and so the exact kill points, still vary).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL and SIGTERM")
	}
	began := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mdbridge")
	buildBridge(t, bin)

	const (
		token   = "crash-token"
		site    = "10.40.172.144"
		backlog = 500
		rate    = 300
	)
	sensors := []string{"10.40.172.172", "10.40.172.173"}
	streams := []string{otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts, otsectest.StreamSuricataAlerts, otsectest.StreamDevices}
	srv := otsectest.NewServer(otsectest.Options{
		Token:       token,
		Sites:       []otsectest.Site{{SiteIP: site, SensorIPs: sensors}},
		Seed:        7,
		Start:       time.Now().Add(-15 * time.Minute), // the backlog spans ~250 s, the generator continues at now
		Streams:     streams,
		MaxRequests: 1000,
	})
	defer srv.Close()
	for _, st := range streams {
		for _, sensor := range sensors {
			srv.Add(st, site, sensor, backlog)
		}
	}
	// Every start polls each stream once, straight away, and the next poll is an
	// interval (>= 1s) away, longer than a run: without latency each run
	// would finish its one round of polls, commits and deliveries in a few
	// milliseconds and sit idle until the kill. 40 ms per answer (a remote
	// appliance) spreads that round over most of a run, so kills land
	// between fetch, journal commit and delivery.
	srv.SetFaults(otsectest.Faults{Latency: 40 * time.Millisecond})
	stopGen := srv.StartGenerator(rate)
	defer stopGen()

	out := filepath.Join(dir, "out", "events.jsonl")
	cfg := filepath.Join(dir, "mdbridge.yaml")
	var sitesYAML strings.Builder
	for _, sensor := range sensors {
		fmt.Fprintf(&sitesYAML, "      - { site_ip: %q, sensor_ip: %q }\n", site, sensor)
	}
	// interval is 1s, not 200ms: the config refuses intervals under 1s
	// (sources.*.interval: must be at least 1s). Every start polls at once,
	// so each run still polls every stream.
	yaml := fmt.Sprintf(`state:
  path: %q
admin:
  listen: ""
log:
  level: info
  format: json
sources:
  plant-a:
    type: otsecurity
    url: %q
    token: %q
    interval: 1s
    lookback: 30s
    streams: [%s]
    sites:
%ssinks:
  archive:
    type: file
    path: %q
`, filepath.Join(dir, "state", "mdbridge.db"), srv.URL, token, strings.Join(streams, ", "), sitesYAML.String(), out)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MDBTEST_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MDBTEST_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (MDBTEST_CRASH_SEED=%d repeats the kill schedule)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))

	var logs []string
	for i := range crashKills {
		logPath := filepath.Join(dir, fmt.Sprintf("bridge-%02d.log", i))
		logs = append(logs, logPath)
		b := startBridge(t, bin, cfg, logPath)
		d := time.Duration(150+rng.IntN(751)) * time.Millisecond
		time.Sleep(d)
		if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("run %d: SIGKILL: %v", i, err)
		}
		<-b.done
		ws, _ := b.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d ended by itself before the kill (%v); its log:\n%s", i, b.cmd.ProcessState, harness.Tail(logPath, 4000))
		}
		t.Logf("run %2d: killed after %v; output has %d lines", i, d, countLines(out))
	}

	// The last run: no new records, so it can catch up with everything.
	stopGen()
	want, wantPerStream := expectedRecords(srv, site, sensors, streams)
	t.Logf("the fake holds %d records (%d backlog + %d generated)", len(want),
		backlog*len(streams)*len(sensors), len(want)-backlog*len(streams)*len(sensors))

	logPath := filepath.Join(dir, "bridge-final.log")
	logs = append(logs, logPath)
	b := startBridge(t, bin, cfg, logPath)
	tl := &tailer{path: out, seen: map[string]bool{}}
	deadline := time.Now().Add(45 * time.Second)
	for {
		if err := tl.read(); err != nil {
			t.Fatal(err)
		}
		if missingCount(want, tl.seen) == 0 {
			break
		}
		select {
		case <-b.done:
			t.Fatalf("the final run ended by itself (%v); its log:\n%s", b.cmd.ProcessState, harness.Tail(logPath, 4000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Errorf("after 45 s the output still misses %d of %d records", missingCount(want, tl.seen), len(want))
			break
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the bridge did not stop within 20 s of SIGTERM; its log:\n%s", harness.Tail(logPath, 4000))
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("after SIGTERM the bridge exited with %v, want 0; its log:\n%s", b.cmd.ProcessState, harness.Tail(logPath, 4000))
	}

	repaired := 0
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		repaired += bytes.Count(data, []byte("cut an incomplete last line"))
	}

	rep := checkOutput(t, out, want, wantPerStream)
	t.Logf("kills %d, lines %d, events %d, duplicate lines %d (bound %d = kills x batch %d), torn tails repaired at start %d, took %v",
		crashKills, rep.lines, rep.unique, rep.dups, crashKills*crashBatch, crashBatch, repaired, time.Since(began).Round(time.Millisecond))
	if rep.dups > crashKills*crashBatch {
		t.Errorf("%d duplicate lines after %d kills: more than the %d that batches in flight can explain", rep.dups, crashKills, crashKills*crashBatch)
	}
}

type outputReport struct{ lines, unique, dups int }

// checkOutput reads the whole output file and checks it against the fake's
// records.
func checkOutput(t *testing.T, path string, want map[string]bool, wantPerStream map[string]int) outputReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("the output does not end with a newline: a torn last line (%d bytes)", len(data)-bytes.LastIndexByte(data, '\n')-1)
	}
	type event struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Seq    uint64 `json:"seq"`
		Source struct {
			Stream   string `json:"stream"`
			SiteIP   string `json:"site_ip"`
			SensorIP string `json:"sensor_ip"`
		} `json:"source"`
		Raw struct {
			ID json.Number `json:"id"`
		} `json:"raw"`
	}
	var rep outputReport
	byID := map[string][]byte{}               // event id -> line without observed
	lineOf := map[string]int{}                // event id -> first line number
	recordEvent := map[string]string{}        // stream + raw.id -> event id
	seqs := map[string][]uint64{}             // stream -> seq of each distinct event
	found := make(map[string]bool, len(want)) // stream + raw.id
	bad, differ, split, extra := 0, 0, 0, 0
	const show = 5 // problems of one kind shown in full; the rest are counted
	for n, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(data) == 0 {
			break
		}
		rep.lines++
		no := n + 1
		var ev event
		if !json.Valid(line) {
			t.Errorf("line %d is not valid JSON (torn?): %.200q", no, line)
			if bad++; bad > 20 {
				t.Fatal("too many bad lines")
			}
			continue
		}
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == "" || ev.Source.Stream == "" || ev.Raw.ID == "" {
			t.Errorf("line %d lacks id, source.stream or raw.id (%v): %.200q", no, err, line)
			continue
		}
		parts := strings.Split(ev.Source.Stream, "/")
		if len(parts) != 4 || parts[1] != ev.Source.SiteIP || parts[2] != ev.Source.SensorIP {
			t.Errorf("line %d: source.stream %q does not match site_ip %q and sensor_ip %q", no, ev.Source.Stream, ev.Source.SiteIP, ev.Source.SensorIP)
		}
		stripped := withoutObserved(line)
		if prev, ok := byID[ev.ID]; ok {
			rep.dups++
			if !bytes.Equal(prev, stripped) {
				if differ++; differ > show {
					continue
				}
				t.Errorf("event %s on lines %d and %d differs beyond observed: a new event, not a re-delivery:\n  %.300s\n  %.300s",
					ev.ID, lineOf[ev.ID], no, prev, stripped)
			}
			continue
		}
		byID[ev.ID] = stripped
		lineOf[ev.ID] = no
		key := ev.Source.Stream + " " + ev.Raw.ID.String()
		if other, ok := recordEvent[key]; ok {
			if split++; split <= show {
				t.Errorf("record %s appears as two events, %s (line %d) and %s (line %d)", key, other, lineOf[other], ev.ID, no)
			}
		}
		recordEvent[key] = ev.ID
		found[key] = true
		if !want[key] {
			if extra++; extra <= show {
				t.Errorf("line %d: event %s for record %s, which the fake does not hold", no, ev.ID, key)
			}
		}
		seqs[ev.Source.Stream] = append(seqs[ev.Source.Stream], ev.Seq)
	}
	rep.unique = len(byID)
	if differ > 0 {
		t.Errorf("%d lines repeat an event id with different content (first %d shown)", differ, min(differ, show))
	}
	if split > 0 {
		t.Errorf("%d records appear as more than one event (first %d shown)", split, min(split, show))
	}
	if extra > 0 {
		t.Errorf("%d events for records the fake does not hold (first %d shown)", extra, min(extra, show))
	}

	var missing []string
	for k := range want {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		shown := missing[:min(len(missing), 100)]
		t.Errorf("lost: %d of %d records of the fake are not in the output (stream record-id):\n  %s",
			len(missing), len(want), strings.Join(shown, "\n  "))
	}

	for stream, n := range wantPerStream {
		s := seqs[stream]
		slices.Sort(s)
		var wrong []string
		for i, v := range s {
			if v != uint64(i+1) {
				wrong = append(wrong, fmt.Sprintf("position %d holds seq %d", i+1, v))
				if len(wrong) == 5 {
					break
				}
			}
		}
		if len(s) != n {
			t.Errorf("stream %s: %d distinct events for the fake's %d records", stream, len(s), n)
		}
		if len(wrong) > 0 {
			t.Errorf("stream %s: seq of the %d distinct events is not exactly 1..%d (gaps or repeats): %s",
				stream, len(s), len(s), strings.Join(wrong, "; "))
		}
	}
	for stream := range seqs {
		if _, ok := wantPerStream[stream]; !ok {
			t.Errorf("events of a stream the fake does not have: %s", stream)
		}
	}
	return rep
}

// withoutObserved returns the line with its top-level "observed" member cut
// out. The encoder writes it before any nested block, so the first match is
// the top-level one.
func withoutObserved(line []byte) []byte {
	const key = `,"observed":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return slices.Clone(line)
	}
	j := bytes.IndexByte(line[i+len(key):], '"')
	if j < 0 {
		return slices.Clone(line)
	}
	end := i + len(key) + j + 1
	return append(slices.Clone(line[:i]), line[end:]...)
}

// expectedRecords lists every record the fake holds for source plant-a's
// streams of one site: want is keyed by stream id + " " + raw.id, and
// wantPerStream counts them by stream id.
func expectedRecords(srv *otsectest.Server, site string, sensors, streams []string) (want map[string]bool, wantPerStream map[string]int) {
	want, wantPerStream = map[string]bool{}, map[string]int{}
	for _, st := range streams {
		for _, sensor := range sensors {
			sid := "plant-a/" + site + "/" + sensor + "/" + st
			for _, r := range srv.Records(st, site, sensor) {
				want[sid+" "+recordID(r["id"])] = true
				wantPerStream[sid]++
			}
		}
	}
	return want, wantPerStream
}

// recordID renders a decoded record id (a float64 from otsectest.Records) the
// way it appears in raw.id.
func recordID(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func missingCount(want, seen map[string]bool) int {
	n := 0
	for k := range want {
		if !seen[k] {
			n++
		}
	}
	return n
}

// tailer reads complete lines appended to a file since the last read and
// notes the records they carry.
type tailer struct {
	path string
	off  int64
	seen map[string]bool
}

func (tl *tailer) read() error {
	f, err := os.Open(tl.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(tl.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil
	}
	tl.off += int64(end + 1)
	for _, line := range bytes.Split(data[:end], []byte("\n")) {
		var ev struct {
			Source struct {
				Stream string `json:"stream"`
			} `json:"source"`
			Raw struct {
				ID json.Number `json:"id"`
			} `json:"raw"`
		}
		if json.Unmarshal(line, &ev) == nil {
			tl.seen[ev.Source.Stream+" "+ev.Raw.ID.String()] = true
		}
	}
	return nil
}

type bridgeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startBridge runs `mdbridge run -c cfg` with stdout and stderr in logPath.
// A cleanup kills it if the test ends while it runs.
func startBridge(t *testing.T, bin, cfg, logPath string) *bridgeProc {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	b := &bridgeProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// buildBridge compiles ./cmd/mdbridge into bin, whose base name must be
// mdbridge.
func buildBridge(t *testing.T, bin string) {
	t.Helper()
	if err := harness.GoBuild(context.Background(), filepath.Dir(bin), "./cmd/mdbridge"); err != nil {
		t.Fatal(err)
	}
}

// moduleRoot is the mdbridge module's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	r := bufio.NewReaderSize(f, 64<<10)
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			return n
		}
	}
}
