package mdss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// authServer is a small MDSS stand-in for the session tests: tokens are
// numbered, expiry is under the test's control, and every decision is
// counted.
type authServer struct {
	t *testing.T
	// knobs, set before use
	accessTTL      time.Duration // 0: no expiry time in the answer, token never expires by time
	refreshTTL     time.Duration // fixed from authenticate (not extended by refresh); 0: none
	omitExpiry     bool          // leave the expiry times out of the answer
	rejectRefresh  atomic.Bool
	refreshStatus  atomic.Int32 // when set, refresh answers this status
	listStatus     atomic.Int32 // when set, the list answers this status
	listBody       string       // when set, the list answers this body
	hangLogout     bool
	secretInErrors string // echoed in 4xx/5xx bodies, to see it redacted

	mu         sync.Mutex
	n          int
	live       map[string]time.Time // access token -> expiry
	refreshTok map[string]time.Time // refresh token -> expiry
	auths      int
	refreshes  int
	logouts    int
	unauth     int
	bodies     []string // authenticate and refresh bodies
}

func newAuthServer(t *testing.T) (*authServer, *httptest.Server) {
	a := &authServer{t: t, live: map[string]time.Time{}, refreshTok: map[string]time.Time{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *authServer) issue(refreshExp time.Time) map[string]any {
	a.n++
	at := fmt.Sprintf("access-%d-Zq9", a.n)
	rt := fmt.Sprintf("refresh-%d-Zq9", a.n)
	now := time.Now()
	exp := time.Time{}
	if a.accessTTL > 0 {
		exp = now.Add(a.accessTTL)
	}
	a.live[at] = exp
	a.refreshTok[rt] = refreshExp
	out := map[string]any{"accessToken": at, "refreshToken": rt}
	if !a.omitExpiry && a.accessTTL > 0 {
		out["accessTokenExpiryTime"] = exp.UTC().Format("2006-01-02T15:04:05.00000Z07:00")
	}
	if !a.omitExpiry && !refreshExp.IsZero() {
		out["refreshTokenExpiryTime"] = refreshExp.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func (a *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	// With secretInErrors set, error bodies quote the credentials the
	// request carried, as a careless server might.
	echo := func() string {
		if a.secretInErrors == "" {
			return ""
		}
		return a.secretInErrors + " " + r.Header.Get("Authorization") + " " + string(body)
	}
	unauthorized := func() {
		a.unauth++
		reply(401, map[string]string{"message": "Unauthorized " + echo()})
	}
	switch r.URL.Path {
	case DefaultPathAuthenticate:
		a.bodies = append(a.bodies, string(body))
		var req struct{ UserName, Password string }
		_ = json.Unmarshal(body, &req)
		if req.UserName != "svc" || req.Password != "pw-Secr3t-value" {
			unauthorized()
			return
		}
		a.auths++
		exp := time.Time{}
		if a.refreshTTL > 0 {
			exp = now.Add(a.refreshTTL)
		}
		reply(200, a.issue(exp))
	case DefaultPathRefresh:
		a.bodies = append(a.bodies, string(body))
		if s := a.refreshStatus.Load(); s != 0 {
			reply(int(s), map[string]string{"message": "unavailable " + echo()})
			return
		}
		var req struct{ RefreshToken, AccessToken string }
		_ = json.Unmarshal(body, &req)
		exp, ok := a.refreshTok[req.RefreshToken]
		if a.rejectRefresh.Load() || !ok || (!exp.IsZero() && !now.Before(exp)) {
			unauthorized()
			return
		}
		if _, ok := a.live[req.AccessToken]; !ok {
			unauthorized()
			return
		}
		delete(a.refreshTok, req.RefreshToken)
		a.refreshes++
		reply(200, a.issue(exp)) // the refresh token keeps its first expiry
	case DefaultPathLogout:
		if a.hangLogout {
			a.mu.Unlock()
			<-r.Context().Done()
			a.mu.Lock()
			return
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, ok := a.live[tok]; !ok {
			unauthorized()
			return
		}
		clear(a.live)
		clear(a.refreshTok)
		a.logouts++
		w.WriteHeader(200)
	default:
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		exp, ok := a.live[tok]
		if !ok || (!exp.IsZero() && !now.Before(exp)) {
			unauthorized()
			return
		}
		if s := a.listStatus.Load(); s != 0 {
			if s == 401 {
				unauthorized()
				return
			}
			reply(int(s), map[string]string{"message": "no " + echo()})
			return
		}
		if a.listBody != "" {
			_, _ = io.WriteString(w, a.listBody)
			return
		}
		reply(200, []any{})
	}
}

func (a *authServer) counts() (auths, refreshes, logouts, unauth int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.auths, a.refreshes, a.logouts, a.unauth
}

// expireAll makes every access token expired now.
func (a *authServer) expireAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.live {
		a.live[k] = time.Now().Add(-time.Second)
	}
}

func sessionConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Username = "svc"
	cfg.Password = "pw-Secr3t-value"
	cfg.Timeout = 2 * time.Second
	return cfg
}

func testClient(t *testing.T, cfg Config) (*client, *observer.ObservedLogs) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	c, err := newClient(&cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.close() })
	return c, logs
}

func TestAPIKeyMode(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "" {
			t.Errorf("API-key request carries Authorization")
		}
		if strings.HasPrefix(r.URL.Path, "/api/user/") {
			t.Errorf("API-key mode called %s", r.URL.Path)
		}
		keys = append(keys, r.Header.Get("ApiKey"))
		_, _ = io.WriteString(w, `[]`)
	}))
	defer srv.Close()

	t.Run("inline", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.URL, cfg.APIKey = srv.URL, "k3y-inline-value"
		c, _ := testClient(t, cfg)
		if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
			t.Fatal(err)
		}
		if err := c.close(); err != nil {
			t.Errorf("close in API-key mode: %v", err)
		}
	})
	t.Run("file-rotates", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, []byte("k3y-from-file-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.URL, cfg.APIKeyFile = srv.URL, path
		c, _ := testClient(t, cfg)
		if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		if err := os.WriteFile(path, []byte("k3y-from-file-22\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
			t.Fatal(err)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{"k3y-inline-value", "k3y-from-file-1", "k3y-from-file-22"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("ApiKey headers %q, want %q", keys, want)
	}
}

func TestAPIKeyRejected(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.URL, cfg.APIKey = srv.URL, "k3y-wrong-value"
	c, _ := testClient(t, cfg)
	_, err := c.getJSON(context.Background(), "/api/scan/0/10")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "api_key") || strings.Contains(err.Error(), "k3y-wrong-value") {
		t.Fatalf("error %v: want ErrUnauthorized naming api_key, without the key", err)
	}
}

func TestSession(t *testing.T) {
	ctx := context.Background()
	get := func(c *client) error {
		_, err := c.getJSON(ctx, "/api/scan/0/10")
		return err
	}
	tests := []struct {
		name string
		// setup prepares the server; run makes requests and may change it.
		setup func(a *authServer)
		run   func(t *testing.T, a *authServer, c *client)
		// wanted counts
		auths, refreshes, unauth int
	}{
		{
			name:  "authenticate once, then reuse the token",
			setup: func(a *authServer) { a.accessTTL = time.Hour },
			run: func(t *testing.T, a *authServer, c *client) {
				for range 5 {
					if err := get(c); err != nil {
						t.Fatal(err)
					}
				}
				a.mu.Lock()
				defer a.mu.Unlock()
				if len(a.bodies) != 1 || a.bodies[0] != `{"userName":"svc","password":"pw-Secr3t-value"}` {
					t.Errorf("authenticate bodies %q", a.bodies)
				}
			},
			auths: 1,
		},
		{
			name:  "refresh before expiry: no request meets a 401",
			setup: func(a *authServer) { a.accessTTL = 600 * time.Millisecond; a.refreshTTL = time.Hour },
			run: func(t *testing.T, a *authServer, c *client) {
				for range 20 {
					if err := get(c); err != nil {
						t.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				a.mu.Lock()
				defer a.mu.Unlock()
				var body struct{ RefreshToken, AccessToken string }
				if err := json.Unmarshal([]byte(a.bodies[1]), &body); err != nil || body.RefreshToken != "refresh-1-Zq9" || body.AccessToken != "access-1-Zq9" {
					t.Errorf("refresh body %s", a.bodies[1])
				}
			},
			auths: 1, refreshes: 6, // every ~300 ms (half of 600 ms) over 2 s
		},
		{
			name: "refresh token about to expire: authenticate again before it does",
			setup: func(a *authServer) {
				a.accessTTL = time.Second
				a.refreshTTL = 2 * time.Second
			},
			run: func(t *testing.T, a *authServer, c *client) {
				// Refresh at 0.5 s; at 1 s the refresh token has less than
				// a second left: authenticate; and so on.
				for range 26 {
					if err := get(c); err != nil {
						t.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
			auths: 3, refreshes: 3,
		},
		{
			name:  "no expiry times: refresh only on 401, then retry",
			setup: func(a *authServer) { a.accessTTL = time.Hour; a.omitExpiry = true },
			run: func(t *testing.T, a *authServer, c *client) {
				if err := get(c); err != nil {
					t.Fatal(err)
				}
				a.expireAll()
				if err := get(c); err != nil {
					t.Fatalf("after expiry: %v", err)
				}
				if err := get(c); err != nil {
					t.Fatal(err)
				}
			},
			auths: 1, refreshes: 1, unauth: 1,
		},
		{
			name:  "refresh rejected: authenticate again and retry",
			setup: func(a *authServer) { a.accessTTL = time.Hour; a.omitExpiry = true },
			run: func(t *testing.T, a *authServer, c *client) {
				if err := get(c); err != nil {
					t.Fatal(err)
				}
				a.expireAll()
				a.rejectRefresh.Store(true)
				if err := get(c); err != nil {
					t.Fatalf("after expiry: %v", err)
				}
			},
			auths: 2, refreshes: 0, unauth: 2,
		},
		{
			name:  "a second 401 is an error of the request",
			setup: func(a *authServer) { a.accessTTL = time.Hour; a.listStatus.Store(401) },
			run: func(t *testing.T, a *authServer, c *client) {
				err := get(c)
				if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "still refused after the session was renewed") {
					t.Fatalf("error %v", err)
				}
			},
			auths: 1, refreshes: 1, unauth: 2,
		},
		{
			name: "proactive refresh fails but the token still works: the request goes on",
			setup: func(a *authServer) {
				a.accessTTL = 3 * time.Second
				a.refreshStatus.Store(503)
			},
			run: func(t *testing.T, a *authServer, c *client) {
				if err := get(c); err != nil {
					t.Fatal(err)
				}
				time.Sleep(1600 * time.Millisecond) // past half the life
				if err := get(c); err != nil {
					t.Fatalf("with a failing refresh and a live token: %v", err)
				}
			},
			auths: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, srv := newAuthServer(t)
			tt.setup(a)
			c, _ := testClient(t, sessionConfig(srv.URL))
			tt.run(t, a, c)
			auths, refreshes, _, unauth := a.counts()
			// Timing-based counts may be off by one on a slow machine.
			if auths != tt.auths || refreshes < tt.refreshes-1 || refreshes > tt.refreshes+1 || unauth != tt.unauth {
				t.Errorf("authentications %d, refreshes %d, 401s %d; want %d, %d±1, %d", auths, refreshes, unauth, tt.auths, tt.refreshes, tt.unauth)
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	a, srv := newAuthServer(t)
	a.secretInErrors = "pw-Secr3t-valueX"
	cfg := sessionConfig(srv.URL)
	cfg.Password = "pw-Secr3t-valueX" // wrong
	c, _ := testClient(t, cfg)
	_, err := c.getJSON(context.Background(), "/api/scan/0/10")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), `authenticate as "svc"`) {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "Secr3t") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestLogoutOnClose(t *testing.T) {
	a, srv := newAuthServer(t)
	a.accessTTL = time.Hour
	c, _ := testClient(t, sessionConfig(srv.URL))
	if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if _, _, logouts, _ := a.counts(); logouts != 1 {
		t.Errorf("%d logouts, want 1", logouts)
	}
	if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("request after close: %v", err)
	}

	// A session never opened: no logout request.
	c2, _ := testClient(t, sessionConfig(srv.URL))
	if err := c2.close(); err != nil {
		t.Fatal(err)
	}
	if _, _, logouts, _ := a.counts(); logouts != 1 {
		t.Errorf("%d logouts after closing an unused client, want 1", logouts)
	}
}

func TestLogoutIsBounded(t *testing.T) {
	a, srv := newAuthServer(t)
	a.accessTTL = time.Hour
	a.hangLogout = true
	cfg := sessionConfig(srv.URL)
	cfg.Timeout = 300 * time.Millisecond
	c, _ := testClient(t, cfg)
	if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := c.close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %s", d)
	}
	if err == nil || !strings.Contains(err.Error(), "logout") {
		t.Errorf("close error %v", err)
	}
}

// TestConcurrentRenew: many requests meet a 401 at once; one refresh serves
// them all.
func TestConcurrentRenew(t *testing.T) {
	a, srv := newAuthServer(t)
	a.accessTTL = time.Hour
	a.omitExpiry = true
	c, _ := testClient(t, sessionConfig(srv.URL))
	if _, err := c.getJSON(context.Background(), "/api/scan/0/10"); err != nil {
		t.Fatal(err)
	}
	a.expireAll()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.getJSON(context.Background(), "/api/scan/0/10")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if auths, refreshes, _, _ := a.counts(); auths != 1 || refreshes != 1 {
		t.Errorf("authentications %d, refreshes %d; want 1, 1", auths, refreshes)
	}
}

func TestResponseErrors(t *testing.T) {
	const planted = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   []string // in the error
		not    []string // never in the error
	}{
		{"nginx 502", 502, "text/html", "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
			[]string{"HTTP 502", "HTML page", "502 Bad Gateway"}, nil},
		{"portal 200", 200, "text/html; charset=utf-8", "<!DOCTYPE html><title>MetaDefender Storage Security</title>",
			[]string{"HTTP 200", "HTML page"}, nil},
		{"truncated", 200, "application/json", `{"items":[{"id":"a","accessToken":"` + planted,
			[]string{"malformed or truncated JSON", `starting "{\"items\"`}, []string{planted, "eyJ"}},
		{"text 503", 503, "text/plain", "503 Service Temporarily Unavailable\n",
			[]string{"HTTP 503", "Service Temporarily Unavailable"}, nil},
		{"json 500", 500, "application/json", `{"message":"boom with ` + planted + `"}`,
			[]string{"HTTP 500", "boom with [REDACTED]"}, []string{planted}},
		{"empty", 200, "application/json", "", []string{"empty body"}, nil},
		{"control characters", 500, "text/plain", "bad\x00\x1b[31mred", []string{`"bad  [31mred"`}, nil},
		{"long body", 500, "text/plain", strings.Repeat("x", 5000), []string{strings.Repeat("x", 80) + `"`}, []string{strings.Repeat("x", 81)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.URL, cfg.APIKey = srv.URL, "k3y-value"
			c, _ := testClient(t, cfg)
			_, err := c.getJSON(context.Background(), "/api/scan/0/10")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tt.want, "GET /api/scan/0/10") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q contains %q", err, n)
				}
			}
		})
	}
}

func TestBodyLimitAndTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = io.WriteString(w, "["+strings.Repeat(`"x",`, 2000)+`"x"]`)
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			_, _ = io.WriteString(w, "["+strings.Repeat(`"x",`, 2000)+`"x"]`)
		case "/redirect":
			http.Redirect(w, r, "http://example.invalid/steal", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.URL, cfg.APIKey = srv.URL, "k3y-value"
	cfg.MaxBodyBytes = 1024
	cfg.Timeout = 200 * time.Millisecond
	c, _ := testClient(t, cfg)
	for path, want := range map[string]string{
		"/big": "exceeds max_body_bytes", "/big-chunked": "exceeds max_body_bytes",
		"/redirect": "refusing redirect", "/slow": "timeout: no complete answer within 200ms",
	} {
		_, err := c.getJSON(context.Background(), path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
}

// TestSecretsNeverShown plants an API key, a password and tokens and looks
// for them in every error, log line and printed form the client produces.
func TestSecretsNeverShown(t *testing.T) {
	a, srv := newAuthServer(t)
	a.accessTTL = 500 * time.Millisecond
	a.refreshTTL = time.Hour
	cfg := sessionConfig(srv.URL)
	a.secretInErrors = "pw-Secr3t-value"
	c, logs := testClient(t, cfg)
	ctx := context.Background()
	var errs []error
	for i := range 12 {
		_, err := c.getJSON(ctx, "/api/scan/0/10")
		errs = append(errs, err)
		switch i {
		case 3:
			a.listStatus.Store(500)
		case 5:
			a.listStatus.Store(401)
		case 7:
			a.listStatus.Store(0)
			a.expireAll()
			a.rejectRefresh.Store(true)
		case 9:
			a.refreshStatus.Store(503)
		}
		time.Sleep(60 * time.Millisecond)
	}
	errs = append(errs, c.close())

	secrets := []string{"pw-Secr3t-value", "Zq9"}
	var texts []string
	for _, err := range errs {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, buf.String())
	}
	js, _ := json.Marshal(cfg)
	texts = append(texts, fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, js), fmt.Sprintf("%v %+v %#v", c.sess.access, c.sess.refresh, c.sess.access))
	if len(texts) < 10 {
		t.Fatalf("only %d texts to look at", len(texts))
	}
	for _, txt := range texts {
		for _, s := range secrets {
			if strings.Contains(txt, s) {
				t.Errorf("%q shows a secret: %s", s, txt)
			}
		}
	}
}

func TestListPath(t *testing.T) {
	for _, tt := range []struct{ tmpl, scan, want string }{
		{DefaultPathScans, "", "/api/scan/200/100"},
		{DefaultPathFiles, "0198f02f-ed4d", "/api/file/200/100?scanId=0198f02f-ed4d"},
		{DefaultPathFiles, "a b/c&d", "/api/file/200/100?scanId=a+b%2Fc%26d"},
		{"/api/scan/{scanId}/files/{startIndex}/{count}", "a/b", "/api/scan/a%2Fb/files/200/100"},
		{"/api/v2/scans?skip={startIndex}&take={count}", "", "/api/v2/scans?skip=200&take=100"},
	} {
		if got := listPath(tt.tmpl, 200, 100, tt.scan); got != tt.want {
			t.Errorf("listPath(%q, %q) = %q, want %q", tt.tmpl, tt.scan, got, tt.want)
		}
	}
}

// TestSessionAnswersNeverQuoted: a broken authenticate or refresh answer
// holds tokens, so its error gives sizes, never the body.
func TestSessionAnswersNeverQuoted(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"accessToken":"opaque-T0ken-xyz","refreshToken":"opaque-R3fresh`, "malformed or truncated JSON (64 bytes)"},
		{500, `{"message":"failed for opaque-T0ken-xyz"}`, "HTTP 500: 41-byte body not shown"},
		{200, `{"token_type":"opaque-T0ken-xyz"}`, `token answer has no accessToken string (keys present: "token_type")`},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		}))
		c, _ := testClient(t, sessionConfig(srv.URL))
		_, err := c.getJSON(context.Background(), "/api/scan/0/10")
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "T0ken") || strings.Contains(err.Error(), "R3fresh") {
			t.Errorf("error %v, want %q without the tokens", err, tt.want)
		}
		srv.Close()
	}
}
