package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// ReplayStats counts what a replay did.
type ReplayStats struct {
	// Delivered is how many events the sink took.
	Delivered uint64
	// DeadLettered is how many it refused for good; they are in its
	// dead-letter file again.
	DeadLettered uint64
	// Files is how many dead-letter files were replayed and removed.
	Files int
	// Torn counts dead-letter files whose last line was cut short by a
	// crash (that event was never taken out of the journal, so it is not
	// lost).
	Torn int
}

// replayer delivers batches to one sink by the dispatcher's rules without
// any cursor.
type replayer struct {
	ctx context.Context
	d   *dispatcher
}

func newReplayer(ctx context.Context, log *zap.Logger, name string, sink Sink, deadDir string) *replayer {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Runner{log: log, dead: newDeadLetters(deadDir)}
	return &replayer{ctx: ctx, d: &dispatcher{r: r, name: name, sink: sink, replay: true, log: log.With(zap.String("sink", name))}}
}

func (p *replayer) send(batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	if !p.d.deliver(p.ctx, p.ctx, batch) {
		return p.ctx.Err()
	}
	if p.d.disabled.Load() {
		return errors.New("the sink disabled itself (see the log)")
	}
	return nil
}

func (p *replayer) stats() ReplayStats {
	return ReplayStats{Delivered: p.d.delivered.Load(), DeadLettered: p.d.deadLettered.Load()}
}

func (p *replayer) close() { _ = p.d.r.dead.close() }

// Replay delivers events to one sink by the dispatcher's rules (batches,
// backoff that never gives up, partial deliveries, rejections and
// permanent failures to the sink's dead-letter file in deadDir) without
// reading or moving any cursor. next returns the following batch of at
// most max entries, or none when done. Replay returns when every entry is
// delivered or dead-lettered, when ctx ends, or when the sink disables
// itself; the sink is not closed.
func Replay(ctx context.Context, log *zap.Logger, name string, sink Sink, deadDir string, max int,
	next func(max int) ([]Entry, error)) (ReplayStats, error) {
	if max <= 0 {
		max = 1000
	}
	p := newReplayer(ctx, log, name, sink, deadDir)
	defer p.close()
	for {
		batch, err := next(max)
		if err != nil {
			return p.stats(), fmt.Errorf("replay %s: %w", name, err)
		}
		if len(batch) == 0 {
			return p.stats(), nil
		}
		if err := p.send(batch); err != nil {
			return p.stats(), fmt.Errorf("replay %s: %w", name, err)
		}
	}
}

// ReplayDeadLetters delivers the sink's dead-letter file in deadDir to the
// sink again. The file is first renamed to NAME.deadletter.jsonl.replaying-N
// (so that what is refused again starts a new dead-letter file, and a
// running bridge goes on writing to a new one too), then read, delivered,
// and removed. Files left by an interrupted replay are replayed first: their
// events may reach the sink twice (at least once).
func ReplayDeadLetters(ctx context.Context, log *zap.Logger, name string, sink Sink, deadDir string, max int) (ReplayStats, error) {
	if max <= 0 {
		max = 1000
	}
	path := DeadLetterPath(deadDir, name)
	if _, err := os.Stat(path); err == nil {
		claimed := path + ".replaying-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.Rename(path, claimed); err != nil {
			return ReplayStats{}, fmt.Errorf("replay %s: %w", name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return ReplayStats{}, fmt.Errorf("replay %s: %w", name, err)
	}
	files, err := filepath.Glob(path + ".replaying-*")
	if err != nil {
		return ReplayStats{}, fmt.Errorf("replay %s: %w", name, err)
	}
	sort.Strings(files) // same-length nanosecond stamps: oldest first
	p := newReplayer(ctx, log, name, sink, deadDir)
	defer p.close()
	var st ReplayStats
	for _, file := range files {
		torn, err := replayFile(p, file, max)
		if err != nil {
			s := p.stats()
			s.Files, s.Torn = st.Files, st.Torn
			return s, fmt.Errorf("replay %s from %s (left in place): %w", name, file, err)
		}
		if torn {
			st.Torn++
		}
		if err := os.Remove(file); err != nil {
			return p.stats(), fmt.Errorf("replay %s: %w", name, err)
		}
		st.Files++
	}
	s := p.stats()
	s.Files, s.Torn = st.Files, st.Torn
	return s, nil
}

func replayFile(p *replayer, file string, max int) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// A bridge that opened the file before the rename finishes its write
	// under this lock; any later write goes to a new file.
	if err := lockFile(f); err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	_ = unlockFile(f)
	batch := make([]Entry, 0, max)
	torn, err := ReadDeadLetters(f, func(dl DeadLetter) error {
		batch = append(batch, Entry{Seq: dl.Seq, Data: dl.Event})
		if len(batch) < max {
			return nil
		}
		err := p.send(batch)
		batch = batch[:0]
		return err
	})
	if err != nil {
		return false, err
	}
	return torn, p.send(batch)
}
