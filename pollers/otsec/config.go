package otsec

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
const Type = "otsecurity"

// Stream names accepted in Config.Streams.
const (
	StreamDeviceAlerts   = "device_alerts"
	StreamConnAlerts     = "conn_alerts"
	StreamSuricataAlerts = "suricata_alerts"
	StreamDevices        = "devices"
)

// SupportedStreams lists the streams this version fetches.
var SupportedStreams = []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices}

// TLS holds the TLS options for the Enterprise Manager connection.
type TLS struct {
	// CAFile is a PEM bundle that signs the appliance's certificate.
	CAFile string `koanf:"ca_file" json:"ca_file"`
	// InsecureSkipVerify turns certificate verification off (logged as a warning).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// Site is one site and sensor pair to poll.
type Site struct {
	SiteIP   string `koanf:"site_ip" json:"site_ip"`
	SensorIP string `koanf:"sensor_ip" json:"sensor_ip"`
}

// Config is the configuration of one OT Security source (DESIGN.md §6).
type Config struct {
	URL               string                       `koanf:"url" json:"url"`
	Token             pipeline.Secret              `koanf:"token" json:"token"`
	TokenFile         string                       `koanf:"token_file" json:"token_file"`
	TLS               TLS                          `koanf:"tls" json:"tls"`
	Interval          time.Duration                `koanf:"interval" json:"interval"`
	Timeout           time.Duration                `koanf:"timeout" json:"timeout"`
	MaxBodyBytes      pipeline.ByteSize            `koanf:"max_body_bytes" json:"max_body_bytes"`
	Streams           []string                     `koanf:"streams" json:"streams"`
	Sites             []Site                       `koanf:"sites" json:"sites"`
	DiscoveryInterval time.Duration                `koanf:"discovery_interval" json:"discovery_interval"`
	PageLimit         int                          `koanf:"page_limit" json:"page_limit"`
	MaxPageLimit      int                          `koanf:"max_page_limit" json:"max_page_limit"`
	Lookback          time.Duration                `koanf:"lookback" json:"lookback"`
	Start             string                       `koanf:"start" json:"start"`
	Raw               bool                         `koanf:"raw" json:"raw"`
	Fields            map[string]map[string]string `koanf:"fields" json:"fields"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		Interval:          30 * time.Second,
		Timeout:           30 * time.Second,
		MaxBodyBytes:      256 << 20,
		Streams:           []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices},
		DiscoveryInterval: 5 * time.Minute,
		PageLimit:         200,
		MaxPageLimit:      10000,
		Lookback:          10 * time.Minute,
		Start:             "all",
		Raw:               true,
	}
}

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
		add("url", "must not carry credentials; use token or token_file")
	}
	if c.Token == "" && c.TokenFile == "" {
		add("token", "is required (or token_file)")
	}
	if c.Token != "" && c.TokenFile != "" {
		add("token_file", "set either token or token_file, not both")
	}
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
		}
	}
	for i, s := range c.Sites {
		if s.SiteIP == "" {
			add(fmt.Sprintf("sites[%d].site_ip", i), "is required")
		}
		if s.SensorIP == "" {
			add(fmt.Sprintf("sites[%d].sensor_ip", i), "is required")
		}
	}
	if len(c.Sites) == 0 && c.DiscoveryInterval < time.Second {
		add("discovery_interval", "must be at least 1s")
	}
	if c.PageLimit < 1 {
		add("page_limit", "must be at least 1")
	}
	if c.MaxPageLimit < c.PageLimit {
		add("max_page_limit", "must be at least page_limit (%d)", c.PageLimit)
	}
	if c.Lookback < 0 {
		add("lookback", "must not be negative")
	}
	if _, err := ParseStart(c.Start, time.Now()); err != nil {
		add("start", "%v", err)
	}
	for stream, m := range c.Fields {
		if !slices.Contains(SupportedStreams, stream) {
			add("fields."+stream, "unknown stream")
			continue
		}
		for field := range m {
			if !slices.Contains(OverridableFields, field) {
				add("fields."+stream+"."+field, "unknown field (known: %s)", strings.Join(OverridableFields, ", "))
			}
		}
	}
	return errors.Join(errs...)
}

// ParseStart is pipeline.ParseStart, kept for callers of this package.
func ParseStart(s string, now time.Time) (time.Time, error) { return pipeline.ParseStart(s, now) }
