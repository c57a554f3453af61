package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

// unackedSink is a memSink whose destination does not acknowledge what it
// stores, like syslog over TCP.
type unackedSink struct {
	memSink
	redeliver int
}

func (u *unackedSink) RedeliverBytes() int { return u.redeliver }

// TestUnacknowledgedSinkRedeliversAfterRestart: a sink whose destination
// does not acknowledge gets the journal's last stretch before its cursor
// again when the bridge starts (what it wrote just before a crash may have
// been discarded unread), and an acknowledging sink does not.
func TestUnacknowledgedSinkRedeliversAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		redeliver int
		want      []uint64
	}{
		{"acknowledging", 0, []uint64{11, 12}},
		{"last 3 events of 11 bytes", 25, []uint64{8, 9, 10, 11, 12}},
		{"more than the journal holds", 1 << 20, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := state.Open(filepath.Join(dir, "s.db"), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var ev []state.Append
			for i := range 12 {
				ev = append(ev, state.Append{Data: fmt.Appendf(nil, `{"n":%05d}`, i+1)}) // 11 bytes
			}
			if _, err := st.Commit(state.Commit{Stream: "x", Events: ev}); err != nil {
				t.Fatal(err)
			}
			// Delivered up to 10 before the "crash".
			if err := st.SetCursor("siem", 10); err != nil {
				t.Fatal(err)
			}
			r := pipeline.NewRunner(st, zap.NewNop(), pipeline.Options{DeadLetterDir: dir})
			sink := &unackedSink{redeliver: tc.redeliver}
			r.AddSink("siem", sink, pipeline.SinkOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, e := range sink.got {
				got = append(got, e.Seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("delivered seqs %v, want %v", got, tc.want)
			}
			if c, _, _ := st.Cursor("siem"); c != 12 {
				t.Fatalf("cursor %d after the run, want 12", c)
			}
		})
	}
}
