package webhook

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mdbridge/mdbridge/pipeline"
)

// FuzzParseSecrets: parsing never panics, accepted secrets round-trip, and
// an error never quotes the input.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{
		secretA, secretA + " " + secretB, secretA + ",\n" + secretB, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_", "whsec_!!!", "whsk_abc", "", " , ", "whsec_c2hvcnQ=", "whsec_" + strings.Repeat("QUFB", 30),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := parseSecrets(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q quotes the input", err)
			}
			for _, field := range strings.Fields(s) {
				if len(field) >= 12 && strings.Contains(err.Error(), field) {
					t.Fatalf("error %q quotes a secret", err)
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no key")
		}
		for _, k := range keys {
			if len(k) < minSecretBytes {
				t.Fatalf("accepted a %d-byte key", len(k))
			}
			again, err := parseSecrets(secretPrefix + base64.StdEncoding.EncodeToString(k))
			if err != nil || len(again) != 1 || !bytes.Equal(again[0], k) {
				t.Fatalf("key does not round-trip: %v", err)
			}
		}
	})
}

// FuzzParseRetryAfter: the wait is never negative nor above the cap, and
// a plain number of seconds is read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "7", "600", "601", "99999999999999999999", "-1", "1.5", " 3 ",
		"Mon, 23 Nov 2026 12:01:30 GMT", "Monday, 23-Nov-26 12:00:05 GMT", "Mon Nov 23 12:00:05 2026", "soon", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %s without ok", s, d)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 && !strings.ContainsAny(s, "+-") {
			want := maxRetryAfter
			if n < int(maxRetryAfter/time.Second) {
				want = time.Duration(n) * time.Second
			}
			if !ok || d != want {
				t.Fatalf("parseRetryAfter(%q) = %s, %v; want %s", s, d, ok, want)
			}
		}
	})
}

// FuzzSanitize: the quoted text is short, printable UTF-8 on one line, and
// never holds a scrubbed value.
func FuzzSanitize(f *testing.F) {
	f.Add([]byte("Authorization: Bearer tok-secret-1\r\n"), "tok-secret-1")
	f.Add([]byte("\xff\xfe\x00abc"), "abcd")
	f.Add([]byte(strings.Repeat("é", 300)), "éééé")
	f.Fuzz(func(t *testing.T, body []byte, secret string) {
		got := sanitize(body, []string{secret})
		if len(got) > snippetBytes+3 {
			t.Fatalf("snippet of %d bytes", len(got))
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n\t\x00") {
			t.Fatalf("snippet %q is not clean text", got)
		}
		// A token-like value (lower case, digits, '-') cannot be made by the
		// clean-up or overlap the redaction mark, so it must be gone.
		if len(secret) >= minScrubLen && !strings.ContainsFunc(secret, func(r rune) bool {
			return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-'
		}) && strings.Contains(got, secret) {
			t.Fatalf("snippet %q holds the scrubbed value %q", got, secret)
		}
		if strings.Contains(string(body), secret) && len(secret) >= minScrubLen && len(got) > 0 &&
			!strings.Contains(got, pipeline.Redacted) && strings.Index(string(body), secret) < snippetBytes/2 {
			t.Fatalf("snippet %q lacks the redaction mark for a value early in the body", got)
		}
	})
}
