// Package nats is the NATS sink: it publishes every event as one message,
// either with core NATS (the batch is on the server when Deliver returns) or
// with JetStream (every event is acknowledged by the stream, and the
// Nats-Msg-Id header, the event id, lets the stream drop repeats). With a
// stream that allows it, a JetStream batch goes as one fast-ingest batch,
// acknowledged in runs (fast.go).
//
// The subject comes from a template over event fields (see Placeholders);
// the headers carry the event's id, kind, severity, seq and source; the body
// is the event rendered in the configured format.
package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// Headers set on every message.
const (
	HeaderMsgID       = jetstream.MsgIDHeader // "Nats-Msg-Id": the event id
	HeaderKind        = "Mdbridge-Kind"
	HeaderSeverity    = "Mdbridge-Severity"
	HeaderSeq         = "Mdbridge-Seq" // the event's per-stream sequence number
	HeaderSource      = "Mdbridge-Source"
	HeaderContentType = "Content-Type"
)

const (
	// maxSubjects bounds the subject cache; it is emptied when full.
	maxSubjects = 4096
	// ackGrace is added to ack_timeout when waiting for acknowledgements:
	// the client library times every publish out after ack_timeout, so the
	// wait normally ends before it.
	ackGrace = time.Second
	// maxKeptArena is the largest message buffer kept between batches.
	maxKeptArena = 32 << 20
)

// Outcome of one message of a batch.
const (
	stPending  uint8 = iota // prepared, not sent
	stSent                  // published, waiting for its acknowledgement
	stOK                    // acknowledged (JetStream) or flushed (core)
	stRejected              // will never be accepted
	stFailed                // failed this time; retry
)

// errNotSent marks messages left unsent after an earlier one failed.
var errNotSent = errors.New("not sent")

// Sink publishes events to NATS. Deliver and Close are meant to be called
// from the sink's dispatcher goroutine; a mutex also makes them safe to call
// concurrently. The NATS connection runs its own goroutines, which Close
// ends.
type Sink struct {
	cfg         Config
	log         *zap.Logger
	tmpl        *template
	fmt         format.Formatter
	contentType string
	where       string // the configured servers, for messages

	nc *natsgo.Conn
	js jetstream.JetStream // nil with core NATS

	mu          sync.Mutex // serialises Deliver and Close
	closed      bool
	streamReady bool // the JetStream stream check passed

	// batched: the stream allows fast-ingest batch publishing and
	// batch_publish is not off (set by checkStream).
	batched bool
	// perEvent makes the next batches go with one acknowledgement per
	// event, after a fast batch failed: the server ends a fast batch at
	// the first event it refuses without saying which one it was, and the
	// per-event path does. The first batch delivered whole that way
	// switches back.
	perEvent bool
	// unbatchedLogged: the info line saying that the stream does not allow
	// batched publishing was written.
	unbatchedLogged bool
	// flow and outstanding are the fast batch's flow control: the server
	// acknowledges every flow-th message, and at most outstanding
	// acknowledgements may be awaited, so that flow*outstanding is about
	// max_pending.
	flow, outstanding uint16

	subjects map[string]string // subject cache, keyed by template.key
	keyBuf   []byte
	subjBuf  []byte

	// amu guards cur for the acknowledgement callbacks, which run on the
	// client library's goroutines.
	amu  sync.Mutex
	cur  *flight
	wake chan struct{} // a callback resolved a message

	events *connEvents
}

// flight is the state of one batch: its messages, each message's outcome
// and the buffer their bodies and header values live in. It is reused for
// the next batch unless messages of it were left unresolved, in which case
// the client library may still read them and a fresh one is made.
type flight struct {
	slots  []slot
	index  map[*natsgo.Msg]int
	status []uint8
	errs   []error
	sent   int // messages published and awaiting a callback
	acked  int // callbacks received
	arena  []byte
	idx    []int // the slots a fast batch publishes, in order
}

// slot is one reusable message with its header map.
type slot struct {
	msg natsgo.Msg
}

var _ pipeline.Sink = (*Sink)(nil)

// New validates cfg and connects. A server that cannot be reached does not
// make New fail: the connection keeps retrying in the background and
// Deliver returns a retryable error until it is up. With jetstream on and
// the server reachable, the stream is checked (or, with a stream block,
// created or updated) here, and a missing stream is an error; otherwise
// that happens at the first Deliver that finds the server up. A nil log
// discards log output.
func New(cfg Config, log *zap.Logger) (*Sink, error) {
	if log == nil {
		log = zap.NewNop()
	}
	urls, _ := parseURLs(cfg.URL)
	where := strings.Join(urls, ",")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nats sink %s: invalid config: %w", where, err)
	}
	tmpl, err := parseTemplate(cfg.Subject)
	if err != nil {
		return nil, fmt.Errorf("nats sink %s: subject: %w", where, err)
	}
	f, err := format.New(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("nats sink %s: format: %w", where, err)
	}
	s := &Sink{
		cfg:         cfg,
		log:         log.With(zap.String("servers", where)),
		tmpl:        tmpl,
		fmt:         f,
		contentType: "text/plain",
		where:       where,
		subjects:    make(map[string]string),
		cur:         newFlight(),
		wake:        make(chan struct{}, 1),
	}
	if f.JSON() {
		s.contentType = "application/json"
	}
	s.flow, s.outstanding = fastFlow(cfg.MaxPending)
	s.events = &connEvents{log: s.log}
	opts, err := s.options()
	if err != nil {
		return nil, fmt.Errorf("nats sink %s: %w", where, err)
	}
	nc, err := natsgo.Connect(where, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink %s: connect: %w", where, err)
	}
	s.nc = nc
	if cfg.JetStream {
		s.js, err = jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
			jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
			jetstream.WithPublishAsyncAckHandler(s.onAck),
			jetstream.WithPublishAsyncErrHandler(s.onAckErr),
			jetstream.WithDefaultTimeout(cfg.AckTimeout),
		)
		if err != nil {
			s.events.closing.Store(true)
			nc.Close()
			return nil, fmt.Errorf("nats sink %s: JetStream: %w", where, err)
		}
	}
	if !nc.IsConnected() {
		s.log.Warn("NATS server not reachable at startup; the sink keeps trying and delivers once it is up",
			zap.NamedError("last_error", nc.LastError()))
		return s, nil
	}
	if cfg.JetStream {
		if err := s.checkStream(context.Background()); err != nil {
			s.events.closing.Store(true)
			nc.Close()
			return nil, err
		}
		s.streamReady = true
	}
	return s, nil
}

func newFlight() *flight { return &flight{index: make(map[*natsgo.Msg]int)} }

// Deliver publishes the batch. With core NATS it returns nil once a round
// trip to the server has confirmed that every message arrived; with
// JetStream, once the stream has acknowledged every message (a duplicate
// counts: the stream holds it already).
//
// Errors: while disconnected, a retryable error. An event the server will
// never take (larger than max_payload or the stream's max_msg_size, or not
// renderable in the format) is a pipeline.Rejected entry. When some
// messages fail, the leading run of events that are done is reported with
// pipeline.Partial, so that the dispatcher resends only the rest; with
// JetStream a resent event that had in fact been stored is dropped by the
// stream's duplicate window.
func (s *Sink) Deliver(ctx context.Context, batch []pipeline.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("nats sink %s: %w", s.where, natsgo.ErrConnectionClosed)
	}
	if !s.nc.IsConnected() {
		return s.notConnected()
	}
	if s.js != nil && !s.streamReady {
		if err := s.checkStream(ctx); err != nil {
			return err
		}
		s.streamReady = true
	}

	f := s.prepare(batch)
	switch {
	case s.js == nil:
		s.publishCore(ctx, f)
	case s.batched && !s.perEvent:
		refused := s.publishFast(ctx, f)
		if refused == nil {
			s.perEvent = !f.done()
			break
		}
		if s.cfg.BatchPublish == BatchPublishOn {
			// Someone turned allow_batched off: check the stream again
			// (a stream block turns it back on) before the retry.
			for i := range f.status {
				if f.status[i] == stPending {
					f.status[i], f.errs[i] = stFailed, fmt.Errorf("batch_publish is on: %w", refused)
				}
			}
			s.streamReady = false
			break
		}
		s.batched = false
		s.logUnbatched(s.streamName(), refused)
		s.publishJetStream(ctx, f)
	default:
		s.publishJetStream(ctx, f)
		if s.perEvent && f.done() {
			s.perEvent = false
		}
	}
	err := s.outcome(batch, f)
	if s.js != nil && errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream took the messages: it may have been deleted. Check
		// again (and, with a stream block, create it) before the retry.
		s.streamReady = false
	}
	return err
}

// done reports whether every message of the flight is resolved for good:
// acknowledged or rejected.
func (f *flight) done() bool {
	for _, st := range f.status {
		if st != stOK && st != stRejected {
			return false
		}
	}
	return true
}

// notConnected is the error for a Deliver while the connection is down.
func (s *Sink) notConnected() error {
	err := fmt.Errorf("nats sink %s: not connected (%s)", s.where, s.nc.Status())
	last := s.events.lastAttempt()
	if last == nil {
		last = s.nc.LastError()
	}
	if last != nil {
		err = fmt.Errorf("%w; last error: %w", err, last)
	}
	return err
}

// prepare renders every event of the batch into the current flight: body,
// subject and headers. Events that cannot be read or rendered are marked
// rejected.
func (s *Sink) prepare(batch []pipeline.Entry) *flight {
	f := s.cur
	n := len(batch)
	if cap(f.slots) < n {
		old := f.slots[:cap(f.slots)]
		f.slots = make([]slot, n)
		copy(f.slots, old) // keep the header maps already made
		f.status = make([]uint8, n)
		f.errs = make([]error, n)
	}
	f.slots, f.status, f.errs = f.slots[:n], f.status[:n], f.errs[:n]
	f.sent, f.acked = 0, 0
	size := 0
	for i := range batch {
		size += len(batch[i].Data) + 128
	}
	arena := f.arena[:0]
	if cap(arena) < size {
		arena = make([]byte, 0, size)
	}

	for i := range batch {
		f.status[i], f.errs[i] = stPending, nil
		data := batch[i].Data
		meta, err := format.PeekMeta(data)
		if err != nil {
			f.status[i], f.errs[i] = stRejected, fmt.Errorf("event is not schema-v1 JSON: %w", err)
			continue
		}
		start := len(arena)
		arena, err = s.fmt.Append(arena, data)
		if err != nil {
			arena = arena[:start]
			f.status[i], f.errs[i] = stRejected, fmt.Errorf("render as %s: %w", s.fmt.Name(), err)
			continue
		}
		body := arena[start:len(arena):len(arena)]

		// Header values are copied next to the body: the entry's data is
		// the dispatcher's, and the client library may read a message
		// again (a publish retried on no-responders) until it is resolved.
		var id, kind, sev, seq, src string
		id, arena = appendString(arena, meta.ID)
		kind, arena = appendString(arena, meta.Kind)
		sev, arena = appendString(arena, meta.Severity)
		src, arena = appendString(arena, meta.Instance)
		at := len(arena)
		arena = strconv.AppendUint(arena, meta.Seq, 10)
		seq = unsafe.String(unsafe.SliceData(arena[at:]), len(arena)-at)

		m := &f.slots[i].msg
		if m.Header == nil {
			m.Header = natsgo.Header{
				HeaderMsgID: {""}, HeaderKind: {""}, HeaderSeverity: {""},
				HeaderSeq: {""}, HeaderSource: {""}, HeaderContentType: {""},
			}
		}
		m.Subject = s.subject(&meta)
		m.Data = body
		m.Header[HeaderMsgID][0] = id
		m.Header[HeaderKind][0] = kind
		m.Header[HeaderSeverity][0] = sev
		m.Header[HeaderSeq][0] = seq
		m.Header[HeaderSource][0] = src
		m.Header[HeaderContentType][0] = s.contentType
	}
	if cap(arena) <= maxKeptArena {
		f.arena = arena[:0]
	} else {
		f.arena = nil
	}

	if s.cfg.JetStream {
		s.amu.Lock()
		clear(f.index)
		for i := range f.slots {
			f.index[&f.slots[i].msg] = i
		}
		s.amu.Unlock()
	}
	return f
}

// appendString appends v to buf and returns it as a string that shares
// buf's memory, and buf.
func appendString(buf []byte, v string) (string, []byte) {
	if v == "" {
		return "", buf
	}
	at := len(buf)
	buf = append(buf, v...)
	return unsafe.String(unsafe.SliceData(buf[at:]), len(v)), buf
}

// subject returns the subject for an event, from the cache when the same
// field values were seen before.
func (s *Sink) subject(m *format.Meta) string {
	s.keyBuf = s.tmpl.key(s.keyBuf[:0], m)
	if subj, ok := s.subjects[string(s.keyBuf)]; ok {
		return subj
	}
	s.subjBuf = s.tmpl.render(s.subjBuf[:0], m)
	subj := string(s.subjBuf)
	if len(s.subjects) >= maxSubjects {
		clear(s.subjects)
	}
	s.subjects[string(s.keyBuf)] = subj
	return subj
}

// publishCore publishes the prepared messages and confirms them with one
// round trip to the server.
func (s *Sink) publishCore(ctx context.Context, f *flight) {
	before := s.nc.LastError()
	sent := 0
	for i := range f.slots {
		if f.status[i] != stPending {
			continue
		}
		if err := s.nc.PublishMsg(&f.slots[i].msg); err != nil {
			if s.tooLarge(f, i, err) {
				continue
			}
			f.status[i], f.errs[i] = stFailed, fmt.Errorf("publish: %w", err)
			break
		}
		f.status[i] = stSent
		sent++
	}
	if sent == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	err := s.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		err = fmt.Errorf("flush (round trip to the server): %w", err)
	} else if after := s.nc.LastError(); errors.Is(after, natsgo.ErrPermissionViolation) && after != before { //nolint:errorlint // identity: a new violation during this batch
		// The server drops a message the user may not publish and says so
		// asynchronously; it arrives before the flush's reply.
		err = fmt.Errorf("server refused a publish: %w", after)
	}
	for i := range f.status {
		if f.status[i] != stSent {
			continue
		}
		if err != nil {
			f.status[i], f.errs[i] = stFailed, err
		} else {
			f.status[i] = stOK
		}
	}
}

// publishJetStream publishes the prepared messages asynchronously, at most
// max_pending awaiting their acknowledgement at a time, and waits for
// every acknowledgement (or ack_timeout).
func (s *Sink) publishJetStream(ctx context.Context, f *flight) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sent := 0
	var stop error
	for i := range f.slots {
		if f.status[i] != stPending {
			continue
		}
		if sent >= s.cfg.MaxPending {
			if err := s.waitAcked(ctx, f, sent-s.cfg.MaxPending+1, timer); err != nil {
				stop = err
				break
			}
		}
		s.amu.Lock()
		f.status[i] = stSent
		s.amu.Unlock()
		if _, err := s.js.PublishMsgAsync(&f.slots[i].msg); err != nil {
			// The library may have registered the message before the write
			// failed, and its reconnect goroutine then reports it to
			// onAckErr: the status is shared with resolve from here on.
			s.amu.Lock()
			resolved, tooLarge := f.status[i] != stSent, false
			if !resolved {
				if tooLarge = s.tooLarge(f, i, err); !tooLarge {
					f.status[i], f.errs[i] = stFailed, fmt.Errorf("publish: %w", err)
				}
			}
			s.amu.Unlock()
			if resolved {
				sent++ // counted in acked already: keep acked <= sent
			}
			if tooLarge {
				continue
			}
			break
		}
		sent++
	}
	s.amu.Lock()
	f.sent = sent
	s.amu.Unlock()
	if stop == nil {
		stop = s.waitAcked(ctx, f, sent, timer)
	}

	s.amu.Lock()
	defer s.amu.Unlock()
	if f.acked < f.sent {
		// Messages the library still holds: keep their memory as it is
		// and let the next batch build a new flight. Late callbacks find
		// nothing of theirs in it.
		s.cur = newFlight()
	}
	for i := range f.status {
		if f.status[i] == stSent {
			f.status[i], f.errs[i] = stFailed, stop
		}
	}
}

// waitAcked waits until at least target messages of f are resolved.
func (s *Sink) waitAcked(ctx context.Context, f *flight, target int, timer *time.Timer) error {
	timer.Reset(s.cfg.AckTimeout + ackGrace)
	for {
		s.amu.Lock()
		acked := f.acked
		s.amu.Unlock()
		if acked >= target {
			return nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
		case <-timer.C:
			return fmt.Errorf("no acknowledgement within ack_timeout (%s)", s.cfg.AckTimeout)
		}
	}
}

// onAck and onAckErr are the JetStream acknowledgement callbacks.
func (s *Sink) onAck(_ jetstream.JetStream, m *natsgo.Msg, _ *jetstream.PubAck) {
	s.resolve(m, nil)
}

func (s *Sink) onAckErr(_ jetstream.JetStream, m *natsgo.Msg, err error) {
	s.resolve(m, err)
}

func (s *Sink) resolve(m *natsgo.Msg, err error) {
	s.amu.Lock()
	f := s.cur
	i, ok := f.index[m]
	ok = ok && f.status[i] == stSent
	if ok {
		if err == nil {
			f.status[i] = stOK
		} else {
			f.status[i], f.errs[i] = classifyAckError(err)
		}
		f.acked++
	}
	s.amu.Unlock()
	if ok {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// classifyAckError tells a message the stream will never take (larger
// than its max_msg_size) from one to retry.
func classifyAckError(err error) (uint8, error) {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return stRejected, fmt.Errorf("the stream refused it: %w", err)
	}
	return stFailed, fmt.Errorf("acknowledgement: %w", err)
}

// tooLarge marks message i rejected when err says it exceeds the server's
// max_payload, and reports whether it did.
func (s *Sink) tooLarge(f *flight, i int, err error) bool {
	if !errors.Is(err, natsgo.ErrMaxPayload) {
		return false
	}
	m := &f.slots[i].msg
	f.status[i], f.errs[i] = stRejected, fmt.Errorf("message of %d bytes (body) plus headers is larger than the server's max_payload (%d bytes): %w",
		len(m.Data), s.nc.MaxPayload(), err)
	return true
}

// outcome turns the flight's per-message results into Deliver's result.
func (s *Sink) outcome(batch []pipeline.Entry, f *flight) error {
	var rejected []pipeline.Rejection
	first, failed := -1, 0
	for i, st := range f.status {
		switch st {
		case stOK:
		case stRejected:
			rejected = append(rejected, pipeline.Rejection{Index: i,
				Reason: fmt.Sprintf("nats sink %s: event seq %d rejected: %v", s.where, batch[i].Seq, f.errs[i])})
		default:
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	var err error
	if first >= 0 {
		cause := f.errs[first]
		if cause == nil {
			cause = errNotSent
		}
		what := "acknowledged by the stream"
		if s.js == nil {
			what = "confirmed by the server"
		}
		err = fmt.Errorf("nats sink %s: %d of %d events not %s; first at entry seq %d: %w",
			s.where, failed, len(batch), what, batch[first].Seq, cause)
		if first > 0 {
			err = pipeline.Partial(first, err)
		}
	}
	if len(rejected) > 0 {
		return pipeline.Rejected(rejected, err)
	}
	return err
}

// Close closes the connection. Later calls return nil; Deliver after Close
// returns an error wrapping nats.ErrConnectionClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.events.closing.Store(true)
	s.nc.Close()
	return nil
}
