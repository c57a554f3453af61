package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// Redacted is what a Secret prints as.
const Redacted = "[REDACTED]"

// Secret is a credential read from configuration. It never prints its value:
// String, GoString, MarshalJSON and MarshalText all give Redacted (or "" when
// empty). Use Reveal where the value must go on the wire.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// Format implements fmt.Formatter so that no verb (%v, %s, %q, %x, %t, ...)
// can print the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// GoString implements fmt.GoStringer without revealing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalText implements encoding.TextMarshaler without revealing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Credential yields a secret that comes either inline from the config or
// from a file. A file is re-read when its modification time or size changes,
// so credentials rotate without a restart.
type Credential struct {
	inline Secret
	path   string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	value string
}

// NewCredential returns a Credential for an inline value or, when path is not
// empty, for the contents of the file at path (surrounding whitespace trimmed).
func NewCredential(inline Secret, path string) *Credential {
	return &Credential{inline: inline, path: path}
}

// String describes the credential without its value.
func (c *Credential) String() string {
	if c == nil {
		return "<nil>"
	}
	if c.path != "" {
		return "secret from file " + c.path
	}
	return "inline secret " + c.inline.String()
}

// Format implements fmt.Formatter: every verb prints String.
func (c *Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// Get returns the current value. Errors name the file but never the value.
func (c *Credential) Get() (string, error) {
	if c == nil {
		return "", nil
	}
	if c.path == "" {
		return c.inline.Reveal(), nil
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.value != "" && fi.ModTime().Equal(c.mtime) && fi.Size() == c.size {
		return c.value, nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	v := string(bytes.TrimSpace(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", c.path)
	}
	c.value, c.mtime, c.size = v, fi.ModTime(), fi.Size()
	return v, nil
}
