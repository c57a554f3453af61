package syslog

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

// Type is the value of a sink's `type` key that selects this sink.
const Type = "syslog"

// Protocols: the syslog message format.
const (
	RFC5424 = "rfc5424" // structured syslog (default)
	RFC3164 = "rfc3164" // BSD syslog
)

// Framings of a message on a TCP or TLS stream (RFC 6587). UDP sends one
// message per datagram and ignores the framing.
const (
	OctetCounting = "octet_counting" // "LEN SP MSG" (default; RFC 5425 for TLS)
	Newline       = "newline"        // "MSG LF" (non-transparent framing)
)

// Address schemes.
const (
	SchemeUDP = "udp"
	SchemeTCP = "tcp"
	SchemeTLS = "tls" // TCP with TLS, RFC 5425
)

// Limits of max_message_bytes. When it is 0 (the default) the limit is
// DefaultMaxStream on tcp and tls and DefaultMaxUDP on udp.
const (
	DefaultMaxStream = 8192
	DefaultMaxUDP    = 2048
	// MinMessageBytes is the size every RFC 5424 receiver must accept.
	MinMessageBytes = 480
	// MaxStreamBytes is the largest limit accepted on tcp and tls.
	MaxStreamBytes = 1 << 20
	// MaxUDPBytes is the largest UDP payload over IPv4.
	MaxUDPBytes = 65507
)

// Config is the configuration of one syslog sink.
type Config struct {
	// Address is udp://host:port, tcp://host:port or tls://host:port.
	Address string `koanf:"address" json:"address"`
	// Protocol is the message format: rfc5424 or rfc3164.
	Protocol string `koanf:"protocol" json:"protocol"`
	// Framing is octet_counting or newline on tcp and tls; ignored on udp.
	Framing string `koanf:"framing" json:"framing"`
	// Facility is a facility name (local0, daemon, ...) or its number 0-23.
	Facility string `koanf:"facility" json:"facility"`
	// AppName is the RFC 5424 APP-NAME, or the RFC 3164 TAG.
	AppName string `koanf:"app_name" json:"app_name"`
	// Hostname is the HOSTNAME field; empty means os.Hostname().
	Hostname string `koanf:"hostname" json:"hostname"`
	// MaxMessageBytes is the largest message sent, framing excluded; a
	// larger one goes to dead-letter, never truncated. 0 means 8KiB on tcp
	// and tls, 2KiB on udp.
	MaxMessageBytes pipeline.ByteSize `koanf:"max_message_bytes" json:"max_message_bytes"`
	// WriteTimeout bounds the write of one batch.
	WriteTimeout time.Duration `koanf:"write_timeout" json:"write_timeout"`
	// ResendBytes is how much of what was last written over tcp or tls is
	// written again after the receiver closes the connection, and delivered
	// again from the journal after a restart (whole batches); 0 turns both
	// off. See resendBytes in sink.go for why.
	ResendBytes pipeline.ByteSize `koanf:"resend_bytes" json:"resend_bytes"`
	// DialTimeout bounds connecting, the TLS handshake included.
	DialTimeout time.Duration `koanf:"dial_timeout" json:"dial_timeout"`
	// TLS holds the client TLS options of a tls:// address.
	TLS sinks.TLS `koanf:"tls" json:"tls"`
	// Format renders the MSG part: one of format.Names.
	Format string `koanf:"format" json:"format"`
	// Batch is the most events handed to the sink at once.
	Batch int `koanf:"batch" json:"batch"`
	// Start is where a new sink starts in the journal: end or earliest.
	Start string `koanf:"start" json:"start"`
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{
		Protocol:     RFC5424,
		Framing:      OctetCounting,
		Facility:     "local0",
		AppName:      "mdbridge",
		WriteTimeout: 10 * time.Second,
		ResendBytes:  resendBytes,
		DialTimeout:  10 * time.Second,
		Format:       "json",
		Batch:        1000,
		Start:        sinks.StartEnd,
	}
}

// Common returns the keys every sink has.
func (c Config) Common() sinks.Common {
	return sinks.Common{Format: c.Format, Batch: c.Batch, Start: c.Start}
}

// Validate reports every problem at once; each message starts with the key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	scheme, _, err := parseAddress(c.Address)
	if err != nil {
		errs = append(errs, fmt.Errorf("address: %w", err))
	}
	if c.Protocol != RFC5424 && c.Protocol != RFC3164 {
		add("protocol", "must be %s or %s, got %q", RFC5424, RFC3164, c.Protocol)
	}
	if c.Framing != OctetCounting && c.Framing != Newline {
		add("framing", "must be %s or %s, got %q", OctetCounting, Newline, c.Framing)
	}
	if _, err := ParseFacility(c.Facility); err != nil {
		errs = append(errs, fmt.Errorf("facility: %w", err))
	}
	appMax := maxAppName
	if c.Protocol == RFC3164 {
		appMax = maxTag
	}
	if c.AppName == "" || len(c.AppName) > appMax || !headerSafe(c.AppName) {
		add("app_name", "must be 1 to %d printable US-ASCII characters without spaces, got %q", appMax, c.AppName)
	} else if c.Protocol == RFC3164 && strings.ContainsAny(c.AppName, "[]:") {
		add("app_name", "the rfc3164 tag must not contain '[', ']' or ':', got %q", c.AppName)
	}
	if c.Hostname != "" && (len(c.Hostname) > maxHostname || !headerSafe(c.Hostname)) {
		add("hostname", "must be at most %d printable US-ASCII characters without spaces, got %q", maxHostname, c.Hostname)
	}
	if c.MaxMessageBytes != 0 {
		hi := int64(MaxStreamBytes)
		if scheme == SchemeUDP {
			hi = MaxUDPBytes
		}
		if n := int64(c.MaxMessageBytes); n < MinMessageBytes || n > hi {
			add("max_message_bytes", "must be 0 (the default for the transport) or between %d and %d bytes on %s, got %d",
				MinMessageBytes, hi, orAny(scheme), n)
		}
	}
	if c.ResendBytes < 0 || c.ResendBytes > 1<<30 {
		add("resend_bytes", "must be between 0 and 1GiB, got %d", c.ResendBytes)
	}
	if c.WriteTimeout <= 0 || c.WriteTimeout > time.Hour {
		add("write_timeout", "must be more than 0 and at most 1h, got %s", c.WriteTimeout)
	}
	if c.DialTimeout <= 0 || c.DialTimeout > time.Hour {
		add("dial_timeout", "must be more than 0 and at most 1h, got %s", c.DialTimeout)
	}
	if scheme == SchemeTLS {
		for _, e := range c.TLS.Validate() {
			errs = append(errs, fmt.Errorf("tls.%w", e))
		}
	} else if scheme != "" && c.TLS != (sinks.TLS{}) {
		add("tls", "is set but the address is %s://, not tls://", scheme)
	}
	errs = append(errs, c.Common().Validate()...)
	return errors.Join(errs...)
}

func orAny(scheme string) string {
	if scheme == "" {
		return "this transport"
	}
	return scheme
}

// parseAddress splits scheme://host:port and checks every part.
func parseAddress(addr string) (scheme, hostport string, err error) {
	if addr == "" {
		return "", "", errors.New("is required (udp://host:port, tcp://host:port or tls://host:port)")
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		// Syslog takes no credentials; never echo what may be one.
		return "", "", errors.New("must be scheme://host:port without user info (syslog takes no credentials)")
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%q is not scheme://host:port (udp, tcp or tls)", addr)
	}
	scheme = u.Scheme
	if scheme != SchemeUDP && scheme != SchemeTCP && scheme != SchemeTLS {
		return "", "", fmt.Errorf("unknown scheme %q in %q (supported: udp, tcp, tls)", scheme, addr)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q must be only %s://host:port", addr, scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", "", fmt.Errorf("%q has no host", addr)
	}
	if !validHost(host, strings.HasPrefix(u.Host, "[")) {
		return "", "", fmt.Errorf("%q: %q is neither a host name nor an IP address (IPv6 goes in brackets: [::1]:514)", addr, host)
	}
	if port == "" {
		return "", "", fmt.Errorf("%q has no port (syslog is usually 514 on udp and tcp, 6514 on tls)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q: port %q is not between 1 and 65535", addr, port)
	}
	return scheme, net.JoinHostPort(host, port), nil
}

// validHost reports whether host is an IP address (IPv6 only when it was
// bracketed, optionally with a zone) or a host name of letters, digits,
// '-', '_' and '.'.
func validHost(host string, bracketed bool) bool {
	if bracketed {
		ip, _, _ := strings.Cut(host, "%")
		a := net.ParseIP(ip)
		return a != nil && a.To4() == nil
	}
	if len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// facilities maps the facility names to their codes (RFC 5424 §6.2.1 and
// the names syslog daemons use).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "audit": 13,
	"console": 14, "solaris-cron": 15, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility returns the code of a facility given by name (local0,
// daemon, ...; any case) or by number (0-23).
func ParseFacility(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(t); err == nil {
		if n < 0 || n > 23 {
			return 0, fmt.Errorf("facility number %d is not between 0 and 23", n)
		}
		return n, nil
	}
	if n, ok := facilities[t]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("unknown facility %q (a name such as local0-local7, daemon, auth, or a number 0-23)", s)
}

// maxBytes returns the effective message size limit for the scheme.
func (c *Config) maxBytes(scheme string) int {
	if c.MaxMessageBytes != 0 {
		return int(c.MaxMessageBytes)
	}
	if scheme == SchemeUDP {
		return DefaultMaxUDP
	}
	return DefaultMaxStream
}
