package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

//go:embed demo.yaml
var demoYAML []byte

var demoStreams = []string{"device_alerts", "conn_alerts", "suricata_alerts", "devices"}

// cmdDemo runs the bridge against the built-in OT Security simulator with a
// file sink, printing one status line a second.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "output directory (default: a new temporary directory)")
	dur := fs.Duration("for", 0, "stop by itself after this long (default: until Ctrl-C)")
	backlog := fs.Int("backlog", 250, "records waiting per stream, site and sensor at start")
	rate := fs.Float64("rate", 40, "new records per second while running")
	logLevel := fs.String("log-level", "warn", "bridge log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "mdbridge-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}

	const token = "demo-token"
	sites := []otsectest.Site{
		{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172", "10.40.172.173"}},
		{SiteIP: "10.41.10.144", SensorIPs: []string{"10.41.10.172", "10.41.10.173"}},
	}
	srv := otsectest.NewServer(otsectest.Options{Token: token, Sites: sites, Seed: 1,
		Start: time.Now().Add(-2 * time.Hour)})
	defer srv.Close()
	for _, s := range sites {
		for _, sensor := range s.SensorIPs {
			for _, st := range demoStreams {
				srv.Add(st, s.SiteIP, sensor, *backlog)
			}
		}
	}
	stopGen := srv.StartGenerator(*rate)
	defer stopGen()

	// Storage Security: scan history, live scans of a few seconds each, and
	// its webhooks posted to the bridge's receiver on a free loopback port.
	const mdssKey, hookSecret = "demo-mdss-key", "demo-hook-secret"
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hookAddr := hookLn.Addr().String()
	hookLn.Close()
	mdssSrv := mdsstest.NewServer(mdsstest.Options{APIKey: mdssKey, Seed: 1, MaxScanDuration: 10 * time.Second,
		WebhookURL: "http://" + hookAddr + "/mdss/webhook", WebhookFileFilter: "blocked",
		WebhookHeaders: map[string]string{"Authorization": "Bearer " + hookSecret}})
	defer mdssSrv.Close()
	mdssSrv.Backfill(20, 2*time.Hour)
	stopMDSS := mdssSrv.StartGenerator(0.5)
	defer stopMDSS()

	env := append(os.Environ(), "DEMO_URL="+srv.URL, "DEMO_TOKEN="+token, "DEMO_DIR="+abs, "DEMO_LOG_LEVEL="+*logLevel,
		"DEMO_MDSS_URL="+mdssSrv.URL, "DEMO_MDSS_KEY="+mdssKey, "DEMO_HOOK_ADDR="+hookAddr, "DEMO_HOOK_SECRET="+hookSecret)
	cfg, err := configs.Parse(demoYAML, env)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	out := filepath.Join(abs, "events.jsonl")
	fmt.Fprintf(stdout, "mdbridge demo: simulated OT Security at %s (2 sites x 2 sensors x 4 streams)\n", srv.URL)
	fmt.Fprintf(stdout, "mdbridge demo: simulated Storage Security at %s, posting its webhooks to http://%s/mdss/webhook\n", mdssSrv.URL, hookAddr)
	fmt.Fprintf(stdout, "events -> %s\n", out)

	var wg sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	started := time.Now()
	var runner *pipeline.Runner
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-statusCtx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			r := runner
			mu.Unlock()
			if r == nil {
				continue
			}
			snap := r.Snapshot()
			fmt.Fprintln(stdout, statusLine(snap, time.Since(started), &last))
		}
	}()
	err = runBridge(ctx, cfg, log, func(r *pipeline.Runner) {
		mu.Lock()
		runner = r
		mu.Unlock()
	})
	stopStatus()
	wg.Wait()
	if runner != nil {
		var last uint64
		fmt.Fprintln(stdout, "final:", statusLine(runner.Snapshot(), time.Since(started), &last))
	}
	fmt.Fprintf(stdout, "output: %s\n", out)
	return err
}

// statusLine renders one line: events by kind, rate since the last line,
// and each sink's lag.
func statusLine(s pipeline.Snapshot, elapsed time.Duration, last *uint64) string {
	var total uint64
	kinds := make([]string, 0, len(s.Kinds))
	for k, n := range s.Kinds {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "ot."), n))
	}
	sort.Strings(kinds)
	rate := total - *last
	*last = total
	var sinks []string
	for _, sk := range s.Sinks {
		st := ""
		if sk.Failing {
			st = " RETRYING"
		}
		sinks = append(sinks, fmt.Sprintf("%s delivered=%d lag=%d%s", sk.Name, sk.Delivered, sk.Lag, st))
	}
	failing := 0
	for _, st := range s.Streams {
		if st.Failing {
			failing++
		}
	}
	line := fmt.Sprintf("[%5.0fs] events=%d (%s) rate=%d/s | %s", elapsed.Seconds(), total, strings.Join(kinds, " "), rate, strings.Join(sinks, "; "))
	if failing > 0 {
		line += fmt.Sprintf(" | %d streams retrying", failing)
	}
	return line
}
