package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Standard Webhooks (https://www.standardwebhooks.com) names and limits.
const (
	// secretPrefix starts a symmetric Standard Webhooks secret.
	secretPrefix = "whsec_"
	// signatureVersion starts each signature in the webhook-signature header.
	signatureVersion = "v1,"
	// minSecretBytes is the shortest decoded secret accepted; the spec
	// recommends 24 to 64 random bytes.
	minSecretBytes = 24
	// idPrefix starts every webhook-id the sink derives.
	idPrefix = "msg_"
)

// parseSecrets reads one or several secrets separated by white space or
// commas (neither occurs in base64) and returns their key bytes. Errors
// say which secret is wrong and why, never what it holds.
func parseSecrets(s string) ([][]byte, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 0 {
		return nil, errors.New("holds no secret")
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		k, err := parseSecret(f)
		if err != nil {
			if len(fields) > 1 {
				return nil, fmt.Errorf("secret %d of %d: %w", i+1, len(fields), err)
			}
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseSecret decodes one whsec_ secret into its HMAC key: the bytes the
// base64 after the prefix stands for (padded or not).
func parseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		if strings.HasPrefix(s, "whsk_") || strings.HasPrefix(s, "whpk_") {
			return nil, errors.New("asymmetric (whsk_, whpk_) secrets are not supported; use a whsec_ secret")
		}
		return nil, errors.New("must start with whsec_ (a Standard Webhooks secret: whsec_ followed by base64)")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(rest)
	}
	if err != nil {
		return nil, errors.New("the part after whsec_ is not valid base64")
	}
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("decodes to %d bytes, fewer than the %d the Standard Webhooks spec asks for (24 to 64 random bytes)", len(key), minSecretBytes)
	}
	return key, nil
}

// appendSignatures appends the webhook-signature header value: one
// "v1,<base64 HMAC-SHA256>" per key, space-separated, each over
// id + "." + timestamp + "." + body.
func appendSignatures(dst []byte, keys [][]byte, id string, ts int64, body []byte) []byte {
	var tsBuf [20]byte
	t := strconv.AppendInt(tsBuf[:0], ts, 10)
	var sum [sha256.Size]byte
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(t)
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, signatureVersion...)
		dst = base64.StdEncoding.AppendEncode(dst, mac.Sum(sum[:0]))
	}
	return dst
}

// webhookID derives the webhook-id of a request from its events: the first
// 128 bits, in hex, of SHA-256 over the first event's id, the last event's
// id and the number of events. The same events sent again (a retry, a
// replay) carry the same id, so a receiver can deduplicate on it.
func webhookID(firstID, lastID string, events int) string {
	var stack [160]byte
	b := stack[:0]
	b = append(b, firstID...)
	b = append(b, 0)
	b = append(b, lastID...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(events), 10)
	sum := sha256.Sum256(b)
	out := make([]byte, len(idPrefix)+32)
	copy(out, idPrefix)
	hex.Encode(out[len(idPrefix):], sum[:16])
	return string(out)
}

// signer yields the current signing keys: fixed ones from the secret key,
// or those in secret_file, re-parsed whenever the file changes.
type signer struct {
	log  *zap.Logger
	cred *pipeline.Credential // nil for inline secrets

	mu   sync.Mutex
	raw  string // the text the keys were parsed from
	keys [][]byte
}

// newSigner returns nil when no secret is configured.
func newSigner(cfg Config, log *zap.Logger) (*signer, error) {
	switch {
	case cfg.Secret != "":
		keys, err := parseSecrets(cfg.Secret.Reveal())
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		return &signer{log: log, raw: cfg.Secret.Reveal(), keys: keys}, nil
	case cfg.SecretFile != "":
		s := &signer{log: log, cred: pipeline.NewCredential("", cfg.SecretFile)}
		if _, _, err := s.current(); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, nil
}

// current returns the keys and the text they came from (for scrubbing
// response snippets).
func (s *signer) current() ([][]byte, string, error) {
	if s.cred == nil {
		return s.keys, s.raw, nil
	}
	raw, err := s.cred.Get()
	if err != nil {
		return nil, "", fmt.Errorf("secret_file: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if raw == s.raw && s.keys != nil {
		return s.keys, s.raw, nil
	}
	keys, err := parseSecrets(raw)
	if err != nil {
		return nil, "", fmt.Errorf("secret_file: %w", err)
	}
	if s.keys != nil {
		s.log.Info("webhook signing secrets reloaded from secret_file", zap.Int("secrets", len(keys)))
	}
	s.raw, s.keys = raw, keys
	return keys, raw, nil
}
