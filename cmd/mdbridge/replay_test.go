package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

func TestReplay(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
log: { level: error }
sources:
  plant-a: { type: otsecurity, url: "https://10.0.0.5:3003", token: t }
sinks:
  archive: { type: file, path: %s/out.jsonl }
`, dir, dir))
	event := func(i int) []byte {
		b, err := pipeline.MarshalEvent(&pipeline.Event{ID: fmt.Sprintf("e%d", i), Schema: pipeline.Schema, Kind: pipeline.KindDeviceAlert,
			Seq: uint64(i), Time: time.Unix(int64(i), 0).UTC(), Severity: "low", Source: pipeline.Source{Instance: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Five events in the journal, committed before and after a mark.
	st, err := state.Open(filepath.Join(dir, "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(from, to int) {
		var evs []state.Append
		for i := from; i <= to; i++ {
			evs = append(evs, state.Append{Data: event(i)})
		}
		if _, err := st.Commit(state.Commit{Stream: "p/s", Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	commit(1, 2)
	time.Sleep(10 * time.Millisecond)
	mark := time.Now()
	commit(3, 5)
	_ = st.Close()
	// Two events in the sink's dead-letter file.
	dl := pipeline.DeadLetterPath(filepath.Join(dir, "deadletter"), "archive")
	_ = os.MkdirAll(filepath.Dir(dl), 0o700)
	var lines bytes.Buffer
	for _, i := range []int{7, 8} {
		fmt.Fprintf(&lines, `{"time":"2026-11-23T10:00:00Z","sink":"archive","seq":%d,"error":"503","event":%s}`+"\n", i, event(i))
	}
	if err := os.WriteFile(dl, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"replay", "-c", cfgPath, "--sink", "archive"}, &out, &errOut); code != 0 {
		t.Fatalf("dead-letter replay: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "2 delivered") {
		t.Errorf("dead-letter replay said %q", out.String())
	}
	if _, err := os.Stat(dl); !os.IsNotExist(err) {
		t.Errorf("dead-letter file still there after a full replay (%v)", err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"replay", "-c", cfgPath, "--sink", "archive", "--since", mark.Format(time.RFC3339Nano)}, &out, &errOut); code != 0 {
		t.Fatalf("journal replay: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "entries 3..5): 3 delivered") {
		t.Errorf("journal replay said %q", out.String())
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		e, err := pipeline.UnmarshalEvent([]byte(l))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ids = append(ids, e.ID)
	}
	if strings.Join(ids, ",") != "e7,e8,e3,e4,e5" {
		t.Fatalf("sink file holds %v, want e7,e8 (dead-letter) then e3,e4,e5 (journal since the mark)", ids)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "-c", cfgPath}, "--sink NAME"},
		{[]string{"replay", "-c", cfgPath, "--sink", "nope"}, `no sink "nope"`},
		{[]string{"replay", "-c", cfgPath, "--sink", "archive", "--since", "yesterday"}, "--since"},
	} {
		errOut.Reset()
		if code := run(context.Background(), tc.args, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error naming %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
