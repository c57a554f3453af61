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
	r        *Runner
	s        Stream
	id       string
	instance string
	opts     SourceOptions
	log      *zap.Logger
	// set is true for a SetStream; removeAfter is its RemoveAfter.
	set         bool
	removeAfter time.Duration

	// cmu serialises commits (polls, pushes, heartbeats) and guards what
	// they share.
	cmu  sync.Mutex
	st   state.StreamState
	seen map[uint64]seenRec // by keyHash of the natural key
	// For set streams only: the natural key of every seen hash, and since
	// when a key has been missing from complete polls.
	keys   map[uint64]string
	absent map[uint64]time.Time
	hb     heartbeatPeriod

	mu   sync.Mutex
	stat StreamStatus
}

type seenRec struct {
	hash uint64
	jseq uint64
	time seenTime
	rev  uint32
}

// seenTime is a record time in 12 bytes instead of time.Time's 24: a
// stream's seen index holds one per record in its window (a set stream one
// per record it has ever seen), so this is most of the bridge's memory
// for a large device inventory.
type seenTime struct {
	sec  int64
	nsec int32
}

func toSeenTime(t time.Time) seenTime { return seenTime{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

// before reports whether st is before t.
func (st seenTime) before(t time.Time) bool {
	sec := t.Unix()
	return st.sec < sec || st.sec == sec && st.nsec < int32(t.Nanosecond())
}

// tombstone is the content hash of a removed record in a set stream's seen
// index; a record that comes back is added again as a new revision.
const tombstone uint64 = 0

// heartbeatPeriod counts what a stream did since its last heartbeat.
type heartbeatPeriod struct {
	records, events, gaps, errors int
	lastError                     string
	polledUntil                   time.Time
}

func (r *Runner) newStreamRunner(s Stream, instance string, o SourceOptions, log *zap.Logger) (*streamRunner, error) {
	id := s.ID()
	st, entries, err := r.store.LoadStream(id)
	if err != nil {
		return nil, err
	}
	sr := &streamRunner{r: r, s: s, id: id, instance: instance, opts: o, log: log.With(zap.String("stream", id)),
		st: st, seen: make(map[uint64]seenRec, len(entries))}
	if ss, ok := s.(SetStream); ok {
		sr.set, sr.removeAfter = true, ss.RemoveAfter()
		sr.keys, sr.absent = make(map[uint64]string, len(entries)), map[uint64]time.Time{}
	}
	for _, e := range entries {
		// Entries come oldest first; a later one for the same key wins.
		kh := keyHash(e.Key)
		sr.seen[kh] = seenRec{time: toSeenTime(e.Time), hash: e.Hash, rev: e.Revision, jseq: e.JournalSeq}
		if sr.set {
			sr.keys[kh] = e.Key
		}
	}
	if !st.Started {
		sr.st.Floor = o.Start
	}
	sr.hb.polledUntil = st.Watermark
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
	if !wm.IsZero() && !sr.set {
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
	poll := time.NewTimer(0)
	defer poll.Stop()
	var heartbeat <-chan time.Time
	if sr.opts.Heartbeat > 0 {
		t := time.NewTicker(sr.opts.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-heartbeat:
			if err := sr.emitHeartbeat(now); err != nil && ctx.Err() == nil {
				sr.log.Warn("heartbeat not committed", zap.Error(err))
			}
			continue
		case <-poll.C:
		}
		err := sr.pollOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := jitter(sr.opts.Interval)
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
			sr.cmu.Lock()
			sr.hb.errors++
			sr.hb.lastError = msg
			sr.cmu.Unlock()
			sr.statusUpdate(func(s *StreamStatus) { s.Errors++; s.Failing = true; s.LastError = msg })
		} else if failures > 0 {
			sr.log.Info("poll recovered", zap.Int("failed_attempts", failures))
			failures, lastErr = 0, ""
			bo.Reset()
			sr.statusUpdate(func(s *StreamStatus) { s.Failing = false })
		}
		poll.Reset(wait)
	}
}

// commitChunk is the most events committed in one transaction. A poll that
// returns more commits them in several, oldest first, and only the last one
// moves the watermark and prunes the seen index: a crash between two of them
// redoes the poll, and the seen entries committed with the earlier chunks
// drop what already made it. Chunks bound the memory a large poll holds in
// encode buffers and bbolt's dirty pages: with two polls at once, 1,500
// events (about 3.6 MB encoded on an alert backlog) kept peak RSS 5 MiB
// under what 2,000 did, for a few more fsyncs.
const commitChunk = 1500

// commitPlan is what one poll or push commits besides its records.
type commitPlan struct {
	normalize func(*Record) error
	// floor: time-stream records older than it are dropped.
	floor time.Time
	// baseline: on a set stream's first poll, records older than it (or
	// without a time) are remembered without an event; zero: none.
	baseline  time.Time
	observed  time.Time
	watermark time.Time
	gap       int
	volatile  map[string]bool
}

// pollOnce fetches, deduplicates, numbers and commits one poll.
func (sr *streamRunner) pollOnce(ctx context.Context) error {
	select {
	case sr.r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sr.r.sem }()

	sr.cmu.Lock()
	floor := sr.boundary(sr.st.Watermark)
	pos := Position{Watermark: sr.st.Watermark, Floor: floor}
	sr.cmu.Unlock()
	batch, err := sr.s.Poll(ctx, pos)
	if err != nil {
		return err
	}
	if batch.Release != nil {
		defer batch.Release()
	}
	fetched := len(batch.Records) + batch.Unchanged
	sr.statusUpdate(func(s *StreamStatus) { s.Polls++; s.Records += uint64(fetched) })
	observed := time.Now().UTC()

	sr.cmu.Lock()
	defer sr.cmu.Unlock()
	plan := commitPlan{normalize: batch.Normalize, floor: floor, observed: observed, watermark: sr.st.Watermark, gap: batch.Gap, volatile: batch.Volatile}
	recs := batch.Records
	if sr.set {
		plan.watermark = observed
		if !sr.st.Started {
			plan.baseline = sr.st.Floor
		}
		recs = sr.withRemovals(recs, observed, batch.Gap == 0)
	} else {
		for i := range recs {
			if t := recs[i].Time; !t.Before(floor) && t.After(plan.watermark) {
				plan.watermark = t
			}
		}
	}
	sr.hb.records += fetched
	if err := sr.commitAll(recs, plan, true); err != nil {
		return err
	}
	if batch.Committed != nil {
		batch.Committed()
	}
	sr.hb.polledUntil = plan.watermark
	sr.statusUpdate(func(s *StreamStatus) { s.LastSuccess = observed })
	return nil
}

// commitAll commits records in chunks; the last chunk carries the
// stream's new state (when final).
func (sr *streamRunner) commitAll(recs []Record, plan commitPlan, final bool) error {
	for {
		n, err := sr.commitNext(recs, plan, final)
		if err != nil {
			return err
		}
		if n == len(recs) {
			return nil
		}
		recs = recs[n:]
	}
}

// withRemovals takes a set stream's complete poll and appends a removal
// record for every seen key that has now been missing for removeAfter.
// Only complete polls count: one cut short by the page cap says nothing
// about what is missing. Called with cmu held.
func (sr *streamRunner) withRemovals(recs []Record, now time.Time, complete bool) []Record {
	if sr.removeAfter <= 0 || !complete {
		return recs
	}
	present := make(map[uint64]struct{}, len(recs))
	for i := range recs {
		present[keyHash(recs[i].Key)] = struct{}{}
	}
	for kh := range sr.absent {
		if _, ok := present[kh]; ok {
			delete(sr.absent, kh)
		}
	}
	for kh, prev := range sr.seen {
		if _, ok := present[kh]; ok || prev.hash == tombstone {
			continue
		}
		since, ok := sr.absent[kh]
		if !ok {
			sr.absent[kh] = now
			continue
		}
		if now.Sub(since) < sr.removeAfter {
			continue
		}
		raw := []byte("{}")
		if old, err := sr.r.store.Get(prev.jseq); err == nil && old != nil {
			if r := gjson.GetBytes(old, "raw"); r.IsObject() {
				raw = []byte(r.Raw)
			}
		}
		recs = append(recs, Record{Key: sr.keys[kh], Time: now, Hash: tombstone, Raw: raw, Action: ActionRemoved})
	}
	return recs
}

// commitNext commits the new events among the first records, up to
// commitChunk of them, and returns how many records it consumed. When it
// consumes the rest and final is set it also commits the watermark, gap
// count and seen-index pruning. Called with cmu held.
func (sr *streamRunner) commitNext(recs []Record, plan commitPlan, final bool) (int, error) {
	next := sr.st
	next.Started = true
	size := min(len(recs), commitChunk)
	sc := commitScratchPool.Get().(*commitScratch)
	defer sc.put()
	seenNew := sc.seenNew[:0]
	var baseline []state.SeenEntry
	offsets := sc.offsets[:0]
	pending := sc.pending
	kinds := sc.kinds
	est := 0
	for i := range recs[:size] {
		est += len(recs[i].Raw) + 1536
	}
	buf := sr.r.bufs.Get(est)
	orig := buf // the pool's buffer, which appending past its capacity replaces
	defer func() { sr.r.bufs.PutReplaced(orig, buf) }()
	var err error
	i := 0
	for ; i < len(recs) && len(seenNew)+len(baseline) < commitChunk; i++ {
		rec := &recs[i]
		kh := keyHash(rec.Key)
		prev, ok := pending[kh]
		if !ok {
			prev, ok = sr.seen[kh]
		}
		if ok && prev.hash == rec.Hash {
			continue
		}
		if !sr.set && rec.Time.Before(plan.floor) {
			continue
		}
		if !ok && !plan.baseline.IsZero() && (rec.Time.IsZero() || rec.Time.Before(plan.baseline)) {
			baseline = append(baseline, state.SeenEntry{Time: rec.Time, Key: rec.Key, Hash: rec.Hash})
			pending[kh] = seenRec{time: toSeenTime(rec.Time), hash: rec.Hash}
			continue
		}
		if sr.set && rec.Action == "" {
			switch {
			case !ok || prev.hash == tombstone:
				rec.Action = ActionAdded
			default:
				rec.Action = ActionChanged
			}
		}
		rev := 0
		if ok {
			rev = int(prev.rev) + 1
			if rec.Action != ActionRemoved && prev.hash != tombstone {
				raw := rec.Raw
				if raw == nil && rec.Event != nil {
					raw = rec.Event.Raw
				}
				rec.Previous, rec.Changes = sr.changes(prev.jseq, raw, plan.volatile)
			}
		}
		if rec.Event == nil {
			if plan.normalize == nil {
				return 0, fmt.Errorf("record %q has no event", rec.Key)
			}
			if err := plan.normalize(rec); err != nil {
				return 0, fmt.Errorf("record %q: %w", rec.Key, err)
			}
		}
		ev := rec.Event
		rec.Event = nil // encoded below; let it go
		next.LastSeq++
		stamp(ev, sr.id, rec.Key, next.LastSeq, rev, rec.Changes, plan.observed)
		offsets = append(offsets, len(buf))
		if buf, err = AppendEvent(buf, ev); err != nil {
			return 0, fmt.Errorf("encode record %q: %w", rec.Key, err)
		}
		seenNew = append(seenNew, state.SeenEntry{Time: rec.Time, Key: rec.Key, Hash: rec.Hash, Revision: uint32(rev)})
		pending[kh] = seenRec{time: toSeenTime(rec.Time), hash: rec.Hash, rev: uint32(rev)}
		kinds[ev.Kind]++
	}
	offsets = append(offsets, len(buf))
	appends := sc.appends[:0]
	for k := range seenNew {
		appends = append(appends, state.Append{Data: buf[offsets[k]:offsets[k+1]], Seen: &seenNew[k]})
	}
	sc.seenNew, sc.offsets, sc.appends = seenNew, offsets, appends // grown: keep the larger ones
	last := i == len(recs) && final
	var prune time.Time
	if last {
		next.Watermark = plan.watermark
		if plan.gap > 0 {
			next.Gaps += uint64(plan.gap)
			sr.hb.gaps += plan.gap
			sr.log.Warn("records skipped: the page-size cap was reached before the watermark; raise max_page_limit or shorten interval",
				zap.Int("gap", plan.gap), zap.Uint64("gaps_total", next.Gaps))
		}
		if !sr.set {
			prune = sr.boundary(next.Watermark)
		}
	} else if len(appends) == 0 && len(baseline) == 0 {
		return i, nil
	}
	if _, err := sr.r.store.Commit(state.Commit{Stream: sr.id, State: next, Events: appends, Seen: baseline, PruneBefore: prune}); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	// Durable: now update the in-memory view. Entries the end of this poll
	// prunes anyway stay out of memory (they are on disk, for a restart in
	// the middle of the poll).
	keepFrom := sr.boundary(plan.watermark)
	for _, e := range append(seenNew, baseline...) {
		kh := keyHash(e.Key)
		if !sr.set && e.Time.Before(keepFrom) {
			if _, ok := sr.seen[kh]; !ok {
				continue
			}
		}
		sr.seen[kh] = seenRec{time: toSeenTime(e.Time), hash: e.Hash, rev: e.Revision, jseq: e.JournalSeq}
		if sr.set {
			sr.keys[kh] = e.Key
			if e.Hash == tombstone {
				delete(sr.absent, kh)
			}
		}
	}
	if last && !prune.IsZero() && prune.After(sr.boundary(sr.st.Watermark)) {
		sr.pruneSeen(prune)
	}
	sr.st = next
	sr.hb.events += len(appends)
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

// commitScratch is the working memory of one commitNext call, reused: a
// chunk of 1,500 events needs a few hundred kilobytes of slices and maps,
// and allocating them afresh for every chunk was about an eighth of the
// bridge's allocations per event, each one bringing the next garbage
// collection nearer. Nothing in it outlives the call: the store copies
// what it is given, and the in-memory seen index stores values.
type commitScratch struct {
	seenNew []state.SeenEntry
	offsets []int
	appends []state.Append
	pending map[uint64]seenRec
	kinds   map[string]uint64
}

var commitScratchPool = sync.Pool{New: func() any {
	return &commitScratch{pending: map[uint64]seenRec{}, kinds: map[string]uint64{}}
}}

// put empties the scratch space and hands it back, dropping every
// reference it holds: the appends point into an encode buffer that goes
// back to its pool, and seen keys may point into a response body.
func (sc *commitScratch) put() {
	clear(sc.pending)
	clear(sc.kinds)
	clear(sc.appends)
	clear(sc.seenNew[:cap(sc.seenNew)]) // keys may be views into a body
	commitScratchPool.Put(sc)
}

// stamp fills in what the runner sets on every event of a record: the
// schema, the stream's seq, the revision and its changes, when it was
// observed (also the time of an event without one), the deterministic id
// and the stream. Backfill stamps its events the same way, with seq 0.
func stamp(ev *Event, stream, key string, seq uint64, rev int, changes map[string]Change, observed time.Time) {
	ev.Schema = Schema
	ev.Seq = seq
	ev.Revision = rev
	ev.Changes = changes
	ev.Observed = observed
	if ev.Time.IsZero() {
		ev.Time = observed
	}
	ev.ID = EventID(stream, ev.Kind, key, rev)
	if ev.Source.Stream == "" {
		ev.Source.Stream = stream
	}
}

// push commits records a source received rather than polled (a webhook).
// They go through the same seen index as polled records, so the one of a
// pushed and a polled copy that arrives second is dropped, but they never
// move the watermark: a push says nothing about what polling has covered.
func (sr *streamRunner) push(b Batch) (int, error) {
	if sr.set {
		return 0, fmt.Errorf("stream %s takes whole sets by polling, not pushed records", sr.id)
	}
	sr.cmu.Lock()
	defer sr.cmu.Unlock()
	before := sr.st.LastSeq
	plan := commitPlan{normalize: b.Normalize, observed: time.Now().UTC(), watermark: sr.st.Watermark, volatile: b.Volatile}
	sr.hb.records += len(b.Records)
	if err := sr.commitAll(b.Records, plan, true); err != nil {
		return 0, err
	}
	return int(sr.st.LastSeq - before), nil
}

// emitHeartbeat commits the bridge.heartbeat event of the period ending at
// now and starts a new period.
func (sr *streamRunner) emitHeartbeat(now time.Time) error {
	sr.cmu.Lock()
	defer sr.cmu.Unlock()
	end := now.UTC()
	hb := sr.hb
	ev := &Event{
		Schema: Schema, Kind: KindHeartbeat, Time: end, Observed: end,
		Severity: SeverityInfo, SeverityScore: 1,
		Source:    Source{Product: sr.opts.Product, Instance: sr.instance, Stream: sr.id, URL: sr.opts.URL},
		Heartbeat: &Heartbeat{Records: hb.records, Events: hb.events, Gaps: hb.gaps, LastError: hb.lastError},
	}
	if hb.errors > 0 || hb.gaps > 0 {
		ev.Severity, ev.SeverityScore = SeverityMedium, 5
	}
	until := "never"
	if !hb.polledUntil.IsZero() {
		t := hb.polledUntil.UTC()
		ev.Heartbeat.PolledUntil = &t
		until = t.Format(time.RFC3339)
	}
	ev.Message = fmt.Sprintf("%s polled up to %s: %d records, %d events, %d gaps, %d failed polls",
		sr.id, until, hb.records, hb.events, hb.gaps, hb.errors)
	next := sr.st
	next.LastSeq++
	ev.Seq = next.LastSeq
	ev.ID = EventID(sr.id, KindHeartbeat, "heartbeat/"+end.Format(time.RFC3339Nano), 0)
	data, err := AppendEvent(nil, ev)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	if _, err := sr.r.store.Commit(state.Commit{Stream: sr.id, State: next, Events: []state.Append{{Data: data}}}); err != nil {
		return fmt.Errorf("commit heartbeat: %w", err)
	}
	sr.st = next
	sr.hb = heartbeatPeriod{polledUntil: hb.polledUntil}
	sr.r.mu.Lock()
	sr.r.kinds[KindHeartbeat]++
	sr.r.mu.Unlock()
	sr.statusUpdate(func(s *StreamStatus) { s.Events++ })
	return nil
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
		if !v.time.before(before) {
			kept++
		}
	}
	if kept == len(sr.seen) {
		return
	}
	m := make(map[uint64]seenRec, kept)
	for k, v := range sr.seen {
		if !v.time.before(before) {
			m[k] = v
		}
	}
	sr.seen = m
}

// changes reads the previous revision's raw record back from the journal
// and compares the new one with it, field by top-level field, leaving out
// volatile fields. When the previous revision has left the journal, or was
// journaled without raw, it returns nil for both.
func (sr *streamRunner) changes(jseq uint64, raw json.RawMessage, volatile map[string]bool) ([]byte, map[string]Change) {
	old, err := sr.r.store.Get(jseq)
	if err != nil || old == nil {
		return nil, nil
	}
	prev := gjson.GetBytes(old, "raw")
	if !prev.IsObject() {
		// Journaled without raw (raw: false): nothing to compare with,
		// which is not "every field changed".
		return nil, nil
	}
	ch := DiffRecords([]byte(prev.Raw), raw)
	for k := range volatile {
		delete(ch, k)
	}
	if len(ch) == 0 {
		ch = nil
	}
	return []byte(prev.Raw), ch
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
