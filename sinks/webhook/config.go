package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// Type is the value of a sink's `type` key that selects this sink.
const Type = "webhook"

// Body encodings, the values of the `encoding` key.
const (
	// EncodingJSONArray sends each request's events as one JSON array
	// (Content-Type application/json). It needs a JSON format.
	EncodingJSONArray = "json_array"
	// EncodingNDJSON sends one event per line, each line ending in "\n":
	// NDJSON (application/x-ndjson) for a JSON format, text lines
	// (text/plain) for a text format such as cef or leef.
	EncodingNDJSON = "ndjson"
)

// Limits checked by Validate.
const (
	maxConcurrency   = 64
	minMaxBatchBytes = 1 << 10
	maxMaxBatchBytes = 64 << 20
	maxTimeout       = 10 * time.Minute
)

// Config is the configuration of one webhook sink.
type Config struct {
	// URL is the http:// or https:// endpoint every request is POSTed to.
	// It must not carry credentials (use the auth keys); a query string is
	// allowed but never printed.
	URL string `koanf:"url" json:"url"`
	// Encoding is the body shape: json_array or ndjson.
	Encoding string `koanf:"encoding" json:"encoding"`
	// Gzip compresses each body and sets Content-Encoding: gzip.
	Gzip bool `koanf:"gzip" json:"gzip"`
	// Secret holds one Standard Webhooks signing secret (whsec_ + base64),
	// or several separated by spaces or commas while secrets rotate: each
	// signs every request.
	Secret pipeline.Secret `koanf:"secret" json:"secret"`
	// SecretFile names a file holding the signing secrets, one per line;
	// it is re-read when it changes.
	SecretFile string `koanf:"secret_file" json:"secret_file"`
	// Headers are extra request headers. Their values are treated as
	// secrets (an API key header is common): never logged or printed.
	Headers map[string]pipeline.Secret `koanf:"headers" json:"headers"`
	// BearerToken is sent as Authorization: Bearer.
	BearerToken pipeline.Secret `koanf:"bearer_token" json:"bearer_token"`
	// BearerTokenFile is a file holding the bearer token, re-read on change.
	BearerTokenFile string `koanf:"bearer_token_file" json:"bearer_token_file"`
	// Username and Password (or PasswordFile) are sent as HTTP basic auth.
	Username     string          `koanf:"username" json:"username"`
	Password     pipeline.Secret `koanf:"password" json:"password"`
	PasswordFile string          `koanf:"password_file" json:"password_file"`
	// TLS holds the client TLS options for https:// URLs (CA, client
	// certificate for mTLS, server name).
	TLS sinks.TLS `koanf:"tls" json:"tls"`
	// Timeout bounds one request, from connecting to reading the response.
	Timeout time.Duration `koanf:"timeout" json:"timeout"`
	// Concurrency is the most requests in flight at once. Above 1, requests
	// can reach the receiver out of order, so 1 (the default) is the only
	// setting that keeps events in order per stream.
	Concurrency int `koanf:"concurrency" json:"concurrency"`
	// MaxBatchBytes is the most body bytes (before gzip) of one request; a
	// batch that renders larger is split into several requests. A single
	// event larger than this is sent alone.
	MaxBatchBytes pipeline.ByteSize `koanf:"max_batch_bytes" json:"max_batch_bytes"`
	// Format is the rendering of each event, one of format.Names.
	Format string `koanf:"format" json:"format"`
	// Batch is the most events handed to the sink at once, and the most
	// events in one request.
	Batch int `koanf:"batch" json:"batch"`
	// Start is where a new sink starts reading the journal: end or earliest.
	Start string `koanf:"start" json:"start"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		Encoding:      EncodingJSONArray,
		Timeout:       30 * time.Second,
		Concurrency:   1,
		MaxBatchBytes: 256 << 10,
		Format:        format.JSON,
		Batch:         500,
		Start:         sinks.StartEnd,
	}
}

// Common returns the keys every sink has.
func (c Config) Common() sinks.Common {
	return sinks.Common{Format: c.Format, Batch: c.Batch, Start: c.Start}
}

// Auth methods, as reported by Config.authMethod.
const (
	authNone   = ""
	authBearer = "bearer"
	authBasic  = "basic"
)

// authMethod says which auth method the config asks for; when both are set
// Validate reports it and bearer wins here.
func (c *Config) authMethod() string {
	switch {
	case c.BearerToken != "" || c.BearerTokenFile != "":
		return authBearer
	case c.Username != "" || c.Password != "" || c.PasswordFile != "":
		return authBasic
	}
	return authNone
}

// Validate reports every problem at once; each message starts with the key
// (relative to the sink). It reads secret_file to check the secrets in it,
// and the TLS files. No message holds a secret's value.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	scheme := ""
	if c.URL == "" {
		add("url", "is required")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// url.Parse errors quote the whole URL, query included: not repeated.
		add("url", "must be an http:// or https:// URL with a host")
	} else if u.User != nil {
		add("url", "must not carry credentials; use bearer_token or username and password")
	} else if p := u.Port(); p != "" && !validPort(p) {
		// url.Parse only checks that the port is digits.
		add("url", "port %q is not between 1 and 65535", p)
	} else {
		scheme = u.Scheme
	}

	switch c.Encoding {
	case EncodingJSONArray, EncodingNDJSON:
	default:
		add("encoding", "must be %s or %s, got %q", EncodingJSONArray, EncodingNDJSON, c.Encoding)
	}
	if c.Encoding == EncodingJSONArray {
		if f, err := format.New(c.Format); err == nil && !f.JSON() {
			add("encoding", "%s needs a JSON format (json, ocsf); format %s renders text lines: set encoding: %s",
				EncodingJSONArray, c.Format, EncodingNDJSON)
		}
	}

	if c.Secret != "" && c.SecretFile != "" {
		add("secret_file", "set either secret or secret_file, not both")
	}
	if c.Secret != "" {
		if _, err := parseSecrets(c.Secret.Reveal()); err != nil {
			add("secret", "%v", err)
		}
	}
	if c.SecretFile != "" {
		v, err := pipeline.NewCredential("", c.SecretFile).Get()
		if err == nil {
			_, err = parseSecrets(v)
		}
		if err != nil {
			add("secret_file", "%v", err)
		}
	}

	if c.BearerToken != "" && c.BearerTokenFile != "" {
		add("bearer_token_file", "set either bearer_token or bearer_token_file, not both")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "set either password or password_file, not both")
	}
	bearer := c.BearerToken != "" || c.BearerTokenFile != ""
	basic := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	switch {
	case bearer && basic:
		add("bearer_token", "set either bearer_token (or bearer_token_file) or username and password, not both")
	case basic && c.Username == "":
		add("username", "is required with password or password_file")
	case basic && c.Password == "" && c.PasswordFile == "":
		add("password", "is required with username (or password_file)")
	case basic && strings.Contains(c.Username, ":"):
		add("username", "must not contain a colon (HTTP basic auth)")
	}
	if strings.ContainsAny(c.Username, "\r\n\x00") {
		add("username", "must not contain control characters")
	}
	if badValue(c.BearerToken.Reveal()) {
		add("bearer_token", "must not contain line breaks or control characters")
	}
	if badValue(c.Password.Reveal()) {
		add("password", "must not contain line breaks or control characters")
	}

	errs = append(errs, c.validateHeaders(bearer || basic)...)

	for _, err := range c.TLS.Validate() {
		errs = append(errs, fmt.Errorf("tls.%w", err))
	}
	if scheme == "http" && (c.TLS != sinks.TLS{}) {
		add("tls", "is set but the url is http://; use https://")
	}

	if c.Timeout <= 0 || c.Timeout > maxTimeout {
		add("timeout", "must be positive and at most %s", maxTimeout)
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		add("concurrency", "must be between 1 and %d", maxConcurrency)
	}
	if c.MaxBatchBytes < minMaxBatchBytes || c.MaxBatchBytes > maxMaxBatchBytes {
		add("max_batch_bytes", "must be between %s and %s", pipeline.ByteSize(minMaxBatchBytes), pipeline.ByteSize(maxMaxBatchBytes))
	}
	errs = append(errs, c.Common().Validate()...)
	return errors.Join(errs...)
}

// validPort reports whether p is a port number between 1 and 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// reservedHeaders are set by the sink or by HTTP itself; a custom header
// of the same name would clash. Names are canonical.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding",
	"Host", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade",
}

// validateHeaders checks the custom headers: valid names, no clash with
// what the sink sets, values without line breaks. Values are never quoted.
func (c *Config) validateHeaders(auth bool) []error {
	var errs []error
	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := make(map[string]string, len(names))
	for _, name := range names {
		key := "headers." + name
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !validHeaderName(name):
			errs = append(errs, fmt.Errorf("%s: is not a valid header name", key))
			continue
		case slices.Contains(reservedHeaders, canon):
			errs = append(errs, fmt.Errorf("%s: is set by the sink or by HTTP and cannot be overridden", key))
		case strings.HasPrefix(canon, "Webhook-"):
			errs = append(errs, fmt.Errorf("%s: webhook-* headers are the Standard Webhooks headers the sink sets", key))
		case strings.HasPrefix(canon, "Mdbridge-"):
			errs = append(errs, fmt.Errorf("%s: mdbridge-* headers are set by the sink", key))
		case canon == "Authorization" && auth:
			errs = append(errs, fmt.Errorf("%s: clashes with bearer_token or username/password; use one of them", key))
		}
		if other, ok := seen[canon]; ok {
			errs = append(errs, fmt.Errorf("%s: repeats header %s (names are case-insensitive)", key, other))
		}
		seen[canon] = name
		if badValue(c.Headers[name].Reveal()) {
			errs = append(errs, fmt.Errorf("%s: value must not contain line breaks or control characters", key))
		}
	}
	return errs
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		ch := name[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// badValue reports whether a header value holds a byte HTTP forbids in
// field values (control characters other than tab).
func badValue(v string) bool {
	for i := range len(v) {
		if ch := v[i]; (ch < ' ' && ch != '\t') || ch == 0x7f {
			return true
		}
	}
	return false
}
