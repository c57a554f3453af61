package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaosShort is the reliability suite's short form, run by CI: 40
// seconds of chaos with 3 bridge kills and one window of every other fault,
// through a real rsyslogd when MDBTEST_REQUIRE_RSYSLOG=1. It reads the
// figures the way a user would.
func TestChaosShort(t *testing.T) {
	args := []string{"-duration", "40s", "-kills", "3", "-windows", "1", "-rate", "50", "-backlog", "50", "-settle", "2m"}
	requireRsyslog := os.Getenv("MDBTEST_REQUIRE_RSYSLOG") == "1"
	if requireRsyslog {
		args = append(args, "-require-rsyslog")
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("mdchaos %s: exit %d, want 0\n%s\n%s", strings.Join(args, " "), code, out, stderr.String())
	}
	t.Logf("figures:\n%s", out)
	for _, c := range []struct {
		label string
		min   int
	}{
		{"bridge kills", 3},
		{"nats-server restarts", 1},
		{"rsyslog restarts", 1},
		{"webhook 503 windows", 1},
		{"upstream fault windows", 1},
		{"records upstream", 600 + 40*50*9/10},
	} {
		if got := figure(t, out, c.label); got < c.min {
			t.Errorf("%s = %d, want at least %d", c.label, got, c.min)
		}
	}
	for _, sink := range sinkNames {
		m := regexp.MustCompile(`(?m)^  ` + sink + `\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("no figures for sink %s", sink)
			continue
		}
		if m[3] != "0" {
			t.Errorf("sink %s lost %s records, want 0", sink, m[3])
		}
		if sink == "nats" && m[4] != "0" {
			t.Errorf("JetStream holds %s duplicates, want 0", m[4])
		}
	}
	if requireRsyslog && !strings.Contains(out, "syslog receiver: rsyslogd") {
		t.Errorf("MDBTEST_REQUIRE_RSYSLOG=1 but the run did not use rsyslogd:\n%s", out)
	}
	if !strings.Contains(out, "PASS") {
		t.Errorf("no PASS line:\n%s", out)
	}
}

// figure reads the first number after label at the start of a line.
func figure(t *testing.T, out, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(label) + `\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in the figures:\n%s", label, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestCheck feeds the checker what the sinks would have received, through
// the same file reader as a run, and checks what it reports: a line deleted
// from the file sink's output is a lost record, a repeated line a
// duplicate, a repeat in JetStream a failure, and a record that reaches two
// sinks under different event ids a conflict.
func TestCheck(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var up []upRecord
	for i := range 5 {
		up = append(up, upRecord{ID: strconv.Itoa(1001 + i), Created: start.Add(time.Duration(i) * time.Second), Live: i > 0})
	}
	line := func(rec int) string {
		return fmt.Sprintf(`{"id":"ev%d","kind":"ot.device_alert","raw":{"id":%d,"alertStarted":"x"}}`, rec, rec)
	}
	all := []int{1001, 1002, 1003, 1004, 1005}
	cases := []struct {
		name      string
		fileLines []int // records in the file sink's output, in order
		natsLines []int
		natsEvent string // event id given to record 1003 in JetStream, "" for the usual
		wantLost  []string
		wantDups  int
		wantNats  int // JetStream duplicates
		wantConfl int
		wantOK    bool
	}{
		{name: "intact", fileLines: all, natsLines: all, wantOK: true},
		{name: "a line deleted", fileLines: []int{1001, 1002, 1004, 1005}, natsLines: all, wantLost: []string{"1003"}},
		{name: "a line repeated", fileLines: []int{1001, 1002, 1003, 1003, 1004, 1005}, natsLines: all, wantDups: 1, wantOK: true},
		{name: "a JetStream repeat", fileLines: all, natsLines: []int{1001, 1002, 1002, 1003, 1004, 1005}, wantNats: 1},
		{name: "two ids for one record", fileLines: all, natsLines: all, natsEvent: "other", wantConfl: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			var b strings.Builder
			for _, r := range c.fileLines {
				b.WriteString(line(r) + "\n")
			}
			b.WriteString(`{"id":"ev9999","raw":`) // a batch cut short by a kill: no newline yet
			if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			file := &tailer{path: path, parse: parseFileLine}
			if err := file.update(); err != nil {
				t.Fatal(err)
			}
			var nats []delivery
			for _, r := range c.natsLines {
				d := delivery{EventID: fmt.Sprintf("ev%d", r), RawID: strconv.Itoa(r), At: start.Add(10 * time.Second)}
				if r == 1003 && c.natsEvent != "" {
					d.EventID = c.natsEvent
				}
				nats = append(nats, d)
			}
			got := map[string][]delivery{"file": file.got, "nats": nats}
			res := check(up, []string{"file", "nats"}, got)
			fig := &figures{Check: res, JSMessages: uint64(len(nats))}
			if got := res.Sinks[0].Lost; !slices.Equal(got, c.wantLost) {
				t.Errorf("file sink lost %v, want %v", got, c.wantLost)
			}
			if got := res.Sinks[0].Duplicates; got != c.wantDups {
				t.Errorf("file sink duplicates %d, want %d", got, c.wantDups)
			}
			if got := res.Sinks[1].Duplicates; got != c.wantNats {
				t.Errorf("JetStream duplicates %d, want %d", got, c.wantNats)
			}
			if got := len(res.Conflicts); got != c.wantConfl {
				t.Errorf("conflicts %v, want %d", res.Conflicts, c.wantConfl)
			}
			if got := fig.ok(); got != c.wantOK {
				t.Errorf("ok() = %v, want %v", got, c.wantOK)
			}
			var out bytes.Buffer
			fig.print(&out)
			wantVerdict := "PASS"
			if !c.wantOK {
				wantVerdict = "FAIL"
			}
			if !strings.Contains(out.String(), wantVerdict) {
				t.Errorf("figures say no %s:\n%s", wantVerdict, out.String())
			}
			if len(c.wantLost) > 0 && !strings.Contains(out.String(), "LOST at file: 1 records, ids 1003") {
				t.Errorf("figures do not name the lost record:\n%s", out.String())
			}
		})
	}
}
