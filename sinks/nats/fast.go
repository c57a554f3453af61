package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.uber.org/zap"
)

// Fast-ingest batch publishing (nats-server 2.14 and later, streams with
// allow_batched): the messages of a batch carry a reply subject that numbers
// them, the stream acknowledges every flow-th one instead of each, and the
// last one commits the batch. In the mode used here (gaps fail the batch) an
// acknowledgement of number n means that messages 1 to n are stored, and the
// commit's acknowledgement gives the number of messages the batch holds.
// A message whose Nats-Msg-Id the stream has seen within its duplicate window
// is skipped like a stored one, so a duplicate counts as delivered. A message
// the stream refuses ends the batch at the one before it.
//
// The client side is the orbit.go jetstreamext FastPublisher.

// maxFlow is the most messages the server acknowledges at once; it allows
// no more than 500 whatever the client asks.
const maxFlow = 500

// fastFlow derives the fast batch's flow control from max_pending: the
// server acknowledges every flow-th message and at most outstanding
// acknowledgements are awaited, so about max_pending messages are
// unacknowledged at a time.
func fastFlow(maxPending int) (flow, outstanding uint16) {
	f := min(max(maxPending/4, 1), maxFlow)
	o := min(max(maxPending/f, 1), 1<<16-1)
	return uint16(f), uint16(o)
}

// firstErr keeps the first error the fast publisher reports asynchronously
// (a refused message, a gap, the end of the batch); it is set on the
// library's goroutine.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (e *firstErr) set(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *firstErr) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// publishFast publishes the prepared messages as one fast batch and waits
// for the commit's acknowledgement (or ack_timeout). Messages up to the
// last acknowledged one are stOK, the rest stFailed. When the stream
// refuses batched publishing before it stored anything, it returns that
// error and leaves every message stPending for the per-event path.
func (s *Sink) publishFast(ctx context.Context, f *flight) (refused error) {
	// A message over max_payload is refused by the client library after it
	// has numbered it, which breaks the batch (and leaves the library's
	// reply subscription behind): leave it out and reject it here.
	maxPayload := s.nc.MaxPayload()
	idx := f.idx[:0]
	for i, st := range f.status {
		if st != stPending {
			continue
		}
		if m := &f.slots[i].msg; maxPayload > 0 && int64(len(m.Data)+headerSize(m.Header)) > maxPayload {
			s.tooLarge(f, i, natsgo.ErrMaxPayload)
			continue
		}
		idx = append(idx, i)
	}
	f.idx = idx
	if len(idx) == 0 {
		return nil
	}

	var async firstErr
	fp, err := jetstreamext.NewFastPublisher(s.js,
		jetstreamext.FastPublishFlowControl{Flow: s.flow, MaxOutstandingAcks: s.outstanding, AckTimeout: s.cfg.AckTimeout},
		jetstreamext.WithFastPublisherErrorHandler(async.set))
	if err != nil {
		s.failFrom(f, 0, fmt.Errorf("start a batch: %w", err))
		return nil
	}
	var (
		acked uint64 // messages 1 to acked of the batch are stored
		stop  error
		last  = len(idx) - 1
	)
	for k, i := range idx[:last] {
		if k%256 == 0 {
			if err := ctx.Err(); err != nil {
				stop = fmt.Errorf("waiting for acknowledgements: %w", err)
				break
			}
		}
		f.status[i] = stSent
		ack, err := fp.AddMsg(&f.slots[i].msg)
		if err != nil {
			stop = err
			break
		}
		acked = max(acked, ack.AckSequence)
	}
	if stop == nil {
		i := idx[last]
		f.status[i] = stSent
		ack, err := fp.CommitMsg(ctx, &f.slots[i].msg)
		switch {
		case err != nil:
			stop = err
		case ack.BatchSize < uint64(len(idx)):
			// The stream ended the batch early: the messages it counts
			// are stored, the one after them was refused.
			acked = max(acked, ack.BatchSize)
			stop = errors.New("the stream ended the batch early")
		default:
			acked = uint64(len(idx))
		}
	}
	if stop == nil {
		for _, i := range idx {
			f.status[i] = stOK
		}
		return nil
	}

	if acked == 0 && isBatchRefused(stop) {
		for _, i := range idx {
			f.status[i] = stPending
		}
		return stop
	}
	if cause := async.get(); cause != nil && !errors.Is(stop, cause) {
		stop = fmt.Errorf("%w (server: %w)", stop, cause)
	}
	if errors.Is(stop, natsgo.ErrNoResponders) {
		// Nothing answered: no stream captures the subject any more.
		stop = fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, stop)
	}
	acked = min(acked, uint64(len(idx)))
	for _, i := range idx[:acked] {
		f.status[i] = stOK
	}
	s.failFrom(f, int(acked), fmt.Errorf("batched publish, %d of %d acknowledged: %w", acked, len(idx), stop))
	return nil
}

// failFrom marks the fast batch's messages from position k on as failed
// (those that were sent) or left unsent.
func (s *Sink) failFrom(f *flight, k int, err error) {
	for _, i := range f.idx[k:] {
		if f.status[i] == stSent {
			f.status[i], f.errs[i] = stFailed, err
		} else {
			f.status[i], f.errs[i] = stFailed, fmt.Errorf("%w after an earlier one failed: %w", errNotSent, err)
		}
	}
}

// isBatchRefused reports whether err says that the stream does not allow
// fast batch publishing.
func isBatchRefused(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeFastBatchNotEnabled
}

// useBatched decides, after the stream check, whether batches go as fast
// batches: batch_publish off never, auto when every stream found allows it,
// on the same but a stream that does not is an error.
func (s *Sink) useBatched(streams []string, allowed bool) error {
	switch {
	case s.cfg.BatchPublish == BatchPublishOff:
		s.batched = false
	case allowed:
		s.batched = true
	case s.cfg.BatchPublish == BatchPublishOn:
		return fmt.Errorf("nats sink %s: batch_publish is on, but JetStream stream %s does not allow batched publishing "+
			"(stream setting allow_batched, nats-server 2.14 or later): enable it, or set batch_publish to auto",
			s.where, strings.Join(streams, ", "))
	default:
		s.batched = false
		s.logUnbatched(strings.Join(streams, ", "), nil)
	}
	return nil
}

// logUnbatched says once, at info, that events go with one acknowledgement
// each because the stream does not allow batched publishing.
func (s *Sink) logUnbatched(streams string, err error) {
	if s.unbatchedLogged {
		return
	}
	s.unbatchedLogged = true
	var fields []zap.Field
	if streams != "" {
		fields = append(fields, zap.String("stream", streams))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	s.log.Info("the JetStream stream does not allow batched publishing (allow_batched); publishing with one acknowledgement per event", fields...)
}

// streamName is the configured stream's name, or "" without a stream
// block.
func (s *Sink) streamName() string {
	if s.cfg.Stream == nil {
		return ""
	}
	return s.cfg.Stream.Name
}

// headerSize is the size of h on the wire, as the client library counts it
// against max_payload.
func headerSize(h natsgo.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}
