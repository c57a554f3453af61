package mdss

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Type is the value of a source's `type` key that selects this poller.
const Type = "storage_security"

// Stream names accepted in Config.Streams. They are also the last segment of
// the stream IDs (StreamID), which the push receiver commits into as well.
const (
	StreamScans = "scans"
	StreamFiles = "files"
)

// SupportedStreams lists the streams this version fetches.
var SupportedStreams = []string{StreamScans, StreamFiles}

// DefaultThreatResults are the MetaDefender Core result codes (scanAllResultI)
// that make a file an mdss.file event even when MDSS allowed it: 1 Infected,
// 2 Suspicious, 8 Blocklisted, 18 Potentially vulnerable, 20 Sensitive data,
// 21 YARA rule matched, 22 Potentially unwanted program.
var DefaultThreatResults = []int{1, 2, 8, 18, 20, 21, 22}

// Placeholders of the list path templates in Paths.
const (
	PlaceholderStart  = "{startIndex}"
	PlaceholderCount  = "{count}"
	PlaceholderScanID = "{scanId}"
)

// Default API paths (README "Wire contract"; the list paths are assumptions).
const (
	DefaultPathAuthenticate = "/api/user/authenticate"
	DefaultPathRefresh      = "/api/user/refreshToken"
	DefaultPathLogout       = "/api/user/logout"
	DefaultPathScans        = "/api/scan/" + PlaceholderStart + "/" + PlaceholderCount
	DefaultPathFiles        = "/api/file/" + PlaceholderStart + "/" + PlaceholderCount + "?scanId=" + PlaceholderScanID
)

// TLS holds the TLS options for the connection to the appliance.
type TLS = pipeline.UpstreamTLS

// Paths are the API paths, relative to the source's URL. The list paths are
// templates: {startIndex} and {count} page through a list, {scanId} names
// the scan whose files are listed. A template may carry a query string.
type Paths struct {
	// Authenticate takes {"userName", "password"} and returns tokens.
	Authenticate string `koanf:"authenticate" json:"authenticate"`
	// Refresh takes {"refreshToken", "accessToken"} and returns new tokens.
	Refresh string `koanf:"refresh" json:"refresh"`
	// Logout ends the session of the Bearer token.
	Logout string `koanf:"logout" json:"logout"`
	// Scans lists scans, a page at a time.
	Scans string `koanf:"scans" json:"scans"`
	// Files lists the processed files of one scan, a page at a time.
	Files string `koanf:"files" json:"files"`
}

// Config is the configuration of one MetaDefender Storage Security source.
// Authentication is either an API key (api_key or api_key_file) or a user
// name with a password (password or password_file), never both. Every key
// is described in README.md and configs/example.yaml.
type Config struct {
	URL           string                       `koanf:"url" json:"url"`
	APIKey        pipeline.Secret              `koanf:"api_key" json:"api_key"`
	APIKeyFile    string                       `koanf:"api_key_file" json:"api_key_file"`
	Username      string                       `koanf:"username" json:"username"`
	Password      pipeline.Secret              `koanf:"password" json:"password"`
	PasswordFile  string                       `koanf:"password_file" json:"password_file"`
	TLS           TLS                          `koanf:"tls" json:"tls"`
	Interval      time.Duration                `koanf:"interval" json:"interval"`
	Timeout       time.Duration                `koanf:"timeout" json:"timeout"`
	MaxBodyBytes  pipeline.ByteSize            `koanf:"max_body_bytes" json:"max_body_bytes"`
	Streams       []string                     `koanf:"streams" json:"streams"`
	PageSize      int                          `koanf:"page_size" json:"page_size"`
	MaxPages      int                          `koanf:"max_pages" json:"max_pages"`
	Lookback      time.Duration                `koanf:"lookback" json:"lookback"`
	Start         string                       `koanf:"start" json:"start"`
	Heartbeat     time.Duration                `koanf:"heartbeat" json:"heartbeat"`
	Raw           bool                         `koanf:"raw" json:"raw"`
	Fields        map[string]map[string]string `koanf:"fields" json:"fields"`
	ThreatResults []int                        `koanf:"threat_results" json:"threat_results"`
	Paths         Paths                        `koanf:"paths" json:"paths"`
	RefreshBefore time.Duration                `koanf:"refresh_before" json:"refresh_before"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		Interval:      60 * time.Second,
		Timeout:       30 * time.Second,
		MaxBodyBytes:  64 << 20,
		Streams:       []string{StreamScans, StreamFiles},
		PageSize:      100,
		MaxPages:      100,
		Lookback:      10 * time.Minute,
		Start:         "all",
		Raw:           true,
		ThreatResults: slices.Clone(DefaultThreatResults),
		Paths: Paths{
			Authenticate: DefaultPathAuthenticate,
			Refresh:      DefaultPathRefresh,
			Logout:       DefaultPathLogout,
			Scans:        DefaultPathScans,
			Files:        DefaultPathFiles,
		},
		RefreshBefore: 60 * time.Second,
	}
}

// usesAPIKey reports whether the source authenticates with an API key.
func (c *Config) usesAPIKey() bool { return c.APIKey != "" || c.APIKeyFile != "" }

// Validate reports every problem at once; each message starts with the key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.URL == "" {
		add("url", "is required")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("url", "must be an http:// or https:// URL with a host")
	} else if u.User != nil {
		add("url", "must not carry credentials; use api_key or username and password")
	} else if u.RawQuery != "" || u.Fragment != "" {
		add("url", "must not have a query or fragment; the API paths go under paths")
	}
	c.validateAuth(add)
	if c.Interval < 100*time.Millisecond {
		add("interval", "must be at least 100ms")
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	if c.MaxBodyBytes < 1024 {
		add("max_body_bytes", "must be at least 1KiB")
	}
	if len(c.Streams) == 0 {
		add("streams", "must name at least one stream")
	}
	for i, s := range c.Streams {
		if !slices.Contains(SupportedStreams, s) {
			add(fmt.Sprintf("streams[%d]", i), "unknown stream %q (supported: %s)", s, strings.Join(SupportedStreams, ", "))
		} else if slices.Index(c.Streams, s) != i {
			add(fmt.Sprintf("streams[%d]", i), "stream %q is listed twice", s)
		}
	}
	if c.PageSize < 1 || c.PageSize > 10000 {
		add("page_size", "must be between 1 and 10000")
	}
	if c.MaxPages < 1 {
		add("max_pages", "must be at least 1")
	}
	if c.Lookback < 0 {
		add("lookback", "must not be negative")
	}
	if _, err := pipeline.ParseStart(c.Start, time.Now()); err != nil {
		add("start", "%v", err)
	}
	if c.Heartbeat < 0 || (c.Heartbeat > 0 && c.Heartbeat < time.Second) {
		add("heartbeat", "must be 0 (off) or at least 1s")
	}
	for stream, m := range c.Fields {
		known, ok := overridable[stream]
		if !ok {
			add("fields."+stream, "unknown stream (known: %s)", strings.Join(SupportedStreams, ", "))
			continue
		}
		for field, path := range m {
			if !slices.Contains(known, field) {
				add("fields."+stream+"."+field, "unknown field (known: %s)", strings.Join(known, ", "))
			} else if strings.TrimSpace(path) == "" {
				add("fields."+stream+"."+field, "must be a field path such as stopTime or scanResult.scanResults.totalAvs")
			}
		}
	}
	if len(c.ThreatResults) == 0 {
		add("threat_results", "must list at least one result code (default %v)", DefaultThreatResults)
	}
	for i, n := range c.ThreatResults {
		if n < 0 || n > 255 {
			add(fmt.Sprintf("threat_results[%d]", i), "must be a MetaDefender Core result code from 0 to 255")
		}
	}
	checkPath := func(key, p string, placeholders ...string) {
		switch {
		case p == "":
			add("paths."+key, "is required")
		case !strings.HasPrefix(p, "/"):
			add("paths."+key, "must start with /")
		case strings.ContainsAny(p, "#\\ \t\r\n"):
			add("paths."+key, "must not contain #, \\ or white space")
		default:
			for _, ph := range placeholders {
				if strings.Count(p, ph) != 1 {
					add("paths."+key, "must contain %s exactly once", ph)
				}
			}
		}
	}
	if !c.usesAPIKey() {
		checkPath("authenticate", c.Paths.Authenticate)
		checkPath("refresh", c.Paths.Refresh)
		checkPath("logout", c.Paths.Logout)
	}
	checkPath("scans", c.Paths.Scans, PlaceholderStart, PlaceholderCount)
	if slices.Contains(c.Streams, StreamFiles) {
		checkPath("files", c.Paths.Files, PlaceholderStart, PlaceholderCount, PlaceholderScanID)
	}
	if c.RefreshBefore < 0 {
		add("refresh_before", "must not be negative")
	}
	return errors.Join(errs...)
}

// validateAuth checks that exactly one authentication mode is configured.
func (c *Config) validateAuth(add func(key, format string, args ...any)) {
	hasKey := c.usesAPIKey()
	hasUser := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	switch {
	case !hasKey && !hasUser:
		add("api_key", "is required (or api_key_file, or username with password or password_file)")
		return
	case hasKey && hasUser:
		add("username", "set either api_key (or api_key_file) or username and password, not both")
		return
	}
	if c.APIKey != "" && c.APIKeyFile != "" {
		add("api_key_file", "set either api_key or api_key_file, not both")
	}
	if hasKey {
		return
	}
	if c.Username == "" {
		add("username", "is required with password or password_file")
	}
	switch {
	case c.Password == "" && c.PasswordFile == "":
		add("password", "is required with username (or password_file)")
	case c.Password != "" && c.PasswordFile != "":
		add("password_file", "set either password or password_file, not both")
	}
}
