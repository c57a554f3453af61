package syslog

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

func TestValidate(t *testing.T) {
	pki := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name string
		edit func(*Config)
		want []string // the keys the errors name, in order; nil: valid
	}{
		{name: "tcp", edit: func(c *Config) {}},
		{name: "udp", edit: func(c *Config) { c.Address = "udp://127.0.0.1:514" }},
		{name: "tls with mTLS", edit: func(c *Config) {
			c.Address = "tls://siem.example:6514"
			c.TLS = sinks.TLS{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}
		}},
		{name: "ipv6", edit: func(c *Config) { c.Address = "tcp://[::1]:514" }},
		{name: "ipv6 zone", edit: func(c *Config) { c.Address = "udp://[fe80::1%25eth0]:514" }},
		{name: "trailing slash", edit: func(c *Config) { c.Address = "tcp://siem:514/" }},
		{name: "rfc3164 newline", edit: func(c *Config) { c.Protocol, c.Framing = RFC3164, Newline }},
		{name: "facility number", edit: func(c *Config) { c.Facility = "3" }},
		{name: "facility name any case", edit: func(c *Config) { c.Facility = "LOCAL7" }},
		{name: "udp limit at the maximum", edit: func(c *Config) { c.Address = "udp://h:514"; c.MaxMessageBytes = 65507 }},
		{name: "tcp limit 1MiB", edit: func(c *Config) { c.MaxMessageBytes = 1 << 20 }},

		{name: "no address", edit: func(c *Config) { c.Address = "" }, want: []string{"address"}},
		{name: "bad scheme", edit: func(c *Config) { c.Address = "http://siem:514" }, want: []string{"address"}},
		{name: "no scheme", edit: func(c *Config) { c.Address = "siem:514" }, want: []string{"address"}},
		{name: "no port", edit: func(c *Config) { c.Address = "tcp://siem" }, want: []string{"address"}},
		{name: "empty port", edit: func(c *Config) { c.Address = "tcp://siem:" }, want: []string{"address"}},
		{name: "port out of range", edit: func(c *Config) { c.Address = "udp://siem:65536" }, want: []string{"address"}},
		{name: "ipv6 without brackets", edit: func(c *Config) { c.Address = "tcp://::1" }, want: []string{"address"}},
		{name: "ipv4 in brackets", edit: func(c *Config) { c.Address = "tcp://[127.0.0.1]:514" }, want: []string{"address"}},
		{name: "host with a space", edit: func(c *Config) { c.Address = "tcp://si%20em:514" }, want: []string{"address"}},
		{name: "no host", edit: func(c *Config) { c.Address = "tcp://:514" }, want: []string{"address"}},
		{name: "path", edit: func(c *Config) { c.Address = "tcp://siem:514/x" }, want: []string{"address"}},
		{name: "user", edit: func(c *Config) { c.Address = "tcp://u@siem:514" }, want: []string{"address"}},
		{name: "protocol", edit: func(c *Config) { c.Protocol = "rfc5425" }, want: []string{"protocol"}},
		{name: "framing", edit: func(c *Config) { c.Framing = "octet-counting" }, want: []string{"framing"}},
		{name: "facility name", edit: func(c *Config) { c.Facility = "local8" }, want: []string{"facility"}},
		{name: "facility number", edit: func(c *Config) { c.Facility = "24" }, want: []string{"facility"}},
		{name: "facility empty", edit: func(c *Config) { c.Facility = "" }, want: []string{"facility"}},
		{name: "app_name empty", edit: func(c *Config) { c.AppName = "" }, want: []string{"app_name"}},
		{name: "app_name space", edit: func(c *Config) { c.AppName = "md bridge" }, want: []string{"app_name"}},
		{name: "app_name too long", edit: func(c *Config) { c.AppName = strings.Repeat("a", 49) }, want: []string{"app_name"}},
		{name: "rfc3164 tag too long", edit: func(c *Config) { c.Protocol = RFC3164; c.AppName = strings.Repeat("a", 33) }, want: []string{"app_name"}},
		{name: "rfc3164 tag bracket", edit: func(c *Config) { c.Protocol = RFC3164; c.AppName = "md[1]" }, want: []string{"app_name"}},
		{name: "hostname non-ASCII", edit: func(c *Config) { c.Hostname = "hôte" }, want: []string{"hostname"}},
		{name: "limit too small", edit: func(c *Config) { c.MaxMessageBytes = 100 }, want: []string{"max_message_bytes"}},
		{name: "limit too large for tcp", edit: func(c *Config) { c.MaxMessageBytes = 2 << 20 }, want: []string{"max_message_bytes"}},
		{name: "limit too large for udp", edit: func(c *Config) { c.Address = "udp://h:514"; c.MaxMessageBytes = 65508 }, want: []string{"max_message_bytes"}},
		{name: "write_timeout", edit: func(c *Config) { c.WriteTimeout = 0 }, want: []string{"write_timeout"}},
		{name: "dial_timeout", edit: func(c *Config) { c.DialTimeout = -time.Second }, want: []string{"dial_timeout"}},
		{name: "tls on tcp", edit: func(c *Config) { c.TLS.CAFile = pki.caFile }, want: []string{"tls"}},
		{name: "tls ca_file missing", edit: func(c *Config) { c.Address = "tls://h:6514"; c.TLS.CAFile = missing }, want: []string{"tls.ca_file"}},
		{name: "tls key without cert", edit: func(c *Config) { c.Address = "tls://h:6514"; c.TLS.KeyFile = pki.keyFile }, want: []string{"tls.cert_file"}},
		{name: "format", edit: func(c *Config) { c.Format = "xml" }, want: []string{"format"}},
		{name: "batch", edit: func(c *Config) { c.Batch = 0 }, want: []string{"batch"}},
		{name: "start", edit: func(c *Config) { c.Start = "beginning" }, want: []string{"start"}},
		{name: "everything at once", edit: func(c *Config) {
			*c = Config{Address: "ftp://x"}
		}, want: []string{"address", "protocol", "framing", "facility", "app_name", "write_timeout", "dial_timeout", "format", "batch", "start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig("tcp://siem.example:514")
			tt.edit(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want errors for %v", tt.want)
			}
			var keys []string
			for _, line := range strings.Split(err.Error(), "\n") {
				key, _, ok := strings.Cut(line, ": ")
				if !ok {
					t.Fatalf("error line %q does not start with a key", line)
				}
				keys = append(keys, key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Fatalf("errors name %v, want %v:\n%v", keys, tt.want, err)
			}
		})
	}
}

func TestAddressErrorHidesUserInfo(t *testing.T) {
	c := testConfig("tcp://admin:s3cret-pass@siem:514")
	err := c.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "address: ") {
		t.Fatalf("Validate: %v, want an address error", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %q shows what may be a password", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := testConfig("tcp://siem")
	if s, err := New(c, nil); err == nil {
		_ = s.Close()
		t.Fatal("New accepted an address without a port")
	} else if !strings.Contains(err.Error(), "address: ") {
		t.Errorf("error %q does not name address", err)
	}
}

func TestParseFacility(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"local0", 16, true}, {"local7", 23, true}, {"kern", 0, true}, {"daemon", 3, true},
		{"AUTHPRIV", 10, true}, {" user ", 1, true}, {"0", 0, true}, {"23", 23, true},
		{"24", 0, false}, {"-1", 0, false}, {"", 0, false}, {"local", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseFacility(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestREADMEConfigMatchesConfig keeps the README's example in step with
// Config: the same keys as the koanf tags (the tls block's too), and the
// defaults of DefaultConfig.
func TestREADMEConfigMatchesConfig(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	if !ok {
		t.Fatal("README.md has no ```yaml block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README.md yaml block is not closed")
	}
	var doc struct {
		Sinks map[string]map[string]any `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("README yaml block: %v", err)
	}
	if len(doc.Sinks) != 1 {
		t.Fatalf("README yaml block should configure one sink, has %d", len(doc.Sinks))
	}
	var keys map[string]any
	for _, v := range doc.Sinks {
		keys = v
	}
	if keys["type"] != Type {
		t.Errorf("README example has type %v, want %q", keys["type"], Type)
	}
	delete(keys, "type")
	compareKeys(t, "", keys, reflect.ValueOf(DefaultConfig()))
}

func compareKeys(t *testing.T, prefix string, keys map[string]any, def reflect.Value) {
	t.Helper()
	typ := def.Type()
	var tags []string
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		tags = append(tags, tag)
		v, ok := keys[tag]
		if !ok {
			continue
		}
		dv := def.Field(i)
		if dv.Kind() == reflect.Struct {
			m, ok := v.(map[string]any)
			if !ok {
				t.Errorf("README %s%s is not a block", prefix, tag)
				continue
			}
			compareKeys(t, prefix+tag+".", m, dv)
			continue
		}
		if dv.IsZero() {
			continue // no default (address), or "empty means ...": the README explains
		}
		switch d := dv.Interface().(type) {
		case pipeline.ByteSize:
			got, err := pipeline.ParseByteSize(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s%s: %v, default is %s", prefix, tag, v, d)
			}
		default:
			if fmt.Sprint(v) != fmt.Sprint(d) {
				t.Errorf("README %s%s: %v, default is %v", prefix, tag, v, d)
			}
		}
	}
	var readmeKeys []string
	for k := range keys {
		readmeKeys = append(readmeKeys, k)
	}
	sort.Strings(tags)
	sort.Strings(readmeKeys)
	if !slices.Equal(readmeKeys, tags) {
		t.Errorf("README keys %s%v, Config koanf tags %v", prefix, readmeKeys, tags)
	}
}
