package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestBudgetDeadLetterThenReplay is DESIGN.md §3's journal budget, seen as a
// user sees it: a webhook that answers 503 holds the journal back past
// state.max_bytes, so the oldest events it has not taken move to its
// dead-letter file, counted in /status and logged naming the sink, while
// the file sink gets everything. Once the webhook answers again the bridge
// delivers what is left in the journal; after the bridge stops, `mdbridge
// replay --sink` delivers the dead-letter file, and then the webhook has had
// every event.
func TestBudgetDeadLetterThenReplay(t *testing.T) {
	const (
		token   = "budget-token"
		site    = "10.40.172.144"
		sensor  = "10.40.172.172"
		backlog = 1000 // records per stream: ~1.2 KB each, several MiB in all
	)
	streams := []string{otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts, otsectest.StreamSuricataAlerts, otsectest.StreamDevices}
	srv := otsectest.NewServer(otsectest.Options{Token: token, Sites: []otsectest.Site{{SiteIP: site, SensorIPs: []string{sensor}}},
		Seed: 5, Start: time.Now().Add(-2 * time.Hour)})
	defer srv.Close()
	for _, st := range streams {
		srv.Add(st, site, sensor, backlog)
	}
	want, wantPerStream := expectedRecords(srv, site, []string{sensor}, streams)

	hook := startWebhookReceiver(t)
	hook.down.Store(true)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state", "mdbridge.db")
	out := filepath.Join(dir, "out", "events.jsonl")
	cfg := writeConfig(t, fmt.Sprintf(`state:
  path: %q
  max_bytes: 1MiB        # the smallest budget the config allows
admin:
  listen: "127.0.0.1:0"
log:
  level: info
sources:
  plant-a:
    type: otsecurity
    url: %q
    token: %q
    interval: 1s
    streams: [%s]
    sites:
      - { site_ip: %q, sensor_ip: %q }
sinks:
  archive:
    type: file
    path: %q
  soar:
    type: webhook
    url: %q
`, statePath, srv.URL, token, strings.Join(streams, ", "), site, sensor, out, hook.srv.URL+"/hook"))

	b := startInProcess(t, cfg)
	file := &fileTail{path: out}
	// The journal is trimmed every 10 s; the first trim after the backlog
	// is journalled finds it over budget, and logs so once it is done.
	const trimmed = "journal over its state.max_bytes budget"
	waitFor(t, b, 90*time.Second, "the file to hold every record and a trim to move events to dead-letter", func() (bool, string) {
		if err := file.read(); err != nil {
			t.Fatal(err)
		}
		return len(file.got) >= len(want) && strings.Contains(b.logText(), trimmed),
			fmt.Sprintf("file %d of %d records; %q logged: %v", len(file.got), len(want), trimmed, strings.Contains(b.logText(), trimmed))
	})
	st := b.status(t)
	if got := st.sink(t, "archive").DeadLettered; got != 0 {
		t.Errorf("/status: the working file sink dead-lettered %d events", got)
	}
	if hook.refused.Load() == 0 {
		t.Fatal("the webhook was never asked: the outage proved nothing")
	}
	counted := st.sink(t, "soar").DeadLettered

	// The dead-letter file: the oldest events of the journal, which are the
	// first lines of the file sink's output (it writes in journal order).
	dlPath := pipeline.DeadLetterPath(filepath.Join(filepath.Dir(statePath), "deadletter"), "soar")
	dead := readDeadLetters(t, dlPath)
	if uint64(len(dead)) != counted {
		t.Errorf("%s holds %d events; /status counts %d dead-lettered for soar", dlPath, len(dead), counted)
	}
	for i, d := range dead {
		if d.Seq != uint64(i+1) {
			t.Errorf("dead-letter record %d has journal seq %d, want %d: not the oldest undelivered events", i+1, d.Seq, i+1)
			break
		}
		a, err := parseArrival(d.Event)
		if err != nil {
			t.Fatalf("dead-letter record %d: %v", i+1, err)
		}
		if a != file.got[i] {
			t.Errorf("dead-letter record %d is %+v, the file's line %d is %+v: not the oldest events", i+1, a, i+1, file.got[i])
			break
		}
		if d.Sink != "soar" || !strings.Contains(d.Error, "max_bytes") {
			t.Errorf("dead-letter record %d: sink %q, error %q; want soar and a reason naming max_bytes", i+1, d.Sink, d.Error)
			break
		}
	}
	if len(dead) >= len(want) {
		t.Errorf("all %d events went to dead-letter; the budget should have kept the newest in the journal", len(dead))
	}

	// The webhook comes back: the bridge delivers what the journal still
	// holds for it.
	hook.down.Store(false)
	waitFor(t, b, 90*time.Second, "the webhook to catch up with the journal", func() (bool, string) {
		st = b.status(t)
		soar := st.sink(t, "soar")
		return soar.Lag == 0 && soar.State == pipeline.SinkUp, fmt.Sprintf("soar: %+v, journal last seq %d", soar, st.LastSeq)
	})
	b.stop(t)
	before := len(hook.rec.snapshot())

	// The log (complete now that the bridge stopped): a warn or error line
	// that names the sink and counts its events, adding up to /status.
	logged, lines := deadLetterLogs(t, b.logText(), "soar")
	if len(lines) == 0 {
		t.Errorf("no warn/error log line names sink soar and its dead-lettered events; the log's dead-letter lines:\n%s",
			grepLines(b.logText(), "dead-letter"))
	} else if logged != counted {
		t.Errorf("log lines naming soar count %d dead-lettered events, /status %d:\n%s", logged, counted, strings.Join(lines, "\n"))
	}
	t.Logf("%d of %d events went to dead-letter (counted %d in /status, %d in the log)", len(dead), len(want), counted, logged)
	if err := file.read(); err != nil {
		t.Fatal(err)
	}
	rep := checkOutput(t, out, want, wantPerStream)
	if rep.unique != len(want) || rep.dups != 0 {
		t.Errorf("the file sink holds %d distinct events and %d repeats; want %d and none", rep.unique, rep.dups, len(want))
	}
	fileEv := checkArrivals(t, "file", file.got, nil, false)
	// Before the replay the webhook may miss only dead-lettered events.
	deadIDs := map[string]bool{}
	for _, d := range dead {
		a, _ := parseArrival(d.Event)
		deadIDs[a.ID] = true
	}
	had := map[string]bool{}
	for _, a := range hook.rec.snapshot() {
		had[a.ID] = true
	}
	missBefore := 0
	for id, a := range fileEv {
		if had[id] {
			continue
		}
		if missBefore++; !deadIDs[id] && missBefore <= 5 {
			t.Errorf("before the replay the webhook lacks %s seq %d (%s), which is not in its dead-letter file: lost", a.Stream, a.Seq, id)
		}
	}

	// Replay the dead-letter file to the webhook, as a user would.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"replay", "-c", cfg, "--sink", "soar"}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exited %d:\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	if w := fmt.Sprintf("%d delivered, 0 dead-lettered again", len(dead)); !strings.Contains(stdout.String(), w) {
		t.Errorf("replay said %q; want it to say %q", strings.TrimSpace(stdout.String()), w)
	}
	got := hook.rec.snapshot()
	if miss := missingIDs(idSet(fileEv), got); miss > 0 {
		t.Errorf("after the replay the webhook still misses %d of the file's %d events", miss, len(fileEv))
	}
	for i, a := range got {
		if w, ok := fileEv[a.ID]; !ok || w != a {
			t.Errorf("the webhook received %+v (arrival %d), which is not an event of the file", a, i+1)
			break
		}
	}
	t.Logf("webhook: %d arrivals before the replay (missing %d events, all dead-lettered), %d after; %d distinct of the file's %d events",
		before, missBefore, len(got), len(fileEv)-missingIDs(idSet(fileEv), got), len(fileEv))
}

func idSet(m map[string]arrival) map[string]bool {
	out := make(map[string]bool, len(m))
	for id := range m {
		out[id] = true
	}
	return out
}

// readDeadLetters reads a dead-letter file with the reader replay uses.
func readDeadLetters(t *testing.T, path string) []pipeline.DeadLetter {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the dead-letter file: %v", err)
	}
	defer f.Close()
	var out []pipeline.DeadLetter
	torn, err := pipeline.ReadDeadLetters(f, func(d pipeline.DeadLetter) error {
		out = append(out, d)
		return nil
	})
	if err != nil || torn {
		t.Fatalf("%s: torn %v, %v", path, torn, err)
	}
	return out
}

// deadLetterLogs returns the warn and error lines of a JSON log that are
// about dead-lettered events of sink, and the events they count.
func deadLetterLogs(t *testing.T, log, sink string) (uint64, []string) {
	t.Helper()
	var n uint64
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Sink   string `json:"sink"`
			Events uint64 `json:"events"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if (l.Level == "warn" || l.Level == "error") && l.Sink == sink && strings.Contains(l.Msg, "dead-letter") {
			n += l.Events
			lines = append(lines, sc.Text())
		}
	}
	return n, lines
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
