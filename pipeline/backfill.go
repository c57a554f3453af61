package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// BackfillStats counts what a backfill fetched.
type BackfillStats struct {
	// Streams is how many streams were polled.
	Streams int
	// Records is how many records the polls returned, in the window or not.
	Records int
	// Events is how many events were emitted.
	Events int
	// Gap is how many records the polls know they could not fetch (the
	// page-size cap was reached before the window's start).
	Gap int
}

// Backfill fetches from the upstream API, with the poller's own streams, the
// records whose time lies in [since, until) and hands each to emit as the
// event the bridge makes of it. It reads and writes no state: no watermark,
// seen index or cursor is consulted or moved, so it may run beside a
// running bridge.
//
// Every stream the poller serves now for which want returns true (all when
// want is nil) is polled once, with a position whose floor is since and
// whose watermark is zero, as on a stream's first run. A record's time is
// the time its stream is ordered by (Record.Time). until zero means no upper
// bound. Events are emitted oldest first across the streams, a stream's own
// order kept among equal times.
//
// An event is built as the runner builds it (same schema, kind, id, time,
// source) with two differences that follow from journaling nothing: seq is
// 0, which a journaled event never has, and, since no history is read, each
// record is its revision 0, as it is upstream now: its id is that of the
// record's first event, and a set stream's record is "added". A key met
// twice in one poll is emitted once. Heartbeats are not made.
//
// An error from a poll or from emit ends the backfill; emit is called only
// after every stream has been polled.
func Backfill(ctx context.Context, p Poller, want func(Stream) bool, since, until time.Time,
	emit func(*Event) error) (BackfillStats, error) {
	var stats BackfillStats
	if !until.IsZero() && !since.Before(until) {
		return stats, fmt.Errorf("backfill %s: since %s is not before until %s", p.Name(),
			since.UTC().Format(time.RFC3339Nano), until.UTC().Format(time.RFC3339Nano))
	}
	streams, err := p.Streams(ctx)
	if err != nil {
		return stats, fmt.Errorf("backfill %s: list streams: %w", p.Name(), err)
	}
	streams = slices.DeleteFunc(slices.Clone(streams), func(s Stream) bool { return want != nil && !want(s) })
	slices.SortFunc(streams, func(a, b Stream) int { return strings.Compare(a.ID(), b.ID()) })

	type item struct {
		t  time.Time
		ev *Event
	}
	var items []item
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	for _, s := range streams {
		id := s.ID()
		batch, err := s.Poll(ctx, Position{Floor: since})
		if err != nil {
			return stats, fmt.Errorf("backfill stream %s: %w", id, err)
		}
		if batch.Release != nil {
			// The records' bytes stay in use until every event is emitted.
			releases = append(releases, batch.Release)
		}
		if batch.Unchanged > 0 {
			// Only a runner's commits let a stream leave records out; a
			// backfill must see every one.
			return stats, fmt.Errorf("backfill stream %s: the stream left %d records out as already committed", id, batch.Unchanged)
		}
		stats.Streams++
		stats.Records += len(batch.Records)
		stats.Gap += batch.Gap
		_, set := s.(SetStream)
		observed := time.Now().UTC()
		seen := make(map[string]struct{}, len(batch.Records))
		for i := range batch.Records {
			rec := &batch.Records[i]
			if rec.Time.Before(since) || (!until.IsZero() && !rec.Time.Before(until)) {
				continue
			}
			if _, dup := seen[rec.Key]; dup {
				continue
			}
			seen[rec.Key] = struct{}{}
			if set && rec.Action == "" {
				rec.Action = ActionAdded
			}
			if rec.Event == nil {
				if batch.Normalize == nil {
					return stats, fmt.Errorf("backfill stream %s: record %q has no event", id, rec.Key)
				}
				if err := batch.Normalize(rec); err != nil {
					return stats, fmt.Errorf("backfill stream %s: record %q: %w", id, rec.Key, err)
				}
			}
			// Revision 0 of a record that is not journaled: seq 0.
			stamp(rec.Event, id, rec.Key, 0, 0, nil, observed)
			// Kept until every stream is polled, so it must not be the
			// stream's scratch event, which the next Normalize overwrites:
			// a copy through the event's own encoding (no changes to lose
			// at revision 0).
			ev, err := detach(rec.Event)
			if err != nil {
				return stats, fmt.Errorf("backfill stream %s: record %q: %w", id, rec.Key, err)
			}
			rec.Event = nil
			items = append(items, item{t: rec.Time, ev: ev})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].t.Before(items[j].t) })
	for _, it := range items {
		if err := emit(it.ev); err != nil {
			return stats, fmt.Errorf("backfill %s: %w", p.Name(), err)
		}
		stats.Events++
	}
	return stats, nil
}

// detach returns a copy of an event that shares no memory the stream that
// built it may overwrite.
func detach(ev *Event) (*Event, error) {
	b, err := MarshalEvent(ev)
	if err != nil {
		return nil, err
	}
	return UnmarshalEvent(b)
}
