package pipeline_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
	"github.com/mdbridge/mdbridge/state"
)

var backfillT0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// backfillServer is a fake OT Security with one site of two sensors and n
// records on stream of each: sensor 1's at T0, T0+1m, ..., sensor 2's 30s
// after each of those.
func backfillServer(t *testing.T, stream string, n int) *otsectest.Server {
	t.Helper()
	srv := otsectest.NewServer(otsectest.Options{Sites: []otsectest.Site{
		{SiteIP: "10.1.0.1", SensorIPs: []string{"10.1.0.11", "10.1.0.12"}},
	}})
	t.Cleanup(srv.Close)
	for i := range n {
		at := backfillT0.Add(time.Duration(i) * time.Minute)
		srv.AddAt(stream, "10.1.0.1", "10.1.0.11", at, 1)
		srv.AddAt(stream, "10.1.0.1", "10.1.0.12", at.Add(30*time.Second), 1)
	}
	return srv
}

func otPoller(t *testing.T, srv *otsectest.Server, stream string, sites ...otsec.Site) *otsec.Poller {
	t.Helper()
	cfg := otsec.DefaultConfig()
	cfg.Sites = sites
	cfg.URL = srv.URL
	cfg.Token = "test-token"
	cfg.Timeout = 5 * time.Second
	cfg.Streams = []string{stream}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := otsec.New("plant-a", cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// journaled runs a runner over p with a new state file until it has
// journaled n events, and returns them in journal order.
func journaled(t *testing.T, p pipeline.Poller, n int) [][]byte {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := pipeline.NewRunner(store, zap.NewNop(), pipeline.Options{Retention: time.Hour})
	r.AddSource(p, pipeline.SourceOptions{Interval: 50 * time.Millisecond, Lookback: time.Minute, DiscoveryInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := store.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.LastSeq >= uint64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner journaled %d events in 10s, want %d", st.LastSeq, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	entries, _, err := store.ReadInto(0, n+100, 64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = slices.Clone(e.Data)
	}
	return out
}

// comparable decodes an event and drops what only journaling sets (seq,
// observed).
func comparable(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, data)
	}
	delete(m, "seq")
	delete(m, "observed")
	return m
}

func eventTime(t *testing.T, m map[string]any) time.Time {
	t.Helper()
	s, _ := m["time"].(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("event time %q: %v", s, err)
	}
	return tm
}

// TestBackfillEqualsJournal backfills a window of a time stream and of a
// set stream, over two sensors, and compares every event with the one the
// runner journals for the same record: the same document but for seq (0)
// and observed, only the records in [since, until), oldest first.
func TestBackfillEqualsJournal(t *testing.T) {
	since, until := backfillT0.Add(2*time.Minute), backfillT0.Add(6*time.Minute)
	for _, stream := range []string{otsec.StreamDeviceAlerts, otsec.StreamSuricataAlerts, otsec.StreamDevices, otsec.StreamPatchRequests} {
		t.Run(stream, func(t *testing.T) {
			srv := backfillServer(t, stream, 10)
			journal := journaled(t, otPoller(t, srv, stream), 20)
			var want []map[string]any
			for _, data := range journal {
				m := comparable(t, data)
				if tm := eventTime(t, m); !tm.Before(since) && tm.Before(until) {
					want = append(want, m)
				}
			}
			slices.SortStableFunc(want, func(a, b map[string]any) int { return eventTime(t, a).Compare(eventTime(t, b)) })
			if len(want) != 8 {
				t.Fatalf("the journal holds %d events in the window, want 8 (4 per sensor)", len(want))
			}

			var got []map[string]any
			var seqs []uint64
			st, err := pipeline.Backfill(context.Background(), otPoller(t, srv, stream), nil, since, until, func(ev *pipeline.Event) error {
				data, err := pipeline.AppendEvent(nil, ev)
				if err != nil {
					return err
				}
				seqs = append(seqs, ev.Seq)
				got = append(got, comparable(t, data))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Streams != 2 || st.Events != 8 {
				t.Errorf("stats %+v, want 2 streams and 8 events", st)
			}
			if len(got) != len(want) {
				t.Fatalf("backfill gave %d events, want %d", len(got), len(want))
			}
			for i := range want {
				g, _ := json.Marshal(got[i])
				w, _ := json.Marshal(want[i])
				if string(g) != string(w) {
					t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
				}
				if seqs[i] != 0 {
					t.Errorf("event %d: seq %d, want 0 (nothing is journaled)", i, seqs[i])
				}
			}
		})
	}
}

// TestBackfillChoosesStreams narrows the streams with want and leaves
// until open.
func TestBackfillChoosesStreams(t *testing.T) {
	srv := backfillServer(t, otsec.StreamDeviceAlerts, 10)
	var ids []string
	st, err := pipeline.Backfill(context.Background(), otPoller(t, srv, otsec.StreamDeviceAlerts),
		func(s pipeline.Stream) bool { return strings.Contains(s.ID(), "/10.1.0.12/") },
		backfillT0.Add(7*time.Minute), time.Time{}, func(ev *pipeline.Event) error {
			ids = append(ids, ev.Source.SensorIP+" "+ev.Time.Format("15:04:05"))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.1.0.12 00:07:30", "10.1.0.12 00:08:30", "10.1.0.12 00:09:30"}
	if !slices.Equal(ids, want) || st.Streams != 1 {
		t.Errorf("got %q from %d streams, want %q from 1", ids, st.Streams, want)
	}
}

// TestBackfillErrors: a window that is empty or reversed, a failing API
// and a failing emit each end the backfill with an error that says which.
func TestBackfillErrors(t *testing.T) {
	srv := backfillServer(t, otsec.StreamDeviceAlerts, 3)
	failing := backfillServer(t, otsec.StreamDeviceAlerts, 3)
	failing.SetFaults(otsectest.Faults{Status5xx: 1})
	emitErr := func(*pipeline.Event) error { return errWriter }
	tests := []struct {
		name         string
		srv          *otsectest.Server
		sites        []otsec.Site
		since, until time.Time
		emit         func(*pipeline.Event) error
		want         string
	}{
		{"since equals until", srv, nil, backfillT0, backfillT0, nil, "since 2026-11-01T00:00:00Z is not before until 2026-11-01T00:00:00Z"},
		{"since after until", srv, nil, backfillT0.Add(time.Hour), backfillT0, nil, "is not before until"},
		{"discovery fails", failing, nil, backfillT0, time.Time{}, nil, "backfill plant-a: list streams: discover sites: "},
		{"poll fails", failing, []otsec.Site{{SiteIP: "10.1.0.1", SensorIP: "10.1.0.11"}}, backfillT0, time.Time{}, nil,
			"backfill stream plant-a/10.1.0.1/10.1.0.11/device_alerts: "},
		{"emit fails", srv, nil, backfillT0, time.Time{}, emitErr, "backfill plant-a: " + errWriter.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			emit := tc.emit
			if emit == nil {
				emit = func(*pipeline.Event) error { return nil }
			}
			_, err := pipeline.Backfill(context.Background(), otPoller(t, tc.srv, otsec.StreamDeviceAlerts, tc.sites...), nil, tc.since, tc.until, emit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

type backfillError string

func (e backfillError) Error() string { return string(e) }

const errWriter = backfillError("write /dev/full: no space left on device")
