// Package syslog is the syslog sink: it sends every event as one RFC 5424
// (or RFC 3164) message over UDP, TCP or TLS (RFC 5425), with octet-counting
// or newline framing (RFC 6587) on streams. The event ID and seq travel in
// every message (RFC 5424 structured data, or the RFC 3164 tag's brackets);
// a message larger than max_message_bytes goes to dead-letter, never
// truncated.
//
// Syslog over TCP and TLS has no acknowledgement: a write that succeeded
// means the kernel took the bytes, not that the receiver stored them. A
// batch is confirmed to the dispatcher once it is written; a connection that
// breaks afterwards can lose what was still in flight. The sink narrows
// that window by watching each connection for the peer closing it and
// reconnecting before the next batch, but cannot close it.
package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// maxKeptBuffer is the largest batch buffer kept between batches; a buffer
// grown past it by an unusually large batch is released after use.
const maxKeptBuffer = 16 << 20

// frameRoom is the room reserved per event for the syslog header, the
// structured data and the framing when sizing a batch buffer.
const frameRoom = 256

// udpWriteBuffer is the socket send buffer asked for on udp.
const udpWriteBuffer = 4 << 20

// Sink sends events to a syslog receiver over one connection, made lazily
// and remade after a failure. Deliver and Close are meant to be called from
// the sink's dispatcher goroutine; a mutex makes concurrent calls safe.
type Sink struct {
	mu  sync.Mutex
	log *zap.Logger

	scheme  string // udp, tcp or tls
	addr    string // host:port
	octet   bool   // octet-counting framing (tcp and tls)
	maxMsg  int
	dialTO  time.Duration
	writeTO time.Duration
	tlsConf *tls.Config
	enc     *encoder

	conn   *conn // nil until the first Deliver and after a failure
	closed bool

	buf  []byte // the framed batch, reused
	msg  []byte // one rendered message, reused
	ends []int  // udp: end offset in buf of each datagram
	idx  []int  // udp: batch index of each datagram

	// On tcp and tls: the framed bytes of the last batches written (whole
	// batches, about resendBytes at most, oldest first), written again on
	// the next connection when the receiver closed or reset the old one
	// (resend); spare is an evicted buffer for the next batch.
	recent      [][]byte
	recentBytes int
	resend      bool
	spare       []byte
	keepBytes   int // resend_bytes; 0: nothing is kept or written again
}

// resendBytes is the default of resend_bytes: how much of what was last
// written over tcp or tls is kept to be written again after the receiver
// closes the connection. Syslog over
// TCP has no acknowledgements: a write succeeds once the bytes are in the
// local socket buffer, and a receiver that stops (rsyslogd on SIGTERM, a
// crash, a load balancer's idle cut) discards whatever it had not read yet
// from its own buffer, or gets after it closed. What can be lost that way is
// bounded by the two kernels' socket buffers (Linux autotunes the receive
// side to 6 MiB at most), so writing the last 8 MiB again on the next
// connection turns that loss into duplicates (the event id is in every
// message). The reliability suite lost a 17-event batch this way before.
const resendBytes = 8 << 20

var _ pipeline.Sink = (*Sink)(nil)

// conn is one connection and, on tcp and tls, the goroutine that watches it
// for the peer closing it (a syslog receiver never sends anything).
type conn struct {
	net.Conn
	dead atomic.Bool
	done chan struct{} // closed when the watcher has returned; nil on udp
}

// New validates cfg and returns a sink; it does not connect (the first
// Deliver does). An empty hostname becomes os.Hostname(). A nil log discards
// log output.
func New(cfg Config, log *zap.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("syslog sink: invalid config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	scheme, addr, _ := parseAddress(cfg.Address)
	facility, _ := ParseFacility(cfg.Facility)
	f, err := format.New(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("syslog sink %s: format: %w", cfg.Address, err)
	}
	host := cfg.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			log.Warn("syslog sink: cannot read the hostname; sending \"-\"", zap.Error(err))
			host = ""
		}
	}
	s := &Sink{
		log:       log.With(zap.String("address", cfg.Address)),
		scheme:    scheme,
		addr:      addr,
		octet:     scheme != SchemeUDP && cfg.Framing == OctetCounting,
		maxMsg:    cfg.maxBytes(scheme),
		dialTO:    cfg.DialTimeout,
		writeTO:   cfg.WriteTimeout,
		keepBytes: int(cfg.ResendBytes),
		enc:       newEncoder(cfg.Protocol, facility, host, cfg.AppName, os.Getpid(), f),
	}
	if scheme == SchemeTLS {
		if s.tlsConf, err = cfg.TLS.Config(s.log); err != nil {
			return nil, fmt.Errorf("syslog sink %s: tls: %w", cfg.Address, err)
		}
	}
	return s, nil
}

// Deliver renders every event of batch and sends them in order: on tcp and
// tls framed into one buffer and written at once, on udp one datagram per
// event. An event that cannot be rendered, or whose message is longer than
// max_message_bytes, is not sent: it is returned in a pipeline.Rejected
// error with the reason, and the rest of the batch is sent.
//
// A failed dial or write closes the connection and returns an error for the
// dispatcher to retry the batch (on udp a pipeline.Partial error counting
// the datagrams already sent); the next Deliver reconnects.
func (s *Sink) Deliver(ctx context.Context, batch []pipeline.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("syslog sink %s: %w", s.addr, net.ErrClosed)
	}

	rejects := s.frame(batch)
	sent := len(s.ends)
	if s.scheme != SchemeUDP {
		sent = len(batch) - len(rejects)
	}
	var err error
	if sent > 0 {
		err = s.send(ctx, len(batch))
	}
	if cap(s.buf) > maxKeptBuffer {
		s.buf = nil
	}
	if cap(s.msg) > maxKeptBuffer {
		s.msg = nil
	}
	if len(rejects) > 0 {
		return pipeline.Rejected(rejects, err)
	}
	return err
}

// frame renders the batch into s.buf and returns the rejected entries.
func (s *Sink) frame(batch []pipeline.Entry) []pipeline.Rejection {
	var rejects []pipeline.Rejection
	buf := s.buf[:0]
	// Size the buffer once: growing a large one step by step copies it
	// many times. Header, structured data and framing take well under
	// frameRoom bytes per event, and a framed message is at most
	// max_message_bytes and its length prefix.
	need := 0
	for i := range batch {
		need += min(len(batch[i].Data)+frameRoom, s.maxMsg+frameRoom)
	}
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	s.ends, s.idx = s.ends[:0], s.idx[:0]
	for i := range batch {
		msg, err := s.enc.appendMessage(s.msg[:0], batch[i].Data)
		s.msg = msg
		switch {
		case err != nil:
			rejects = append(rejects, pipeline.Rejection{Index: i, Reason: "syslog: " + err.Error()})
			continue
		case len(msg) > s.maxMsg:
			rejects = append(rejects, pipeline.Rejection{Index: i, Reason: fmt.Sprintf(
				"syslog: message of %d bytes is larger than max_message_bytes (%d); not truncated", len(msg), s.maxMsg)})
			continue
		case s.scheme != SchemeUDP && !s.octet && bytes.IndexByte(msg, '\n') >= 0:
			rejects = append(rejects, pipeline.Rejection{Index: i, Reason: fmt.Sprintf(
				"syslog: format %s produced a newline, which newline framing cannot carry", s.enc.f.Name())})
			continue
		}
		if s.octet {
			buf = strconv.AppendInt(buf, int64(len(msg)), 10)
			buf = append(buf, ' ')
		}
		buf = append(buf, msg...)
		switch {
		case s.scheme == SchemeUDP:
			s.ends = append(s.ends, len(buf))
			s.idx = append(s.idx, i)
		case !s.octet:
			buf = append(buf, '\n')
		}
	}
	s.buf = buf
	return rejects
}

// send writes s.buf, connecting first if needed.
func (s *Sink) send(ctx context.Context, events int) error {
	if s.conn != nil && s.conn.dead.Load() {
		s.log.Warn("syslog receiver closed the connection; reconnecting, and writing the last batches again since it may not have read them",
			zap.Int("batches", len(s.recent)), zap.Int("bytes", s.recentBytes))
		s.closeConn()
		s.resend = s.scheme != SchemeUDP && s.keepBytes > 0
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	c := s.conn
	deadline := time.Now().Add(s.writeTO)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		s.closeConn()
		return fmt.Errorf("syslog sink %s: set write deadline: %w", s.addr, err)
	}
	// Cancelling ctx interrupts a write that is blocked.
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()

	if s.scheme == SchemeUDP {
		start := 0
		for k, end := range s.ends {
			if _, err := c.Write(s.buf[start:end]); err != nil {
				s.closeConn()
				err = fmt.Errorf("syslog sink %s: send datagram %d of %d: %w", s.addr, k+1, len(s.ends), ctxErr(ctx, err))
				if done := s.idx[k]; done > 0 {
					return pipeline.Partial(done, err)
				}
				return err
			}
			start = end
		}
		return nil
	}
	if s.resend {
		for i, b := range s.recent {
			if _, err := c.Write(b); err != nil {
				s.closeConn()
				return fmt.Errorf("syslog sink %s: write earlier batch %d of %d again after a reconnect: %w",
					s.addr, i+1, len(s.recent), ctxErr(ctx, err))
			}
		}
		s.resend = false
	}
	n, err := c.Write(s.buf)
	if err != nil {
		s.closeConn()
		s.resend = s.keepBytes > 0 // earlier batches may be unread too
		s.log.Warn("syslog write failed; closed the connection", zap.Error(err), zap.Int("written_bytes", n))
		return fmt.Errorf("syslog sink %s: write batch of %d events (%d of %d bytes written): %w",
			s.addr, events, n, len(s.buf), ctxErr(ctx, err))
	}
	s.keep()
	return nil
}

// RedeliverBytes is how much of the journal before its cursor the sink's
// dispatcher delivers again after a restart: over tcp and tls the same
// resendBytes the sink writes again after a reconnect (that copy is in
// memory, lost with the process); none over udp, which promises nothing.
func (s *Sink) RedeliverBytes() int {
	if s.scheme == SchemeUDP {
		return 0
	}
	return s.keepBytes
}

// keep moves the batch just written to the recent batches, dropping the
// oldest beyond resendBytes (their buffer serves the next batch).
func (s *Sink) keep() {
	if s.keepBytes == 0 {
		return
	}
	s.recent = append(s.recent, s.buf)
	s.recentBytes += len(s.buf)
	s.buf = s.spare[:0]
	s.spare = nil
	for len(s.recent) > 1 && s.recentBytes > s.keepBytes {
		old := s.recent[0]
		s.recent[0] = nil
		s.recent = s.recent[1:]
		s.recentBytes -= len(old)
		if s.spare == nil && cap(old) <= maxKeptBuffer {
			s.spare = old
		}
	}
}

// ctxErr names the context's error when it caused err: a cancellation, or
// a write deadline that was the context's own (the write can fail before
// the context's timer has fired).
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// dial connects and, on tcp and tls, starts the watcher.
func (s *Sink) dial(ctx context.Context) error {
	nd := &net.Dialer{Timeout: s.dialTO}
	var (
		nc  net.Conn
		err error
	)
	switch s.scheme {
	case SchemeTLS:
		td := &tls.Dialer{NetDialer: nd, Config: s.tlsConf}
		nc, err = td.DialContext(ctx, "tcp", s.addr)
	case SchemeTCP:
		nc, err = nd.DialContext(ctx, "tcp", s.addr)
	default:
		nc, err = nd.DialContext(ctx, "udp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog sink %s: connect: %w", s.addr, err)
	}
	if uc, ok := nc.(*net.UDPConn); ok {
		// A batch is sent as a burst of datagrams; room for it in the
		// socket buffer keeps the writes from waiting one by one (the
		// kernel caps the size at net.core.wmem_max).
		_ = uc.SetWriteBuffer(udpWriteBuffer)
	}
	c := &conn{Conn: nc}
	if s.scheme != SchemeUDP {
		c.done = make(chan struct{})
		go c.watch()
	}
	s.conn = c
	s.log.Info("syslog sink connected", zap.String("local", nc.LocalAddr().String()))
	return nil
}

// watch reads from the connection until it fails: a receiver that closes
// its end (or resets it) makes the read return, and the connection is marked
// dead so the next batch goes over a new one instead of into a socket whose
// peer is gone. Anything the receiver sends is discarded.
func (c *conn) watch() {
	defer close(c.done)
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			c.dead.Store(true)
			return
		}
	}
}

// closeConn closes the connection and waits for its watcher.
func (s *Sink) closeConn() {
	c := s.conn
	if c == nil {
		return
	}
	s.conn = nil
	_ = c.Close()
	if c.done != nil {
		<-c.done
	}
}

// Close closes the connection. Later calls return nil; Deliver after Close
// returns an error wrapping net.ErrClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeConn()
	return nil
}
