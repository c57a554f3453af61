package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

func TestBodyShapes(t *testing.T) {
	tests := []struct {
		name        string
		encoding    string
		gzip        bool
		events      int
		contentType string
	}{
		{"json array", EncodingJSONArray, false, 25, "application/json"},
		{"json array gzip", EncodingJSONArray, true, 25, "application/json"},
		{"ndjson", EncodingNDJSON, false, 25, "application/x-ndjson"},
		{"ndjson gzip", EncodingNDJSON, true, 25, "application/x-ndjson"},
		{"one event", EncodingJSONArray, false, 1, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			cfg := rc.config()
			cfg.Encoding = tt.encoding
			cfg.Gzip = tt.gzip
			s := mustNew(t, cfg, nil)
			batch := entries(t, 100, tt.events)
			if err := deliver(t, s, batch); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			got := decodeEvents(t, tt.encoding, r.body)
			if len(got) != len(batch) {
				t.Fatalf("got %d events, want %d", len(got), len(batch))
			}
			for i := range batch {
				if !bytes.Equal(got[i], batch[i].Data) {
					t.Fatalf("event %d differs:\n got %.120s\nwant %.120s", i, got[i], batch[i].Data)
				}
			}
			if ct := r.header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			wantCE := ""
			if tt.gzip {
				wantCE = "gzip"
				if bytes.Equal(r.raw, r.body) || len(r.raw) >= len(r.body) {
					t.Errorf("gzip body is %d bytes on the wire for %d decoded", len(r.raw), len(r.body))
				}
			}
			if ce := r.header.Get("Content-Encoding"); ce != wantCE {
				t.Errorf("Content-Encoding %q, want %q", ce, wantCE)
			}
			for h, want := range map[string]string{
				HeaderEvents:   strconv.Itoa(tt.events),
				HeaderFirstSeq: "100",
				HeaderLastSeq:  strconv.Itoa(100 + tt.events - 1),
				"User-Agent":   userAgent,
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			if r.header.Get("webhook-signature") != "" {
				t.Error("webhook-signature set without a secret")
			}
			if id := r.header.Get("webhook-id"); !strings.HasPrefix(id, idPrefix) || len(id) != len(idPrefix)+32 {
				t.Errorf("webhook-id %q, want msg_ and 32 hex digits", id)
			}
		})
	}
}

// textFormat renders an event as a text line, standing in for cef/leef
// (which register themselves in package format) to test text bodies.
type textFormat struct{}

func (textFormat) Name() string { return "text" }
func (textFormat) JSON() bool   { return false }
func (textFormat) Append(dst, data []byte) ([]byte, error) {
	m, err := format.PeekMeta(data)
	if err != nil {
		return dst, err
	}
	return fmt.Appendf(dst, "CEF:0|OPSWAT|test|1|%s|%s|%d|", m.Kind, m.ID, m.SeverityScore/10), nil
}

func TestTextFormatSendsLines(t *testing.T) {
	rc := newReceiver(t, nil)
	cfg := rc.config()
	cfg.Encoding = EncodingNDJSON
	s := mustNew(t, cfg, nil)
	s.fmtr = textFormat{}
	s.contentType = contentText
	batch := entries(t, 1, 4)
	if err := deliver(t, s, batch); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	var want []byte
	for _, e := range batch {
		want, _ = textFormat{}.Append(want, e.Data)
		want = append(want, '\n')
	}
	if !bytes.Equal(reqs[0].body, want) {
		t.Errorf("body\n%s\nwant\n%s", reqs[0].body, want)
	}
	if ct := reqs[0].header.Get("Content-Type"); ct != contentText {
		t.Errorf("Content-Type %q, want %q", ct, contentText)
	}
}

func TestWebhookIDIsDeterministic(t *testing.T) {
	rc := newReceiver(t, nil)
	s := mustNew(t, rc.config(), nil)
	a := entries(t, 1, 10)
	b := entries(t, 1, 11)
	c := entries(t, 2, 10)
	for _, batch := range [][]pipeline.Entry{a, a, b, c} {
		if err := deliver(t, s, batch); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rc.requests()
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.header.Get("webhook-id")
	}
	if ids[0] != ids[1] {
		t.Errorf("the same batch sent twice got ids %s and %s", ids[0], ids[1])
	}
	if ids[0] == ids[2] || ids[0] == ids[3] || ids[2] == ids[3] {
		t.Errorf("different batches share an id: %v", ids)
	}
}

func TestSignatureKnownAnswer(t *testing.T) {
	// The example of the Standard Webhooks reference libraries.
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	keys, err := parseSecrets(secret)
	if err != nil {
		t.Fatal(err)
	}
	got := string(appendSignatures(nil, keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", got)
	if err := verifyStandardWebhook(secret, h, []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0), 5*time.Minute); err != nil {
		t.Errorf("test verifier rejects the reference example: %v", err)
	}
}

func TestSignatureVerifies(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		gzip    bool
		sigs    int
		verify  []string // each alone must verify
		tamper  func(h http.Header, body []byte) (http.Header, []byte)
		wrong   string // a secret that must not verify
		wantErr bool
	}{
		{name: "one secret", secret: secretA, sigs: 1, verify: []string{secretA}, wrong: secretB},
		{name: "gzip signs the decoded body", secret: secretA, gzip: true, sigs: 1, verify: []string{secretA}, wrong: secretB},
		{name: "rotation: two secrets", secret: secretA + " " + secretB, sigs: 2, verify: []string{secretA, secretB},
			wrong: "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret of thirty-two byt"))},
		{name: "rotation: comma separated", secret: secretB + "," + secretA, sigs: 2, verify: []string{secretA, secretB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			cfg := rc.config()
			cfg.Secret = pipeline.Secret(tt.secret)
			cfg.Gzip = tt.gzip
			s := mustNew(t, cfg, nil)
			if err := deliver(t, s, entries(t, 7, 20)); err != nil {
				t.Fatal(err)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != tt.sigs {
				t.Errorf("%d signatures, want %d", n, tt.sigs)
			}
			now := time.Now()
			for _, sec := range tt.verify {
				if err := verifyStandardWebhook(sec, r.header, r.body, now, 5*time.Minute); err != nil {
					t.Errorf("verify: %v", err)
				}
			}
			// The verifier must fail for every kind of forgery.
			tampered := bytes.Clone(r.body)
			tampered[len(tampered)/2] ^= 0x01
			failures := map[string]error{
				"tampered body": verifyStandardWebhook(tt.verify[0], r.header, tampered, now, 5*time.Minute),
				"stale":         verifyStandardWebhook(tt.verify[0], r.header, r.body, now.Add(10*time.Minute), 5*time.Minute),
			}
			if tt.wrong != "" {
				failures["wrong secret"] = verifyStandardWebhook(tt.wrong, r.header, r.body, now, 5*time.Minute)
			}
			other := r.header.Clone()
			other.Set("webhook-id", "msg_other")
			failures["other id"] = verifyStandardWebhook(tt.verify[0], other, r.body, now, 5*time.Minute)
			noSig := r.header.Clone()
			noSig.Del("webhook-signature")
			failures["no signature"] = verifyStandardWebhook(tt.verify[0], noSig, r.body, now, 5*time.Minute)
			for what, err := range failures {
				if err == nil {
					t.Errorf("%s verifies", what)
				}
			}
		})
	}
}

func TestSecretFileRotation(t *testing.T) {
	rc := newReceiver(t, nil)
	path := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(path, []byte(secretA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := rc.config()
	cfg.SecretFile = path
	s := mustNew(t, cfg, nil)
	if err := deliver(t, s, entries(t, 1, 3)); err != nil {
		t.Fatal(err)
	}
	// Rotate: the new secret first, the old one kept while receivers move.
	if err := os.WriteFile(path, []byte(secretB+"\n"+secretA+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, s, entries(t, 4, 3)); err != nil {
		t.Fatal(err)
	}
	// A broken file is a retryable error that names the file, not a value.
	if err := os.WriteFile(path, []byte("whsec_!!not-base64!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := deliver(t, s, entries(t, 7, 3))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "secret_file") || strings.Contains(err.Error(), "not-base64") {
		t.Errorf("Deliver with a broken secret file: %v", err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	now := time.Now()
	checks := []struct {
		req    int
		secret string
		ok     bool
	}{
		{0, secretA, true}, {0, secretB, false},
		{1, secretA, true}, {1, secretB, true},
	}
	for _, c := range checks {
		err := verifyStandardWebhook(c.secret, reqs[c.req].header, reqs[c.req].body, now, 5*time.Minute)
		if (err == nil) != c.ok {
			t.Errorf("request %d with secret %d: verify error %v, want ok=%v", c.req, slices.Index([]string{secretA, secretB}, c.secret), err, c.ok)
		}
	}
}

func TestStatusHandling(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	type class int
	const (
		delivered class = iota
		retry
		permanent
		disabled
	)
	tests := []struct {
		status     int
		header     map[string]string
		body       string
		want       class
		retryAfter time.Duration
		inError    []string
	}{
		{status: 200, want: delivered},
		{status: 201, want: delivered},
		{status: 202, want: delivered},
		{status: 204, want: delivered},
		{status: 408, want: retry, inError: []string{"HTTP 408"}},
		{status: 425, want: retry, inError: []string{"HTTP 425"}},
		{status: 429, want: retry, header: map[string]string{"Retry-After": "7"}, retryAfter: 7 * time.Second},
		{status: 503, want: retry, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, retryAfter: 90 * time.Second},
		{status: 503, want: retry, header: map[string]string{"Retry-After": "86400"}, retryAfter: maxRetryAfter},
		{status: 503, want: retry, header: map[string]string{"Retry-After": "soon"}},
		{status: 500, want: retry, body: "database down", inError: []string{"HTTP 500 Internal Server Error", "database down"}},
		{status: 502, want: retry},
		{status: 504, want: retry},
		{status: 400, want: permanent, body: `{"error":"field \"kind\" unknown"}`, inError: []string{"HTTP 400 Bad Request", `field \\\"kind\\\" unknown`}},
		{status: 401, want: permanent, inError: []string{"HTTP 401"}},
		{status: 404, want: permanent, inError: []string{"HTTP 404"}},
		{status: 422, want: permanent, body: strings.Repeat("x", 5000), inError: []string{"HTTP 422", strings.Repeat("x", snippetBytes-3) + "..."}},
		{status: 410, want: disabled, inError: []string{"HTTP 410 Gone"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v", tt.status, tt.header), func(t *testing.T) {
			rc := newReceiver(t, func(*request, int) reply { return reply{status: tt.status, header: tt.header, body: tt.body} })
			s := mustNew(t, rc.config(), nil)
			s.now = func() time.Time { return now }
			err := deliver(t, s, entries(t, 1, 5))
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
			var ra *pipeline.RetryAfterError
			var dis *pipeline.DisabledError
			var part *pipeline.PartialError
			switch tt.want {
			case delivered:
				if err != nil {
					t.Fatalf("Deliver: %v, want nil", err)
				}
				return
			case retry:
				if err == nil || pipeline.IsPermanent(err) || errors.As(err, &dis) || errors.As(err, &part) {
					t.Fatalf("Deliver: %v, want a retryable error", err)
				}
				if tt.retryAfter > 0 {
					if !errors.As(err, &ra) || ra.After != tt.retryAfter {
						t.Errorf("Deliver: %v, want RetryAfter %s", err, tt.retryAfter)
					}
				} else if errors.As(err, &ra) {
					t.Errorf("Deliver: %v, want no RetryAfter", err)
				}
			case permanent:
				if !pipeline.IsPermanent(err) {
					t.Fatalf("Deliver: %v, want Permanent", err)
				}
			case disabled:
				if !errors.As(err, &dis) {
					t.Fatalf("Deliver: %v, want Disabled", err)
				}
			}
			for _, want := range append(tt.inError, "/hook") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			target := newReceiver(t, nil)
			rc := newReceiver(t, func(*request, int) reply {
				return reply{status: status, header: map[string]string{"Location": target.srv.URL + "/elsewhere?token=leak-me-not"}}
			})
			s := mustNew(t, rc.config(), nil)
			err := deliver(t, s, entries(t, 1, 3))
			if err == nil || pipeline.IsPermanent(err) {
				t.Fatalf("Deliver: %v, want a retryable error", err)
			}
			if !strings.Contains(err.Error(), "redirect to "+target.srv.URL+"/elsewhere?... not followed") {
				t.Errorf("error %q does not name the redirect", err)
			}
			if strings.Contains(err.Error(), "leak-me-not") {
				t.Errorf("error %q shows the Location's query", err)
			}
			if n := len(target.requests()); n != 0 {
				t.Errorf("the redirect target got %d requests", n)
			}
		})
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"closed server", func(t *testing.T) string {
			rc := newReceiver(t, nil)
			u := rc.srv.URL
			rc.srv.Close()
			return u
		}},
		{"server hangs up", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.url(t)
			cfg := DefaultConfig()
			cfg.URL = base + "/hook?token=query-secret-1"
			s := mustNew(t, cfg, nil)
			err := deliver(t, s, entries(t, 1, 3))
			var part *pipeline.PartialError
			if err == nil || pipeline.IsPermanent(err) || errors.As(err, &part) {
				t.Fatalf("Deliver: %v, want a retryable error", err)
			}
			if !strings.Contains(err.Error(), base+"/hook?...") {
				t.Errorf("error %q does not name the URL", err)
			}
			if strings.Contains(err.Error(), "query-secret-1") {
				t.Errorf("error %q shows the query", err)
			}
		})
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(*request, int) reply {
		<-release
		return reply{status: 204}
	})
	defer close(release)
	cfg := rc.config()
	cfg.Timeout = 200 * time.Millisecond
	s := mustNew(t, cfg, nil)
	err := deliver(t, s, entries(t, 1, 2))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "no response within timeout 200ms") {
		t.Fatalf("Deliver: %v, want a retryable timeout", err)
	}
}

func TestAuthAndCustomHeaders(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	passFile := filepath.Join(dir, "password")
	if err := os.WriteFile(tokenFile, []byte("file-token-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passFile, []byte("file-pass-456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name   string
		set    func(c *Config)
		header map[string]string
	}{
		{"none", func(*Config) {}, map[string]string{"Authorization": ""}},
		{"bearer", func(c *Config) { c.BearerToken = "tok-abc" }, map[string]string{"Authorization": "Bearer tok-abc"}},
		{"bearer file", func(c *Config) { c.BearerTokenFile = tokenFile }, map[string]string{"Authorization": "Bearer file-token-123"}},
		{"basic", func(c *Config) { c.Username, c.Password = "soar", "pa ss" }, map[string]string{"Authorization": basic("soar", "pa ss")}},
		{"basic file", func(c *Config) { c.Username, c.PasswordFile = "soar", passFile }, map[string]string{"Authorization": basic("soar", "file-pass-456")}},
		{"custom headers", func(c *Config) {
			c.Headers = map[string]pipeline.Secret{"X-Api-Key": "key-789", "x-tenant": "plant-a"}
			c.BearerToken = "tok-abc"
		}, map[string]string{"X-Api-Key": "key-789", "X-Tenant": "plant-a", "Authorization": "Bearer tok-abc"}},
		{"authorization as a custom header", func(c *Config) {
			c.Headers = map[string]pipeline.Secret{"Authorization": "ApiKey xyz"}
		}, map[string]string{"Authorization": "ApiKey xyz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			cfg := rc.config()
			tt.set(&cfg)
			s := mustNew(t, cfg, nil)
			if err := deliver(t, s, entries(t, 1, 2)); err != nil {
				t.Fatal(err)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			for k, want := range tt.header {
				if got := reqs[0].header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestSplitAndPartial(t *testing.T) {
	// 20 events of ~1.2 KB with max_batch_bytes 6KiB: parts of 5 events.
	const events, perPart = 20, 5
	tests := []struct {
		name     string
		fail     map[int]int // part index (by first seq) -> status
		want     string      // nil, partial, retry, rejected, disabled
		done     int         // Partial.Done
		rejected []int       // Rejected indexes
	}{
		{name: "all succeed", want: "nil"},
		{name: "first fails", fail: map[int]int{0: 503}, want: "retry"},
		{name: "third fails", fail: map[int]int{2: 503}, want: "partial", done: 2 * perPart},
		{name: "last fails", fail: map[int]int{3: 500}, want: "partial", done: 3 * perPart},
		{name: "second and last fail", fail: map[int]int{1: 503, 3: 503}, want: "partial", done: perPart},
		{name: "second rejected", fail: map[int]int{1: 400}, want: "rejected", rejected: seqRange(perPart, 2*perPart)},
		{name: "rejected then failure", fail: map[int]int{1: 400, 3: 503}, want: "partial", done: perPart},
		{name: "first rejected then failure", fail: map[int]int{0: 422, 2: 503}, want: "retry"},
		{name: "all rejected", fail: map[int]int{0: 400, 1: 400, 2: 400, 3: 400}, want: "permanent"},
		{name: "gone", fail: map[int]int{2: 410}, want: "disabled", done: 2 * perPart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batch := entries(t, 1000, events)
			rc := newReceiver(t, func(r *request, _ int) reply {
				first, _ := strconv.Atoi(r.header.Get(HeaderFirstSeq))
				if st, ok := tt.fail[(first-1000)/perPart]; ok {
					return reply{status: st}
				}
				return reply{status: 204}
			})
			cfg := rc.config()
			cfg.MaxBatchBytes = pipeline.ByteSize(perPart*len(batch[0].Data) + perPart + 1)
			cfg.Concurrency = 2
			s := mustNew(t, cfg, nil)
			err := deliver(t, s, batch)

			var part *pipeline.PartialError
			var rej *pipeline.RejectedError
			var dis *pipeline.DisabledError
			switch tt.want {
			case "nil":
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
			case "retry":
				if err == nil || errors.As(err, &part) || errors.As(err, &rej) || pipeline.IsPermanent(err) {
					t.Fatalf("Deliver: %v, want a plain retryable error", err)
				}
			case "partial", "disabled":
				if !errors.As(err, &part) || errors.As(err, &rej) {
					t.Fatalf("Deliver: %v, want Partial", err)
				}
				if part.Done != tt.done {
					t.Errorf("Partial.Done %d, want %d", part.Done, tt.done)
				}
				if (tt.want == "disabled") != errors.As(err, &dis) {
					t.Errorf("Deliver: %v, disabled want %v", err, tt.want == "disabled")
				}
			case "rejected":
				if !errors.As(err, &rej) || rej.Err != nil {
					t.Fatalf("Deliver: %v, want Rejected with nil", err)
				}
				var idx []int
				for _, it := range rej.Items {
					idx = append(idx, it.Index)
					if !strings.Contains(it.Reason, "HTTP 400") {
						t.Errorf("rejection reason %q lacks the status", it.Reason)
					}
				}
				if !slices.Equal(idx, tt.rejected) {
					t.Errorf("rejected %v, want %v", idx, tt.rejected)
				}
			case "permanent":
				if !pipeline.IsPermanent(err) {
					t.Fatalf("Deliver: %v, want Permanent", err)
				}
			}

			// Every request held whole parts, in order, each event once.
			seen := map[uint64]int{}
			for _, r := range rc.requests() {
				got := decodeEvents(t, EncodingJSONArray, r.body)
				if len(got) != perPart {
					t.Errorf("request with %d events, want %d", len(got), perPart)
				}
				first, _ := strconv.ParseUint(r.header.Get(HeaderFirstSeq), 10, 64)
				for i, e := range got {
					want := batch[int(first)-1000+i].Data
					if !bytes.Equal(e, want) {
						t.Errorf("request from seq %d: event %d is not seq %d", first, i, int(first)+i)
					}
					seen[first+uint64(i)]++
				}
			}
			for seq, n := range seen {
				if n != 1 {
					t.Errorf("seq %d sent %d times", seq, n)
				}
			}
			// Everything before the reported point reached the receiver.
			upto := events
			if part != nil {
				upto = part.Done
			}
			if tt.want == "nil" || tt.want == "partial" || tt.want == "disabled" {
				for _, e := range batch[:upto] {
					if seen[e.Seq] == 0 {
						t.Errorf("seq %d reported done but never sent", e.Seq)
					}
				}
			}
		})
	}
}

func seqRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestConcurrencyLimit(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(strconv.Itoa(conc), func(t *testing.T) {
			var mu sync.Mutex
			inFlight, peak := 0, 0
			gate := make(chan struct{})
			var once sync.Once
			rc := newReceiver(t, func(*request, int) reply {
				mu.Lock()
				inFlight++
				peak = max(peak, inFlight)
				full := inFlight == conc
				mu.Unlock()
				if full {
					once.Do(func() { close(gate) })
				}
				// The first wave waits until conc requests are in flight
				// together; a sink that sends one at a time never opens it.
				select {
				case <-gate:
				case <-time.After(10 * time.Second):
				}
				mu.Lock()
				inFlight--
				mu.Unlock()
				return reply{status: 204}
			})
			cfg := rc.config()
			batch := entries(t, 100, 40)                                        // equal sizes
			cfg.MaxBatchBytes = pipeline.ByteSize(4*(len(batch[0].Data)+1) + 1) // 4 events a request: 10 requests
			cfg.Concurrency = conc
			s := mustNew(t, cfg, nil)
			if err := deliver(t, s, batch); err != nil {
				t.Fatal(err)
			}
			if n := len(rc.requests()); n != 10 {
				t.Errorf("%d requests, want 10", n)
			}
			if peak != conc {
				t.Errorf("peak in-flight requests %d, want %d", peak, conc)
			}
		})
	}
}

func TestSplitByBatchCount(t *testing.T) {
	rc := newReceiver(t, nil)
	cfg := rc.config()
	cfg.Batch = 7
	s := mustNew(t, cfg, nil)
	if err := deliver(t, s, entries(t, 1, 20)); err != nil { // more than batch: the dispatcher never does it, but a caller may
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range rc.requests() {
		n, _ := strconv.Atoi(r.header.Get(HeaderEvents))
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{6, 7, 7}) {
		t.Errorf("request sizes %v, want 6, 7 and 7", sizes)
	}
}

func TestOversizedEventSentAlone(t *testing.T) {
	rc := newReceiver(t, nil)
	cfg := rc.config()
	cfg.MaxBatchBytes = 1024 // smaller than one event
	s := mustNew(t, cfg, nil)
	if err := deliver(t, s, entries(t, 1, 3)); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want one per event", len(reqs))
	}
}

func TestUnrenderableEventsRejected(t *testing.T) {
	rc := newReceiver(t, nil)
	s := mustNew(t, rc.config(), nil)
	batch := entries(t, 1, 5)
	batch[1].Data = []byte("not json")
	batch[4].Data = nil
	err := deliver(t, s, batch)
	var rej *pipeline.RejectedError
	if !errors.As(err, &rej) || rej.Err != nil {
		t.Fatalf("Deliver: %v, want Rejected with nil", err)
	}
	var idx []int
	for _, it := range rej.Items {
		idx = append(idx, it.Index)
	}
	if !slices.Equal(idx, []int{1, 4}) {
		t.Errorf("rejected %v, want [1 4]", idx)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	got := decodeEvents(t, EncodingJSONArray, reqs[0].body)
	want := [][]byte{batch[0].Data, batch[2].Data, batch[3].Data}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("sent %d events, want seq 1, 3, 4", len(got))
	}
}

func TestDeliverAfterCloseAndCanceled(t *testing.T) {
	rc := newReceiver(t, nil)
	s := mustNew(t, rc.config(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, entries(t, 1, 2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with a canceled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := deliver(t, s, entries(t, 1, 2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver after Close: %v", err)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

// TestRegisteredTextFormats sends the text formats registered in package
// format as lines (text/plain), and checks that json_array refuses them.
func TestRegisteredTextFormats(t *testing.T) {
	for _, name := range []string{format.CEF, format.LEEF} {
		t.Run(name, func(t *testing.T) {
			f, err := format.New(name)
			if err != nil {
				t.Skipf("format %s is not built in: %v", name, err)
			}
			if f.JSON() {
				t.Fatalf("format %s says it is JSON", name)
			}
			rc := newReceiver(t, nil)
			cfg := rc.config()
			cfg.Format = name
			if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "encoding: json_array needs a JSON format") {
				t.Errorf("Validate with format %s and json_array: %v", name, err)
			}
			cfg.Encoding = EncodingNDJSON
			s := mustNew(t, cfg, nil)
			batch := entries(t, 1, 5)
			if err := deliver(t, s, batch); err != nil {
				t.Fatal(err)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			var want []byte
			for _, e := range batch {
				if want, err = f.Append(want, e.Data); err != nil {
					t.Fatal(err)
				}
				want = append(want, '\n')
			}
			if !bytes.Equal(reqs[0].body, want) {
				t.Errorf("body\n%s\nwant\n%s", reqs[0].body, want)
			}
			if ct := reqs[0].header.Get("Content-Type"); ct != contentText {
				t.Errorf("Content-Type %q, want %q", ct, contentText)
			}
		})
	}
}
