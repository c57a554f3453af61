package pipeline

import (
	"context"
	"errors"
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
}

// init loads the sink's cursor. A sink seen for the first time starts at the
// journal's end, so adding a sink to a running installation does not replay
// the retained history (on a new state file that end is 0: everything).
func (d *dispatcher) init() error {
	c, ok, err := d.r.store.Cursor(d.name)
	if err != nil {
		return err
	}
	if !ok {
		st, err := d.r.store.Stats()
		if err != nil {
			return err
		}
		c = st.LastSeq
		if err := d.r.store.SetCursor(d.name, c); err != nil {
			return err
		}
	}
	d.cursor.Store(c)
	return nil
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
	}
}

// deliver hands one batch to the sink until it is done, dead-lettered, or
// the runner stops. It returns false when stopping.
func (d *dispatcher) deliver(ctx, deliverCtx context.Context, batch []Entry) bool {
	bo := newBackoff(200*time.Millisecond, 30*time.Second)
	attempts := 0
	var lastErr string
	for len(batch) > 0 {
		err := d.sink.Deliver(deliverCtx, batch)
		if err == nil {
			d.advance(batch)
			break
		}
		var partial *PartialError
		if errors.As(err, &partial) && partial.Done > 0 && partial.Done <= len(batch) {
			d.advance(batch[:partial.Done])
			batch = batch[partial.Done:]
			err = partial.Err
		}
		if IsPermanent(err) {
			if derr := d.r.dead.write(d.name, batch, err.Error()); derr != nil {
				d.log.Error("dead-letter write failed; will retry the batch", zap.Error(derr))
			} else {
				d.log.Error("sink rejected a batch permanently; moved to dead-letter", zap.Error(err), zap.Int("events", len(batch)))
				d.deadLettered.Add(uint64(len(batch)))
				d.advance(batch)
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

func (d *dispatcher) advance(done []Entry) {
	last := done[len(done)-1].Seq
	// The cursor write is what makes the delivery count; if it fails the
	// batch is delivered again later (at least once).
	if err := d.r.store.SetCursor(d.name, last); err != nil {
		d.log.Error("cursor write failed; the batch may be delivered again", zap.Error(err))
	}
	d.cursor.Store(last)
	d.delivered.Add(uint64(len(done)))
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
