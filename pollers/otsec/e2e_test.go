package otsec_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
	"github.com/mdbridge/mdbridge/sinks/file"
	"github.com/mdbridge/mdbridge/state"
)

var timeStreams = []string{otsec.StreamDeviceAlerts, otsec.StreamConnAlerts, otsec.StreamSuricataAlerts, otsec.StreamDevices}

// bridge is the whole pipeline in-process: an otsec source against the
// fake, the bbolt journal and a file sink.
type bridge struct {
	t      *testing.T
	out    string
	runner *pipeline.Runner
	cancel context.CancelFunc
	done   chan error
	logs   *observer.ObservedLogs
}

func startBridge(t *testing.T, srv *otsectest.Server, mutate func(*otsec.Config)) *bridge {
	t.Helper()
	dir := t.TempDir()
	cfg := otsec.DefaultConfig()
	cfg.URL = srv.URL
	cfg.Token = "test-token"
	cfg.Interval = 100 * time.Millisecond
	cfg.Lookback = 30 * time.Second
	cfg.Timeout = 5 * time.Second
	cfg.Streams = timeStreams
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	p, err := otsec.New("plant-a", cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(dir, "state", "mdbridge.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fcfg := file.DefaultConfig()
	fcfg.Path = filepath.Join(dir, "out", "events.jsonl")
	sink, err := file.New(fcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(store, log, pipeline.Options{Retention: time.Hour, DeadLetterDir: filepath.Join(dir, "dead")})
	start, _ := otsec.ParseStart(cfg.Start, time.Now())
	r.AddSource(p, pipeline.SourceOptions{Interval: cfg.Interval, Lookback: cfg.Lookback, Start: start, DiscoveryInterval: time.Minute,
		Heartbeat: cfg.Heartbeat, Product: pipeline.ProductOTSecurity, URL: p.PublicURL()})
	r.AddSink("archive", sink, pipeline.SinkOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	b := &bridge{t: t, out: fcfg.Path, runner: r, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { b.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		b.stop()
		_ = store.Close()
	})
	return b
}

func (b *bridge) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	if err := <-b.done; err != nil {
		b.t.Errorf("runner: %v", err)
	}
	b.cancel = nil
}

// outEvent is what the tests read back from the file.
type outEvent struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Seq      uint64 `json:"seq"`
	Revision int    `json:"revision"`
	Source   struct {
		Stream   string `json:"stream"`
		SiteIP   string `json:"site_ip"`
		SensorIP string `json:"sensor_ip"`
	} `json:"source"`
	Changes map[string]json.RawMessage `json:"changes"`
	Raw     map[string]any             `json:"raw"`
}

func (e outEvent) key() string {
	return fmt.Sprintf("%s/%v", e.Source.Stream, e.Raw["id"])
}

func readEvents(t *testing.T, path string) []outEvent {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []outEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e outEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not an event: %v: %.200s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expected lists every record the fake holds, keyed like outEvent.key.
func expected(srv *otsectest.Server, streams []string) map[string]bool {
	want := map[string]bool{}
	for _, site := range srv.Sites() {
		for _, sensor := range site.SensorIPs {
			for _, st := range streams {
				for _, r := range srv.Records(st, site.SiteIP, sensor) {
					want[fmt.Sprintf("plant-a/%s/%s/%s/%v", site.SiteIP, sensor, st, r["id"])] = true
				}
			}
		}
	}
	return want
}

// waitAll waits until the file holds an event for every wanted record.
func waitAll(t *testing.T, b *bridge, want map[string]bool, timeout time.Duration) []outEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := readEvents(t, b.out)
		got := map[string]bool{}
		for _, e := range evs {
			got[e.key()] = true
		}
		missing := 0
		var example string
		for k := range want {
			if !got[k] {
				missing++
				example = k
			}
		}
		if missing == 0 {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d records never reached the file (e.g. %s)", timeout, missing, len(want), example)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEndToEndExactlyOnce: 2 sites × 2 sensors × 4 streams, a backlog and
// live additions with ties and late records: the file holds every record
// exactly once, with per-stream seq 1..n and no gaps.
func TestEndToEndExactlyOnce(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 7, Sites: []otsectest.Site{
		{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172", "10.40.172.173"}},
		{SiteIP: "10.41.10.144", SensorIPs: []string{"10.41.10.172", "10.41.10.173"}},
	}, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	for _, site := range srv.Sites() {
		for _, sensor := range site.SensorIPs {
			for _, st := range timeStreams {
				srv.Add(st, site.SiteIP, sensor, 300)
			}
		}
	}
	b := startBridge(t, srv, nil)
	stopGen := srv.StartGenerator(400)
	// Explicit ties at the newest time and late records behind it, while
	// polls are running.
	for i := 0; i < 10; i++ {
		time.Sleep(60 * time.Millisecond)
		for _, site := range srv.Sites() {
			s := site.SensorIPs[i%2]
			now := time.Now().Truncate(time.Millisecond)
			srv.AddAt(otsec.StreamSuricataAlerts, site.SiteIP, s, now, 3)
			srv.AddAt(otsec.StreamDeviceAlerts, site.SiteIP, s, now.Add(-5*time.Second), 2)
		}
	}
	time.Sleep(500 * time.Millisecond)
	stopGen()
	want := expected(srv, timeStreams)
	evs := waitAll(t, b, want, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // a few more polls must not add anything
	evs = readEvents(t, b.out)
	b.stop()

	seen := map[string]int{}
	ids := map[string]bool{}
	seqs := map[string][]uint64{}
	for _, e := range evs {
		seen[e.key()]++
		if ids[e.ID] {
			t.Errorf("event id %s delivered twice", e.ID)
		}
		ids[e.ID] = true
		seqs[e.Source.Stream] = append(seqs[e.Source.Stream], e.Seq)
		if !want[e.key()] {
			t.Errorf("event for a record the fake never had: %s", e.key())
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s delivered %d times, want once", k, n)
		}
	}
	if len(evs) != len(want) {
		t.Errorf("file holds %d events for %d records", len(evs), len(want))
	}
	if len(seqs) != 16 {
		t.Errorf("events from %d streams, want 16", len(seqs))
	}
	for st, s := range seqs {
		for i, v := range s {
			if v != uint64(i+1) {
				t.Fatalf("stream %s: event %d has seq %d, want %d (in order, no gaps)", st, i, v, i+1)
			}
		}
	}
	t.Logf("%d records from 16 streams, each delivered once", len(want))
}

// TestBacklogGrowsLimitWithPageOne: 5,000 waiting alerts with page_limit 200
// are all fetched, and no request asks for a page other than 1.
func TestBacklogGrowsLimitWithPageOne(t *testing.T) {
	for _, shape := range []string{"object", "array"} {
		t.Run(shape, func(t *testing.T) {
			srv := otsectest.NewServer(otsectest.Options{Seed: 3, ListShape: shape})
			defer srv.Close()
			site := srv.Sites()[0]
			srv.Add(otsec.StreamSuricataAlerts, site.SiteIP, site.SensorIPs[0], 5000)
			b := startBridge(t, srv, func(c *otsec.Config) {
				c.Streams = []string{otsec.StreamSuricataAlerts}
				c.PageLimit = 200
			})
			evs := waitAll(t, b, expected(srv, []string{otsec.StreamSuricataAlerts}), 30*time.Second)
			b.stop()
			if len(evs) != 5000 {
				t.Fatalf("file holds %d events, want 5000", len(evs))
			}
			var limits []float64
			for _, r := range srv.Requests() {
				if r.Data == nil {
					continue
				}
				if p, ok := r.Data["page"]; ok && p != float64(1) {
					t.Errorf("request asked for page %v: %v", p, r.Data)
				}
				if l, ok := r.Data["limit"].(float64); ok && r.Status == 200 {
					limits = append(limits, l)
				}
			}
			if len(limits) < 2 || limits[0] != 200 {
				t.Fatalf("limits asked = %v, want to start at page_limit 200", limits)
			}
			if shape == "object" && limits[1] != 5000 {
				t.Errorf("with a total the second request asked for %v, want 5000 (sized from total)", limits[1])
			}
			for _, e := range evs[:5] {
				if e.Kind != pipeline.KindSuricataAlert {
					t.Errorf("kind %s", e.Kind)
				}
			}
			t.Logf("limits asked: %v", limits[:min(len(limits), 8)])
		})
	}
}

// TestUpstreamFaults: 5xx, HTML pages, truncated JSON, error:true, timeouts
// and 401 → retries with backoff, one log line per state change, nothing
// lost, and the bridge keeps running.
func TestUpstreamFaults(t *testing.T) {
	faults := []struct {
		name  string
		set   func(*otsectest.Server)
		clear func(*otsectest.Server)
		log   string // in the logged error
	}{
		{"5xx", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{Status5xx: 1}) }, nil, "HTTP 503"},
		{"html", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{HTML: 1}) }, nil, "HTML page"},
		{"html200", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{HTMLOK: 1}) }, nil, "HTML page"},
		{"truncated", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{Truncate: 1}) }, nil, ""},
		{"error-true", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{ErrorTrue: 1}) }, nil, "NEM-3003-000500"},
		{"timeout", func(s *otsectest.Server) { s.SetFaults(otsectest.Faults{Hang: 1}) }, nil, "timeout"},
		{"401", func(s *otsectest.Server) { s.ExpireToken() }, func(s *otsectest.Server) { s.SetToken("test-token") }, "NEM-3003-000204"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := otsectest.NewServer(otsectest.Options{Seed: 11})
			defer srv.Close()
			site := srv.Sites()[0]
			sensor := site.SensorIPs[0]
			srv.Add(otsec.StreamDeviceAlerts, site.SiteIP, sensor, 50)
			b := startBridge(t, srv, func(c *otsec.Config) {
				c.Streams = []string{otsec.StreamDeviceAlerts}
				c.Sites = []otsec.Site{{SiteIP: site.SiteIP, SensorIP: sensor}}
				c.Timeout = 3 * time.Second
				if f.name == "timeout" {
					c.Timeout = 300 * time.Millisecond
				}
			})
			waitAll(t, b, expected(srv, []string{otsec.StreamDeviceAlerts}), 10*time.Second)
			f.set(srv)
			srv.Add(otsec.StreamDeviceAlerts, site.SiteIP, sensor, 50) // arrive during the outage
			deadline := time.Now().Add(10 * time.Second)
			for countLogs(b.logs, "poll failed; will retry") == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no failure was logged")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(3 * time.Second) // several retries (backoff starts at 1s)
			failures := b.logs.FilterMessage("poll failed; will retry").All()
			if f.log != "" && !strings.Contains(fmt.Sprint(failures[0].ContextMap()["error"]), f.log) {
				t.Errorf("logged error %q does not mention %q", failures[0].ContextMap()["error"], f.log)
			}
			if len(failures) > 2 {
				t.Errorf("%d warnings for one outage; want one per state change", len(failures))
			}
			if f.clear != nil {
				f.clear(srv)
			}
			srv.SetFaults(otsectest.Faults{})
			evs := waitAll(t, b, expected(srv, []string{otsec.StreamDeviceAlerts}), 70*time.Second)
			if len(evs) != 100 {
				t.Errorf("file holds %d events, want 100", len(evs))
			}
			deadline = time.Now().Add(5 * time.Second)
			for countLogs(b.logs, "poll recovered") != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("recovery logged %d times, want 1", countLogs(b.logs, "poll recovered"))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

var logMu sync.Mutex

func countLogs(l *observer.ObservedLogs, msg string) int {
	logMu.Lock()
	defer logMu.Unlock()
	return l.FilterMessage(msg).Len()
}
