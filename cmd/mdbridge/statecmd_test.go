package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
	"github.com/mdbridge/mdbridge/state"
)

// TestStateCommands runs the bridge against the OT Security fake with two
// streams, then uses `mdbridge state` as an operator would: refused while
// the bridge runs; after it stops, inspect agrees with what the file sink
// and /status showed, check passes, check finds damage done with bbolt
// directly, and compact shrinks a trimmed file that then holds the same.
func TestStateCommands(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add(otsectest.StreamDeviceAlerts, site.SiteIP, site.SensorIPs[0], 300)
	srv.Add(otsectest.StreamConnAlerts, site.SiteIP, site.SensorIPs[0], 50)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state", "s.db")
	out := filepath.Join(dir, "out", "events.jsonl")
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %q }
admin: { listen: "127.0.0.1:0" }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts, conn_alerts], sites: [{ site_ip: %q, sensor_ip: %q }] }
sinks:
  archive: { type: file, path: %q }
`, statePath, srv.URL, plantedToken, site.SiteIP, site.SensorIPs[0], out))
	b := startInProcess(t, cfg)
	var live bridgeStatus
	waitFor(t, b, 60*time.Second, "350 events delivered", func() (bool, string) {
		live = b.status(t)
		return len(live.Sinks) == 1 && live.Sinks[0].Delivered == 350, fmt.Sprintf("%+v", live.Sinks)
	})

	t.Run("refused while the bridge runs", func(t *testing.T) {
		for _, sub := range []string{"inspect", "check", "compact"} {
			start := time.Now()
			code, stdout, stderr := runCLI(t, "state", sub, "-c", cfg)
			want := "the state tools need the bridge stopped: state: open " + statePath + ": state file is locked by another process"
			if sub == "compact" {
				want = "state: compact " + statePath + ": state file is locked by another process (waited 1s; stop the bridge first)"
			}
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("state %s: exit %d, stderr %q; want 1 and %q (stdout %q)", sub, code, stderr, want, stdout)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("state %s took %v to give up", sub, d)
			}
		}
	})
	b.stop(t)
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(written, []byte("\n"))
	// A dead-letter file, as the budget would leave one.
	dlDir := filepath.Join(dir, "state", "deadletter")
	if err := os.MkdirAll(dlDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dlDir, "soar.deadletter.jsonl"), []byte("{}\n{}\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("inspect", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "state", "inspect", "-c", cfg, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got inspection
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if len(got.Streams) != 2 || len(live.Streams) != 2 {
			t.Fatalf("inspect shows %d streams, /status %d, want 2", len(got.Streams), len(live.Streams))
		}
		for i, s := range got.Streams {
			l := live.Streams[i]
			if s.ID != l.ID || !s.Watermark.Equal(l.Watermark) || s.LastSeq != l.Events || s.Gaps != 0 || s.Seen != int(l.Events) {
				t.Errorf("stream %s: watermark %v seq %d seen %d; /status had %s at %v with %d events", s.ID, s.Watermark, s.LastSeq, s.Seen, l.ID, l.Watermark, l.Events)
			}
		}
		if len(got.Sinks) != 1 || got.Sinks[0].Name != "archive" || got.Sinks[0].Cursor != uint64(lines) || got.Sinks[0].Backlog != 0 {
			t.Errorf("sinks = %+v, want archive at the %d events the file sink holds, no backlog", got.Sinks, lines)
		}
		if j := got.Journal; j.Entries != 350 || j.LastSeq != 350 || j.FirstSeq != 1 || got.SchemaVersion != state.SchemaVersion {
			t.Errorf("journal = %+v schema %q", j, got.SchemaVersion)
		}
		if len(got.DeadLetter) != 1 || got.DeadLetter[0].Name != "soar.deadletter.jsonl" || got.DeadLetter[0].Lines != 3 {
			t.Errorf("dead-letter = %+v, want soar.deadletter.jsonl with 3 lines", got.DeadLetter)
		}

		code, stdout, _ = runCLI(t, "state", "inspect", "--path", statePath)
		t.Logf("inspect:\n%s", stdout)
		for _, want := range []string{
			"schema version:  1\n",
			"journal:         350 entries",
			"seq 1 to 350; last seq handed out 350\n",
			"plant-a/" + site.SiteIP + "/" + site.SensorIPs[0] + "/conn_alerts ",
			"\nSINK     CURSOR  BACKLOG\narchive  350     0\n",
			"soar.deadletter.jsonl  3      ",
		} {
			if code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("inspect (exit %d) lacks %q:\n%s", code, want, stdout)
			}
		}
	})

	t.Run("check sound", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "state", "check", "-c", cfg)
		if code != 0 || stdout != statePath+": no problems found\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	t.Run("check damaged", func(t *testing.T) {
		damaged := filepath.Join(t.TempDir(), "damaged.db")
		copyFile(t, statePath, damaged)
		db, err := bolt.Open(damaged, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("journal")).Put(binary.BigEndian.AppendUint64(nil, 7), []byte("\x00\xffnot json")); err != nil {
				return err
			}
			return tx.Bucket([]byte("cursors")).Put([]byte("archive"), binary.BigEndian.AppendUint64(nil, 999))
		})
		_ = db.Close()
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, "state", "check", "--path", damaged)
		t.Logf("check:\n%s%s", stdout, stderr)
		for _, want := range []string{
			"journal: seq 7 is not a valid event: invalid character",
			`cursors: sink "archive": cursor 999 is past the journal's last seq 350`,
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("check lacks %q:\n%s", want, stdout)
			}
		}
		if code != 1 || !strings.Contains(stderr, "state check: "+damaged+" has 3 problems") {
			t.Errorf("exit %d, stderr %q; want 1 and the count (the byte counter is the third)", code, stderr)
		}
	})

	t.Run("run refuses a damaged page", func(t *testing.T) {
		damaged := filepath.Join(t.TempDir(), "damaged.db")
		copyFile(t, statePath, damaged)
		db, err := bolt.Open(damaged, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var pgid int64
		_ = db.View(func(tx *bolt.Tx) error { pgid = int64(tx.Bucket([]byte("journal")).Root()); return nil })
		size := int64(db.Info().PageSize)
		_ = db.Close()
		f, err := os.OpenFile(damaged, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(bytes.Repeat([]byte{0xfe}, 64), pgid*size)
		_ = f.Close()
		if err != nil || pgid == 0 {
			t.Fatalf("damaging page %d: %v", pgid, err)
		}
		// bbolt would panic in a goroutine of its own, taking this test
		// binary down; the bridge must say what is wrong and exit.
		body, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runCfg := writeConfig(t, strings.Replace(string(body), statePath, damaged, 1))
		code, stdout, stderr := runCLI(t, "run", "-c", runCfg)
		if code == 0 || !strings.Contains(stderr, damaged) || !strings.Contains(stderr, "the state file is damaged") ||
			!strings.Contains(stderr, "mdbridge state check") {
			t.Errorf("run on a damaged file: exit %d, stderr %q (stdout %q); want an error naming the file and state check", code, stderr, stdout)
		}
		out := filepath.Join(t.TempDir(), "compacted.db")
		code, stdout, stderr = runCLI(t, "state", "compact", "--path", damaged, "--out", out)
		if code != 1 || !strings.Contains(stderr, "the state file is damaged") {
			t.Errorf("compact of a damaged file: exit %d, stderr %q (stdout %q); want 1 and the damage named", code, stderr, stdout)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("compact of a damaged file left %s (%v)", out, err)
		}
	})

	t.Run("compact", func(t *testing.T) {
		// What the bridge's retention does once every sink has an event.
		s, err := state.Open(statePath, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Trim(time.Now().Add(time.Hour), time.Minute, 0, []string{"archive"}, nil)
		_ = s.Close()
		if err != nil || res.Deleted != 350 {
			t.Fatalf("trim deleted %d (%v), want 350", res.Deleted, err)
		}
		_, before, _ := runCLI(t, "state", "inspect", "--path", statePath, "--json")
		fi, _ := os.Stat(statePath)
		code, stdout, stderr := runCLI(t, "state", "compact", "-c", cfg)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		t.Logf("%s", stdout)
		nfi, _ := os.Stat(statePath)
		want := fmt.Sprintf("compacted %s into %s: %s -> %s (%d -> %d bytes)\n", statePath, statePath, humanBytes(fi.Size()), humanBytes(nfi.Size()), fi.Size(), nfi.Size())
		if stdout != want || nfi.Size() >= fi.Size() {
			t.Errorf("stdout %q, want %q, and a smaller file", stdout, want)
		}
		if nfi.Mode().Perm() != 0o600 {
			t.Errorf("mode %o, want 600", nfi.Mode().Perm())
		}
		_, after, _ := runCLI(t, "state", "inspect", "--path", statePath, "--json")
		if stripSize(t, before) != stripSize(t, after) {
			t.Errorf("inspect before:\n%s\nafter:\n%s", before, after)
		}
		if code, stdout, _ := runCLI(t, "state", "check", "--path", statePath); code != 0 {
			t.Errorf("check after compaction: %s", stdout)
		}
	})
}

// stripSize is inspect --json without the file size, which compaction
// changes.
func stripSize(t *testing.T, s string) string {
	t.Helper()
	var in inspection
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		t.Fatalf("%v:\n%s", err, s)
	}
	in.FileSize = 0
	b, _ := json.Marshal(in)
	return string(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStateUsage: what a user sees for a missing file, subcommand or flag.
func TestStateUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"state"}, "state: want a subcommand: inspect, check or compact"},
		{[]string{"state", "fix"}, `state: unknown subcommand "fix"`},
		{[]string{"state", "inspect"}, "state inspect: -c FILE or --path STATEFILE is required"},
		{[]string{"state", "inspect", "--path", missing}, "state: stat " + missing + ": no such file or directory"},
		{[]string{"state", "compact", "--path", missing}, "state: compact: stat " + missing + ": no such file or directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("MDBRIDGE_CONFIG", "")
			code, _, stderr := runCLI(t, tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Dir(missing)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("inspect created the missing state file")
	}
}
