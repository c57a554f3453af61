package mdss

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// ReceiverType is the value of a source's `type` key that selects the MDSS
// webhook receiver.
const ReceiverType = "mdss_webhook"

// ReceiverTLS serves the receiver over HTTPS.
type ReceiverTLS struct {
	CertFile string `koanf:"cert_file" json:"cert_file"`
	KeyFile  string `koanf:"key_file" json:"key_file"`
}

// ReceiverConfig configures the receiver of MDSS's ScanCompleted and
// FileScanned webhooks (a source of type mdss_webhook).
type ReceiverConfig struct {
	// Listen is the address to accept MDSS's requests on.
	Listen string `koanf:"listen" json:"listen"`
	// Path is the URL path MDSS posts to.
	Path string `koanf:"path" json:"path"`
	// Secret (or SecretFile) is what MDSS must send in Header: as
	// "Bearer <secret>" when Header is Authorization, as is otherwise.
	Secret     pipeline.Secret `koanf:"secret" json:"secret"`
	SecretFile string          `koanf:"secret_file" json:"secret_file"`
	Header     string          `koanf:"header" json:"header"`
	// Source names the storage_security source the notifications belong
	// to: they join its streams, so a record both pushed and polled is
	// delivered once. Empty: the receiver has streams of its own.
	Source string `koanf:"source" json:"source"`
	// ThreatResults and Raw apply when Source is empty (otherwise the
	// source's own settings do).
	ThreatResults []int `koanf:"threat_results" json:"threat_results"`
	Raw           bool  `koanf:"raw" json:"raw"`
	// URL, when set and Source is empty, is the MDSS address events name as
	// their source.url.
	URL          string            `koanf:"url" json:"url"`
	TLS          ReceiverTLS       `koanf:"tls" json:"tls"`
	MaxBodyBytes pipeline.ByteSize `koanf:"max_body_bytes" json:"max_body_bytes"`
	// Timeout bounds how long a notification may take to become durable
	// before the receiver answers 503.
	Timeout time.Duration `koanf:"timeout" json:"timeout"`
}

// DefaultReceiverConfig returns the defaults a user's YAML is decoded onto.
func DefaultReceiverConfig() ReceiverConfig {
	return ReceiverConfig{
		Listen:        "127.0.0.1:9480",
		Path:          "/mdss/webhook",
		Header:        "Authorization",
		ThreatResults: append([]int(nil), DefaultThreatResults...),
		Raw:           true,
		MaxBodyBytes:  1 << 20,
		Timeout:       10 * time.Second,
	}
}

// Validate reports every problem at once; each message starts with the key.
func (c *ReceiverConfig) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "must be host:port (%v)", err)
	}
	if !strings.HasPrefix(c.Path, "/") {
		add("path", "must start with /")
	}
	switch {
	case c.Secret == "" && c.SecretFile == "":
		add("secret", "is required (or secret_file): MDSS must prove who it is")
	case c.Secret != "" && c.SecretFile != "":
		add("secret_file", "set either secret or secret_file, not both")
	}
	if c.Header == "" || strings.ContainsAny(c.Header, " :\r\n") {
		add("header", "must be an HTTP header name")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file go together")
	}
	if c.MaxBodyBytes < 1024 {
		add("max_body_bytes", "must be at least 1KiB")
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	return errors.Join(errs...)
}

// Pusher commits received records into a running stream
// (pipeline.Runner.Push).
type Pusher interface {
	Push(ctx context.Context, streamID string, b pipeline.Batch) (int, error)
}

// Normalizer turns webhook payloads into the records polling produces for
// the same scan or file (*Poller does, with its source's settings).
type Normalizer interface {
	NormalizeScanCompleted(raw []byte) (pipeline.Record, error)
	NormalizeFileScanned(raw []byte) (pipeline.Record, error)
}

// Receiver accepts MDSS webhooks and commits each notification to the
// journal before it answers 200: MDSS sends every notification once and
// never retries, so an answer of 200 must mean durable.
type Receiver struct {
	name     string
	cfg      ReceiverConfig
	instance string // the stream owner: Source, or the receiver itself
	norm     Normalizer
	push     Pusher
	secret   *pipeline.Credential
	log      *zap.Logger

	accepted, ignored, rejected, failed atomic.Int64
}

// NewReceiver returns a receiver for the named source. norm is the
// storage_security source's poller when cfg.Source is set, else nil (the
// receiver normalises with its own settings).
func NewReceiver(name string, cfg ReceiverConfig, norm Normalizer, log *zap.Logger) *Receiver {
	r := &Receiver{name: name, cfg: cfg, instance: name, norm: norm,
		secret: pipeline.NewCredential(cfg.Secret, cfg.SecretFile),
		log:    log.With(zap.String("source", name))}
	if cfg.Source != "" {
		r.instance = cfg.Source
	}
	if norm == nil {
		r.norm = standalone{instance: name, threats: cfg.ThreatResults, raw: cfg.Raw, url: cfg.URL}
	}
	return r
}

// standalone normalises for a receiver that has streams of its own.
type standalone struct {
	instance string
	threats  []int
	raw      bool
	url      string
}

func (s standalone) NormalizeScanCompleted(raw []byte) (pipeline.Record, error) {
	return normalizeScanCompleted(s.instance, s.url, raw, s.raw)
}

func (s standalone) NormalizeFileScanned(raw []byte) (pipeline.Record, error) {
	return normalizeFileScanned(s.instance, s.url, raw, s.raw, s.threats)
}

// Name implements pipeline.Poller.
func (r *Receiver) Name() string { return r.name }

// Streams implements pipeline.Poller for a receiver without a Source: its
// own scans and files streams, which only ever hold pushed records.
func (r *Receiver) Streams(context.Context) ([]pipeline.Stream, error) {
	return []pipeline.Stream{pushOnly(StreamID(r.name, StreamScans)), pushOnly(StreamID(r.name, StreamFiles))}, nil
}

// pushOnly is a stream that has nothing to poll.
type pushOnly string

func (p pushOnly) ID() string { return string(p) }
func (p pushOnly) Poll(context.Context, pipeline.Position) (pipeline.Batch, error) {
	return pipeline.Batch{}, nil
}

// Counts returns how many notifications were accepted (durable), ignored
// (not a threat, scan not finished), rejected (bad request or credentials)
// and failed (not durable: answered 503).
func (r *Receiver) Counts() (accepted, ignored, rejected, failed int64) {
	return r.accepted.Load(), r.ignored.Load(), r.rejected.Load(), r.failed.Load()
}

// Handler returns the HTTP handler that commits notifications through p.
func (r *Receiver) Handler(p Pusher) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(r.cfg.Path, func(w http.ResponseWriter, req *http.Request) { r.serve(w, req, p) })
	return mux
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request, p Pusher) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		r.answer(w, http.StatusMethodNotAllowed, "method not allowed", &r.rejected)
		return
	}
	if !r.authorized(req) {
		r.log.Warn("webhook refused: missing or wrong credentials", zap.String("remote", req.RemoteAddr), zap.String("header", r.cfg.Header))
		r.answer(w, http.StatusUnauthorized, "unauthorized", &r.rejected)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, int64(r.cfg.MaxBodyBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			r.answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit), &r.rejected)
			return
		}
		r.answer(w, http.StatusBadRequest, "reading body: "+err.Error(), &r.rejected)
		return
	}
	if !pipeline.ValidJSON(body) || !gjson.ParseBytes(body).IsObject() {
		r.answer(w, http.StatusBadRequest, "body is not a JSON object", &r.rejected)
		return
	}
	typ := gjson.GetBytes(body, "WebhookNotificationType").String()
	if typ == "" {
		typ = gjson.GetBytes(body, "webhookNotificationType").String()
	}
	var rec pipeline.Record
	var stream string
	switch typ {
	case NotificationScanCompleted:
		rec, err = r.norm.NormalizeScanCompleted(body)
		stream = StreamScans
	case NotificationFileScanned:
		rec, err = r.norm.NormalizeFileScanned(body)
		stream = StreamFiles
	default:
		r.answer(w, http.StatusBadRequest, fmt.Sprintf("unknown WebhookNotificationType %q (want %s or %s)", clip(typ), NotificationScanCompleted, NotificationFileScanned), &r.rejected)
		return
	}
	if errors.Is(err, ErrNotThreat) || errors.Is(err, ErrNotFinished) {
		r.answer(w, http.StatusOK, "ignored: "+err.Error(), &r.ignored)
		return
	}
	if err != nil {
		r.log.Warn("webhook payload refused", zap.String("type", typ), zap.Error(err))
		r.answer(w, http.StatusBadRequest, err.Error(), &r.rejected)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.Timeout)
	defer cancel()
	n, err := p.Push(ctx, StreamID(r.instance, stream), pipeline.Batch{Records: []pipeline.Record{rec}})
	if err != nil {
		// MDSS will not send it again: say so loudly.
		r.log.Error("webhook notification NOT stored; MDSS does not retry, so polling must pick it up",
			zap.String("type", typ), zap.String("key", rec.Key), zap.Error(err))
		r.answer(w, http.StatusServiceUnavailable, "not stored", &r.failed)
		return
	}
	r.answer(w, http.StatusOK, fmt.Sprintf("stored: %d new events", n), &r.accepted)
}

func (r *Receiver) answer(w http.ResponseWriter, code int, msg string, counter *atomic.Int64) {
	counter.Add(1)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// authorized compares the configured header with the secret in constant
// time. A secret that cannot be read refuses every request.
func (r *Receiver) authorized(req *http.Request) bool {
	secret, err := r.secret.Get()
	if err != nil || secret == "" {
		if err != nil {
			r.log.Error("webhook secret unreadable; refusing every notification", zap.Error(err))
		}
		return false
	}
	got := req.Header.Get(r.cfg.Header)
	want := secret
	if strings.EqualFold(r.cfg.Header, "Authorization") {
		want = "Bearer " + secret
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Serve listens on cfg.Listen and serves the receiver until ctx ends. It
// returns once the listener is open (or failed to open); serving goes on in
// the background, and done is closed when it has stopped.
func (r *Receiver) Serve(ctx context.Context, p Pusher) (done <-chan struct{}, err error) {
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sources.%s.listen: %w", r.name, err)
	}
	srv := &http.Server{Handler: r.Handler(p), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: r.cfg.Timeout + 10*time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: zap.NewStdLog(r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))}
	if r.cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLS.CertFile, r.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("sources.%s.tls: %w", r.name, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("webhook receiver stopped", zap.Error(err))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	r.log.Info("MDSS webhook receiver listening", zap.String("addr", ln.Addr().String()), zap.String("path", r.cfg.Path),
		zap.Bool("tls", r.cfg.TLS.CertFile != ""), zap.String("streams_of", r.instance))
	return ch, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
