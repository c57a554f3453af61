package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
)

// knownKinds are the streams -kinds may name, and its default: the
// time-ordered alert streams and the device inventory (a set stream since
// issue 4: every device it has seen stays in the bridge's memory).
var knownKinds = []string{"device_alerts", "conn_alerts", "suricata_alerts", "devices"}

const token = "mdload-token"

type options struct {
	streams       int
	perStream     int
	rate          float64
	duration      time.Duration
	backlog       int
	keep          bool
	jsonOut       bool
	bridgeBin     string
	simBin        string
	timeout       time.Duration
	countRequests bool
	cpuProfile    string
	lookback      time.Duration
	sinks         []string
	kinds         []string
	compete       float64
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("mdload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, "usage: mdload [flags]\n\nBacklog mode (default): drain streams x per-stream records and report throughput.\n"+
			"Rate mode (-rate R -duration D): generate R records/s for D and report the bridge's lag.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.streams, "streams", 100, "streams: sites x sensors x the number of -kinds (a multiple of it)")
	kindList := fs.String("kinds", strings.Join(knownKinds, ","), "comma-separated stream kinds per sensor: "+strings.Join(knownKinds, ", ")+
		" (devices is the device inventory, compared as a whole set; the alert kinds alone give an alerts-only load, "+
		"e.g. -kinds device_alerts,suricata_alerts -streams 100 is 50 sensors)")
	fs.IntVar(&o.perStream, "per-stream", 10000, "backlog mode: records per stream")
	fs.Float64Var(&o.rate, "rate", 0, "rate mode: records per second generated over all streams (needs -duration)")
	fs.DurationVar(&o.duration, "duration", 0, "rate mode: how long to run the bridge")
	fs.IntVar(&o.backlog, "backlog", 100, "rate mode: records per stream present at start")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (config, output, state, logs)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as a JSON object on stdout (the summary goes to stderr)")
	fs.StringVar(&o.bridgeBin, "mdbridge", "", "mdbridge binary to run (default: build ./cmd/mdbridge)")
	fs.StringVar(&o.simBin, "mdsim", "", "mdsim binary to run (default: build ./cmd/mdsim)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "backlog mode: give up after this long")
	fs.BoolVar(&o.countRequests, "count-requests", false,
		"put a counting reverse proxy (in mdload, on loopback) between bridge and simulator to report requests, "+
			"response bytes and records served; it shares the CPUs with the bridge")
	fs.DurationVar(&o.lookback, "lookback", 10*time.Second,
		"the bridge's lookback: each poll re-reads this far behind the watermark, so it costs rate x lookback records per poll (the simulator's late records are at most 5s late)")
	fs.Float64Var(&o.compete, "compete", 0, "busy-loop this fraction of one CPU (0 to 1) in mdload while the bridge runs: a stand-in "+
		"for a busier or slower machine, to see how much headroom the bridge has (its CPU is counted in mdload's)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "pass -cpuprofile FILE to the bridge (a CPU profile of its whole run)")
	sinkList := fs.String("sinks", "file", "comma-separated sinks the bridge delivers to, each with its receiver inside mdload on loopback: "+
		"file, nats (embedded nats-server with a JetStream file stream), syslog (TCP, octet counting), webhook (HTTP); "+
		"events count as delivered when every sink has them")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.sinks = strings.Split(*sinkList, ",")
	o.kinds = strings.Split(*kindList, ",")
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	for _, k := range o.kinds {
		if !slices.Contains(knownKinds, k) {
			errs = append(errs, fmt.Errorf("-kinds: unknown stream kind %q (known: %s)", k, strings.Join(knownKinds, ", ")))
		}
	}
	if _, _, err := layout(o.streams, len(o.kinds)); err != nil {
		errs = append(errs, err)
	}
	if o.rate < 0 || o.duration < 0 {
		errs = append(errs, errors.New("-rate and -duration must not be negative"))
	}
	if (o.rate > 0) != (o.duration > 0) {
		errs = append(errs, errors.New("-rate and -duration go together"))
	}
	if o.rate == 0 && o.perStream < 1 {
		errs = append(errs, errors.New("-per-stream must be at least 1"))
	}
	if o.backlog < 0 {
		errs = append(errs, errors.New("-backlog must not be negative"))
	}
	if o.compete < 0 || o.compete > 1 {
		errs = append(errs, fmt.Errorf("-compete %g: want a fraction of one CPU, 0 to 1", o.compete))
	}
	if o.timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be positive"))
	}
	for _, n := range o.sinks {
		if !slices.Contains(sinkNames, n) {
			errs = append(errs, fmt.Errorf("-sinks: unknown sink %q (known: %s)", n, strings.Join(sinkNames, ", ")))
		}
	}
	return o, errors.Join(errs...)
}

// compete busy-loops frac of one CPU on a thread of its own, in slices of
// 50 ms, until the returned function is called.
func compete(frac float64) (stop func()) {
	if frac <= 0 {
		return func() {}
	}
	const period = 50 * time.Millisecond
	busy := time.Duration(frac * float64(period))
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		x := uint64(1)
		for {
			select {
			case <-quit:
				competeSink.Store(x)
				return
			default:
			}
			end := time.Now().Add(busy)
			for time.Now().Before(end) {
				for i := 0; i < 1000; i++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			time.Sleep(period - busy)
		}
	}()
	return func() { close(quit); <-done }
}

// competeSink keeps compete's arithmetic from being optimised away.
var competeSink atomic.Uint64

// layout splits streams into sites x sensors x kinds, as square as
// possible, within mdsim's limit of 84 sites and 84 sensors per site.
func layout(streams, kinds int) (sites, sensors int, err error) {
	if kinds < 1 || streams < kinds || streams%kinds != 0 {
		return 0, 0, fmt.Errorf("-streams %d: want a positive multiple of %d (sites x sensors x %d stream kinds)", streams, kinds, kinds)
	}
	n := streams / kinds
	best := 0
	for d := 1; d*d <= n; d++ {
		if n%d == 0 && n/d <= 84 {
			best = d
		}
	}
	if best == 0 {
		return 0, 0, fmt.Errorf("-streams %d: %d sensors cannot be laid out as sites x sensors with at most 84 of each", streams, n)
	}
	return best, n / best, nil
}

// result is what one measurement found. Fields that could not be measured
// are left out of the JSON.
type result struct {
	Mode           string           `json:"mode"` // backlog or rate
	Streams        int              `json:"streams"`
	Kinds          []string         `json:"kinds"`
	Sites          int              `json:"sites"`
	SensorsPerSite int              `json:"sensors_per_site"`
	PerStream      int              `json:"per_stream,omitempty"`
	Backlog        int              `json:"backlog_per_stream"`
	Target         int64            `json:"target_events,omitempty"`
	Events         int64            `json:"events"`
	Sinks          []string         `json:"sinks"`
	PerSink        map[string]int64 `json:"per_sink"`
	Complete       bool             `json:"complete"`
	FirstEventSec  float64          `json:"first_event_seconds"`
	WallSec        float64          `json:"wall_seconds"`
	EventsPerSec   float64          `json:"events_per_second"`
	CPUUserMS      int64            `json:"cpu_user_ms"`
	CPUSysMS       int64            `json:"cpu_sys_ms"`
	CPUMSPer1000   float64          `json:"cpu_ms_per_1000_events"`
	PeakRSSMiB     float64          `json:"peak_rss_mib"`
	PeakAnonMiB    float64          `json:"peak_rss_anon_mib,omitempty"` // sampled from /proc every 100 ms
	PeakFileMiB    float64          `json:"peak_rss_file_mib,omitempty"` // mapped file pages (bbolt), same sampling
	OutputBytes    int64            `json:"output_bytes"`
	BytesPerEvent  float64          `json:"output_bytes_per_event"`
	StateBytes     int64            `json:"state_file_bytes"`
	DeadLettered   int64            `json:"dead_lettered"`
	BridgeExit     int              `json:"bridge_exit_code"`
	BridgeStopSec  float64          `json:"bridge_stop_seconds"`
	LogWarnings    int              `json:"bridge_log_warnings"`
	LogErrors      int              `json:"bridge_log_errors"`
	LogSample      string           `json:"bridge_log_sample,omitempty"`
	SimFillSec     float64          `json:"sim_fill_seconds"`
	SimCPUMS       int64            `json:"sim_cpu_ms,omitempty"` // over its whole life, backlog fill included
	SimPeakRSSMiB  float64          `json:"sim_peak_rss_mib,omitempty"`
	SelfCPUMS      int64            `json:"mdload_cpu_ms"`
	Requests       *int64           `json:"requests,omitempty"`
	ResponseBytes  *int64           `json:"response_bytes,omitempty"`
	RecordsServed  *int64           `json:"records_served,omitempty"`
	Rate           float64          `json:"rate,omitempty"`
	DurationSec    float64          `json:"duration_seconds,omitempty"`
	Expected       int64            `json:"expected_events,omitempty"`
	WarmupSec      float64          `json:"warmup_seconds,omitempty"`
	MaxLagSec      float64          `json:"max_lag_seconds,omitempty"`
	MedianLagSec   float64          `json:"median_lag_seconds,omitempty"`
	P90LagSec      float64          `json:"p90_lag_seconds,omitempty"`
	FinalLagSec    float64          `json:"final_lag_seconds,omitempty"`
	Samples        int              `json:"lag_samples,omitempty"`
	CPUs           int              `json:"cpus"`
	Compete        float64          `json:"compete_cpu,omitempty"`
	Dir            string           `json:"dir,omitempty"`
	Interrupted    bool             `json:"interrupted,omitempty"`
}

func run(ctx context.Context, args []string) int {
	o, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdload:", err)
		return 2
	}
	res, err := measure(ctx, o, os.Stderr)
	if res != nil {
		sum := os.Stdout
		if o.jsonOut {
			sum = os.Stderr
		}
		printSummary(sum, res)
		if o.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(res)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdload:", err)
		return 1
	}
	return 0
}

// measure runs one measurement. It returns what it measured also when it
// stops early (interrupt, timeout, a process that died), with the error.
func measure(ctx context.Context, o *options, logw io.Writer) (*result, error) {
	sites, sensors, _ := layout(o.streams, len(o.kinds))
	res := &result{Mode: "backlog", Streams: o.streams, Kinds: o.kinds, Sites: sites, SensorsPerSite: sensors, CPUs: runtime.NumCPU()}
	backlog, rate := o.perStream, 0.0
	if o.rate > 0 {
		res.Mode, backlog, rate = "rate", o.backlog, o.rate
		res.Rate, res.DurationSec = o.rate, o.duration.Seconds()
	} else {
		res.PerStream = o.perStream
		res.Target = int64(o.streams) * int64(o.perStream)
	}
	res.Backlog = backlog

	dir, err := os.MkdirTemp("", "mdload-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.keep {
			res.Dir = dir
			fmt.Fprintf(logw, "mdload: kept %s\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "mdload: "+format+"\n", a...) }

	bridgeBin, simBin := o.bridgeBin, o.simBin
	if bridgeBin == "" || simBin == "" {
		logf("building ./cmd/mdbridge and ./cmd/mdsim")
		bin := filepath.Join(dir, "bin")
		if err := harness.GoBuild(ctx, bin, "./cmd/mdbridge", "./cmd/mdsim"); err != nil {
			return nil, err
		}
		if bridgeBin == "" {
			bridgeBin = filepath.Join(bin, "mdbridge")
		}
		if simBin == "" {
			simBin = filepath.Join(bin, "mdsim")
		}
	}

	// The simulator.
	logf("starting mdsim: %d sites x %d sensors x %d streams, backlog %d per stream, rate %g/s",
		sites, sensors, len(o.kinds), backlog, rate)
	simOut := newWatchWriter(servingLine)
	sim, err := startProc("mdsim", simBin, []string{
		"-listen", "127.0.0.1:0", "-token", token, "-sites", strconv.Itoa(sites), "-sensors", strconv.Itoa(sensors),
		"-backlog", strconv.Itoa(backlog), "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"-streams", strings.Join(o.kinds, ","), "-max-requests", "1000", "-seed", "1",
	}, simOut, simOut)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := sim.stop(10 * time.Second); err != nil && !isSignalExit(err) {
			logf("mdsim: %v", err)
		}
		if ru := sim.rusage(); ru != nil {
			res.SimCPUMS = cpuMS(ru.Utime) + cpuMS(ru.Stime)
			res.SimPeakRSSMiB = maxRSSMiB(ru)
		}
		res.SelfCPUMS = selfCPUMS()
	}()
	var m []string
	select {
	case m = <-simOut.found:
	case <-sim.done:
		return res, fmt.Errorf("mdsim ended before serving (%v):\n%s", sim.waitErr, simOut.String())
	case <-ctx.Done():
		res.Interrupted = true
		return res, errors.New("interrupted")
	}
	genStart := time.Now() // mdsim starts its generator just before it prints that line
	simURL := m[1]
	if d, err := time.ParseDuration(m[2]); err == nil {
		res.SimFillSec = d.Seconds()
	}
	if err := waitReady(ctx, simURL, sim); err != nil {
		return res, err
	}
	logf("mdsim serving %s (backlog filled in %s)", simURL, m[2])

	upstream := simURL
	var cnt *counter
	if o.countRequests {
		cnt = &counter{}
		purl, closeProxy, err := startProxy(simURL, cnt)
		if err != nil {
			return res, err
		}
		defer closeProxy()
		upstream = purl
		logf("counting proxy on %s", purl)
	}

	// The bridge.
	maxPage := 10000
	if res.Mode == "backlog" {
		maxPage = max(o.perStream, 200)
	}
	cfgPath := filepath.Join(dir, "mdbridge.yaml")
	statePath := filepath.Join(dir, "state", "mdbridge.db")
	recv, err := startReceivers(ctx, o.sinks, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, r := range recv {
			r.close()
		}
	}()
	var sinkYAML strings.Builder
	for _, r := range recv {
		sinkYAML.WriteString(r.yaml())
	}
	res.Sinks = o.sinks
	if err := os.WriteFile(cfgPath, bridgeConfig(upstream, statePath, sinkYAML.String(), o.kinds, sites, sensors, maxPage, o.lookback), 0o600); err != nil {
		return res, err
	}
	logPath := filepath.Join(dir, "bridge.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	defer lf.Close()
	bridgeStart := time.Now()
	bargs := []string{"run", "-c", cfgPath}
	if o.cpuProfile != "" {
		bargs = append(bargs, "-cpuprofile", o.cpuProfile)
	}
	bridge, err := startProc("mdbridge", bridgeBin, bargs, lf, lf)
	if err != nil {
		return res, err
	}
	res.Compete = o.compete
	defer compete(o.compete)()
	stopped := false
	stopBridge := func() {
		if stopped {
			return
		}
		stopped = true
		t0 := time.Now()
		err := bridge.stop(30 * time.Second)
		res.BridgeStopSec = time.Since(t0).Seconds()
		if err != nil && !isSignalExit(err) {
			logf("mdbridge: %v", err)
		}
		res.BridgeExit = bridge.cmd.ProcessState.ExitCode()
		if ru := bridge.rusage(); ru != nil {
			res.CPUUserMS, res.CPUSysMS = cpuMS(ru.Utime), cpuMS(ru.Stime)
			res.PeakRSSMiB = maxRSSMiB(ru)
		}
	}
	defer stopBridge()
	logf("mdbridge started (log %s)", logPath)

	// The events delivered are those every sink has.
	counts := make([]int64, len(recv))
	delivered := func() (int64, error) {
		n := int64(-1)
		for i, r := range recv {
			c, err := r.count()
			if err != nil {
				return 0, fmt.Errorf("%s receiver: %w", r.name(), err)
			}
			counts[i] = c
			if n < 0 || c < n {
				n = c
			}
		}
		return n, nil
	}
	var firstEvent, lastEvent time.Time
	var runErr error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastProgress := bridgeStart
	var lastLines int64
	warm := res.Mode == "rate" && backlog == 0
	var lags []float64 // the one-second lag samples
	warmFrom := 0      // lags[warmFrom:] came after warm-up
	nextSample := bridgeStart.Add(time.Second)
	backlogTotal := int64(o.streams) * int64(backlog)
loop:
	for {
		select {
		case <-ctx.Done():
			res.Interrupted = true
			runErr = errors.New("interrupted")
			break loop
		case <-bridge.done:
			runErr = fmt.Errorf("mdbridge ended by itself (%v); the end of its log:\n%s", bridge.waitErr, harness.Tail(logPath, 3000))
			break loop
		case <-tick.C:
		}
		now := time.Now()
		if anon, file, ok := procMem(bridge.cmd.Process.Pid); ok {
			res.PeakAnonMiB = max(res.PeakAnonMiB, float64(anon)/(1<<20))
			res.PeakFileMiB = max(res.PeakFileMiB, float64(file)/(1<<20))
		}
		n, err := delivered()
		if err != nil {
			runErr = err
			break loop
		}
		if n > 0 && firstEvent.IsZero() {
			firstEvent = now
		}
		if n > lastLines {
			lastEvent = now
		}
		if now.Sub(lastProgress) >= 5*time.Second {
			logf("[%5.0fs] %d events (%.0f/s over the last %.0fs)", now.Sub(bridgeStart).Seconds(), n,
				float64(n-lastLines)/now.Sub(lastProgress).Seconds(), now.Sub(lastProgress).Seconds())
			lastProgress, lastLines = now, n
		}
		res.Events = n
		if res.Mode == "backlog" {
			if n >= res.Target {
				res.Complete = true
				break loop
			}
			if now.Sub(bridgeStart) > o.timeout {
				runErr = fmt.Errorf("timed out after %v with %d of %d events", o.timeout, n, res.Target)
				break loop
			}
			continue
		}
		// Rate mode: one lag sample a second.
		if now.Before(nextSample) {
			continue
		}
		nextSample = nextSample.Add(time.Second)
		expected := backlogTotal + int64(rate*now.Sub(genStart).Seconds())
		lag := max(0, float64(expected-n)/rate)
		res.Samples++
		lags = append(lags, lag)
		res.Expected = expected
		res.FinalLagSec = lag
		if !warm && n >= backlogTotal {
			warm = true
			res.WarmupSec = now.Sub(bridgeStart).Seconds()
			warmFrom = len(lags) - 1
		}
		if warm && lag > res.MaxLagSec {
			res.MaxLagSec = lag
		}
		if now.Sub(bridgeStart) >= o.duration {
			res.Complete = true
			break loop
		}
	}
	if !warm && res.Mode == "rate" {
		// Never caught up with the backlog: the lag over every sample.
		res.MaxLagSec = res.FinalLagSec
		warmFrom = 0
	}
	res.MedianLagSec, res.P90LagSec = percentile(lags[warmFrom:], 50), percentile(lags[warmFrom:], 90)
	end := lastEvent
	if res.Mode == "rate" {
		end = time.Now()
	}
	if !firstEvent.IsZero() {
		res.FirstEventSec = firstEvent.Sub(bridgeStart).Seconds()
	}
	if !end.IsZero() {
		res.WallSec = end.Sub(bridgeStart).Seconds()
		if res.WallSec > 0 {
			res.EventsPerSec = float64(res.Events) / res.WallSec
		}
	}
	stopBridge()
	if n, err := delivered(); err == nil && res.Mode == "backlog" {
		res.Events = n // events that arrived between the last sample and the stop
	}
	res.PerSink = map[string]int64{}
	for i, r := range recv {
		res.PerSink[r.name()] = counts[i]
		if fr, ok := r.(*fileReceiver); ok && fr.lc.lines > 0 {
			res.OutputBytes = fr.lc.off
			res.BytesPerEvent = float64(fr.lc.off) / float64(fr.lc.lines)
		}
	}
	if res.Events > 0 {
		res.CPUMSPer1000 = float64(res.CPUUserMS+res.CPUSysMS) / (float64(res.Events) / 1000)
	}
	if st, err := os.Stat(statePath); err == nil {
		res.StateBytes = st.Size()
	}
	res.DeadLettered = countAllLines(filepath.Join(filepath.Dir(statePath), "deadletter"))
	res.LogWarnings, res.LogErrors, res.LogSample = scanLog(logPath)
	if cnt != nil {
		r, b, n := cnt.requests.Load(), cnt.bytes.Load(), cnt.records.Load()
		res.Requests, res.ResponseBytes, res.RecordsServed = &r, &b, &n
	}
	if runErr == nil && res.BridgeExit != 0 {
		runErr = fmt.Errorf("mdbridge exited with %d after SIGTERM; the end of its log:\n%s", res.BridgeExit, harness.Tail(logPath, 3000))
	}
	return res, runErr
}

// servingLine is mdsim's start line: its URL and how long the backlog took.
var servingLine = regexp.MustCompile(`mdsim: serving (https?://\S+) .*\(\d+ records in ([^)]+)\)`)

// bridgeConfig renders the bridge's configuration: a static list of every
// site and sensor, one file sink.
func bridgeConfig(url, statePath, sinkYAML string, kinds []string, sites, sensors, maxPage int, lookback time.Duration) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `state:
  path: %q
  max_bytes: 16GiB   # no dead-lettering while the sink catches up
admin:
  listen: ""
log:
  level: info
  format: json
sources:
  sim:
    type: otsecurity
    url: %q
    token: %q
    interval: 1s
    lookback: %s
    page_limit: 200
    max_page_limit: %d
    streams: [%s]
    sites:
`, statePath, url, token, lookback, maxPage, strings.Join(kinds, ", "))
	for _, s := range simSites(sites, sensors) {
		for _, sensor := range s.sensors {
			fmt.Fprintf(&b, "      - { site_ip: %q, sensor_ip: %q }\n", s.site, sensor)
		}
	}
	b.WriteString("sinks:\n" + sinkYAML)
	return []byte(b.String())
}

type simSite struct {
	site    string
	sensors []string
}

// simSites repeats mdsim's layout: site k (0-based) is 10.40.(172+k).144,
// its sensors 10.40.(172+k).(172+j).
func simSites(n, m int) []simSite {
	out := make([]simSite, n)
	for k := range n {
		out[k].site = fmt.Sprintf("10.40.%d.144", 172+k)
		for j := range m {
			out[k].sensors = append(out[k].sensors, fmt.Sprintf("10.40.%d.%d", 172+k, 172+j))
		}
	}
	return out
}

// waitReady asks the simulator's components endpoint until it answers 200.
func waitReady(ctx context.Context, base string, sim *proc) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/neu-exposure/exposure/v1/managements/components", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mdsim at %s does not answer: %v", base, err)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-sim.done:
			return fmt.Errorf("mdsim ended (%v)", sim.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// proc is a child process; done closes when it has been waited for.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func startProc(name, path string, args []string, stdout, stderr io.Writer) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = harness.ChildAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, waits up to grace, then kills. It returns the wait
// error (nil for exit 0).
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, grace)
	}
}

func (p *proc) rusage() *syscall.Rusage {
	select {
	case <-p.done:
	default:
		return nil
	}
	if p.cmd.ProcessState == nil {
		return nil
	}
	ru, _ := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return ru
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() == syscall.SIGTERM
		}
	}
	return false
}

func cpuMS(tv syscall.Timeval) int64 { return tv.Nano() / 1e6 }

func selfCPUMS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return cpuMS(ru.Utime) + cpuMS(ru.Stime)
}

// watchWriter keeps a child's output and sends the submatches of want the
// first time a line matches.
type watchWriter struct {
	want  *regexp.Regexp
	found chan []string // buffered: gets one value
	mu    sync.Mutex
	buf   bytes.Buffer
	sent  bool
}

func newWatchWriter(want *regexp.Regexp) *watchWriter {
	return &watchWriter{want: want, found: make(chan []string, 1)}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() < 1<<20 {
		w.buf.Write(p)
	}
	if !w.sent {
		if m := w.want.FindStringSubmatch(w.buf.String()); m != nil {
			w.sent = true
			w.found <- m
		}
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// lineCounter counts the lines of a file that only grows, reading each
// byte once. It reads with O_DIRECT where it can (see openDirect): reads
// then start at an aligned offset, and the bytes before lc.off in the
// first block are read again but not counted again.
type lineCounter struct {
	path    string
	f       *os.File
	direct  bool
	off     int64 // bytes counted so far
	lines   int64
	buf     []byte
	release func() // unmaps buf, when it was mapped
}

// countAlign is the alignment of O_DIRECT offsets and lengths.
const countAlign = 4096

func (lc *lineCounter) update() (int64, error) {
	if lc.f == nil {
		f, direct, err := openDirect(lc.path)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		buf, release := alignedBuffer(4 << 20)
		lc.f, lc.buf, lc.release, lc.direct = f, buf, release, direct && release != nil
		if direct && !lc.direct {
			if err := lc.reopenBuffered(); err != nil {
				return 0, err
			}
		}
	}
	for {
		start := lc.off
		if lc.direct {
			start &^= countAlign - 1
		}
		n, err := readOnce(lc.f, lc.buf, start)
		if lc.direct && errors.Is(err, syscall.EINVAL) {
			// Opened with O_DIRECT but its reads refused: read through
			// the page cache instead, from where the count stands.
			if err := lc.reopenBuffered(); err != nil {
				return lc.lines, err
			}
			continue
		}
		if skip := int(lc.off - start); n > skip {
			lc.lines += int64(bytes.Count(lc.buf[skip:n], []byte{'\n'}))
			lc.off = start + int64(n)
		}
		if err != nil {
			return lc.lines, err
		}
		if n < len(lc.buf) {
			return lc.lines, nil
		}
	}
}

// reopenBuffered replaces the O_DIRECT descriptor with an ordinary one.
func (lc *lineCounter) reopenBuffered() error {
	lc.f.Close()
	f, err := os.Open(lc.path)
	if err != nil {
		return err
	}
	lc.f, lc.direct = f, false
	return nil
}

// readOnce is one pread(2): os.File.ReadAt would go on after a short read
// with an unaligned buffer and offset, which O_DIRECT refuses.
func readOnce(f *os.File, b []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Pread(int(fd), b, off)
		return true
	}); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, fmt.Errorf("read %s: %w", f.Name(), rerr)
	}
	return max(n, 0), nil
}

func (lc *lineCounter) close() {
	if lc.f != nil {
		lc.f.Close()
	}
	if lc.release != nil {
		lc.release()
	}
}

// countAllLines counts the lines of every file in dir (0 when it is absent).
func countAllLines(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			n += int64(bytes.Count(data, []byte{'\n'}))
		}
	}
	return n
}

// scanLog counts the bridge's warn and error lines and returns the first few.
func scanLog(path string) (warns, errs int, sample string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, ""
	}
	var shown []string
	for line := range strings.SplitSeq(string(data), "\n") {
		var l struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch l.Level {
		case "warn":
			warns++
		case "error", "dpanic", "panic", "fatal":
			errs++
		default:
			continue
		}
		if len(shown) < 3 {
			shown = append(shown, line)
		}
	}
	return warns, errs, strings.Join(shown, "\n")
}

// percentile is the nearest-rank p-th percentile of samples (0 when there
// are none); samples is sorted in place.
func percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(math.Ceil(p / 100 * float64(len(samples))))
	return samples[min(max(rank, 1), len(samples))-1]
}
