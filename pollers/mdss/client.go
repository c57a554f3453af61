// Package mdss polls MetaDefender Storage Security (MDSS) for finished scans
// and for the files those scans blocked or found a threat in, and turns them
// into mdss.scan and mdss.file events (EVENTS.md).
//
// The vendor document names the operations but not most of their paths or
// response shapes; README.md in this folder is the wire contract this
// package implements, with every assumption marked and configurable (paths,
// field paths, threat result codes). Authentication is an ApiKey header, or
// a JWT session (authenticate, refresh before expiry and on 401,
// authenticate again when the refresh is refused, logout on Close).
//
// Tokens, passwords and API keys are held as pipeline.Secret and never
// appear in a log line, an error or a printed struct.
package mdss

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// ErrUnauthorized is returned (wrapped) when MDSS answers 401: a wrong or
// revoked API key, rejected credentials, or a session that could not be
// renewed.
var ErrUnauthorized = errors.New("unauthorized")

// APIError is a non-2xx answer of the API.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the API's message, or a short sanitised prefix of the body.
	Message string
}

// Error implements error: method, path, status and message.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// logoutTimeout bounds the logout Close sends.
const logoutTimeout = 5 * time.Second

// client talks to one MDSS.
type client struct {
	base    *url.URL
	http    *http.Client
	maxBody int64
	timeout time.Duration
	paths   Paths
	log     *zap.Logger
	apiKey  *pipeline.Credential // API-key mode
	sess    *session             // user and password mode
	closed  atomic.Bool
}

func newClient(cfg *Config, log *zap.Logger) (*client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	tr, err := pipeline.NewUpstreamTransport(pipeline.UpstreamOptions{CAFile: cfg.TLS.CAFile, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
		ResponseTimeout: cfg.Timeout, MaxIdleConnsPerHost: 4, Credentials: "the API key, password and tokens"}, log)
	if err != nil {
		return nil, err
	}
	c := &client{
		base:    base,
		http:    &http.Client{Transport: tr, CheckRedirect: noRedirect},
		maxBody: int64(cfg.MaxBodyBytes),
		timeout: cfg.Timeout,
		paths:   cfg.Paths,
		log:     log,
	}
	if cfg.usesAPIKey() {
		c.apiKey = pipeline.NewCredential(cfg.APIKey, cfg.APIKeyFile)
	} else {
		c.sess = &session{c: c, username: cfg.Username, password: pipeline.NewCredential(cfg.Password, cfg.PasswordFile),
			before: cfg.RefreshBefore}
	}
	return c, nil
}

// noRedirect refuses redirects: following one would send the API key or
// the token to wherever the redirect points.
func noRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("refusing redirect to %s", req.URL.Redacted())
}

// response is one exchange's outcome.
type response struct {
	status int
	ctype  string
	date   string
	body   []byte
}

// exchange sends one request and reads the answer, at most max_body_bytes.
// The header values in hdr may be secrets; they are never put in an error.
func (c *client) exchange(parent context.Context, method, pathQuery string, body []byte, hdr http.Header) (response, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	u := *c.base
	p, q, _ := strings.Cut(pathQuery, "?")
	u.Path += p
	u.RawQuery = q
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: build request: %w", method, pathQuery, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, c.transportError(parent, method, pathQuery, err)
	}
	defer resp.Body.Close()
	b, err := readBody(resp, c.maxBody)
	if err != nil {
		return response{}, c.transportError(parent, method, pathQuery, err)
	}
	return response{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), date: resp.Header.Get("Date"), body: b}, nil
}

// transportError words a failed exchange; a timeout says so and names the
// configured limit.
func (c *client) transportError(parent context.Context, method, pathQuery string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in the message already
	}
	var ne net.Error
	if parent.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		// Either the header timeout or the call's deadline fired first, at
		// random: one wording for both, so a run of timeouts logs once.
		return fmt.Errorf("%s %s: timeout: no complete answer within %s: %w", method, pathQuery, c.timeout, context.DeadlineExceeded)
	}
	if hinted := pipeline.CertHint(err); hinted != err {
		return fmt.Errorf("%s %s: TLS with %s: %w", method, pathQuery, c.base.Host, hinted)
	}
	return fmt.Errorf("%s %s: %w", method, pathQuery, err)
}

// readBody reads the whole body, at most max bytes.
func readBody(resp *http.Response, max int64) ([]byte, error) {
	if resp.ContentLength > max {
		return nil, fmt.Errorf("response body of %d bytes exceeds max_body_bytes (%d)", resp.ContentLength, max)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read body after %d bytes: %w", n, err)
	}
	if n > max {
		return nil, fmt.Errorf("response body exceeds max_body_bytes (%d)", max)
	}
	return buf.Bytes(), nil
}

// getJSON GETs a list path and returns the parsed JSON body. In session
// mode a 401 renews the session once (refresh, or authenticate when the
// refresh is refused) and retries; a second 401 is an error.
func (c *client) getJSON(ctx context.Context, pathQuery string) (gjson.Result, error) {
	for attempt := 0; ; attempt++ {
		hdr, gen, err := c.authHeader(ctx)
		if err != nil {
			return gjson.Result{}, err
		}
		resp, err := c.exchange(ctx, http.MethodGet, pathQuery, nil, hdr)
		if err != nil {
			return gjson.Result{}, err
		}
		if resp.status == http.StatusUnauthorized && c.sess != nil && attempt == 0 {
			c.log.Debug("401 from MDSS; renewing the session and retrying once", zap.String("path", pathQuery))
			if err := c.sess.renew(ctx, gen); err != nil {
				return gjson.Result{}, fmt.Errorf("GET %s: %w", pathQuery, err)
			}
			continue
		}
		doc, err := decodeBody(http.MethodGet, pathQuery, resp, c.secrets, true)
		if errors.Is(err, ErrUnauthorized) {
			if c.sess != nil {
				err = fmt.Errorf("%w (still refused after the session was renewed; check the user's permissions)", err)
			} else {
				err = fmt.Errorf("%w (check api_key or api_key_file)", err)
			}
		}
		return doc, err
	}
}

// authHeader returns the credentials header of the next request and the
// session generation it belongs to.
func (c *client) authHeader(ctx context.Context) (http.Header, uint64, error) {
	if c.sess == nil {
		key, err := c.apiKey.Get()
		if err != nil {
			return nil, 0, fmt.Errorf("api_key_file: %w", err)
		}
		return http.Header{"Apikey": {key}}, 0, nil
	}
	tok, gen, err := c.sess.token(ctx)
	if err != nil {
		return nil, 0, err
	}
	return http.Header{"Authorization": {"Bearer " + tok.Reveal()}}, gen, nil
}

// secrets lists the current secret values, to scrub from any text quoted
// from a response.
func (c *client) secrets() []string {
	var out []string
	if c.apiKey != nil {
		if k, err := c.apiKey.Get(); err == nil {
			out = append(out, k)
		}
	}
	if c.sess != nil {
		out = append(out, c.sess.secrets()...)
	}
	return out
}

// close ends a session (logout, bounded by logoutTimeout) and drops idle
// connections. It is safe to call more than once.
func (c *client) close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer c.http.CloseIdleConnections()
	if c.sess == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(logoutTimeout, c.timeout))
	defer cancel()
	return c.sess.logout(ctx)
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// decodeBody checks an answer and parses its JSON. It fails for 401 (as
// ErrUnauthorized), any other non-2xx status, an HTML page, an empty body
// and a body that is not complete JSON. With quote, a failure quotes at
// most a short, sanitised prefix of the body (or the API's message);
// without it (session answers, which carry tokens) only sizes and the
// HTML title.
func decodeBody(method, pathQuery string, resp response, secretsOf func() []string, quote bool) (gjson.Result, error) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(resp.body, []byte("\xef\xbb\xbf")))
	valid := pipeline.ValidJSON(trimmed)
	var secrets []string
	if secretsOf != nil && (!valid || resp.status < 200 || resp.status > 299) {
		secrets = secretsOf() // only failures quote anything
	}
	if len(trimmed) > 0 && trimmed[0] == '<' || strings.Contains(strings.ToLower(resp.ctype), "html") {
		title := "no title"
		if m := htmlTitle.FindSubmatch(resp.body); m != nil {
			title = sanitize(strings.Join(strings.Fields(string(m[1])), " "), secrets)
		}
		err := fmt.Errorf("%s %s: HTTP %d with an HTML page (%.80q) instead of JSON: a proxy or web server answered, not the API",
			method, pathQuery, resp.status, title)
		if resp.status == http.StatusUnauthorized {
			return gjson.Result{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return gjson.Result{}, err
	}
	if resp.status < 200 || resp.status > 299 {
		e := &APIError{Method: method, Path: pathQuery, Status: resp.status}
		if !quote {
			if len(trimmed) > 0 {
				e.Message = fmt.Sprintf("%d-byte body not shown", len(resp.body))
			}
		} else if valid {
			doc := gjson.ParseBytes(trimmed)
			for _, k := range []string{"error", "message", "Message", "title", "detail"} {
				if v := doc.Get(k); v.Type == gjson.String && v.Str != "" {
					e.Message = sanitize(v.Str, secrets)
					break
				}
			}
		} else if len(trimmed) > 0 {
			e.Message = fmt.Sprintf("%q", snippet(trimmed, secrets))
		}
		if resp.status == http.StatusUnauthorized {
			return gjson.Result{}, fmt.Errorf("%w: %w", ErrUnauthorized, e)
		}
		return gjson.Result{}, e
	}
	if len(trimmed) == 0 {
		return gjson.Result{}, fmt.Errorf("%s %s: HTTP %d with an empty body", method, pathQuery, resp.status)
	}
	if !valid {
		if !quote {
			return gjson.Result{}, fmt.Errorf("%s %s: HTTP %d with malformed or truncated JSON (%d bytes)", method, pathQuery, resp.status, len(resp.body))
		}
		return gjson.Result{}, fmt.Errorf("%s %s: HTTP %d with malformed or truncated JSON (%d bytes, starting %q)",
			method, pathQuery, resp.status, len(resp.body), snippet(trimmed, secrets))
	}
	return gjson.ParseBytes(trimmed), nil
}

// snippetLen is how much of a body an error quotes.
const snippetLen = 80

// snippet returns the start of a body for an error: at most snippetLen
// bytes cut at a character boundary, control characters blanked, secrets and
// token-like values redacted.
func snippet(b []byte, secrets []string) string {
	if len(b) > snippetLen {
		cut := snippetLen
		for cut > snippetLen-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = b[:cut]
	}
	return sanitize(string(b), secrets)
}

var (
	// jwtLike matches a JSON Web Token or a prefix of one.
	jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]*){0,2}`)
	// secretMember matches the value of a JSON member whose name says it
	// holds a credential, also when the value is cut short.
	secretMember = regexp.MustCompile(`(?i)("[^"]*(token|password|passwd|apikey|api_key|secret|authorization)[^"]*"\s*:\s*")[^"]*("?)`)
)

// sanitize blanks control characters and redacts the given secrets, JWTs
// and the values of credential-named JSON members.
func sanitize(s string, secrets []string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, pipeline.Redacted)
		}
	}
	s = secretMember.ReplaceAllString(s, "${1}"+pipeline.Redacted+"${3}")
	return jwtLike.ReplaceAllString(s, pipeline.Redacted)
}

// listKeys and totalKeys are where a list response object may hold the
// records and their total (README "Lists").
var (
	listKeys  = []string{"items", "scans", "files", "entries", "results", "data", "list", "records"}
	totalKeys = []string{"total", "totalCount", "count"}
)

// DecodeList reads a list response: a JSON array, or an object holding the
// array under one of the known keys with an optional total. total is -1 when
// not given. A null body is an empty list.
func DecodeList(doc gjson.Result) (items []gjson.Result, total int, err error) {
	total = -1
	switch {
	case doc.IsArray():
		return pipeline.Elements(doc.Raw), total, nil
	case doc.IsObject():
		var keys []string
		listRank, totalRank := len(listKeys), len(totalKeys)
		var list gjson.Result
		pipeline.Members(doc.Raw, func(k string, v gjson.Result) bool {
			if len(keys) < 20 {
				keys = append(keys, strconv.Quote(k))
			}
			if i := slices.Index(listKeys, k); i >= 0 && i < listRank && v.IsArray() {
				list, listRank = v, i
			}
			if i := slices.Index(totalKeys, k); i >= 0 && i < totalRank {
				if n, ok := pipeline.Int(v); ok && n >= 0 {
					total, totalRank = n, i
				}
			}
			return true
		})
		if listRank < len(listKeys) {
			return pipeline.Elements(list.Raw), total, nil
		}
		return nil, -1, fmt.Errorf("list response is an object without a list (keys: %s; expected an array under one of %s)",
			sanitize(strings.Join(keys, ", "), nil), strings.Join(listKeys, ", "))
	case doc.Type == gjson.Null:
		return nil, total, nil
	}
	return nil, -1, fmt.Errorf("list response is %s, not a list", typeName(doc))
}

// listPath fills a list path template.
func listPath(tmpl string, start, count int, scanID string) string {
	p, q, hasQuery := strings.Cut(tmpl, "?")
	fill := func(s string, esc func(string) string) string {
		return strings.NewReplacer(PlaceholderStart, strconv.Itoa(start), PlaceholderCount, strconv.Itoa(count),
			PlaceholderScanID, esc(scanID)).Replace(s)
	}
	out := fill(p, url.PathEscape)
	if hasQuery {
		out += "?" + fill(q, url.QueryEscape)
	}
	return out
}

// session is a JWT session: one access token and its refresh token, renewed
// by one caller at a time.
type session struct {
	c        *client
	username string
	password *pipeline.Credential
	before   time.Duration

	mu         sync.Mutex
	access     pipeline.Secret
	refresh    pipeline.Secret
	gen        uint64    // counts sessions and refreshes; a 401 names the one it saw
	refreshAt  time.Time // proactive refresh; zero: only on 401
	accessExp  time.Time // the access token's expiry (local clock); zero: unknown
	refreshExp time.Time // the refresh token's expiry (local clock); zero: unknown
	// counters, for tests and status
	authentications, refreshes, logouts atomic.Int64
}

// tokenSet is the answer of authenticate and refreshToken.
type tokenSet struct {
	access, refresh       pipeline.Secret
	accessExp, refreshExp time.Time // local clock; zero when not given
	received              time.Time
}

func (s *session) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{s.access.Reveal(), s.refresh.Reveal()}
	if pw, err := s.password.Get(); err == nil {
		out = append(out, pw)
	}
	return out
}

// token returns the access token for the next request, authenticating or
// refreshing first when needed.
func (s *session) token(ctx context.Context) (pipeline.Secret, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.closed.Load() {
		return "", 0, errors.New("the MDSS client is closed")
	}
	if s.access == "" {
		if err := s.authenticate(ctx); err != nil {
			return "", 0, err
		}
	} else if !s.refreshAt.IsZero() && !time.Now().Before(s.refreshAt) {
		if err := s.renewLocked(ctx); err != nil {
			left := time.Until(s.accessExp)
			if s.access == "" || errors.Is(err, ErrUnauthorized) || left < time.Second || ctx.Err() != nil {
				return "", 0, err
			}
			// The current token still works: use it, and try again a
			// little later rather than failing the poll.
			s.refreshAt = time.Now().Add(min(5*time.Second, left/2))
			s.c.log.Warn("refreshing the MDSS session failed; using the current token until it expires", zap.Error(err),
				zap.Duration("expires_in", left.Round(time.Second)))
		}
	}
	return s.access, s.gen, nil
}

// renew is called after a 401 seen with the token of generation gen. When
// another caller renewed the session since, there is nothing to do.
func (s *session) renew(ctx context.Context, gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen && s.access != "" {
		return nil
	}
	return s.renewLocked(ctx)
}

// renewLocked refreshes the session, or authenticates again when there is
// no usable refresh token or MDSS refuses it.
func (s *session) renewLocked(ctx context.Context) error {
	if s.refresh != "" && (s.refreshExp.IsZero() || time.Now().Add(time.Second).Before(s.refreshExp)) {
		err := s.doRefresh(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrUnauthorized) {
			return err
		}
		s.c.log.Info("MDSS refused the refresh token; authenticating again")
	}
	return s.authenticate(ctx)
}

// authenticate starts a new session with the user name and password.
func (s *session) authenticate(ctx context.Context) error {
	pw, err := s.password.Get()
	if err != nil {
		return fmt.Errorf("password_file: %w", err)
	}
	body, _ := json.Marshal(struct {
		UserName string `json:"userName"`
		Password string `json:"password"`
	}{s.username, pw})
	ts, err := s.post(ctx, s.c.paths.Authenticate, body, nil, []string{pw})
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return fmt.Errorf("authenticate as %q: MDSS rejected the user name or password: %w", s.username, err)
		}
		return fmt.Errorf("authenticate as %q: %w", s.username, err)
	}
	s.install(ts)
	s.authentications.Add(1)
	s.c.log.Info("authenticated to MDSS", zap.String("user", s.username), zap.Timep("access_token_expires", nonZero(ts.accessExp)))
	return nil
}

// doRefresh exchanges the refresh token for new tokens.
func (s *session) doRefresh(ctx context.Context) error {
	body, _ := json.Marshal(struct {
		RefreshToken string `json:"refreshToken"`
		AccessToken  string `json:"accessToken"`
	}{s.refresh.Reveal(), s.access.Reveal()})
	ts, err := s.post(ctx, s.c.paths.Refresh, body, nil, []string{s.refresh.Reveal(), s.access.Reveal()})
	if err != nil {
		return fmt.Errorf("refresh the MDSS session: %w", err)
	}
	if ts.refresh == "" {
		ts.refresh, ts.refreshExp = s.refresh, s.refreshExp // the old one stays valid
	}
	s.install(ts)
	s.refreshes.Add(1)
	s.c.log.Debug("MDSS access token refreshed", zap.Timep("access_token_expires", nonZero(ts.accessExp)))
	return nil
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// install makes a token set the current session and schedules its
// proactive refresh: at 80 % of the access token's life or refresh_before
// ahead of its expiry, whichever is sooner, but not before half its life.
func (s *session) install(ts tokenSet) {
	s.access, s.refresh, s.accessExp, s.refreshExp = ts.access, ts.refresh, ts.accessExp, ts.refreshExp
	s.gen++
	s.refreshAt = time.Time{}
	if life := ts.accessExp.Sub(ts.received); life > 0 {
		at := min(life*8/10, life-s.before)
		at = max(at, life/2)
		s.refreshAt = ts.received.Add(at)
	} else if !ts.accessExp.IsZero() {
		s.c.log.Warn("MDSS access token expiry is already past on arrival (clock skew?); refreshing on 401 only")
	}
}

// post sends a session request (authenticate or refresh; bearer set for
// logout) and reads a token set from the answer. Its body is never quoted:
// it holds tokens.
func (s *session) post(ctx context.Context, path string, body []byte, hdr http.Header, secrets []string) (tokenSet, error) {
	resp, err := s.c.exchange(ctx, http.MethodPost, path, body, hdr)
	if err != nil {
		return tokenSet{}, err
	}
	local := time.Now()
	doc, err := decodeBody(http.MethodPost, path, resp, func() []string { return append(secrets, s.secretsLocked()...) }, false)
	if err != nil {
		return tokenSet{}, err
	}
	return readTokens(doc, local, resp.date)
}

func (s *session) secretsLocked() []string {
	return []string{s.access.Reveal(), s.refresh.Reveal()}
}

// readTokens reads accessToken, refreshToken and their expiry times. The
// expiry times are moved to the local clock when the server's Date header
// shows a skew of more than 5 s.
func readTokens(doc gjson.Result, local time.Time, date string) (tokenSet, error) {
	if !doc.IsObject() {
		return tokenSet{}, fmt.Errorf("token answer is %s, not an object", typeName(doc))
	}
	ts := tokenSet{received: local}
	get := func(keys ...string) gjson.Result {
		for _, k := range keys {
			if v := doc.Get(k); v.Exists() {
				return v
			}
		}
		return gjson.Result{}
	}
	a := get("accessToken", "AccessToken", "access_token", "token")
	if a.Type != gjson.String || a.Str == "" {
		return tokenSet{}, fmt.Errorf("token answer has no accessToken string (keys present: %s)", memberNames(doc))
	}
	ts.access = pipeline.Secret(a.Str)
	if r := get("refreshToken", "RefreshToken", "refresh_token"); r.Type == gjson.String {
		ts.refresh = pipeline.Secret(r.Str)
	}
	skew := time.Duration(0)
	if d, err := http.ParseTime(date); err == nil {
		if sk := d.Sub(local); sk > 5*time.Second || sk < -5*time.Second {
			skew = sk
		}
	}
	if t, err := ParseTime(get("accessTokenExpiryTime", "AccessTokenExpiryTime", "accessTokenExpiry")); err == nil {
		ts.accessExp = t.Add(-skew)
	}
	if t, err := ParseTime(get("refreshTokenExpiryTime", "RefreshTokenExpiryTime", "refreshTokenExpiry")); err == nil {
		ts.refreshExp = t.Add(-skew)
	}
	return ts, nil
}

// memberNames lists an object's member names (never values), for errors.
func memberNames(doc gjson.Result) string {
	var keys []string
	doc.ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, strconv.Quote(sanitize(k.String(), nil)))
		return len(keys) < 20
	})
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// logout ends the session, if there is one.
func (s *session) logout(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access == "" {
		return nil
	}
	hdr := http.Header{"Authorization": {"Bearer " + s.access.Reveal()}}
	resp, err := s.c.exchange(ctx, http.MethodPost, s.c.paths.Logout, []byte("{}"), hdr)
	s.access, s.refresh, s.refreshAt, s.accessExp, s.refreshExp = "", "", time.Time{}, time.Time{}, time.Time{}
	s.gen++
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.logouts.Add(1)
	if resp.status == http.StatusUnauthorized {
		return nil // the session had ended already
	}
	if resp.status < 200 || resp.status > 299 {
		_, err := decodeBody(http.MethodPost, s.c.paths.Logout, resp, nil, false)
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
