package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/state"
)

// streamRunner polls one stream and commits what is new.
type streamRunner struct {
	r    *Runner
	s    Stream
	id   string
	opts SourceOptions
	log  *zap.Logger

	// Owned by the run goroutine.
	st   state.StreamState
	seen map[uint64]seenRec // by keyHash of the natural key

	mu   sync.Mutex
	stat StreamStatus
}

type seenRec struct {
	time time.Time
	hash uint64
	rev  uint32
	jseq uint64
}

func (r *Runner) newStreamRunner(s Stream, o SourceOptions, log *zap.Logger) (*streamRunner, error) {
	id := s.ID()
	st, entries, err := r.store.LoadStream(id)
	if err != nil {
		return nil, err
	}
	sr := &streamRunner{r: r, s: s, id: id, opts: o, log: log.With(zap.String("stream", id)),
		st: st, seen: make(map[uint64]seenRec, len(entries))}
	for _, e := range entries {
		// Entries come oldest first; a later one for the same key wins.
		sr.seen[keyHash(e.Key)] = seenRec{time: e.Time, hash: e.Hash, rev: e.Revision, jseq: e.JournalSeq}
	}
	if !st.Started {
		sr.st.Floor = o.Start
	}
	sr.stat = StreamStatus{ID: id, Watermark: st.Watermark, Gaps: st.Gaps}
	r.mu.Lock()
	r.streams[id] = sr
	r.mu.Unlock()
	return sr, nil
}

func (sr *streamRunner) statusUpdate(f func(*StreamStatus)) {
	sr.mu.Lock()
	f(&sr.stat)
	sr.mu.Unlock()
}

func (sr *streamRunner) status() StreamStatus {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.stat
}

// boundary is the oldest record time the next poll still wants.
func (sr *streamRunner) boundary(wm time.Time) time.Time {
	b := sr.st.Floor
	if !wm.IsZero() {
		if w := wm.Add(-sr.opts.Lookback); w.After(b) {
			b = w
		}
	}
	return b
}

func (sr *streamRunner) run(ctx context.Context) {
	defer func() {
		sr.r.mu.Lock()
		delete(sr.r.streams, sr.id)
		sr.r.mu.Unlock()
	}()
	bo := newBackoff(time.Second, time.Minute)
	var failures int
	var lastErr string
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := sr.pollOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			wait = bo.NextBackOff()
			msg := err.Error()
			if failures == 1 || msg != lastErr {
				sr.log.Warn("poll failed; will retry", zap.Error(err), zap.Int("attempt", failures), zap.Duration("retry_in", wait))
			} else {
				sr.log.Debug("poll failed again", zap.Error(err), zap.Int("attempt", failures))
			}
			lastErr = msg
			sr.statusUpdate(func(s *StreamStatus) { s.Errors++; s.Failing = true; s.LastError = msg })
			continue
		}
		if failures > 0 {
			sr.log.Info("poll recovered", zap.Int("failed_attempts", failures))
			failures, lastErr = 0, ""
			bo.Reset()
			sr.statusUpdate(func(s *StreamStatus) { s.Failing = false })
		}
		wait = jitter(sr.opts.Interval)
	}
}

// commitChunk is the most events committed in one transaction. A poll that
// returns more commits them in several, oldest first, and only the last one
// moves the watermark and prunes the seen index: a crash between two of them
// redoes the poll, and the seen entries committed with the earlier chunks
// drop what already made it. Chunks bound the memory a large poll holds in
// encode buffers and bbolt's dirty pages.
const commitChunk = 2000

// pollOnce fetches, deduplicates, numbers and commits one poll.
func (sr *streamRunner) pollOnce(ctx context.Context) error {
	select {
	case sr.r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sr.r.sem }()

	floor := sr.boundary(sr.st.Watermark)
	batch, err := sr.s.Poll(ctx, Position{Watermark: sr.st.Watermark, Floor: floor})
	if err != nil {
		return err
	}
	if batch.Release != nil {
		defer batch.Release()
	}
	sr.statusUpdate(func(s *StreamStatus) { s.Polls++ })
	observed := time.Now().UTC()
	watermark := sr.st.Watermark
	for i := range batch.Records {
		if t := batch.Records[i].Time; !t.Before(floor) && t.After(watermark) {
			watermark = t
		}
	}
	recs := batch.Records
	for {
		n, err := sr.commitNext(recs, batch.Normalize, floor, observed, watermark, batch.Gap)
		if err != nil {
			return err
		}
		if n == len(recs) {
			return nil
		}
		recs = recs[n:]
	}
}

// commitNext commits the new events among the first records, up to
// commitChunk of them, and returns how many records it consumed. When it
// consumes the rest it also commits the poll's watermark, gap count and
// seen-index pruning.
func (sr *streamRunner) commitNext(recs []Record, normalize func(*Record) error, floor, observed, watermark time.Time, gap int) (int, error) {
	next := sr.st
	next.Started = true
	size := min(len(recs), commitChunk)
	seenNew := make([]state.SeenEntry, 0, size)
	offsets := make([]int, 0, size+1)
	pending := map[uint64]seenRec{}
	kinds := map[string]uint64{}
	est := 0
	for i := range recs[:size] {
		est += len(recs[i].Raw) + 1536
	}
	buf := sr.r.bufs.Get(est)
	defer func() { sr.r.bufs.Put(buf) }()
	var err error
	i := 0
	for ; i < len(recs) && len(seenNew) < commitChunk; i++ {
		rec := &recs[i]
		if rec.Time.Before(floor) {
			continue
		}
		kh := keyHash(rec.Key)
		prev, ok := pending[kh]
		if !ok {
			prev, ok = sr.seen[kh]
		}
		if ok && prev.hash == rec.Hash {
			continue
		}
		if rec.Event == nil {
			if normalize == nil {
				return 0, fmt.Errorf("record %q has no event", rec.Key)
			}
			if err := normalize(rec); err != nil {
				return 0, fmt.Errorf("record %q: %w", rec.Key, err)
			}
		}
		ev := rec.Event
		rec.Event = nil // encoded below; let it go
		rev := 0
		ev.Changes = nil
		if ok {
			rev = int(prev.rev) + 1
			raw := rec.Raw
			if raw == nil {
				raw = ev.Raw
			}
			ev.Changes = sr.changes(prev.jseq, raw)
		}
		next.LastSeq++
		ev.Schema = Schema
		ev.Seq = next.LastSeq
		ev.Revision = rev
		ev.Observed = observed
		ev.ID = EventID(sr.id, ev.Kind, rec.Key, rev)
		if ev.Source.Stream == "" {
			ev.Source.Stream = sr.id
		}
		offsets = append(offsets, len(buf))
		if buf, err = AppendEvent(buf, ev); err != nil {
			return 0, fmt.Errorf("encode record %q: %w", rec.Key, err)
		}
		seenNew = append(seenNew, state.SeenEntry{Time: rec.Time, Key: rec.Key, Hash: rec.Hash, Revision: uint32(rev)})
		pending[kh] = seenRec{time: rec.Time, hash: rec.Hash, rev: uint32(rev)}
		kinds[ev.Kind]++
	}
	offsets = append(offsets, len(buf))
	appends := make([]state.Append, len(seenNew))
	for k := range seenNew {
		appends[k] = state.Append{Data: buf[offsets[k]:offsets[k+1]], Seen: &seenNew[k]}
	}
	final := i == len(recs)
	var prune time.Time
	if final {
		next.Watermark = watermark
		if gap > 0 {
			next.Gaps += uint64(gap)
			sr.log.Warn("records skipped: the page-size cap was reached before the watermark; raise max_page_limit or shorten interval",
				zap.Int("gap", gap), zap.Uint64("gaps_total", next.Gaps))
		}
		prune = sr.boundary(next.Watermark)
	} else if len(appends) == 0 {
		return i, nil
	}
	if _, err := sr.r.store.Commit(state.Commit{Stream: sr.id, State: next, Events: appends, PruneBefore: prune}); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	// Durable: now update the in-memory view. Entries the end of this poll
	// prunes anyway stay out of memory (they are on disk, for a restart in
	// the middle of the poll).
	keepFrom := sr.boundary(watermark)
	for _, e := range seenNew {
		kh := keyHash(e.Key)
		if e.Time.Before(keepFrom) {
			if _, ok := sr.seen[kh]; !ok {
				continue
			}
		}
		sr.seen[kh] = seenRec{time: e.Time, hash: e.Hash, rev: e.Revision, jseq: e.JournalSeq}
	}
	if final && prune.After(sr.boundary(sr.st.Watermark)) {
		sr.pruneSeen(prune)
	}
	sr.st = next
	sr.statusUpdate(func(s *StreamStatus) {
		s.Events += uint64(len(appends))
		s.Watermark = next.Watermark
		s.Gaps = next.Gaps
	})
	if len(kinds) > 0 {
		sr.r.mu.Lock()
		for k, n := range kinds {
			sr.r.kinds[k] += n
		}
		sr.r.mu.Unlock()
	}
	return i, nil
}

// keyHash is the in-memory seen index's key for a natural key: 8 bytes
// instead of a string, so the index of a busy stream stays small. (The
// index on disk keeps the keys themselves.)
func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

// pruneSeen drops in-memory seen entries older than before. Go maps never
// shrink, so after a large backlog the survivors move to a new map.
func (sr *streamRunner) pruneSeen(before time.Time) {
	kept := 0
	for _, v := range sr.seen {
		if !v.time.Before(before) {
			kept++
		}
	}
	if kept == len(sr.seen) {
		return
	}
	m := make(map[uint64]seenRec, kept)
	for k, v := range sr.seen {
		if !v.time.Before(before) {
			m[k] = v
		}
	}
	sr.seen = m
}

// changes compares the previous revision's raw record, read back from the
// journal, with the new one, field by top-level field. When the previous
// revision has already left the journal it returns nil.
func (sr *streamRunner) changes(jseq uint64, raw json.RawMessage) map[string]Change {
	old, err := sr.r.store.Get(jseq)
	if err != nil || old == nil {
		return nil
	}
	return DiffRecords([]byte(gjson.GetBytes(old, "raw").Raw), raw)
}

// DiffRecords returns the top-level fields whose JSON differs between two
// records, with their old and new values (null when absent).
func DiffRecords(oldRaw, newRaw []byte) map[string]Change {
	oldFields := map[string]string{}
	gjson.ParseBytes(oldRaw).ForEach(func(k, v gjson.Result) bool {
		oldFields[k.Str] = v.Raw
		return true
	})
	out := map[string]Change{}
	gjson.ParseBytes(newRaw).ForEach(func(k, v gjson.Result) bool {
		o, ok := oldFields[k.Str]
		if !ok || (o != v.Raw && !sameJSON(o, v.Raw)) {
			out[k.Str] = Change{Old: rawOrNull(o), New: json.RawMessage(v.Raw)}
		}
		delete(oldFields, k.Str)
		return true
	})
	for k, o := range oldFields {
		out[k] = Change{Old: json.RawMessage(o), New: nil}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// sameJSON reports whether two JSON texts differ only in layout: the
// previous revision comes back from the journal compacted, the new one as the
// API sent it.
func sameJSON(a, b string) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, []byte(a)) != nil || json.Compact(&cb, []byte(b)) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func rawOrNull(s string) any {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}
