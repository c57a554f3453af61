package nats

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

// Type is the value of a sink's `type` key that selects this sink.
const Type = "nats"

// Storage types of a stream block.
const (
	StorageFile   = "file"
	StorageMemory = "memory"
)

// Values of the batch_publish key.
const (
	// BatchPublishAuto uses fast-ingest batch publishing when the stream
	// allows it (allow_batched) and one acknowledgement per event otherwise.
	BatchPublishAuto = "auto"
	// BatchPublishOn requires it: the sink does not start when the stream
	// does not allow it.
	BatchPublishOn = "on"
	// BatchPublishOff always waits for one acknowledgement per event.
	BatchPublishOff = "off"
)

// Defaults.
const (
	DefaultURL             = "nats://127.0.0.1:4222"
	DefaultSubject         = "mdbridge.{kind}.{source}"
	DefaultDuplicateWindow = 2 * time.Minute
	defaultMaxPending      = 4096
	maxMaxPending          = 1 << 20
	maxReplicas            = 5
)

// Config is the configuration of one NATS sink.
type Config struct {
	// URL is one server URL or a comma-separated list (nats://, tls://,
	// ws:// or wss://). Credentials do not belong in it: use the auth keys.
	URL string `koanf:"url" json:"url"`
	// Subject is the subject template; see Placeholders.
	Subject string `koanf:"subject" json:"subject"`
	// JetStream publishes with acknowledgements and Nats-Msg-Id dedup
	// instead of core NATS.
	JetStream bool `koanf:"jetstream" json:"jetstream"`
	// Stream, when given, is created or updated at startup. Without it and
	// with jetstream on, a stream must already capture the subjects.
	Stream *StreamConfig `koanf:"stream" json:"stream"`
	// BatchPublish selects fast-ingest batch publishing (nats-server 2.14
	// and later): auto, on or off. With it the stream acknowledges a run of
	// events at once instead of each one; see the README.
	BatchPublish string `koanf:"batch_publish" json:"batch_publish"`
	// MaxPending is the most JetStream publishes awaiting their
	// acknowledgement at once.
	MaxPending int `koanf:"max_pending" json:"max_pending"`
	// AckTimeout bounds the wait for a JetStream acknowledgement, and for
	// the round trip that confirms a core NATS batch.
	AckTimeout time.Duration `koanf:"ack_timeout" json:"ack_timeout"`
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout time.Duration `koanf:"connect_timeout" json:"connect_timeout"`
	// ReconnectWait is the pause between reconnection attempts (plus a
	// random jitter of up to half of it). Reconnection never gives up.
	ReconnectWait time.Duration `koanf:"reconnect_wait" json:"reconnect_wait"`

	// Token authenticates with a token, inline or from TokenFile.
	Token     pipeline.Secret `koanf:"token" json:"token"`
	TokenFile string          `koanf:"token_file" json:"token_file"`
	// User and Password (inline or from PasswordFile) authenticate with a
	// user name and password.
	User         string          `koanf:"user" json:"user"`
	Password     pipeline.Secret `koanf:"password" json:"password"`
	PasswordFile string          `koanf:"password_file" json:"password_file"`
	// NKeySeedFile holds a user NKey seed (SU...).
	NKeySeedFile string `koanf:"nkey_seed_file" json:"nkey_seed_file"`
	// CredsFile is a decentralised-auth credentials file (user JWT and
	// seed), as written by nsc.
	CredsFile string `koanf:"creds_file" json:"creds_file"`
	// TLS holds the client TLS options; any of them turns TLS on.
	TLS sinks.TLS `koanf:"tls" json:"tls"`

	// Format is the rendering of each message body, one of format.Names.
	Format string `koanf:"format" json:"format"`
	// Batch is the most events handed to the sink at once.
	Batch int `koanf:"batch" json:"batch"`
	// Start is where a new sink starts reading the journal: end or earliest.
	Start string `koanf:"start" json:"start"`
}

// StreamConfig is the JetStream stream the sink creates or updates at
// startup. Zero values mean the defaults noted on each field.
type StreamConfig struct {
	// Name of the stream; required.
	Name string `koanf:"name" json:"name"`
	// Subjects the stream captures; default: the subject template's
	// literal leading tokens followed by ">" (mdbridge.> for the default
	// template).
	Subjects []string `koanf:"subjects" json:"subjects"`
	// Storage is file (default) or memory.
	Storage string `koanf:"storage" json:"storage"`
	// Replicas is the number of copies in a cluster; default 1.
	Replicas int `koanf:"replicas" json:"replicas"`
	// MaxAge drops messages older than this; 0 keeps them forever.
	MaxAge time.Duration `koanf:"max_age" json:"max_age"`
	// MaxBytes caps the stream's size (oldest dropped first); 0 is no cap.
	MaxBytes pipeline.ByteSize `koanf:"max_bytes" json:"max_bytes"`
	// DuplicateWindow is how long the stream remembers Nats-Msg-Id values
	// to drop repeats; default 2m.
	DuplicateWindow time.Duration `koanf:"duplicate_window" json:"duplicate_window"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		URL:            DefaultURL,
		Subject:        DefaultSubject,
		BatchPublish:   BatchPublishAuto,
		MaxPending:     defaultMaxPending,
		AckTimeout:     10 * time.Second,
		ConnectTimeout: 5 * time.Second,
		ReconnectWait:  2 * time.Second,
		Format:         "json",
		Batch:          1000,
		Start:          sinks.StartEnd,
	}
}

// Common returns the keys every sink has.
func (c Config) Common() sinks.Common {
	return sinks.Common{Format: c.Format, Batch: c.Batch, Start: c.Start}
}

// Validate reports every problem at once; each message starts with the key.
// It reads the credential and TLS files the config names, so that a missing
// or unreadable one is found before the first connection.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if _, err := parseURLs(c.URL); err != nil {
		add("url", "%v", err)
	}
	tmpl, err := parseTemplate(c.Subject)
	if err != nil {
		add("subject", "%v", err)
	}
	if c.Stream != nil {
		if !c.JetStream {
			add("stream", "needs jetstream: true")
		}
		errs = append(errs, c.Stream.validate(tmpl)...)
	}
	switch c.BatchPublish {
	case BatchPublishAuto, BatchPublishOff:
	case BatchPublishOn:
		if !c.JetStream {
			add("batch_publish", "on needs jetstream: true")
		}
	default:
		add("batch_publish", "must be %s, %s or %s, got %q", BatchPublishAuto, BatchPublishOn, BatchPublishOff, c.BatchPublish)
	}
	if c.MaxPending < 1 || c.MaxPending > maxMaxPending {
		add("max_pending", "must be between 1 and %d", maxMaxPending)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"ack_timeout", c.AckTimeout}, {"connect_timeout", c.ConnectTimeout}, {"reconnect_wait", c.ReconnectWait}} {
		if d.v <= 0 {
			add(d.key, "must be positive")
		}
	}
	errs = append(errs, c.validateAuth()...)
	for _, err := range c.TLS.Validate() {
		errs = append(errs, fmt.Errorf("tls.%w", err))
	}
	errs = append(errs, c.Common().Validate()...)
	return errors.Join(errs...)
}

// authMethods names the authentication methods the config sets, each by
// its first key.
func (c *Config) authMethods() []string {
	var m []string
	if c.Token != "" || c.TokenFile != "" {
		m = append(m, "token")
	}
	if c.User != "" || c.Password != "" || c.PasswordFile != "" {
		m = append(m, "user")
	}
	if c.NKeySeedFile != "" {
		m = append(m, "nkey_seed_file")
	}
	if c.CredsFile != "" {
		m = append(m, "creds_file")
	}
	return m
}

func (c *Config) validateAuth() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if m := c.authMethods(); len(m) > 1 {
		for _, k := range m[1:] {
			add(k, "cannot be combined with %s: give one authentication method at most", m[0])
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		add("token_file", "give token or token_file, not both")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "give password or password_file, not both")
	}
	if c.User == "" && (c.Password != "" || c.PasswordFile != "") {
		add("user", "is required with a password")
	}
	if c.User != "" && c.Password == "" && c.PasswordFile == "" {
		add("password", "is required with user (or give password_file)")
	}
	for _, f := range []struct{ key, path string }{{"token_file", c.TokenFile}, {"password_file", c.PasswordFile}} {
		if f.path == "" {
			continue
		}
		if _, err := pipeline.NewCredential("", f.path).Get(); err != nil {
			add(f.key, "%v", err)
		}
	}
	if c.NKeySeedFile != "" {
		if err := checkSeedFile(c.NKeySeedFile); err != nil {
			add("nkey_seed_file", "%v", err)
		}
	}
	if c.CredsFile != "" {
		if err := checkCredsFile(c.CredsFile); err != nil {
			add("creds_file", "%v", err)
		}
	}
	return errs
}

func (s *StreamConfig) validate(tmpl *template) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("stream.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case s.Name == "":
		add("name", "is required")
	case strings.ContainsAny(s.Name, " \t\r\n.*>/\\") || !isPrintableASCII(s.Name):
		add("name", "%q may not contain whitespace, '.', '*', '>', path separators or non-printing characters", s.Name)
	}
	for i, subj := range s.Subjects {
		if err := checkFilter(subj); err != nil {
			add(fmt.Sprintf("subjects[%d]", i), "%v", err)
		}
	}
	if len(s.Subjects) == 0 && tmpl != nil && tmpl.capture() == ">" {
		add("subjects", "must be given when the subject template starts with a placeholder (the default would capture every subject)")
	}
	if s.Storage != "" && s.Storage != StorageFile && s.Storage != StorageMemory {
		add("storage", "must be %s or %s, got %q", StorageFile, StorageMemory, s.Storage)
	}
	if s.Replicas < 0 || s.Replicas > maxReplicas {
		add("replicas", "must be between 1 and %d", maxReplicas)
	}
	if s.MaxAge < 0 {
		add("max_age", "must not be negative")
	}
	if s.MaxBytes < 0 {
		add("max_bytes", "must not be negative")
	}
	switch {
	case s.DuplicateWindow < 0:
		add("duplicate_window", "must not be negative")
	case s.MaxAge > 0 && s.withDefaults(nil).DuplicateWindow > s.MaxAge:
		add("duplicate_window", "must not be longer than max_age (%s)", s.MaxAge)
	}
	return errs
}

// withDefaults returns the block with the default of every zero value
// applied; subjects default to the capture filter of tmpl (left empty when
// tmpl is nil).
func (s StreamConfig) withDefaults(tmpl *template) StreamConfig {
	if len(s.Subjects) == 0 && tmpl != nil {
		s.Subjects = []string{tmpl.capture()}
	}
	if s.Storage == "" {
		s.Storage = StorageFile
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.DuplicateWindow == 0 {
		s.DuplicateWindow = DefaultDuplicateWindow
	}
	return s
}

// parseURLs splits and checks the url key. Errors never quote credentials.
func parseURLs(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("not a URL (want nats://host:port)")
		}
		if u.User != nil {
			return nil, fmt.Errorf("%s: credentials in the URL are not allowed; use user/password, token, nkey_seed_file or creds_file", redactURL(u))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("%s: scheme must be nats, tls, ws or wss", redactURL(u))
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("%s: no host", redactURL(u))
		}
		if !validPort(u.Port()) {
			return nil, fmt.Errorf("%s: port %q is not between 1 and 65535", redactURL(u), u.Port())
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			if u.Scheme == "nats" || u.Scheme == "tls" {
				return nil, fmt.Errorf("%s: a nats or tls URL has no path or query", redactURL(u))
			}
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return nil, errors.New("is required")
	}
	return out, nil
}

// validPort reports whether a URL's port is absent or between 1 and 65535.
// url.Parse only checks that it is digits, so a port such as 99999 would
// otherwise pass and fail every connection attempt, forever.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// redactURL prints a URL without its user information.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

func checkSeedFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read seed: %w", err)
	}
	defer wipe(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("%s holds no NKey seed", path)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return fmt.Errorf("%s holds no user NKey seed (want one starting with SU)", path)
	}
	return nil
}

func checkCredsFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read credentials: %w", err)
	}
	defer wipe(b)
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("%s holds no user JWT", path)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s holds no user NKey seed", path)
	}
	kp.Wipe()
	return nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
