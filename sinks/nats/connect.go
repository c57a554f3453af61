package nats

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

// connEvents logs the connection's state changes: one line per disconnect,
// reconnect or new kind of error, never one per attempt or per message.
type connEvents struct {
	log     *zap.Logger
	closing atomic.Bool // Close was called: the disconnect is ours

	mu      sync.Mutex
	lastErr string // the last error logged, to log each kind once
	attempt error  // the last failed connection attempt's error
}

func (e *connEvents) disconnected(_ *natsgo.Conn, err error) {
	if e.closing.Load() {
		return
	}
	e.log.Warn("NATS connection lost; reconnecting", zap.Error(err))
}

func (e *connEvents) connected(nc *natsgo.Conn) {
	e.reset()
	e.log.Info("NATS connection up", zap.String("server", nc.ConnectedUrlRedacted()))
}

func (e *connEvents) reconnected(nc *natsgo.Conn) {
	e.reset()
	e.log.Info("NATS connection restored", zap.String("server", nc.ConnectedUrlRedacted()))
}

// attemptFailed is called after every failed reconnection attempt; it logs
// an error only when it differs from the last one logged.
func (e *connEvents) attemptFailed(_ *natsgo.Conn, err error) {
	if err == nil || e.closing.Load() {
		return
	}
	e.mu.Lock()
	e.attempt = err
	e.mu.Unlock()
	if !e.first(err) {
		return
	}
	e.log.Warn("NATS reconnection attempt failed; retrying (logged once per kind of error)", zap.Error(err))
}

// asyncError reports errors the server sends outside a request, such as a
// permissions violation; each kind is logged once in a row.
func (e *connEvents) asyncError(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
	if err == nil || !e.first(err) {
		return
	}
	e.log.Error("NATS server reported an error (logged once per kind of error)", zap.Error(err))
}

func (e *connEvents) first(err error) bool {
	msg := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	if msg == e.lastErr {
		return false
	}
	e.lastErr = msg
	return true
}

func (e *connEvents) reset() {
	e.mu.Lock()
	e.lastErr, e.attempt = "", nil
	e.mu.Unlock()
}

// lastAttempt returns the error of the last failed connection attempt since
// the connection was last up.
func (e *connEvents) lastAttempt() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attempt
}

// options builds the connection options: reconnect forever, fail fast while
// disconnected (no reconnect buffer: a publish then fails instead of waiting
// in memory to be sent twice), authentication and TLS.
func (s *Sink) options() ([]natsgo.Option, error) {
	cfg := &s.cfg
	opts := []natsgo.Option{
		natsgo.Name("mdbridge"),
		natsgo.Timeout(cfg.ConnectTimeout),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(cfg.ReconnectWait),
		natsgo.ReconnectJitter(cfg.ReconnectWait/2, cfg.ReconnectWait/2),
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(s.events.disconnected),
		natsgo.ConnectHandler(s.events.connected),
		natsgo.ReconnectHandler(s.events.reconnected),
		natsgo.ReconnectErrHandler(s.events.attemptFailed),
		natsgo.ErrorHandler(s.events.asyncError),
	}
	switch {
	case cfg.Token != "" || cfg.TokenFile != "":
		cred := pipeline.NewCredential(cfg.Token, cfg.TokenFile)
		opts = append(opts, natsgo.TokenHandler(func() string {
			v, err := cred.Get()
			if err != nil {
				s.events.attemptFailed(nil, fmt.Errorf("token_file: %w", err))
			}
			return v
		}))
	case cfg.User != "":
		cred := pipeline.NewCredential(cfg.Password, cfg.PasswordFile)
		user := cfg.User
		opts = append(opts, natsgo.UserInfoHandler(func() (string, string) {
			v, err := cred.Get()
			if err != nil {
				s.events.attemptFailed(nil, fmt.Errorf("password_file: %w", err))
			}
			return user, v
		}))
	case cfg.NKeySeedFile != "":
		// The public key is read now; the seed is read again for every
		// signature and wiped after use.
		opt, err := natsgo.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed_file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case cfg.CredsFile != "":
		// Read at every connection attempt, so a renewed file is picked up.
		opts = append(opts, natsgo.UserCredentials(cfg.CredsFile))
	}
	if s.wantTLS() {
		tc, err := cfg.TLS.Config(s.log)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = append(opts, natsgo.Secure(tc))
	}
	return opts, nil
}

// wantTLS reports whether the config asks for TLS: a tls block or a tls://
// or wss:// URL.
func (s *Sink) wantTLS() bool {
	if s.cfg.TLS != (sinks.TLS{}) {
		return true
	}
	urls, _ := parseURLs(s.cfg.URL)
	for _, u := range urls {
		if strings.HasPrefix(u, "tls://") || strings.HasPrefix(u, "wss://") {
			return true
		}
	}
	return false
}

// checkStream makes sure a JetStream stream captures the sink's subjects:
// with a stream block it creates or updates that stream; without one it
// looks for streams whose subjects overlap the template's, and it is an
// error when there is none. A stream that covers only part of the subjects
// is a warning: events on the others fail until it is fixed.
func (s *Sink) checkStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	want := s.tmpl.capture()
	if s.cfg.Stream != nil {
		sc := s.cfg.Stream.withDefaults(s.tmpl)
		jc := jetstream.StreamConfig{
			Name:       sc.Name,
			Subjects:   sc.Subjects,
			Storage:    jetstream.FileStorage,
			Replicas:   sc.Replicas,
			MaxAge:     sc.MaxAge,
			MaxBytes:   int64(sc.MaxBytes),
			Duplicates: sc.DuplicateWindow,
			// Fast-ingest batches need it; a server before 2.14 ignores
			// it, and the stream it returns says so.
			AllowBatchPublish: s.cfg.BatchPublish != BatchPublishOff,
		}
		if sc.Storage == StorageMemory {
			jc.Storage = jetstream.MemoryStorage
		}
		if jc.MaxBytes == 0 {
			jc.MaxBytes = -1 // no limit
		}
		st, err := s.js.CreateOrUpdateStream(ctx, jc)
		if err != nil {
			return fmt.Errorf("nats sink %s: create or update JetStream stream %s (subjects %s): %w",
				s.where, sc.Name, strings.Join(jc.Subjects, " "), err)
		}
		if !coveredBy(jc.Subjects, want) {
			s.log.Warn("the stream block's subjects do not capture every subject the template can produce; events on the others will fail",
				zap.String("stream", sc.Name), zap.Strings("subjects", jc.Subjects), zap.String("subject", s.cfg.Subject))
		}
		if err := s.useBatched([]string{sc.Name}, st.CachedInfo().Config.AllowBatchPublish); err != nil {
			return err
		}
		s.log.Info("JetStream stream ready", zap.String("stream", sc.Name), zap.Strings("subjects", jc.Subjects),
			zap.Bool("batched", s.batched))
		return nil
	}

	lister := s.js.ListStreams(ctx, jetstream.WithStreamListSubject(want))
	var names, subjects []string
	allowed := true
	for info := range lister.Info() {
		names = append(names, info.Config.Name)
		subjects = append(subjects, info.Config.Subjects...)
		allowed = allowed && info.Config.AllowBatchPublish
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("nats sink %s: look for the JetStream stream that captures %s: %w", s.where, want, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("nats sink %s: no JetStream stream captures the sink's subjects %s (subject template %s): "+
			"create the stream, or add a stream block to the sink so that it creates it", s.where, want, s.cfg.Subject)
	}
	if !coveredBy(subjects, want) {
		s.log.Warn("the JetStream streams found capture only part of the sink's subjects; events on the others will fail",
			zap.Strings("streams", names), zap.Strings("stream_subjects", subjects), zap.String("subjects", want))
	}
	return s.useBatched(names, allowed)
}

// coveredBy reports whether the filters together capture pattern; only a
// single filter that covers it all counts.
func coveredBy(filters []string, pattern string) bool {
	for _, f := range filters {
		if covers(f, pattern) {
			return true
		}
	}
	return false
}
