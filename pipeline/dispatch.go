package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// dispatcher moves journal entries after its sink's cursor to the sink.
type dispatcher struct {
	r    *Runner
	name string
	sink Sink
	opts SinkOptions
	log  *zap.Logger

	cursor       atomic.Uint64
	delivered    atomic.Uint64
	retries      atomic.Uint64
	deadLettered atomic.Uint64
	failing      atomic.Bool
	disabled     atomic.Bool
	lastErr      atomic.Pointer[string] // for SinkStatus.LastError

	// replay is set for a one-off replay: no cursor is stored.
	replay bool
}

// init loads the sink's cursor. A sink seen for the first time starts at the
// journal's end, so adding a sink to a running installation does not replay
// the retained history (on a new state file that end is 0: everything),
// unless its options say StartEarliest.
func (d *dispatcher) init() error {
	c, ok, err := d.r.store.Cursor(d.name)
	if err != nil {
		return err
	}
	if !ok && d.opts.StartEarliest {
		if err := d.r.store.SetCursor(d.name, 0); err != nil {
			return err
		}
		d.log.Info("new sink starts at the oldest retained event (start: earliest)")
	} else if !ok {
		st, err := d.r.store.Stats()
		if err != nil {
			return err
		}
		c = st.LastSeq
		if err := d.r.store.SetCursor(d.name, c); err != nil {
			return err
		}
	} else if u, isU := d.sink.(unacknowledged); isU && c > 0 && !d.replay {
		if n := u.RedeliverBytes(); n > 0 {
			from, err := d.r.store.SeqBefore(c, n)
			if err != nil {
				return err
			}
			if from < c {
				d.log.Info("the destination does not acknowledge what it stores, so the last events before the cursor are delivered again after a restart (duplicates with the same id)",
					zap.Uint64("events", c-from), zap.Uint64("cursor", c))
				c = from
			}
		}
	}
	d.cursor.Store(c)
	return nil
}

// unacknowledged is implemented by sinks whose destination does not confirm
// what it stored (syslog over TCP): a write succeeds once the bytes are in a
// socket buffer, and a receiver that stops discards what it had not read.
// Such a sink writes its last batches again when it reconnects, but that
// copy dies with the process; so after a restart its dispatcher first
// delivers the journal's last RedeliverBytes bytes before its cursor again.
type unacknowledged interface {
	RedeliverBytes() int
}

func (d *dispatcher) run(ctx, deliverCtx context.Context) {
	var buf []byte // reused for every batch: sinks do not keep entry data
	for ctx.Err() == nil {
		changed := d.r.store.Changed()
		batch, b, err := d.r.store.ReadInto(d.cursor.Load(), d.opts.Batch, d.opts.BatchBytes, buf)
		buf = b
		if err != nil {
			d.log.Error("journal read failed", zap.Error(err))
			sleepCtx(ctx, time.Second)
			continue
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-time.After(time.Second):
			}
			continue
		}
		if !d.deliver(ctx, deliverCtx, batch) {
			return
		}
		if d.disabled.Load() {
			<-ctx.Done()
			return
		}
	}
}

// deliver hands one batch to the sink until it is done, dead-lettered, or
// the runner stops. It returns false when stopping.
func (d *dispatcher) deliver(ctx, deliverCtx context.Context, batch []Entry) bool {
	bo := newBackoff(200*time.Millisecond, 30*time.Second)
	attempts := 0
	var lastErr string
	for len(batch) > 0 {
		start := time.Now()
		err := d.sink.Deliver(deliverCtx, batch)
		if f := d.r.opts.ObserveDelivery; f != nil {
			f(d.name, time.Since(start), len(batch))
		}
		if err == nil {
			d.advance(batch, len(batch))
			break
		}
		var rej *RejectedError
		if errors.As(err, &rej) {
			handled, rest := 0, rej.Err
			var partial *PartialError
			switch {
			case rej.Err == nil:
				handled = len(batch)
			case errors.As(rej.Err, &partial) && partial.Done <= len(batch):
				handled, rest = partial.Done, partial.Err
			}
			if n, derr := d.reject(batch[:handled], rej.Items); derr != nil {
				err = derr // the whole batch is tried again
			} else {
				if handled > 0 {
					d.advance(batch[:handled], handled-n)
					batch = batch[handled:]
				}
				if len(batch) == 0 {
					break
				}
				err = rest
				if err == nil {
					err = errors.New("the sink rejected events without saying how the rest went")
				}
			}
		}
		var partial *PartialError
		if errors.As(err, &partial) && partial.Done > 0 && partial.Done <= len(batch) {
			d.advance(batch[:partial.Done], partial.Done)
			batch = batch[partial.Done:]
			err = partial.Err
		}
		if err != nil {
			// Sinks name their destination; an untrusted certificate
			// also gets the hint at tls.ca_file, for every sink alike.
			err = CertHint(err)
			msg := err.Error()
			d.lastErr.Store(&msg)
		}
		var dis *DisabledError
		if errors.As(err, &dis) {
			d.disabled.Store(true)
			d.failing.Store(true)
			d.log.Error("SINK DISABLED: the destination asked never to be sent to again; its events stay in the journal "+
				"(and go to dead-letter when state.max_bytes is reached); fix the destination, restart, or replay",
				zap.Error(err), zap.Uint64("cursor", d.cursor.Load()))
			return true
		}
		if IsPermanent(err) {
			if derr := d.r.dead.write(d.name, batch, err.Error()); derr != nil {
				d.log.Error("dead-letter write failed; will retry the batch", zap.Error(derr))
			} else {
				d.log.Error("sink rejected a batch permanently; moved to dead-letter", zap.Error(err), zap.Int("events", len(batch)))
				d.deadLettered.Add(uint64(len(batch)))
				d.advance(batch, 0)
				break
			}
		}
		attempts++
		d.retries.Add(1)
		wait := bo.NextBackOff()
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.After > wait {
			wait = ra.After
		}
		if msg := err.Error(); attempts == 1 || msg != lastErr {
			d.log.Warn("delivery failed; will retry", zap.Error(err), zap.Int("attempt", attempts), zap.Duration("retry_in", wait))
			lastErr = msg
		}
		d.failing.Store(true)
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
	if attempts > 0 {
		d.log.Info("delivery recovered", zap.Int("failed_attempts", attempts))
		d.failing.Store(false)
	}
	return true
}

// reject dead-letters the rejected entries that lie within handled, each
// with its own reason.
func (d *dispatcher) reject(handled []Entry, items []Rejection) (int, error) {
	n := 0
	for _, it := range items {
		if it.Index < 0 || it.Index >= len(handled) {
			continue
		}
		if err := d.r.dead.write(d.name, handled[it.Index:it.Index+1], it.Reason); err != nil {
			return 0, fmt.Errorf("dead-letter write failed: %w", err)
		}
		n++
	}
	if n > 0 {
		d.deadLettered.Add(uint64(n))
		d.log.Error("sink rejected events; moved to dead-letter", zap.Int("events", n), zap.String("first_reason", items[0].Reason))
	}
	return n, nil
}

// advance moves the cursor past done, of which delivered reached the sink
// (the rest were dead-lettered).
func (d *dispatcher) advance(done []Entry, delivered int) {
	last := done[len(done)-1].Seq
	// The cursor write is what makes the delivery count; if it fails the
	// batch is delivered again later (at least once). A replay has none.
	if !d.replay {
		if err := d.r.store.SetCursor(d.name, last); err != nil {
			d.log.Error("cursor write failed; the batch may be delivered again", zap.Error(err))
		}
	}
	d.cursor.Store(last)
	d.delivered.Add(uint64(delivered))
}

// sleepCtx waits d or until ctx ends; it reports whether the wait completed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lastError is the most recent delivery error, "" before the first.
func (d *dispatcher) lastError() string {
	if p := d.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}
