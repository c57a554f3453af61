package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/state"
)

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", os.Getenv("MDBRIDGE_CONFIG"), "config file (or MDBRIDGE_CONFIG)")
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile at exit to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("run: a config file is required (-c FILE)")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}()
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("config %s:\n%w", *path, err)
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return runBridge(ctx, cfg, log, nil)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "mdbridge validate: a config file is required (-c FILE)")
		return 2
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", *path)
		for _, e := range flatten(err) {
			fmt.Fprintf(stderr, "  - %v\n", e)
		}
		return 1
	}
	out, err := cfg.Redacted()
	if err != nil {
		fmt.Fprintln(stderr, "mdbridge validate:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

// flatten lists the leaves of joined errors.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func newLogger(c configs.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if c.Format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

// runBridge opens the state, builds every source and sink from the config,
// and runs until ctx ends. onStart, when set, gets the runner once it runs.
func runBridge(ctx context.Context, cfg *configs.Config, log *zap.Logger, onStart func(*pipeline.Runner)) error {
	store, err := state.Open(cfg.State.Path, state.Options{LockTimeout: cfg.State.LockTimeout})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing state", zap.Error(err))
		}
	}()
	deliveries := newDeliveryHistogram()
	r := pipeline.NewRunner(store, log, pipeline.Options{
		Retention:       cfg.State.Retention,
		MaxBytes:        uint64(cfg.State.MaxBytes),
		DeadLetterDir:   deadLetterDir(cfg),
		ObserveDelivery: deliveries.observe,
	})
	now := time.Now()
	// Sources that hold a session end it (MDSS logout) once the runner has
	// stopped polling, or when the bridge fails to start.
	var closers []func() error
	defer func() {
		for _, c := range closers {
			if err := c(); err != nil {
				log.Warn("closing source", zap.Error(err))
			}
		}
	}()
	mdssPollers := map[string]*mdss.Poller{}
	var receivers []*mdss.Receiver
	for _, name := range sortedKeys(cfg.Sources) {
		sc := cfg.Sources[name]
		switch {
		case sc.OTSecurity != nil:
			c := sc.OTSecurity
			p, err := otsec.New(name, *c, log)
			if err != nil {
				return err
			}
			start, _ := otsec.ParseStart(c.Start, now)
			r.AddSource(p, pipeline.SourceOptions{Interval: c.Interval, Lookback: c.Lookback, Start: start, DiscoveryInterval: c.DiscoveryInterval,
				Heartbeat: c.Heartbeat, Product: pipeline.ProductOTSecurity, URL: p.PublicURL()})
		case sc.StorageSecurity != nil:
			c := sc.StorageSecurity
			p, err := mdss.New(name, *c, log)
			if err != nil {
				return err
			}
			closers = append(closers, p.Close)
			mdssPollers[name] = p
			start, _ := pipeline.ParseStart(c.Start, now)
			r.AddSource(p, pipeline.SourceOptions{Interval: c.Interval, Lookback: c.Lookback, Start: start,
				Heartbeat: c.Heartbeat, Product: pipeline.ProductStorageSec, URL: publicURL(c.URL)})
		case sc.MDSSWebhook != nil:
			// Built below, once the source it joins exists.
		default:
			return fmt.Errorf("sources.%s: type %q is not supported by this build", name, sc.Type)
		}
	}
	for _, name := range sortedKeys(cfg.Sources) {
		c := cfg.Sources[name].MDSSWebhook
		if c == nil {
			continue
		}
		var norm mdss.Normalizer
		if c.Source != "" {
			p, ok := mdssPollers[c.Source]
			if !ok {
				return fmt.Errorf("sources.%s.source: %q is not a source of type %s", name, c.Source, mdss.Type)
			}
			norm = p
		}
		rc := mdss.NewReceiver(name, *c, norm, log)
		if c.Source == "" {
			// Streams of its own, which only ever hold pushed records.
			r.AddSource(rc, pipeline.SourceOptions{Interval: time.Minute})
		}
		receivers = append(receivers, rc)
	}
	var sinks []pipeline.Sink
	defer func() {
		// Sinks not handed to a running runner are closed here.
		for _, s := range sinks {
			_ = s.Close()
		}
	}()
	for _, name := range sortedKeys(cfg.Sinks) {
		s, opts, err := buildSink(name, cfg.Sinks[name], log)
		if err != nil {
			return err
		}
		sinks = append(sinks, s)
		r.AddSink(name, s, opts)
	}
	admin, err := startAdmin(cfg.Admin.Listen, log, deliveries)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	defer admin.close()
	admin.setRunner(r, store)
	log.Info("mdbridge starting", zap.String("version", version), zap.String("state", cfg.State.Path),
		zap.Int("sources", len(cfg.Sources)), zap.Int("sinks", len(cfg.Sinks)))
	if onStart != nil {
		onStart(r)
	}
	// Receivers listen before the runner starts: a notification that
	// arrives first waits (bounded) for its stream. They stop with ctx and
	// are waited for before the state closes.
	var served []<-chan struct{}
	rctx, stopReceivers := context.WithCancel(ctx)
	defer func() {
		stopReceivers()
		for _, d := range served {
			<-d
		}
	}()
	for _, rc := range receivers {
		done, err := rc.Serve(rctx, r)
		if err != nil {
			return err
		}
		served = append(served, done)
	}
	sinks = nil // from here the runner closes them
	err = r.Run(ctx)
	log.Info("mdbridge stopped")
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// publicURL is a source URL as heartbeat events may show it: without user
// information, query or fragment.
func publicURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
