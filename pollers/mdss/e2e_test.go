package mdss_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/sinks/file"
	"github.com/mdbridge/mdbridge/state"
)

// bridge is the whole pipeline in-process: an mdss source against the fake,
// the bbolt journal and a file sink.
type bridge struct {
	t      *testing.T
	out    string
	poller *mdss.Poller
	runner *pipeline.Runner
	cancel context.CancelFunc
	done   chan error
	logs   *observer.ObservedLogs
}

func baseConfig(srv *mdsstest.Server) mdss.Config {
	cfg := mdss.DefaultConfig()
	cfg.URL = srv.URL
	cfg.APIKey = mdsstest.DefaultAPIKey
	cfg.Interval = 100 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.PageSize = 7 // several pages per list
	return cfg
}

func startBridge(t *testing.T, cfg mdss.Config) *bridge {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	p, err := mdss.New("storage", cfg, log)
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
	start, _ := pipeline.ParseStart(cfg.Start, time.Now())
	r.AddSource(p, pipeline.SourceOptions{Interval: cfg.Interval, Lookback: cfg.Lookback, Start: start, DiscoveryInterval: time.Minute})
	r.AddSink("archive", sink, pipeline.SinkOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	b := &bridge{t: t, out: fcfg.Path, poller: p, runner: r, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { b.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		b.stop()
		_ = store.Close()
	})
	return b
}

// stop stops the runner, then closes the poller (logout), as the bridge does.
func (b *bridge) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	if err := <-b.done; err != nil {
		b.t.Errorf("runner: %v", err)
	}
	if err := b.poller.Close(); err != nil {
		b.t.Errorf("close: %v", err)
	}
	b.cancel = nil
}

// outEvent is what the tests read back from the file.
type outEvent struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Seq      uint64 `json:"seq"`
	Time     time.Time
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Source   struct {
		Stream string `json:"stream"`
	} `json:"source"`
	Scan *pipeline.Scan `json:"scan"`
	File *pipeline.File `json:"file"`
}

func (e outEvent) key() string {
	if e.File != nil {
		return "file/" + e.File.ID
	}
	if e.Scan != nil {
		return "scan/" + e.Scan.ID
	}
	return "?"
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
	return out
}

// expected lists what the fake says a client must deliver.
func expected(srv *mdsstest.Server) map[string]bool {
	want := map[string]bool{}
	for _, s := range srv.FinishedScans() {
		want["scan/"+s.ID] = true
	}
	for _, f := range srv.ThreatFiles() {
		want["file/"+f.ID] = true
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
		missing, example := 0, ""
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

// checkExactlyOnce checks that evs hold every wanted record once, nothing
// else, with per-stream seq 1..n.
func checkExactlyOnce(t *testing.T, evs []outEvent, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	seqs := map[string][]uint64{}
	for _, e := range evs {
		seen[e.key()]++
		seqs[e.Source.Stream] = append(seqs[e.Source.Stream], e.Seq)
		if !want[e.key()] {
			t.Errorf("event for a record the fake does not list as due: %s (%s)", e.key(), e.Message)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s delivered %d times, want once", k, n)
		}
	}
	for st, s := range seqs {
		for i, v := range s {
			if v != uint64(i+1) {
				t.Fatalf("stream %s: event %d has seq %d, want %d", st, i, v, i+1)
			}
		}
	}
	if len(evs) != len(want) {
		t.Errorf("file holds %d events for %d records", len(evs), len(want))
	}
}

// TestEndToEndAPIKey: API-key mode through the runner to a file sink, with
// history, live scans that overlap (a long scan finishing after shorter
// ones), every list shape and enum rendering the contract allows: every
// finished scan and every threat file exactly once, severities by EVENTS.md.
func TestEndToEndAPIKey(t *testing.T) {
	variants := []struct {
		name string
		opts mdsstest.Options
	}{
		{"object", mdsstest.Options{}},
		{"array-int-status", mdsstest.Options{ListShape: "array", ScanStatusAsInt: true, FlatResult: true}},
		{"names-epoch", mdsstest.Options{EnumsAsNames: true, TimeFormat: "epoch_ms", ListKey: "scans", TotalKey: "totalCount"}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			o := v.opts
			o.Seed = 5
			o.ThreatRate = 0.3
			o.MaxScanDuration = 1500 * time.Millisecond
			if o.TimeFormat == "epoch_ms" {
				o.MaxScanDuration = 4 * time.Second // whole milliseconds, fewer ties
			}
			srv := mdsstest.NewServer(o)
			defer srv.Close()
			srv.Backfill(15, time.Hour)
			// A long scan that started before, and finishes after, shorter ones.
			srv.AddScan(mdsstest.ScanSpec{Name: "long", Start: time.Now(), Duration: 2 * time.Second, Files: 20, Threats: []int{1, 21}})
			cfg := baseConfig(srv)
			cfg.Lookback = time.Second // shorter than the long scan
			b := startBridge(t, cfg)
			stopGen := srv.StartGenerator(4)
			time.Sleep(2500 * time.Millisecond)
			stopGen()
			// Let the running scans finish.
			deadline := time.Now().Add(10 * time.Second)
			for {
				srv.Tick()
				running := 0
				for _, s := range srv.Scans() {
					if s.Status == mdsstest.ScanInProgress {
						running++
					}
				}
				if running == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			want := expected(srv)
			evs := waitAll(t, b, want, 20*time.Second)
			time.Sleep(400 * time.Millisecond) // more polls add nothing
			b.stop()
			evs = readEvents(t, b.out)
			checkExactlyOnce(t, evs, want)
			files := map[string]mdsstest.File{}
			for _, f := range srv.ThreatFiles() {
				files[f.ID] = f
			}
			for _, e := range evs {
				if e.File == nil {
					continue
				}
				f := files[e.File.ID]
				code := f.ScanAllResultI
				wantSev, _ := mdss.FileSeverity(&code, f.Result.String())
				if e.Severity != wantSev {
					t.Errorf("file %s (code %d, %s): severity %s, want %s", f.ID, code, f.Result, e.Severity, wantSev)
				}
				if e.File.ResultCode == nil || *e.File.ResultCode != code {
					t.Errorf("file %s: result_code %v, want %d", f.ID, e.File.ResultCode, code)
				}
				if !e.Time.Equal(f.ScanCompletedTime.Truncate(timeUnit(o))) {
					t.Errorf("file %s: time %s, want %s", f.ID, e.Time, f.ScanCompletedTime)
				}
				if e.Scan == nil || e.Scan.ID != f.ScanID {
					t.Errorf("file %s: scan block %+v, want id %s", f.ID, e.Scan, f.ScanID)
				}
			}
			if n := b.poller.Skipped(); n != 0 {
				t.Errorf("%d records skipped as broken", n)
			}
			t.Logf("%d events (%d threat files, %d scans)", len(evs), len(srv.ThreatFiles()), len(srv.FinishedScans()))
		})
	}
}

func timeUnit(o mdsstest.Options) time.Duration {
	switch o.TimeFormat {
	case "epoch_ms":
		return time.Millisecond
	case "epoch_s":
		return time.Second
	}
	return time.Nanosecond
}

// TestEndToEndSession: user and password with an access token of 2 s and a
// refresh token of 5 s, polls every 200 ms for about 12 s while scans come
// and go. Midway the server ends every session (the refresh token is dead:
// expired or revoked). No poll fails, nothing is lost, the client refreshed
// before expiry, authenticated again once the refresh token was dead, and
// logged out at the end. No secret reaches a log line.
func TestEndToEndSession(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s")
	}
	srv := mdsstest.NewServer(mdsstest.Options{Seed: 9, AccessTTL: 2 * time.Second, RefreshTTL: 5 * time.Second,
		ThreatRate: 0.3, MaxScanDuration: time.Second})
	defer srv.Close()
	srv.Backfill(10, 10*time.Minute)
	cfg := baseConfig(srv)
	cfg.APIKey = ""
	cfg.Username, cfg.Password = mdsstest.DefaultUser, mdsstest.DefaultPassword
	cfg.Interval = 200 * time.Millisecond
	b := startBridge(t, cfg)
	stopGen := srv.StartGenerator(3)
	var tokens tokenSpy
	tokens.watch(srv)
	time.Sleep(6 * time.Second)
	refreshesBefore := srv.Refreshes()
	srv.ExpireTokens()
	time.Sleep(5 * time.Second)
	stopGen()
	for range 30 {
		srv.Tick()
		time.Sleep(50 * time.Millisecond)
	}
	want := expected(srv)
	waitAll(t, b, want, 15*time.Second)
	time.Sleep(400 * time.Millisecond)
	b.stop()
	checkExactlyOnce(t, readEvents(t, b.out), want)

	if n := b.logs.FilterMessage("poll failed; will retry").Len(); n != 0 {
		t.Errorf("%d polls failed: %v", n, b.logs.FilterMessage("poll failed; will retry").All()[0].ContextMap())
	}
	auths, refreshes, logouts := b.poller.Session()
	if refreshesBefore < 3 {
		t.Errorf("%d refreshes in the first 6 s with 2 s tokens; want proactive refreshes", refreshesBefore)
	}
	if srv.Authentications() < 2 || auths < 2 {
		t.Errorf("authentications: server %d, client %d; want a second one after the sessions ended", srv.Authentications(), auths)
	}
	if logouts != 1 || srv.Logouts() != 1 || srv.Sessions() != 0 {
		t.Errorf("logouts: client %d, server %d, live sessions %d; want 1, 1, 0", logouts, srv.Logouts(), srv.Sessions())
	}
	// The only 401s: one list request per stream after ExpireTokens, and
	// the refresh that followed it.
	if n := srv.Unauthorized(); n > 4 {
		t.Errorf("%d 401s from the server; want at most 4 (the session ended once)", n)
	}
	tokens.check(t, b.logs)
	t.Logf("authentications %d, refreshes %d, 401s %d, events %d", auths, refreshes, srv.Unauthorized(), len(want))
}

// tokenSpy collects every token and credential the fake saw, to look for
// them in logs.
type tokenSpy struct {
	mu  sync.Mutex
	srv *mdsstest.Server
}

func (s *tokenSpy) watch(srv *mdsstest.Server) { s.srv = srv }

func (s *tokenSpy) secrets() []string {
	out := []string{mdsstest.DefaultPassword, mdsstest.DefaultAPIKey}
	for _, r := range s.srv.Requests() {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			out = append(out, strings.TrimPrefix(h, "Bearer "))
		}
		var body map[string]any
		if json.Unmarshal(r.Body, &body) == nil {
			for _, k := range []string{"refreshToken", "accessToken"} {
				if v, ok := body[k].(string); ok && v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

func (s *tokenSpy) check(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	secrets := s.secrets()
	if len(secrets) < 4 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		for _, sec := range secrets {
			if strings.Contains(line, sec) {
				t.Fatalf("a secret is in a log line: %s", line)
			}
		}
	}
}
