package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// deadLetterFixture runs a runner whose sink refuses everything, so that n
// events land in its dead-letter file, and returns the directory.
func deadLetterFixture(t *testing.T, n int) string {
	t.Helper()
	h := newHarness(t, pipeline.Options{})
	s := &scriptStream{id: "t/dl"}
	base := time.Now().UTC()
	for i := 0; i < n; i++ {
		s.set(fmt.Sprint(i), base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf(`{"id":%d}`, i))
	}
	h.runner.AddSource(onePoller{[]pipeline.Stream{s}}, pipeline.SourceOptions{Interval: time.Hour})
	h.runner.AddSink("siem", &memSink{fail: func(int, []pipeline.Entry) error { return pipeline.Permanent(errors.New("400")) }},
		pipeline.SinkOptions{Batch: 7})
	h.start()
	dir := filepath.Join(h.dir, "dead")
	eventually(t, "dead letters", func() bool { return countLines(pipeline.DeadLetterPath(dir, "siem")) == n })
	h.stop(t)
	return dir
}

func TestReplayDeadLetters(t *testing.T) {
	dir := deadLetterFixture(t, 25)
	path := pipeline.DeadLetterPath(dir, "siem")

	// A replay whose sink still refuses every third event: those go back
	// to a new dead-letter file; the claimed file is gone.
	picky := &memSink{}
	picky.fail = func(_ int, b []pipeline.Entry) error {
		var items []pipeline.Rejection
		for i, e := range b {
			if e.Seq%3 == 0 {
				items = append(items, pipeline.Rejection{Index: i, Reason: "still too big"})
			} else {
				picky.keep(b[i : i+1])
			}
		}
		return pipeline.Rejected(items, nil)
	}
	st, err := pipeline.ReplayDeadLetters(context.Background(), zap.NewNop(), "siem", picky, dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 17 || st.DeadLettered != 8 || st.Files != 1 || len(picky.got) != 17 {
		t.Fatalf("first replay: %+v, sink got %d; want 17 delivered, 8 dead-lettered, 1 file", st, len(picky.got))
	}
	if n := countLines(path); n != 8 {
		t.Fatalf("dead-letter file holds %d lines after the replay, want 8", n)
	}
	if !strings.Contains(firstLine(t, path), `"error":"still too big"`) {
		t.Errorf("dead-letter line = %s", firstLine(t, path))
	}

	// An interrupted replay leaves its file; the next one finishes it.
	down := &memSink{fail: func(int, []pipeline.Entry) error { return errors.New("connection refused") }}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := pipeline.ReplayDeadLetters(ctx, zap.NewNop(), "siem", down, dir, 10); err == nil {
		t.Fatal("replay to a sink that is down returned no error")
	}
	left, _ := filepath.Glob(path + ".replaying-*")
	if len(left) != 1 {
		t.Fatalf("after an interrupted replay: %v, want one claimed file left", left)
	}
	ok := &memSink{}
	st, err = pipeline.ReplayDeadLetters(context.Background(), zap.NewNop(), "siem", ok, dir, 10)
	if err != nil || st.Delivered != 8 || len(ok.got) != 8 {
		t.Fatalf("final replay: %+v %v, sink got %d; want 8", st, err, len(ok.got))
	}
	for i, e := range ok.got {
		if e.Seq%3 != 0 || (i > 0 && e.Seq <= ok.got[i-1].Seq) {
			t.Fatalf("replayed seq %d at %d: wrong events or order", e.Seq, i)
		}
	}
	if left, _ := filepath.Glob(path + "*"); len(left) != 0 {
		t.Fatalf("files left after a complete replay: %v", left)
	}
}

func TestReadDeadLettersBadInput(t *testing.T) {
	good := `{"time":"2026-11-23T10:00:00Z","sink":"s","seq":1,"error":"x","event":{"id":"a"}}` + "\n"
	for _, tc := range []struct {
		name, in string
		n        int
		torn     bool
		err      string
	}{
		{"good", good + good, 2, false, ""},
		{"torn tail", good + `{"time":"2026`, 1, true, ""},
		{"blank lines", "\n" + good + "\n", 1, false, ""},
		{"garbage", good + "not json\n", 0, false, "line 2"},
		{"no event", `{"seq":1}` + "\n", 0, false, "line 1: no event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			torn, err := pipeline.ReadDeadLetters(strings.NewReader(tc.in), func(pipeline.DeadLetter) error { n++; return nil })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.n || torn != tc.torn {
				t.Fatalf("n=%d torn=%v err=%v; want n=%d torn=%v", n, torn, err, tc.n, tc.torn)
			}
		})
	}
}

func FuzzReadDeadLetters(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-23T10:00:00Z","sink":"s","seq":1,"error":"x","event":{"id":"a"}}` + "\n"))
	f.Add([]byte("\n\n{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = pipeline.ReadDeadLetters(strings.NewReader(string(b)), func(dl pipeline.DeadLetter) error {
			if len(dl.Event) == 0 || dl.Event[0] != '{' {
				t.Fatalf("record without an event object: %q", dl.Event)
			}
			return nil
		})
	})
}
