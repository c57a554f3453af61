package webhook

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Planted credentials: none of them may show up in an error or a log line.
const (
	plantedBearer   = "planted-bearer-Xq7w"
	plantedPassword = "planted-pass-Yw3e"
	plantedHeader   = "planted-key-Zr9t"
	plantedQuery    = "planted-query-Vb2u"
)

var plantedSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("planted signing key of 32 bytes!"))

func planted() []string {
	return []string{
		plantedBearer, plantedPassword, plantedHeader, plantedQuery, plantedSecret,
		strings.TrimPrefix(plantedSecret, "whsec_"),
		base64.StdEncoding.EncodeToString([]byte("soar:" + plantedPassword)),
	}
}

// echo answers with everything it received: headers, URL and body.
func echo(status int, extra map[string]string) func(r *request, _ int) reply {
	return func(r *request, _ int) reply {
		var b strings.Builder
		fmt.Fprintf(&b, "you sent %s\n", r.url)
		keys := make([]string, 0, len(r.header))
		for k := range r.header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.header[k], ", "))
		}
		return reply{status: status, header: extra, body: b.String()}
	}
}

func TestNoSecretInErrorsOrLogs(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secretFile, []byte(plantedSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auths := []struct {
		name string
		set  func(c *Config)
	}{
		{"bearer and inline secret", func(c *Config) {
			c.BearerToken = plantedBearer
			c.Secret = pipeline.Secret(plantedSecret)
		}},
		{"basic and secret file", func(c *Config) {
			c.Username, c.Password = "soar", plantedPassword
			c.SecretFile = secretFile
		}},
	}
	servers := []struct {
		name    string
		respond func(r *request, n int) reply
		closed  bool
	}{
		{name: "400 echo", respond: echo(400, nil)},
		{name: "401 echo", respond: echo(401, nil)},
		{name: "503 echo", respond: echo(503, map[string]string{"Retry-After": "1"})},
		{name: "410 echo", respond: echo(410, nil)},
		{name: "redirect", respond: func(r *request, _ int) reply {
			return reply{status: 307, header: map[string]string{"Location": "/other?token=" + plantedQuery}}
		}},
		{name: "closed server", closed: true},
	}
	for _, a := range auths {
		for _, sv := range servers {
			t.Run(a.name+"/"+sv.name, func(t *testing.T) {
				rc := newReceiver(t, sv.respond)
				if sv.closed {
					rc.srv.Close()
				}
				core, logs := observer.New(zapcore.DebugLevel)
				cfg := rc.config()
				cfg.URL += "?token=" + plantedQuery
				cfg.Headers = map[string]pipeline.Secret{"X-Api-Key": plantedHeader}
				a.set(&cfg)
				s := mustNew(t, cfg, zap.New(core))
				err := deliver(t, s, entries(t, 1, 3))
				if err == nil {
					t.Fatal("Deliver succeeded; the test needs an error")
				}
				texts := []string{err.Error(), fmt.Sprintf("%+v", err)}
				if sv.respond != nil && len(rc.requests()) == 0 {
					t.Fatal("the server got no request")
				}
				for _, e := range logs.All() {
					texts = append(texts, e.Message, fmt.Sprint(e.ContextMap()))
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				for _, text := range texts {
					for _, p := range planted() {
						if strings.Contains(text, p) {
							t.Errorf("%q holds the planted secret %q", text, p)
						}
					}
				}
				if sv.name == "400 echo" {
					for _, want := range []string{"token=" + pipeline.Redacted, "Authorization: ", " " + pipeline.Redacted + " Content-Length"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q: the echoed response is not quoted with the values redacted (%q)", err, want)
						}
					}
				}
			})
		}
	}
}

func TestNoSecretInConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(c *Config)
	}{
		{"secret not base64", func(c *Config) { c.Secret = pipeline.Secret("whsec_" + plantedBearer + "!!") }},
		{"secret without prefix", func(c *Config) { c.Secret = pipeline.Secret(plantedBearer) }},
		{"second secret short", func(c *Config) { c.Secret = pipeline.Secret(plantedSecret + " whsec_" + plantedPassword) }},
		{"token with newline", func(c *Config) { c.BearerToken = plantedBearer + "\n" }},
		{"password with newline", func(c *Config) { c.Username, c.Password = "soar", plantedPassword+"\r" }},
		{"header with newline", func(c *Config) { c.Headers = map[string]pipeline.Secret{"X-A": plantedHeader + "\n"} }},
		{"clashing header", func(c *Config) { c.Headers = map[string]pipeline.Secret{"Webhook-Id": plantedHeader} }},
		{"url with credentials", func(c *Config) { c.URL = "https://soar:" + plantedPassword + "@soar.example/?t=" + plantedQuery }},
		{"bad url", func(c *Config) { c.URL = "https://soar.example/%zz?t=" + plantedQuery }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.URL = "https://soar.example/hook"
			tt.set(&cfg)
			_, err := New(cfg, nil)
			if err == nil {
				t.Fatal("New succeeded; the test needs an error")
			}
			for _, p := range planted() {
				if strings.Contains(err.Error(), p) || strings.Contains(err.Error(), strings.TrimSpace(p)) {
					t.Errorf("%q holds the planted secret %q", err, p)
				}
			}
		})
	}
}

// TestSanitize checks the quoting of response bodies in errors.
func TestSanitize(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		scrub []string
		want  string
	}{
		{"plain", "bad request", nil, "bad request"},
		{"white space collapsed", "  line one\r\n\tline two \n", nil, "line one line two"},
		{"control and invalid bytes", "a\x00b\xffc\x1b[31m", nil, "a b?c [31m"},
		{"secret scrubbed", "Authorization: Bearer tok-secret-1", []string{"tok-secret-1"}, "Authorization: Bearer " + pipeline.Redacted},
		{"short values left alone", "a b c", []string{"b"}, "a b c"},
		{"cut", strings.Repeat("é", 150), nil, strings.Repeat("é", 100) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitize([]byte(tt.body), tt.scrub); got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

// TestRetryAfterParse covers both forms of the header.
func TestRetryAfterParse(t *testing.T) {
	now := mustTime(t, "Mon, 23 Nov 2026 12:00:00 GMT")
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"0", "0s", true},
		{" 120 ", "2m0s", true},
		{"601", "10m0s", true},
		{"99999999999999999999", "10m0s", true},
		{"Mon, 23 Nov 2026 12:01:30 GMT", "1m30s", true},
		{"Monday, 23-Nov-26 12:00:05 GMT", "5s", true},
		{"Mon, 23 Nov 2026 11:00:00 GMT", "0s", true},
		{"Tue, 24 Nov 2026 12:00:00 GMT", "10m0s", true},
		{"", "0s", false},
		{"-5", "0s", false},
		{"1.5", "0s", false},
		{"tomorrow", "0s", false},
	}
	for _, tt := range tests {
		d, ok := parseRetryAfter(tt.in, now)
		if d.String() != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, d, ok, tt.want, tt.wantOK)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := http.ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
