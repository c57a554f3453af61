package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdbridge/mdbridge/state"
)

// Record is one upstream record a stream fetched, already normalised into an
// Event. The runner fills in the event's ID, Seq, Revision and Changes.
type Record struct {
	// Key is the record's natural key within its stream (alert id, device id, ...).
	Key string
	// Time is when the record happened upstream; it orders the stream.
	Time time.Time
	// Hash is a content hash of the record; a different hash for a seen Key is
	// a revision.
	Hash uint64
	// Raw is the upstream record as received.
	Raw []byte
	// Event is the normalised event. A stream may leave it nil and set
	// Batch.Normalize, so that only records the runner finds new are built.
	Event *Event
	// Action is set by the runner, for records of a SetStream, before it
	// calls Batch.Normalize: ActionAdded, ActionChanged or ActionRemoved.
	// A removal record is made by the runner: its Raw is the record as last
	// seen (from the journal; "{}" when that has left it).
	Action string
	// Previous and Changes are set by the runner, before it calls
	// Batch.Normalize, on a record whose earlier revision is still in the
	// journal: that revision's raw record, and the top-level fields that
	// differ from it (less Batch.Volatile). The event's changes are Changes.
	Previous []byte
	Changes  map[string]Change
}

// Actions a SetStream's records are normalised with (Record.Action).
const (
	ActionAdded   = "added"
	ActionChanged = "changed"
	ActionRemoved = "removed"
)

// Position is what a stream is told about its progress when it polls.
type Position struct {
	// Watermark is the newest record time committed so far; zero before the
	// first commit.
	Watermark time.Time
	// Floor is the oldest record time the stream still wants: records older
	// than Floor are of no use (already delivered and past the lookback, or
	// before the configured start).
	Floor time.Time
}

// Batch is what one poll of a stream returns.
type Batch struct {
	// Records are in delivery order, oldest first. Records older than the
	// position's floor may be included; the runner drops them.
	Records []Record
	// Gap counts records the poll knows it skipped (the page-size cap was hit).
	Gap int
	// Unchanged counts records the poll fetched and left out of Records
	// because they are byte for byte ones an earlier committed poll handed
	// over, which the runner would drop as seen. They count as fetched.
	Unchanged int
	// Normalize, when set, fills in the Event of a record that has none.
	// The event may live in the stream's scratch space: it is valid until
	// the next Normalize call of the same stream, so a caller that keeps
	// events past that must copy them (the runner encodes each at once).
	Normalize func(*Record) error
	// Committed, when set, is called once every record of the batch is
	// committed (before Release); a batch whose commit failed is not. A
	// stream that leaves records out as Unchanged learns here that the
	// runner now has the batch's records in its seen index.
	Committed func()
	// Release, when set, is called once the runner is done with the
	// records, so the stream can reuse the memory they point into.
	Release func()
	// Volatile names top-level fields that change without the record
	// changing (a device's lastSeen): like the stream's content hash, a
	// revision's changes leave them out.
	Volatile map[string]bool
}

// Stream is one incremental feed: one source instance, one site and sensor
// where they apply, one kind of record.
type Stream interface {
	// ID is stable across restarts and unique within the process; state is
	// keyed by it.
	ID() string
	// Poll fetches what is new after pos.
	Poll(ctx context.Context, pos Position) (Batch, error)
}

// SetStream is a Stream whose every poll returns the whole current set of
// its records (a device inventory, the CVEs of every device, the patch
// requests) rather than what is new since a watermark. The runner compares
// each poll with what it has seen: a new key is added, a changed hash is a
// revision, and a key missing from complete polls (Batch.Gap == 0) for
// RemoveAfter is removed. Nothing is pruned from its seen index by time.
// Records that are older than the configured start the first time they are
// seen become the baseline: remembered, not emitted.
type SetStream interface {
	Stream
	// RemoveAfter is how long a record must be missing before its removal
	// is emitted; 0 never emits removals.
	RemoveAfter() time.Duration
}

// Poller is a configured upstream instance that serves one or more streams.
// Its set of streams may change over time (site and sensor discovery).
type Poller interface {
	// Name is the configured instance name.
	Name() string
	// Streams returns the streams the source serves now.
	Streams(ctx context.Context) ([]Stream, error)
}

// Entry is one journal entry handed to a sink: the journal sequence number
// and the event's schema-v1 JSON (no trailing newline).
type Entry = state.Entry

// Sink delivers batches of events to one destination. It does not retry by
// itself: it returns nil when the whole batch is safe, or an error the
// dispatcher classifies (see Permanent, RetryAfter and Partial). The
// entries' Data is reused after Deliver returns: a sink that needs it later
// copies it.
type Sink interface {
	Deliver(ctx context.Context, batch []Entry) error
	Close() error
}

// PermanentError marks a batch the destination will never accept; the
// dispatcher moves it to dead-letter.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }

// RetryAfterError asks the dispatcher to wait at least After before retrying.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err with a minimum delay before the next attempt.
func RetryAfter(err error, after time.Duration) error {
	return &RetryAfterError{Err: err, After: after}
}

// PartialError says the first Done entries of the batch were delivered and
// the rest were not.
type PartialError struct {
	Done int
	Err  error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("partly delivered (%d): %v", e.Done, e.Err)
}
func (e *PartialError) Unwrap() error { return e.Err }

// Partial wraps err for a batch whose first done entries were delivered.
func Partial(done int, err error) error { return &PartialError{Done: done, Err: err} }

// IsPermanent reports whether err is or wraps a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Rejection names one entry of a batch that the destination will never
// accept, and why (an event larger than the syslog message limit, say).
type Rejection struct {
	// Index is the entry's position in the batch given to Deliver.
	Index int
	// Reason is what the dead-letter record says.
	Reason string
}

// RejectedError says the entries in Items will never be accepted and go to
// dead-letter, while Err says how the rest of the batch went: nil when every
// other entry was delivered, a PartialError when only the first Done
// entries were handled, anything else when the batch must be retried.
type RejectedError struct {
	Items []Rejection
	Err   error
}

func (e *RejectedError) Error() string {
	msg := fmt.Sprintf("%d events rejected", len(e.Items))
	if len(e.Items) > 0 {
		msg += " (first: " + e.Items[0].Reason + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}
func (e *RejectedError) Unwrap() error { return e.Err }

// Rejected returns a RejectedError; err may be nil.
func Rejected(items []Rejection, err error) error { return &RejectedError{Items: items, Err: err} }

// DisabledError says the destination has asked never to be sent to again
// (a webhook answering 410 Gone). The dispatcher stops the sink with a loud
// error; its events stay in the journal for replay once it is fixed.
type DisabledError struct{ Err error }

func (e *DisabledError) Error() string { return "sink disabled: " + e.Err.Error() }
func (e *DisabledError) Unwrap() error { return e.Err }

// Disabled wraps err as a DisabledError.
func Disabled(err error) error { return &DisabledError{Err: err} }
