package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
)

type options struct {
	duration       time.Duration
	kills          int
	windows        int
	seed           uint64
	rate           float64
	backlog        int
	sites          int
	sensors        int
	settle         time.Duration
	requireRsyslog bool
	bridgeBin      string
	keep           bool
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("mdchaos", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, "usage: mdchaos [flags]\n\nRuns mdbridge between a simulated OT Security and four sinks while killing and breaking things,\n"+
			"then checks that every upstream record reached every sink and JetStream holds each once.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the chaos goes on (records are generated all along)")
	fs.IntVar(&o.kills, "kills", 20, "SIGKILLs of the bridge over -duration, each followed by a restart")
	fs.IntVar(&o.windows, "windows", 0, "fault windows of each other kind (nats restart, rsyslog stop, webhook 503, upstream fault); 0: one per minute, at least 1")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the chaos schedule and the record generator; 0: from the clock (printed)")
	fs.Float64Var(&o.rate, "rate", 200, "live records per second over all streams")
	fs.IntVar(&o.backlog, "backlog", 200, "records per stream present at start")
	fs.IntVar(&o.sites, "sites", 2, "sites of the simulated Enterprise Manager")
	fs.IntVar(&o.sensors, "sensors", 2, "sensors per site (each has 3 alert streams)")
	fs.DurationVar(&o.settle, "settle", 5*time.Minute, "after the chaos, how long the sinks may take to catch up")
	fs.BoolVar(&o.requireRsyslog, "require-rsyslog", false, "fail instead of using the in-process syslog receiver when rsyslogd is not installed")
	fs.StringVar(&o.bridgeBin, "mdbridge", "", "mdbridge binary to run (default: build ./cmd/mdbridge)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (config, state, sink outputs, logs)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if o.duration < 10*time.Second {
		errs = append(errs, errors.New("-duration must be at least 10s"))
	}
	if o.kills < 0 || o.windows < 0 {
		errs = append(errs, errors.New("-kills and -windows must not be negative"))
	}
	if o.kills > 0 && o.duration/time.Duration(o.kills) < 2*time.Second {
		errs = append(errs, fmt.Errorf("-kills %d over %v leaves less than 2s between kills", o.kills, o.duration))
	}
	if o.rate <= 0 || o.backlog < 0 {
		errs = append(errs, errors.New("-rate must be positive and -backlog not negative"))
	}
	if o.sites < 1 || o.sites > 84 || o.sensors < 1 || o.sensors > 84 {
		errs = append(errs, errors.New("-sites and -sensors must be 1 to 84"))
	}
	if o.settle <= 0 {
		errs = append(errs, errors.New("-settle must be positive"))
	}
	if o.windows == 0 {
		o.windows = max(1, int(o.duration/time.Minute))
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mdchaos:", err)
		return 2
	}
	res, err := chaos(ctx, o, stderr)
	if res != nil {
		res.print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mdchaos:", err)
		return 1
	}
	return 0
}

// figures is what one run did and found.
type figures struct {
	Seed           uint64
	Duration       time.Duration
	Rate           float64
	Streams        int
	Syslog         string // which syslog receiver
	Kills          int
	NATSRestarts   int
	RsyslogStops   int
	Webhook503     int // windows
	Webhook503Reqs int64
	UpstreamFaults map[string]int // windows per kind
	Check          *checkResult
	JSMessages     uint64 // the stream's own count
	JSBadHeader    int
	Note           string
	BridgeExit     int
	Wall           time.Duration
	Settle         time.Duration // from the end of the chaos until every sink had every record
	GaveUp         bool          // -settle ran out first
	Dir            string
}

func (f *figures) upstreamWindows() int {
	n := 0
	for _, c := range f.UpstreamFaults {
		n += c
	}
	return n
}

// ok reports whether nothing was lost and JetStream holds no duplicate.
func (f *figures) ok() bool {
	if f.Check == nil || f.Check.lost() || len(f.Check.Conflicts) > 0 || f.JSBadHeader > 0 {
		return false
	}
	for _, s := range f.Check.Sinks {
		if s.Name == "nats" && (s.Duplicates > 0 || uint64(s.Distinct) != f.JSMessages) {
			return false
		}
	}
	return true
}

func (f *figures) print(w io.Writer) {
	fmt.Fprintf(w, "mdchaos: seed %d, %v of chaos, %g records/s over %d streams, syslog receiver: %s\n",
		f.Seed, f.Duration, f.Rate, f.Streams, f.Syslog)
	if f.Check != nil {
		fmt.Fprintf(w, "  records upstream     %d (%d live)\n", f.Check.Records, f.Check.Live)
	}
	fmt.Fprintf(w, "  bridge kills         %d (SIGKILL, then restart)\n", f.Kills)
	fmt.Fprintf(w, "  nats-server restarts %d\n", f.NATSRestarts)
	fmt.Fprintf(w, "  rsyslog restarts     %d\n", f.RsyslogStops)
	fmt.Fprintf(w, "  webhook 503 windows  %d (%d requests refused)\n", f.Webhook503, f.Webhook503Reqs)
	var kinds []string
	for _, k := range upstreamFaults {
		if n := f.UpstreamFaults[k.name]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, n))
		}
	}
	fmt.Fprintf(w, "  upstream fault windows %d (%s)\n", f.upstreamWindows(), strings.Join(kinds, ", "))
	if f.Check != nil {
		fmt.Fprintf(w, "  %-8s %9s %9s %6s %10s %12s\n", "sink", "events", "distinct", "lost", "duplicates", "largest lag")
		for _, s := range f.Check.Sinks {
			fmt.Fprintf(w, "  %-8s %9d %9d %6d %10d %11.1fs\n", s.Name, s.Messages, s.Distinct, len(s.Lost), s.Duplicates, s.MaxLag.Seconds())
		}
		fmt.Fprintf(w, "  jetstream stream     %d messages, %d distinct Nats-Msg-Id (duplicate window %v)\n",
			f.JSMessages, f.natsDistinct(), dupWindow)
		for _, s := range f.Check.Sinks {
			if len(s.Lost) > 0 {
				fmt.Fprintf(w, "  LOST at %s: %d records, ids %s\n", s.Name, len(s.Lost), strings.Join(s.Lost[:min(len(s.Lost), 20)], " "))
			}
			if s.Unknown > 0 {
				fmt.Fprintf(w, "  %s: %d events of records the upstream does not hold\n", s.Name, s.Unknown)
			}
		}
		for _, c := range f.Check.Conflicts[:min(len(f.Check.Conflicts), 10)] {
			fmt.Fprintf(w, "  ID CONFLICT %s\n", c)
		}
	}
	if f.JSBadHeader > 0 {
		fmt.Fprintf(w, "  jetstream: %d messages whose Nats-Msg-Id is not the event id\n", f.JSBadHeader)
	}
	if f.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", f.Note)
	}
	caught := "caught up         "
	if f.GaveUp {
		caught = "gave up waiting    "
	}
	fmt.Fprintf(w, "  %s   %.1fs after the chaos ended; bridge exit after SIGTERM %d\n", caught, f.Settle.Seconds(), f.BridgeExit)
	fmt.Fprintf(w, "  wall time            %.1fs on %d CPUs\n", f.Wall.Seconds(), runtime.NumCPU())
	verdict := "PASS: every record reached every sink; JetStream holds each event once"
	if !f.ok() {
		verdict = "FAIL: see above"
	}
	fmt.Fprintf(w, "  %s\n", verdict)
	if f.Dir != "" {
		fmt.Fprintf(w, "  kept %s\n", f.Dir)
	}
}

func (f *figures) natsDistinct() int {
	for _, s := range f.Check.Sinks {
		if s.Name == "nats" {
			return s.Distinct
		}
	}
	return 0
}

// sinkNames are the sinks, in the order the figures list them.
var sinkNames = []string{"file", "nats", "syslog", "webhook"}

// chaos runs the suite. It returns the figures also when it fails.
func chaos(ctx context.Context, o *options, logw io.Writer) (*figures, error) {
	began := time.Now()
	fig := &figures{Seed: o.seed, Duration: o.duration, Rate: o.rate, Streams: o.sites * o.sensors * len(streams),
		UpstreamFaults: map[string]int{}}
	defer func() { fig.Wall = time.Since(began) }()
	// The chaos goroutines log concurrently; logw (a bytes.Buffer in the
	// test) is not safe for that.
	var logMu sync.Mutex
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, "mdchaos [%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}
	logf("seed %d", o.seed)

	dir, err := os.MkdirTemp("", "mdchaos-")
	if err != nil {
		return fig, err
	}
	failed := true
	defer func() {
		if o.keep || failed {
			fig.Dir = dir
		} else {
			_ = os.RemoveAll(dir)
		}
	}()

	bin := o.bridgeBin
	if bin == "" {
		logf("building ./cmd/mdbridge")
		if err = harness.GoBuild(ctx, filepath.Join(dir, "bin"), "./cmd/mdbridge"); err != nil {
			return fig, err
		}
		bin = filepath.Join(dir, "bin", "mdbridge")
	}

	// Receivers.
	nsrv, err := startNATS(ctx, filepath.Join(dir, "nats"))
	if err != nil {
		return fig, err
	}
	defer nsrv.stop()
	hook, err := startWebhook()
	if err != nil {
		return fig, err
	}
	defer hook.close()
	var sl syslogReceiver
	if _, err := os.Stat(rsyslogPath); err == nil {
		sl, err = newRsyslogd(filepath.Join(dir, "rsyslog"))
		if err != nil {
			return fig, err
		}
	} else if o.requireRsyslog {
		return fig, fmt.Errorf("rsyslogd is required (-require-rsyslog) but %s is missing: install the Debian package rsyslog", rsyslogPath)
	} else {
		if sl, err = newTCPSyslog(filepath.Join(dir, "syslog")); err != nil {
			return fig, err
		}
		logf("rsyslogd is not installed (%s): using the in-process TCP syslog receiver instead", rsyslogPath)
	}
	fig.Syslog = sl.kind()
	if err := sl.start(); err != nil {
		return fig, err
	}
	defer func() { _ = sl.stop() }()

	// Upstream.
	seedRNG := rand.New(rand.NewPCG(o.seed, 0x6368616f73))
	up, err := startUpstream(int64(seedRNG.Uint64()>>1), o.sites, o.sensors, o.backlog)
	if err != nil {
		return fig, err
	}
	defer up.close()
	logf("upstream %s: %d streams, %d backlog records each; nats %s; syslog %s (%s); webhook %s",
		up.url, fig.Streams, o.backlog, nsrv.url(), sl.addr(), sl.kind(), hook.url())

	// The bridge.
	filePath := filepath.Join(dir, "out", "events.jsonl")
	cfgPath := filepath.Join(dir, "mdbridge.yaml")
	if err := os.WriteFile(cfgPath, bridgeConfig(up, filepath.Join(dir, "state", "mdbridge.db"), filePath,
		nsrv.url(), sl.addr(), hook.url()), 0o600); err != nil {
		return fig, err
	}
	br := &bridge{bin: bin, cfg: cfgPath, log: filepath.Join(dir, "bridge.log")}
	if err := br.start(); err != nil {
		return fig, err
	}
	defer br.kill()
	up.startLive(o.rate)
	logf("bridge started, live records at %g/s; %d kills and %d windows of each fault over %v", o.rate, o.kills, o.windows, o.duration)

	// The chaos.
	cctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards fig's counters and driverErr
	var driverErr error
	setErr := func(err error) {
		mu.Lock()
		if driverErr == nil {
			driverErr = err
		}
		mu.Unlock()
		cancel()
	}
	drive := func(name string, n int, minLen, maxLen time.Duration, act func(rng *rand.Rand, d time.Duration) error) {
		rng := rand.New(rand.NewPCG(seedRNG.Uint64(), seedRNG.Uint64()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, at := range schedule(rng, o.duration, n) {
				if !sleepUntil(cctx, began.Add(at)) {
					return
				}
				d := minLen + time.Duration(rng.Int64N(int64(maxLen-minLen)+1))
				if err := act(rng, d); err != nil {
					setErr(fmt.Errorf("%s: %w", name, err))
					return
				}
			}
		}()
	}
	// The windows are short enough that every kind ends before the next
	// one of its kind, and the nats sink's duplicate window is not reached.
	winMax := min(20*time.Second, o.duration/time.Duration(2*o.windows))
	winMin := min(2*time.Second, winMax/2)
	drive("bridge kill", o.kills, 0, 2*time.Second, func(_ *rand.Rand, down time.Duration) error {
		if err := br.sigkill(); err != nil {
			return err
		}
		mu.Lock()
		fig.Kills++
		k := fig.Kills
		mu.Unlock()
		logf("kill %d: SIGKILL the bridge, restart in %v", k, down.Round(time.Millisecond))
		sleepUntil(ctx, time.Now().Add(down))
		return br.start()
	})
	drive("nats restart", o.windows, winMin, winMax, func(_ *rand.Rand, down time.Duration) error {
		logf("nats-server down for %v", down.Round(time.Millisecond))
		nsrv.stop()
		sleepUntil(ctx, time.Now().Add(down))
		if err := nsrv.start(); err != nil {
			return err
		}
		mu.Lock()
		fig.NATSRestarts++
		mu.Unlock()
		return nil
	})
	drive("rsyslog stop", o.windows, winMin, winMax, func(_ *rand.Rand, down time.Duration) error {
		logf("rsyslog stopped for %v", down.Round(time.Millisecond))
		if err := sl.stop(); err != nil {
			return err
		}
		sleepUntil(ctx, time.Now().Add(down))
		if err := sl.start(); err != nil {
			return err
		}
		mu.Lock()
		fig.RsyslogStops++
		mu.Unlock()
		return nil
	})
	drive("webhook 503", o.windows, winMin, winMax, func(_ *rand.Rand, d time.Duration) error {
		logf("webhook answers 503 for %v", d.Round(time.Millisecond))
		hook.failing.Store(true)
		sleepUntil(ctx, time.Now().Add(d))
		hook.failing.Store(false)
		mu.Lock()
		fig.Webhook503++
		mu.Unlock()
		return nil
	})
	drive("upstream fault", o.windows, winMin, winMax, func(rng *rand.Rand, d time.Duration) error {
		kind := up.fail(rng)
		logf("upstream fault %q for %v", kind, d.Round(time.Millisecond))
		sleepUntil(ctx, time.Now().Add(d))
		up.heal()
		mu.Lock()
		fig.UpstreamFaults[kind]++
		mu.Unlock()
		return nil
	})
	// Watch the bridge: a process that ends without being killed is a
	// failure of its own.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-cctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			if err := br.exitedByItself(); err != nil {
				setErr(err)
				return
			}
		}
	}()
	// Meanwhile read the file sink's output as it grows, since a line's
	// arrival is when it is read, and say how far each sink is.
	file := &tailer{path: filePath, parse: parseFileLine}
	slog := &tailer{path: sl.out(), parse: parseSyslogLine}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	nextReport := time.Now().Add(30 * time.Second)
	for cctx.Err() == nil {
		select {
		case <-cctx.Done():
		case <-tick.C:
		}
		if err := file.update(); err != nil {
			setErr(fmt.Errorf("read the file sink's output: %w", err))
		}
		if err := slog.update(); err != nil {
			setErr(fmt.Errorf("read the syslog receiver's output: %w", err))
		}
		if time.Now().After(nextReport) {
			nextReport = nextReport.Add(30 * time.Second)
			logf("events so far: file %d, syslog %d, webhook %d", len(file.got), len(slog.got), len(hook.deliveries()))
		}
	}
	wg.Wait()
	if driverErr != nil {
		return fig, fmt.Errorf("%w; the end of the bridge log:\n%s", driverErr, harness.Tail(br.log, 3000))
	}
	if ctx.Err() != nil {
		return fig, errors.New("interrupted")
	}

	// Heal and settle.
	up.stopLive()
	up.heal()
	hook.failing.Store(false)
	fig.Webhook503Reqs = hook.refused.Load()
	if err := br.ensureRunning(); err != nil {
		return fig, err
	}
	recs, note := up.records()
	fig.Note = note
	logf("chaos over: %d kills, %d nats restarts, %d rsyslog restarts, %d webhook 503 windows, %d upstream fault windows; %d records upstream; waiting for the sinks",
		fig.Kills, fig.NATSRestarts, fig.RsyslogStops, fig.Webhook503, fig.upstreamWindows(), len(recs))
	chaosEnd := time.Now()
	var js *jsContents
	got := map[string][]delivery{}
	for deadline := time.Now().Add(o.settle); ; {
		if err := file.update(); err != nil {
			return fig, fmt.Errorf("read the file sink's output: %w", err)
		}
		if err := slog.update(); err != nil {
			return fig, fmt.Errorf("read the syslog receiver's output: %w", err)
		}
		got["file"], got["syslog"], got["webhook"] = file.got, slog.got, hook.deliveries()
		done := complete(recs, got["file"]) && complete(recs, got["syslog"]) && complete(recs, got["webhook"])
		if done {
			if js, err = nsrv.readStream(ctx); err != nil {
				return fig, err
			}
			got["nats"] = js.msgs
			done = complete(recs, got["nats"])
		}
		if done {
			fig.Settle = time.Since(chaosEnd)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if js == nil {
				if js, err = nsrv.readStream(ctx); err != nil {
					return fig, err
				}
				got["nats"] = js.msgs
			}
			fig.Settle, fig.GaveUp = time.Since(chaosEnd), true
			logf("gave up waiting after %v", o.settle)
			break
		}
		if err := br.exitedByItself(); err != nil {
			return fig, fmt.Errorf("%w; the end of the bridge log:\n%s", err, harness.Tail(br.log, 3000))
		}
		time.Sleep(time.Second)
	}
	fig.BridgeExit = br.stop()
	// Late copies (a batch re-sent after the last read) count as duplicates.
	_ = file.update()
	_ = slog.update()
	got["file"], got["syslog"], got["webhook"] = file.got, slog.got, hook.deliveries()
	if js2, err := nsrv.readStream(context.Background()); err == nil {
		js = js2
		got["nats"] = js.msgs
	}
	fig.JSMessages, fig.JSBadHeader = js.streamMsgs, js.badHeader
	fig.Check = check(recs, sinkNames, got)
	if n, body := hook.rejected(); n > 0 {
		logf("webhook: %d requests whose body was not a JSON array of events (answered 400), e.g. %s", n, body)
	}
	for _, t := range []*tailer{file, slog} {
		if t.nBad > 0 {
			logf("%s: %d lines that are not events, e.g. %s", t.path, t.nBad, t.bad[0])
		}
	}
	if !fig.ok() {
		return fig, fmt.Errorf("records lost or JetStream duplicates (seed %d); the work directory is kept", o.seed)
	}
	if fig.BridgeExit != 0 {
		return fig, fmt.Errorf("the bridge exited with %d after SIGTERM; the end of its log:\n%s", fig.BridgeExit, harness.Tail(br.log, 3000))
	}
	failed = false
	return fig, nil
}

// schedule returns n instants within d, one at random in each of n equal
// slots of the first 90% of d, so the last window can end before d.
func schedule(rng *rand.Rand, d time.Duration, n int) []time.Duration {
	if n == 0 {
		return nil
	}
	slot := d * 9 / 10 / time.Duration(n)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i)*slot + slot/5 + time.Duration(rng.Int64N(int64(slot*3/5)+1))
	}
	return out
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// bridgeConfig renders the bridge's configuration: the upstream with every
// site and sensor listed, and all four sinks.
func bridgeConfig(up *upstream, statePath, filePath, natsURL, syslogAddr, hookURL string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `state:
  path: %q
  max_bytes: 8GiB    # no dead-lettering while a sink is down
admin:
  listen: ""
log:
  level: info
  format: json
sources:
  chaos:
    type: otsecurity
    url: %q
    token: %q
    interval: 1s
    timeout: 3s
    lookback: 10s      # the fake's late records are at most 5s late
    page_limit: 200
    max_page_limit: 20000
    streams: [%s]
    sites:
`, statePath, up.url, upstreamToken, strings.Join(streams, ", "))
	for _, s := range up.sites {
		for _, sensor := range s.SensorIPs {
			fmt.Fprintf(&b, "      - { site_ip: %q, sensor_ip: %q }\n", s.SiteIP, sensor)
		}
	}
	fmt.Fprintf(&b, `sinks:
  file:
    type: file
    path: %q
    sync: batch
    max_bytes: 1TiB    # one file, never rotated
  nats:
    type: nats
    url: %q
    jetstream: true    # the stream %s (mdbridge.>) exists already
  syslog:
    type: syslog
    address: "tcp://%s"
    protocol: rfc5424
    framing: octet_counting
    format: json
    max_message_bytes: 60000
  webhook:
    type: webhook
    url: %q
    batch: 500
`, filePath, natsURL, streamName, syslogAddr, hookURL)
	return []byte(b.String())
}

// bridge is the mdbridge process, started again after each kill, all runs
// appending to one log file.
type bridge struct {
	bin, cfg, log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	killed bool // the current process was killed on purpose
}

func (b *bridge) start() error {
	lf, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(b.bin, "run", "-c", b.cfg)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = harness.ChildAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mdbridge: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.mu.Lock()
	b.cmd, b.done, b.killed = cmd, done, false
	b.mu.Unlock()
	return nil
}

// sigkill kills the running bridge with SIGKILL and waits for it.
func (b *bridge) sigkill() error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.killed = true
	b.mu.Unlock()
	if cmd == nil {
		return errors.New("no bridge process to kill")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL mdbridge: %w", err)
	}
	<-done
	return nil
}

// exitedByItself returns an error when the bridge process ended without
// being killed by the driver.
func (b *bridge) exitedByItself() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.killed {
		return nil
	}
	select {
	case <-b.done:
		return fmt.Errorf("mdbridge ended by itself: %v", b.cmd.ProcessState)
	default:
		return nil
	}
}

// ensureRunning starts the bridge if the last kill's restart was cut short.
func (b *bridge) ensureRunning() error {
	b.mu.Lock()
	killed := b.killed
	b.mu.Unlock()
	if killed {
		return b.start()
	}
	return nil
}

// stop sends SIGTERM and returns the exit code (-1 when it had to be killed).
func (b *bridge) stop() int {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.killed = true
	b.mu.Unlock()
	if cmd == nil {
		return -1
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return -1
	}
}

// kill ends whatever process is left, at the end of a failed run.
func (b *bridge) kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.killed = true
	b.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}
