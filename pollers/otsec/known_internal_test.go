package otsec

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestPollPassesOverCommittedRecords: once a poll is committed, the next
// poll leaves out (as Unchanged) exactly the records that are byte for byte
// ones it handed over, and hands over everything else: new records, late
// ones, changed ones, and unchanged ones it lost its place for. A poll whose
// commit is not reported teaches it nothing.
func TestPollPassesOverCommittedRecords(t *testing.T) {
	type step struct {
		name string
		// change alters the fake before the poll; ids are those of the 60
		// records added first, oldest first (ids[0] .. ids[59]).
		change func(srv *otsectest.Server, st *testStream, ids []string) (want []string)
		// commit says whether the poll's Committed is called.
		commit bool
		// unchanged is the Unchanged count the poll must report.
		unchanged int
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"steady", []step{
			{"new records only", func(srv *otsectest.Server, st *testStream, _ []string) []string {
				return st.add(srv, 5)
			}, true, 60},
			{"nothing new", func(*otsectest.Server, *testStream, []string) []string { return nil }, true, 65},
		}},
		{"late, changed and removed records", []step{
			{"one of each", func(srv *otsectest.Server, st *testStream, ids []string) []string {
				want := st.add(srv, 2)
				if !srv.Update(StreamDeviceAlerts, st.site, st.sensor, ids[40], func(m map[string]any) { m["alertName"] = "changed" }) {
					t.Fatal("update failed")
				}
				if !srv.Remove(StreamDeviceAlerts, st.site, st.sensor, ids[20]) {
					t.Fatal("remove failed")
				}
				late := st.addAt(srv, st.times[ids[30]], 1)
				return append(append(want, ids[40]), late...)
			}, true, 58},
			{"nothing new", func(*otsectest.Server, *testStream, []string) []string { return nil }, true, 62},
		}},
		{"commit not reported", []step{
			{"new records, not committed", func(srv *otsectest.Server, st *testStream, _ []string) []string {
				return st.add(srv, 3)
			}, false, 60},
			{"the same again", func(_ *otsectest.Server, st *testStream, _ []string) []string {
				return st.added[60:]
			}, true, 60},
			{"nothing new", func(*otsectest.Server, *testStream, []string) []string { return nil }, true, 63},
		}},
		{"more removed in a row than the matcher looks ahead", []step{
			{"ten removed", func(srv *otsectest.Server, st *testStream, ids []string) []string {
				for _, id := range ids[40:50] {
					srv.Remove(StreamDeviceAlerts, st.site, st.sensor, id)
				}
				// It finds no record of the known list after the gap: the
				// older ones are read again, and the runner drops them.
				return slices.Clone(ids[:40])
			}, true, 10},
			{"back in step", func(*otsectest.Server, *testStream, []string) []string { return nil }, true, 50},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now().Add(-time.Hour).Truncate(time.Second)
			srv := otsectest.NewServer(otsectest.Options{Seed: 7, Start: start})
			defer srv.Close()
			site := srv.Sites()[0]
			cfg := DefaultConfig()
			cfg.URL, cfg.Token, cfg.Timeout, cfg.Lookback = srv.URL, "test-token", 5*time.Second, 24*time.Hour
			p, err := New("plant-a", cfg, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			st := &testStream{site: site.SiteIP, sensor: site.SensorIPs[0], times: map[string]time.Time{}}
			ids := st.add(srv, 60)
			s := newStream(p, StreamDeviceAlerts, st.site, st.sensor)
			pos := pipeline.Position{Floor: start.Add(-time.Minute)}
			b, err := s.Poll(context.Background(), pos)
			if err != nil || len(b.Records) != 60 || b.Unchanged != 0 {
				t.Fatalf("first poll: %d records, %d unchanged, %v", len(b.Records), b.Unchanged, err)
			}
			b.Committed()
			b.Release()
			for _, stp := range c.steps {
				want := stp.change(srv, st, ids)
				b, err := s.Poll(context.Background(), pos)
				if err != nil {
					t.Fatalf("%s: %v", stp.name, err)
				}
				var got []string
				for _, r := range b.Records {
					got = append(got, r.Key)
				}
				slices.Sort(got)
				want = slices.Clone(want)
				slices.Sort(want)
				if !slices.Equal(got, want) || b.Unchanged != stp.unchanged {
					t.Errorf("%s: records %v, %d unchanged; want %v, %d unchanged", stp.name, got, b.Unchanged, want, stp.unchanged)
				}
				if stp.commit {
					b.Committed()
				}
				b.Release()
			}
		})
	}
}

// testStream is one sensor's device alert stream in the fake, with the ids
// and times of the records a test added to it.
type testStream struct {
	site, sensor string
	added        []string
	times        map[string]time.Time
}

// add adds n records after the newest and returns their ids.
func (st *testStream) add(srv *otsectest.Server, n int) []string {
	srv.Add(StreamDeviceAlerts, st.site, st.sensor, n)
	return st.collect(srv)
}

// addAt adds n records at t (late ones, when t is not the newest).
func (st *testStream) addAt(srv *otsectest.Server, t time.Time, n int) []string {
	srv.AddAt(StreamDeviceAlerts, st.site, st.sensor, t, n)
	return st.collect(srv)
}

// collect returns the ids of the records the fake holds that the test has
// not noted yet, and notes them.
func (st *testStream) collect(srv *otsectest.Server) []string {
	var ids []string
	for _, r := range srv.Records(StreamDeviceAlerts, st.site, st.sensor) {
		id := strconv.FormatFloat(r["id"].(float64), 'f', -1, 64)
		if _, ok := st.times[id]; ok {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, r["alertStarted"].(string))
		if err != nil {
			panic(err)
		}
		st.times[id] = tm
		st.added = append(st.added, id)
		ids = append(ids, id)
	}
	return ids
}
