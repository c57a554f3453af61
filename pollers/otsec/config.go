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
	StreamCVEs           = "cves"
	StreamPatchRequests  = "patch_requests"
)

// SupportedStreams lists the streams this version fetches. The first three
// are time streams (new records since a watermark); devices, cves and
// patch_requests are set streams (the whole list on every poll, compared
// with what was seen: added, changed and, for devices, removed).
var SupportedStreams = []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices, StreamCVEs, StreamPatchRequests}

// DefaultStreams are the streams a source fetches when `streams` is not
// set. cves and patch_requests are opt-in: each lists a whole set on every
// poll, and their record shapes are the least known (README.md).
var DefaultStreams = []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices}

// TLS holds the TLS options for the connection to the appliance.
type TLS = pipeline.UpstreamTLS

// Site is one site and sensor pair to poll.
type Site struct {
	SiteIP   string `koanf:"site_ip" json:"site_ip"`
	SensorIP string `koanf:"sensor_ip" json:"sensor_ip"`
	// SiteID, when set (> 0), is the site's numeric id (managements/sites):
	// the devices stream then lists the whole site's inventory with
	// devices/items?siteId=[id], once per site however many of its sensors
	// are listed, instead of one inventory per sensor.
	SiteID int `koanf:"site_id" json:"site_id,omitempty"`
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
	RemoveAfter       time.Duration                `koanf:"remove_after" json:"remove_after"`
	Heartbeat         time.Duration                `koanf:"heartbeat" json:"heartbeat"`
	Raw               bool                         `koanf:"raw" json:"raw"`
	Fields            map[string]map[string]string `koanf:"fields" json:"fields"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		Interval:          30 * time.Second,
		Timeout:           30 * time.Second,
		MaxBodyBytes:      256 << 20,
		Streams:           slices.Clone(DefaultStreams),
		DiscoveryInterval: 5 * time.Minute,
		PageLimit:         200,
		MaxPageLimit:      10000,
		Lookback:          10 * time.Minute,
		Start:             "all",
		RemoveAfter:       24 * time.Hour,
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
		} else if slices.Index(c.Streams, s) != i {
			add(fmt.Sprintf("streams[%d]", i), "stream %q is listed twice", s)
		}
	}
	siteIDs := map[string]int{} // site_ip -> site_id
	siteIPs := map[int]string{} // site_id -> site_ip
	for i, s := range c.Sites {
		if s.SiteIP == "" {
			add(fmt.Sprintf("sites[%d].site_ip", i), "is required")
		}
		if s.SensorIP == "" {
			add(fmt.Sprintf("sites[%d].sensor_ip", i), "is required")
		}
		if s.SiteID < 0 {
			add(fmt.Sprintf("sites[%d].site_id", i), "must be a positive site id, or 0 (unset)")
		}
		if s.SiteIP == "" {
			continue
		}
		if id, ok := siteIDs[s.SiteIP]; ok && id != s.SiteID {
			add(fmt.Sprintf("sites[%d].site_id", i), "site %s is listed with site_id %d and %d; give every entry of a site the same site_id", s.SiteIP, id, s.SiteID)
		} else if ip, ok := siteIPs[s.SiteID]; ok && s.SiteID > 0 && ip != s.SiteIP {
			add(fmt.Sprintf("sites[%d].site_id", i), "site_id %d is already the id of site %s", s.SiteID, ip)
		}
		siteIDs[s.SiteIP] = s.SiteID
		if s.SiteID > 0 {
			siteIPs[s.SiteID] = s.SiteIP
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
	if c.RemoveAfter < 0 {
		add("remove_after", "must not be negative (0 never reports a device as removed)")
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
				add("fields."+stream+"."+field, "must be a field path such as alertStarted or device.ipv4")
			}
		}
	}
	return errors.Join(errs...)
}

// ParseStart is pipeline.ParseStart, kept for callers of this package.
func ParseStart(s string, now time.Time) (time.Time, error) { return pipeline.ParseStart(s, now) }
