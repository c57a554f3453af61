package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

// cmdReplay delivers a sink's dead-letter file again, or, with --since or
// --until, the journal entries committed in that window. Only the named
// sink is written to; no cursor moves.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	sinkName := fs.String("sink", "", "the sink to deliver to (its name under sinks:)")
	since := fs.String("since", "", "replay the journal from this time: RFC 3339, or a duration ago such as 2h")
	until := fs.String("until", "", "replay the journal up to this time (exclusive): RFC 3339 or a duration ago")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || *sinkName == "" {
		return errors.New("replay: -c FILE and --sink NAME are required")
	}
	now := time.Now()
	from, err := parseWhen(*since, now)
	if err != nil {
		return fmt.Errorf("replay --since: %w", err)
	}
	to, err := parseWhen(*until, now)
	if err != nil {
		return fmt.Errorf("replay --until: %w", err)
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("config %s:\n%w", *path, err)
	}
	sc, ok := cfg.Sinks[*sinkName]
	if !ok {
		return fmt.Errorf("replay: no sink %q in %s (sinks: %s)", *sinkName, *path, strings.Join(sortedKeys(cfg.Sinks), ", "))
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// Open the state first when the journal is wanted: it fails at once,
	// naming the lock holder, while a bridge runs.
	var store *state.Store
	if *since != "" || *until != "" {
		store, err = state.Open(cfg.State.Path, state.Options{LockTimeout: time.Second})
		if err != nil {
			return fmt.Errorf("replay from the journal needs the bridge stopped: %w", err)
		}
		defer store.Close()
	}
	sink, opts, err := buildSink(*sinkName, sc, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := sink.Close(); err != nil {
			log.Error("closing sink", zap.Error(err))
		}
	}()
	var st pipeline.ReplayStats
	if store == nil {
		st, err = pipeline.ReplayDeadLetters(ctx, log, *sinkName, sink, deadLetterDir(cfg), opts.Batch)
		fmt.Fprintf(stdout, "replayed %s from dead-letter: %d files, %d delivered, %d dead-lettered again",
			*sinkName, st.Files, st.Delivered, st.DeadLettered)
		if st.Torn > 0 {
			fmt.Fprintf(stdout, " (%d files ended in a line cut short by a crash; that event stayed in the journal)", st.Torn)
		}
		fmt.Fprintln(stdout)
		return err
	}
	first, last, found, err := store.SeqRange(from, to)
	if err != nil {
		return err
	}
	if found {
		after := first - 1
		var buf []byte
		st, err = pipeline.Replay(ctx, log, *sinkName, sink, deadLetterDir(cfg), opts.Batch, func(max int) ([]pipeline.Entry, error) {
			if after >= last {
				return nil, nil
			}
			batch, b, err := store.ReadInto(after, min(max, int(last-after)), 4<<20, buf)
			buf = b
			if len(batch) > 0 {
				after = batch[len(batch)-1].Seq
			}
			return batch, err
		})
	}
	fmt.Fprintf(stdout, "replayed %s from the journal (entries %d..%d): %d delivered, %d dead-lettered\n",
		*sinkName, first, last, st.Delivered, st.DeadLettered)
	return err
}

// parseWhen reads a time as RFC 3339 or as a duration before now; "" is
// the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 2h", s)
}
