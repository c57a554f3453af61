// Package webhook is the webhook sink: it POSTs batches of events to an
// HTTP endpoint, signed per the Standard Webhooks spec
// (https://www.standardwebhooks.com), as a JSON array, NDJSON or text lines,
// optionally gzipped, with bearer or basic auth and client TLS options.
//
// A batch from the dispatcher is split into requests of at most
// max_batch_bytes (and batch events), and up to concurrency requests are in
// flight at once. Delivery is at least once: when a request fails, the
// requests before it count as delivered and everything from it on is sent
// again, including later requests that had succeeded.
package webhook

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// Request headers the sink sets besides the Standard Webhooks ones.
const (
	// HeaderEvents is the number of events in the request body.
	HeaderEvents = "Mdbridge-Events"
	// HeaderFirstSeq is the journal sequence number of the first event in
	// the body.
	HeaderFirstSeq = "Mdbridge-First-Seq"
	// HeaderLastSeq is the journal sequence number of the last event in
	// the body.
	HeaderLastSeq = "Mdbridge-Last-Seq"
)

// Standard Webhooks headers, in canonical form.
const (
	headerID        = "Webhook-Id"
	headerTimestamp = "Webhook-Timestamp"
	headerSignature = "Webhook-Signature"
)

// Content types of the bodies.
const (
	contentJSON   = "application/json"
	contentNDJSON = "application/x-ndjson"
	contentText   = "text/plain; charset=utf-8"
)

const userAgent = "mdbridge-webhook"

// ErrClosed is wrapped by the error Deliver returns after Close.
var ErrClosed = errors.New("webhook sink is closed")

// Sink posts events to one webhook endpoint. Deliver is meant to be called
// from the sink's dispatcher goroutine; concurrent calls are safe too. The
// goroutines a Deliver starts (at most concurrency) end before it returns.
type Sink struct {
	cfg  Config
	log  *zap.Logger
	fmtr format.Formatter

	endpoint    string // the URL requests go to
	where       string // the URL for messages: no userinfo, no query
	contentType string
	jsonArray   bool

	client    *http.Client
	transport *http.Transport

	signer   *signer              // nil: requests are not signed
	bearer   *pipeline.Credential // nil unless bearer auth
	password *pipeline.Credential // nil unless basic auth
	headers  http.Header          // custom headers, canonical names
	scrub    []string             // custom header values and query values, kept out of error messages

	bufs    sync.Pool // *[]byte request bodies
	zips    sync.Pool // *zipper
	maxKeep int       // largest body buffer kept in bufs

	mu     sync.RWMutex // Deliver holds it shared, Close exclusively
	closed atomic.Bool

	now func() time.Time // the clock; tests replace it
}

var _ pipeline.Sink = (*Sink)(nil)

// New validates cfg and returns a sink ready to deliver. It opens no
// connection: the first Deliver does. A nil log discards log output.
func New(cfg Config, log *zap.Logger) (*Sink, error) {
	if log == nil {
		log = zap.NewNop()
	}
	where := "(invalid url)"
	u, perr := url.Parse(cfg.URL)
	if perr == nil {
		where = safeURL(u)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook sink %s: invalid config: %w", where, err)
	}
	log = log.With(zap.String("url", where))
	fmtr, err := format.New(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("webhook sink %s: format: %w", where, err)
	}
	tlsCfg, err := cfg.TLS.Config(log)
	if err != nil {
		return nil, fmt.Errorf("webhook sink %s: tls: %w", where, err)
	}
	sg, err := newSigner(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("webhook sink %s: %w", where, err)
	}

	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * cfg.Concurrency,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       32 << 10,
	}
	s := &Sink{
		cfg:       cfg,
		log:       log,
		fmtr:      fmtr,
		endpoint:  cfg.URL,
		where:     where,
		jsonArray: cfg.Encoding == EncodingJSONArray,
		client: &http.Client{
			Transport: tr,
			// Never follow a redirect: it would carry the auth headers and
			// the events to wherever it points. The 3xx is an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: tr,
		signer:    sg,
		headers:   make(http.Header, len(cfg.Headers)),
		maxKeep:   2*int(cfg.MaxBatchBytes) + 64<<10,
		now:       time.Now,
	}
	switch {
	case s.jsonArray:
		s.contentType = contentJSON
	case fmtr.JSON():
		s.contentType = contentNDJSON
	default:
		s.contentType = contentText
	}
	for name, v := range cfg.Headers {
		s.headers.Set(name, v.Reveal())
		s.scrub = append(s.scrub, v.Reveal())
	}
	for _, vs := range u.Query() {
		s.scrub = append(s.scrub, vs...)
	}
	if u.RawQuery != "" {
		s.scrub = append(s.scrub, u.RawQuery)
	}
	auth := cfg.authMethod()
	switch auth {
	case authBearer:
		s.bearer = pipeline.NewCredential(cfg.BearerToken, cfg.BearerTokenFile)
	case authBasic:
		s.password = pipeline.NewCredential(cfg.Password, cfg.PasswordFile)
	}

	secrets := 0
	if sg != nil {
		keys, _, _ := sg.current()
		secrets = len(keys)
	}
	if u.Scheme == "http" && (auth != authNone || len(cfg.Headers) > 0) {
		log.Warn("webhook url is http://: the auth and custom headers travel in clear text; use https://")
	}
	log.Info("webhook sink ready",
		zap.String("format", cfg.Format),
		zap.String("encoding", cfg.Encoding),
		zap.Bool("gzip", cfg.Gzip),
		zap.Int("signing_secrets", secrets),
		zap.String("auth", auth),
		zap.Int("concurrency", cfg.Concurrency),
		zap.Stringer("max_batch_bytes", cfg.MaxBatchBytes))
	return s, nil
}

// delivery holds what one Deliver needs on every request: the credentials
// read for it and the values to keep out of error messages.
type delivery struct {
	keys  [][]byte
	auth  string // the Authorization header value, "" for none
	scrub []string
}

// part is one request: the entries [start, end) of the batch, of which
// events were rendered into body (the others were rejected).
type part struct {
	start, end        int
	events            int
	firstSeq, lastSeq uint64
	id                string
	body              *[]byte

	launched bool  // sent, or nothing to send; unlaunched parts count as not done
	err      error // the request's result once launched
}

// Deliver renders batch and posts it, split into requests of at most
// max_batch_bytes and batch events, up to concurrency of them at once.
//
// The result follows pipeline.Sink: nil when every request got a 2xx. When
// a request fails with a retryable error (network, timeout, 3xx, 408, 425,
// 429, 5xx) or 410, the entries of the requests before it that succeeded
// are reported done with pipeline.Partial and the rest is retried, so later
// requests that did succeed are sent again (at least once). A 410 gives
// pipeline.Disabled. A request answered with another 4xx will never be
// accepted: when that is the whole batch the result is pipeline.Permanent,
// otherwise its events are pipeline.Rejected, as are events the format
// cannot render. Rejections are only reported when nothing before them is
// left to retry: a Partial stops short of the first rejected entry.
func (s *Sink) Deliver(ctx context.Context, batch []pipeline.Entry) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return fmt.Errorf("webhook sink %s: %w", s.where, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	d, err := s.prepare()
	if err != nil {
		return err
	}

	var (
		parts    []*part
		rejected []pipeline.Rejection
		wg       sync.WaitGroup
		stop     atomic.Bool // a request failed: start no more
		sem      = make(chan struct{}, s.cfg.Concurrency)
	)
	for pos := 0; pos < len(batch) && !stop.Load() && ctx.Err() == nil; {
		var p *part
		p, rejected = s.render(batch, pos, rejected)
		pos = p.end
		parts = append(parts, p)
		if p.events == 0 {
			s.putBuf(p.body)
			p.body = nil
			p.launched = true // nothing to send: done
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if stop.Load() || ctx.Err() != nil {
			s.putBuf(p.body)
			p.body = nil
			break
		}
		p.launched = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.err = s.send(ctx, d, p)
			if p.err != nil && !pipeline.IsPermanent(p.err) {
				stop.Store(true)
			}
			s.putBuf(p.body)
			p.body = nil
			<-sem
		}()
	}
	wg.Wait()
	return s.result(ctx, len(batch), parts, rejected)
}

// prepare reads the credentials for one Deliver.
func (s *Sink) prepare() (*delivery, error) {
	d := &delivery{scrub: s.scrub}
	if s.signer != nil {
		keys, raw, err := s.signer.current()
		if err != nil {
			return nil, fmt.Errorf("webhook sink %s: %w", s.where, err)
		}
		d.keys = keys
		d.scrub = append(slices.Clip(d.scrub), raw)
	}
	switch {
	case s.bearer != nil:
		tok, err := s.bearer.Get()
		if err != nil {
			return nil, fmt.Errorf("webhook sink %s: bearer_token_file: %w", s.where, err)
		}
		if tok == "" || badValue(tok) {
			return nil, fmt.Errorf("webhook sink %s: the bearer token is empty or holds a line break or control character", s.where)
		}
		d.auth = "Bearer " + tok
		d.scrub = append(slices.Clip(d.scrub), tok)
	case s.password != nil:
		pw, err := s.password.Get()
		if err != nil {
			return nil, fmt.Errorf("webhook sink %s: password_file: %w", s.where, err)
		}
		if badValue(pw) {
			return nil, fmt.Errorf("webhook sink %s: the password holds a line break or control character", s.where)
		}
		pair := s.cfg.Username + ":" + pw
		enc := base64.StdEncoding.EncodeToString([]byte(pair))
		d.auth = "Basic " + enc
		d.scrub = append(slices.Clip(d.scrub), pw, pair, enc)
	}
	return d, nil
}

// render renders entries from pos on into one request body, up to the
// event and byte limits, and returns the part and the rejections extended
// by entries that cannot be rendered. The part always covers at least one
// entry.
func (s *Sink) render(batch []pipeline.Entry, pos int, rejected []pipeline.Rejection) (*part, []pipeline.Rejection) {
	p := &part{start: pos, body: s.getBuf()}
	b := (*p.body)[:0]
	closing := 0
	if s.jsonArray {
		b = append(b, '[')
		closing = 1
	}
	limit := int(s.cfg.MaxBatchBytes)
	first, last := -1, -1
	for ; pos < len(batch) && p.events < s.cfg.Batch; pos++ {
		mark := len(b)
		if s.jsonArray && p.events > 0 {
			b = append(b, ',')
		}
		start := len(b)
		nb, err := s.fmtr.Append(b, batch[pos].Data)
		if err == nil && !s.jsonArray && bytes.IndexByte(nb[start:], '\n') >= 0 {
			err = errors.New("the rendering holds a line break")
		}
		if err != nil {
			b = nb[:mark]
			rejected = append(rejected, pipeline.Rejection{
				Index:  pos,
				Reason: fmt.Sprintf("webhook: format %s cannot render the event: %v", s.cfg.Format, err),
			})
			continue
		}
		if !s.jsonArray {
			nb = append(nb, '\n')
		}
		if p.events > 0 && len(nb)+closing > limit {
			b = nb[:mark] // does not fit: the next part starts with it
			break
		}
		b = nb
		p.events++
		if first < 0 {
			first = pos
		}
		last = pos
	}
	if s.jsonArray {
		b = append(b, ']')
	}
	*p.body = b
	p.end = pos
	if p.events > 0 {
		p.firstSeq, p.lastSeq = batch[first].Seq, batch[last].Seq
		p.id = webhookID(eventID(batch[first]), eventID(batch[last]), p.events)
	}
	return p, rejected
}

// eventID is the event's id, or its sequence number when the id cannot be
// read (the id derivation stays deterministic either way).
func eventID(e pipeline.Entry) string {
	if m, err := format.PeekMeta(e.Data); err == nil {
		return m.ID
	}
	return "seq:" + strconv.FormatUint(e.Seq, 10)
}

// send posts one part and returns its result.
func (s *Sink) send(ctx context.Context, d *delivery, p *part) error {
	what := fmt.Sprintf("webhook POST %s (events seq %d-%d, webhook-id %s)", s.where, p.firstSeq, p.lastSeq, p.id)
	body := *p.body
	payload := body
	if s.cfg.Gzip {
		z := s.getZipper()
		defer s.putZipper(z)
		var err error
		if payload, err = z.compress(body); err != nil {
			return fmt.Errorf("%s: gzip: %w", what, err)
		}
	}

	ts := s.now().Unix()
	h := make(http.Header, 12+len(s.headers))
	for k, v := range s.headers {
		h[k] = v
	}
	h["Content-Type"] = []string{s.contentType}
	if s.cfg.Gzip {
		h["Content-Encoding"] = []string{"gzip"}
	}
	h["User-Agent"] = []string{userAgent}
	h[headerID] = []string{p.id}
	h[headerTimestamp] = []string{strconv.FormatInt(ts, 10)}
	if len(d.keys) > 0 {
		// The signature covers the body before gzip: the payload the
		// receiver's JSON parser sees once Content-Encoding is undone.
		sig := appendSignatures(make([]byte, 0, 48*len(d.keys)), d.keys, p.id, ts, body)
		h[headerSignature] = []string{string(sig)}
	}
	h[HeaderEvents] = []string{strconv.Itoa(p.events)}
	h[HeaderFirstSeq] = []string{strconv.FormatUint(p.firstSeq, 10)}
	h[HeaderLastSeq] = []string{strconv.FormatUint(p.lastSeq, 10)}
	if d.auth != "" {
		h["Authorization"] = []string{d.auth}
	}

	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	src := &sharedBody{b: payload}
	// The transport may still read the body after Do returns (a server
	// that answers before reading it all); release makes such reads fail
	// instead of seeing the pooled buffer's next contents.
	defer src.release()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.endpoint, src.reader())
	if err != nil {
		return fmt.Errorf("%s: build request: %w", what, unwrapURL(err))
	}
	req.ContentLength = int64(len(payload))
	req.GetBody = func() (io.ReadCloser, error) { return src.reader(), nil }
	req.Header = h
	resp, err := s.client.Do(req)
	if err != nil {
		err = unwrapURL(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("%s: no response within timeout %s: %w", what, s.cfg.Timeout, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() {
		// Read a little of what is left so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
		_ = resp.Body.Close()
	}()
	var snippet []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ = io.ReadAll(io.LimitReader(resp.Body, errBodyRead))
	}
	return classify(resp, snippet, what, d.scrub, s.now())
}

// errReleased is what a request body read after its request ended gets.
var errReleased = errors.New("webhook: request body read after the request ended")

// sharedBody is a request body the transport reads through readers (one
// per attempt, GetBody makes more) until release, after which the buffer
// goes back to a pool and every read fails.
type sharedBody struct {
	mu sync.Mutex
	b  []byte
}

func (s *sharedBody) reader() io.ReadCloser { return &bodyReader{src: s} }

func (s *sharedBody) release() {
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
}

// bodyReader reads a sharedBody from the start.
type bodyReader struct {
	src *sharedBody
	off int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.src.mu.Lock()
	defer r.src.mu.Unlock()
	if r.src.b == nil {
		return 0, errReleased
	}
	if r.off >= len(r.src.b) {
		return 0, io.EOF
	}
	n := copy(p, r.src.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bodyReader) Close() error { return nil }

// unwrapURL strips a *url.Error, whose message holds the whole URL (query
// included); the callers name the URL safely themselves.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// result turns the parts' outcomes into Deliver's error.
func (s *Sink) result(ctx context.Context, n int, parts []*part, rejected []pipeline.Rejection) error {
	renderRejected := len(rejected)
	isRejected := make(map[int]bool, len(rejected))
	for _, r := range rejected {
		isRejected[r.Index] = true
	}
	done, okRequests := 0, 0
	var permErr error
	i := 0
	for ; i < len(parts); i++ {
		p := parts[i]
		if !p.launched {
			break
		}
		if p.err == nil {
			if p.events > 0 {
				okRequests++
			}
			done = p.end
			continue
		}
		if !pipeline.IsPermanent(p.err) {
			break
		}
		// Never accepted: its events go to dead-letter with the reason.
		if permErr == nil {
			permErr = p.err
		}
		reason := p.err.Error()
		if pe := (*pipeline.PermanentError)(nil); errors.As(p.err, &pe) {
			reason = pe.Err.Error()
		}
		for j := p.start; j < p.end; j++ {
			if !isRejected[j] {
				rejected = append(rejected, pipeline.Rejection{Index: j, Reason: reason})
			}
		}
		done = p.end
	}
	slices.SortFunc(rejected, func(a, b pipeline.Rejection) int { return a.Index - b.Index })

	if done == n {
		switch {
		case len(rejected) == 0:
			return nil
		case okRequests == 0 && renderRejected == 0:
			return permErr // every request was refused: the batch is permanent
		}
		return pipeline.Rejected(rejected, nil)
	}

	err := s.failure(ctx, parts[i:])
	// Only the entries before the first rejection are reported done: the
	// dispatcher applies a Partial inside a Rejected to what remains after
	// the rejected part, so the two are never combined. The rejected
	// entries are retried and rejected again once the failure clears.
	keep := done
	if len(rejected) > 0 {
		keep = min(keep, rejected[0].Index)
	}
	if keep > 0 {
		return pipeline.Partial(keep, err)
	}
	return err
}

// failure picks the error that stops a batch from the parts that did not
// succeed: a 410 (Disabled) over anything else, else the first failure,
// wrapped with the longest Retry-After any of them asked for.
func (s *Sink) failure(ctx context.Context, rest []*part) error {
	var first, disabled error
	var after time.Duration
	for _, p := range rest {
		if p.err == nil || pipeline.IsPermanent(p.err) {
			continue
		}
		if first == nil {
			first = p.err
		}
		var de *pipeline.DisabledError
		if disabled == nil && errors.As(p.err, &de) {
			disabled = p.err
		}
		var ra *pipeline.RetryAfterError
		if errors.As(p.err, &ra) {
			after = max(after, ra.After)
		}
	}
	switch {
	case disabled != nil:
		return disabled
	case first == nil:
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("webhook sink %s: %w", s.where, err)
		}
		return fmt.Errorf("webhook sink %s: batch not sent completely", s.where)
	}
	var ra *pipeline.RetryAfterError
	if after > 0 && (!errors.As(first, &ra) || ra.After < after) {
		return pipeline.RetryAfter(first, after)
	}
	return first
}

// Close waits for a Deliver in progress (bounded by timeout) and closes the
// idle connections. Later calls return nil; Deliver after Close returns an
// error wrapping ErrClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	s.transport.CloseIdleConnections()
	return nil
}

func (s *Sink) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, min(int(s.cfg.MaxBatchBytes)+4<<10, 1<<20))
	return &b
}

func (s *Sink) putBuf(b *[]byte) {
	if b == nil || cap(*b) > s.maxKeep {
		return
	}
	*b = (*b)[:0]
	s.bufs.Put(b)
}

// zipper is a gzip writer with the buffer it writes into, pooled together.
type zipper struct {
	w   *gzip.Writer
	out []byte
}

// Write implements io.Writer for the gzip writer: it appends to out.
func (z *zipper) Write(p []byte) (int, error) {
	z.out = append(z.out, p...)
	return len(p), nil
}

// compress returns body gzipped; the result is valid until the zipper is
// used again.
func (z *zipper) compress(body []byte) ([]byte, error) {
	z.out = z.out[:0]
	z.w.Reset(z)
	if _, err := z.w.Write(body); err != nil {
		return nil, err
	}
	if err := z.w.Close(); err != nil {
		return nil, err
	}
	return z.out, nil
}

func (s *Sink) getZipper() *zipper {
	if z, ok := s.zips.Get().(*zipper); ok {
		return z
	}
	z := &zipper{}
	// BestSpeed: events compress well even so, and gzip stays far from
	// being the bottleneck of a delivery.
	z.w, _ = gzip.NewWriterLevel(z, gzip.BestSpeed)
	return z
}

func (s *Sink) putZipper(z *zipper) {
	if cap(z.out) > s.maxKeep {
		z.out = nil
	}
	s.zips.Put(z)
}
