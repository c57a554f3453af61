package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/state"
)

// Options configure a Runner.
type Options struct {
	// Retention keeps delivered events in the journal this long, for replay.
	Retention time.Duration
	// MaxBytes is the journal budget (0: none). Past it, the oldest events
	// that some sink has not delivered move to that sink's dead-letter file.
	MaxBytes uint64
	// DeadLetterDir holds one <sink>.deadletter.jsonl file per sink.
	DeadLetterDir string
	// TrimInterval is how often retention and the budget are applied
	// (default 10s).
	TrimInterval time.Duration
	// StopGrace bounds how long in-flight deliveries may take after a stop
	// is requested (default 10s).
	StopGrace time.Duration
	// MaxConcurrentPolls bounds how many polls run at once across all
	// streams, which bounds the memory held by response bodies and encode
	// buffers (default 2: while one poll waits for its answer or its
	// commit's fsync, the other parses and encodes; measured on a 2-core
	// machine, 71-75k events/s with one and 83-104k with two, for 20 MiB
	// more resident memory; BENCHMARKS.md).
	MaxConcurrentPolls int
	// ObserveDelivery, when set, is called after every Deliver call of
	// every sink, failed ones included, with the sink's name, how long the
	// call took and how many events it was given. It must be fast and safe
	// for concurrent use (metrics).
	ObserveDelivery func(sink string, d time.Duration, events int)
}

// SourceOptions schedule the streams of one Poller.
type SourceOptions struct {
	// Interval between polls of each stream; each wait is jittered by ±10%.
	Interval time.Duration
	// Lookback is how far behind the watermark each poll re-reads, so that
	// records sharing the last timestamp or arriving late are not missed.
	Lookback time.Duration
	// Start is the oldest record time a stream wants on its first run; zero
	// means everything the API returns.
	Start time.Time
	// DiscoveryInterval is how often the poller's stream list is refreshed.
	DiscoveryInterval time.Duration
	// Heartbeat is the period of each stream's bridge.heartbeat event; 0
	// emits none.
	Heartbeat time.Duration
	// Product and URL fill in the source block of heartbeat events (the
	// poller fills in its own events').
	Product, URL string
}

// SinkOptions configure one sink's dispatcher.
type SinkOptions struct {
	// Batch is the most events per delivery (default 1000).
	Batch int
	// BatchBytes is the most event bytes per delivery (default 4 MiB).
	BatchBytes int
	// StartEarliest makes a sink the state file has not seen before start
	// at the oldest retained event instead of the journal's end.
	StartEarliest bool
}

// Runner schedules polls, journals what they return and dispatches the
// journal to every sink.
type Runner struct {
	store *state.Store
	log   *zap.Logger
	opts  Options
	sem   chan struct{}
	bufs  *BufferPool
	dead  *deadLetters

	sources []sourceEntry
	sinks   []*dispatcher

	mu      sync.Mutex
	streams map[string]*streamRunner
	kinds   map[string]uint64

	// phase is runStarting until every sink's dispatcher has loaded its
	// cursor and started, then runReady until Run begins to stop.
	phase atomic.Int32
}

type sourceEntry struct {
	p    Poller
	opts SourceOptions
}

// NewRunner returns a runner over an open store.
func NewRunner(store *state.Store, log *zap.Logger, opts Options) *Runner {
	if opts.TrimInterval <= 0 {
		opts.TrimInterval = 10 * time.Second
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 10 * time.Second
	}
	if opts.MaxConcurrentPolls <= 0 {
		opts.MaxConcurrentPolls = 2
	}
	return &Runner{
		store:   store,
		log:     log,
		opts:    opts,
		sem:     make(chan struct{}, opts.MaxConcurrentPolls),
		bufs:    NewBufferPool(opts.MaxConcurrentPolls, 32<<20),
		dead:    newDeadLetters(opts.DeadLetterDir),
		streams: map[string]*streamRunner{},
		kinds:   map[string]uint64{},
	}
}

// AddSource registers a poller. Call before Run.
func (r *Runner) AddSource(p Poller, o SourceOptions) {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.DiscoveryInterval <= 0 {
		o.DiscoveryInterval = 5 * time.Minute
	}
	r.sources = append(r.sources, sourceEntry{p: p, opts: o})
}

// AddSink registers a sink under its configured name. Call before Run.
func (r *Runner) AddSink(name string, s Sink, o SinkOptions) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	r.sinks = append(r.sinks, &dispatcher{r: r, name: name, sink: s, opts: o,
		log: r.log.With(zap.String("sink", name))})
}

// Run polls and dispatches until ctx is cancelled, then stops gracefully:
// polling stops at once, in-flight deliveries get Options.StopGrace to
// finish, and every sink is closed. It returns the first sink close error.
func (r *Runner) Run(ctx context.Context) error {
	deliverCtx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliver()
	var wg sync.WaitGroup
	for _, d := range r.sinks {
		if err := d.init(); err != nil {
			return err
		}
	}
	for _, d := range r.sinks {
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx, deliverCtx) }()
	}
	r.phase.Store(runReady)
	defer r.phase.Store(runStopping)
	for _, s := range r.sources {
		wg.Add(1)
		go func() { defer wg.Done(); r.runSource(ctx, s) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.runTrim(ctx) }()

	<-ctx.Done()
	r.phase.Store(runStopping)
	r.log.Info("stopping: polling stopped, finishing in-flight deliveries", zap.Duration("grace", r.opts.StopGrace))
	timer := time.AfterFunc(r.opts.StopGrace, cancelDeliver)
	wg.Wait()
	timer.Stop()
	var errs []error
	for _, d := range r.sinks {
		if err := d.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close sink %s: %w", d.name, err))
		}
	}
	if err := r.dead.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Ready returns nil once Run has started every sink's dispatcher (each with
// its cursor loaded from the state file) and until a stop is requested;
// otherwise a short reason.
func (r *Runner) Ready() error {
	switch r.phase.Load() {
	case runReady:
		return nil
	case runStopping:
		return errors.New("stopping")
	}
	return errors.New("sinks not started yet")
}

// Phases of a Runner, for Ready.
const (
	runStarting int32 = iota
	runReady
	runStopping
)

// runSource keeps one goroutine per stream the poller currently serves.
func (r *Runner) runSource(ctx context.Context, s sourceEntry) {
	log := r.log.With(zap.String("source", s.p.Name()))
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	bo := newBackoff(time.Second, time.Minute)
	failing := false
	for {
		streams, err := s.p.Streams(ctx)
		wait := s.opts.DiscoveryInterval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = bo.NextBackOff()
			if !failing {
				log.Warn("stream discovery failed; retrying", zap.Error(err), zap.Duration("retry_in", wait))
			}
			failing = true
		} else {
			if failing {
				log.Info("stream discovery recovered")
			}
			failing = false
			bo.Reset()
			seen := map[string]bool{}
			for _, st := range streams {
				id := st.ID()
				seen[id] = true
				if _, ok := running[id]; ok {
					continue
				}
				sr, err := r.newStreamRunner(st, s.p.Name(), s.opts, log)
				if err != nil {
					log.Error("cannot start stream", zap.String("stream", id), zap.Error(err))
					continue
				}
				sctx, cancel := context.WithCancel(ctx)
				running[id] = cancel
				wg.Add(1)
				go func() { defer wg.Done(); sr.run(sctx) }()
			}
			for id, cancel := range running {
				if !seen[id] {
					log.Info("stream no longer served; stopping it", zap.String("stream", id))
					cancel()
					delete(running, id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Push commits records that a source received instead of polling (an MDSS
// webhook, say) into one of its running streams, and returns once they are
// durable in the journal, with the number of new events (records already
// seen, pushed or polled, are dropped). It waits for the stream to start
// when the runner is still starting up; ctx bounds the wait.
func (r *Runner) Push(ctx context.Context, streamID string, b Batch) (int, error) {
	if b.Release != nil {
		defer b.Release()
	}
	for {
		r.mu.Lock()
		sr := r.streams[streamID]
		r.mu.Unlock()
		if sr != nil {
			return sr.push(b)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("push to stream %s: not running: %w", streamID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Runner) runTrim(ctx context.Context) {
	names := make([]string, len(r.sinks))
	for i, d := range r.sinks {
		names[i] = d.name
	}
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.opts.TrimInterval):
		}
		evicted := map[string]uint64{} // sink -> events moved to its dead-letter file
		res, err := r.store.Trim(time.Now(), r.opts.Retention, r.opts.MaxBytes, names, func(ev []state.Eviction) error {
			return r.evict(ev, evicted)
		})
		switch {
		case err != nil && !failing:
			r.log.Error("journal trim failed", zap.Error(err))
			failing = true
		case err == nil && failing:
			r.log.Info("journal trim recovered")
			failing = false
		}
		if res.Evicted > 0 {
			r.log.Error("journal over its state.max_bytes budget: oldest undelivered events moved to dead-letter",
				zap.Uint64("events", res.Evicted), zap.Uint64("max_bytes", r.opts.MaxBytes))
		}
		// One line per sink that held the journal back, naming it and its
		// file: the line above says neither.
		for _, d := range r.sinks {
			if n := evicted[d.name]; n > 0 {
				d.log.Error("journal over its state.max_bytes budget: this sink's oldest undelivered events moved to its dead-letter file; "+
					"mdbridge replay --sink delivers them again",
					zap.Uint64("events", n), zap.String("file", DeadLetterPath(r.opts.DeadLetterDir, d.name)))
			}
		}
	}
}

// evict writes evicted entries to the dead-letter file of each sink that
// had not taken them, and adds the counts per sink to evicted.
func (r *Runner) evict(ev []state.Eviction, evicted map[string]uint64) error {
	bySink := map[string][]Entry{}
	for _, e := range ev {
		for _, s := range e.Sinks {
			bySink[s] = append(bySink[s], e.Entry)
		}
	}
	for _, d := range r.sinks {
		if len(bySink[d.name]) == 0 {
			continue
		}
		if err := r.dead.write(d.name, bySink[d.name], "journal over state.max_bytes budget"); err != nil {
			return err
		}
		d.deadLettered.Add(uint64(len(bySink[d.name])))
		evicted[d.name] += uint64(len(bySink[d.name]))
	}
	return nil
}

// newBackoff returns an exponential backoff with jitter that never stops.
func newBackoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(max),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
		backoff.WithMaxElapsedTime(0),
	)
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// Snapshot is a point-in-time view of the runner for status output.
type Snapshot struct {
	Kinds   map[string]uint64 `json:"events_by_kind"`
	Streams []StreamStatus    `json:"streams"`
	Sinks   []SinkStatus      `json:"sinks"`
	LastSeq uint64            `json:"journal_last_seq"`
}

// StreamStatus describes one stream.
type StreamStatus struct {
	ID        string    `json:"id"`
	Watermark time.Time `json:"watermark"`
	Events    uint64    `json:"events"`
	Polls     uint64    `json:"polls"`
	Errors    uint64    `json:"errors"`
	Gaps      uint64    `json:"gaps"`
	Failing   bool      `json:"failing"`
	LastError string    `json:"last_error,omitempty"`

	// Records counts the records successful polls fetched, before
	// deduplication: Records well above Events is the lookback re-read.
	Records uint64 `json:"records"`
	// LastSuccess is when the last successful poll fetched its records
	// (absent before the first).
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// SinkStatus describes one sink.
type SinkStatus struct {
	Name         string `json:"name"`
	Cursor       uint64 `json:"cursor"`
	Lag          uint64 `json:"lag"`
	Delivered    uint64 `json:"delivered"`
	Retries      uint64 `json:"retries"`
	DeadLettered uint64 `json:"dead_lettered"`
	Failing      bool   `json:"failing"`
	// State is up, retrying or disabled.
	State string `json:"state"`
	// LastError is the most recent delivery error, kept after recovery.
	LastError string `json:"last_error,omitempty"`
}

// Sink states in SinkStatus.State.
const (
	SinkUp       = "up"
	SinkRetrying = "retrying"
	SinkDisabled = "disabled"
)

// Snapshot returns current counters.
func (r *Runner) Snapshot() Snapshot {
	snap := Snapshot{Kinds: map[string]uint64{}}
	r.mu.Lock()
	for k, v := range r.kinds {
		snap.Kinds[k] = v
	}
	for _, s := range r.streams {
		snap.Streams = append(snap.Streams, s.status())
	}
	r.mu.Unlock()
	sort.Slice(snap.Streams, func(i, j int) bool { return snap.Streams[i].ID < snap.Streams[j].ID })
	if st, err := r.store.Stats(); err == nil {
		snap.LastSeq = st.LastSeq
	}
	for _, d := range r.sinks {
		c := d.cursor.Load()
		lag := uint64(0)
		if snap.LastSeq > c {
			lag = snap.LastSeq - c
		}
		st := SinkUp
		switch {
		case d.disabled.Load():
			st = SinkDisabled
		case d.failing.Load():
			st = SinkRetrying
		}
		snap.Sinks = append(snap.Sinks, SinkStatus{
			Name: d.name, Cursor: c, Lag: lag, Delivered: d.delivered.Load(),
			Retries: d.retries.Load(), DeadLettered: d.deadLettered.Load(), Failing: d.failing.Load(), State: st,
			LastError: d.lastError(),
		})
	}
	return snap
}
