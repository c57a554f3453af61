package webhook

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
	dir := t.TempDir()
	goodFile := filepath.Join(dir, "good")
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(goodFile, []byte(secretA+"\n"+secretB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badFile, []byte(secretA+"\nwhsec_short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := "whsec_" + "c2hvcnQ=" // 5 bytes
	tests := []struct {
		name string
		set  func(c *Config)
		want []string // each error line must start with one of these, in order; none: valid
	}{
		{name: "valid minimal", set: func(*Config) {}},
		{name: "valid full", set: func(c *Config) {
			c.URL = "https://soar.example:8443/hooks/mdbridge?tenant=a"
			c.Encoding = EncodingNDJSON
			c.Gzip = true
			c.Secret = pipeline.Secret(secretA + " " + secretB)
			c.Headers = map[string]pipeline.Secret{"X-Api-Key": "k", "X-Tenant": "plant-a"}
			c.Username, c.Password = "soar", "pw"
			c.Concurrency, c.MaxBatchBytes, c.Timeout = 16, 1<<20, time.Minute
		}},
		{name: "valid secret file", set: func(c *Config) { c.SecretFile = goodFile }},
		{name: "missing url", set: func(c *Config) { c.URL = "" }, want: []string{"url: is required"}},
		{name: "bad url scheme", set: func(c *Config) { c.URL = "ftp://soar.example/x" }, want: []string{"url: must be an http"}},
		{name: "url without host", set: func(c *Config) { c.URL = "https:///x" }, want: []string{"url: must be an http"}},
		{name: "url with credentials", set: func(c *Config) { c.URL = "https://u:p@soar.example/" }, want: []string{"url: must not carry credentials"}},
		{name: "bad encoding", set: func(c *Config) { c.Encoding = "xml" }, want: []string{"encoding: must be json_array or ndjson"}},
		{name: "both auth methods", set: func(c *Config) { c.BearerToken = "t"; c.Username, c.Password = "u", "p" },
			want: []string{"bearer_token: set either"}},
		{name: "bearer token and file", set: func(c *Config) { c.BearerToken = "t"; c.BearerTokenFile = goodFile },
			want: []string{"bearer_token_file: set either"}},
		{name: "username without password", set: func(c *Config) { c.Username = "u" }, want: []string{"password: is required"}},
		{name: "password without username", set: func(c *Config) { c.Password = "p" }, want: []string{"username: is required"}},
		{name: "password and file", set: func(c *Config) { c.Username, c.Password, c.PasswordFile = "u", "p", goodFile },
			want: []string{"password_file: set either"}},
		{name: "username with colon", set: func(c *Config) { c.Username, c.Password = "a:b", "p" }, want: []string{"username: must not contain a colon"}},
		{name: "token with newline", set: func(c *Config) { c.BearerToken = "a\nb" }, want: []string{"bearer_token: must not contain line breaks"}},
		{name: "secret not base64", set: func(c *Config) { c.Secret = "whsec_!!!" }, want: []string{"secret: the part after whsec_ is not valid base64"}},
		{name: "secret without prefix", set: func(c *Config) { c.Secret = "c2VjcmV0" }, want: []string{"secret: must start with whsec_"}},
		{name: "secret too short", set: func(c *Config) { c.Secret = pipeline.Secret(short) }, want: []string{"secret: decodes to 5 bytes"}},
		{name: "second secret bad", set: func(c *Config) { c.Secret = pipeline.Secret(secretA + " whsk_abc") },
			want: []string{"secret: secret 2 of 2: asymmetric"}},
		{name: "secret and file", set: func(c *Config) { c.Secret = pipeline.Secret(secretA); c.SecretFile = goodFile },
			want: []string{"secret_file: set either"}},
		{name: "bad secret in file", set: func(c *Config) { c.SecretFile = badFile }, want: []string{"secret_file: secret 2 of 2: "}},
		{name: "missing secret file", set: func(c *Config) { c.SecretFile = filepath.Join(dir, "missing") }, want: []string{"secret_file: "}},
		{name: "clashing header", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"content-type": "text/xml"} },
			want: []string{"headers.content-type: is set by the sink"}},
		{name: "webhook header", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"Webhook-Signature": "x"} },
			want: []string{"headers.Webhook-Signature: webhook-* headers"}},
		{name: "mdbridge header", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"mdbridge-events": "x"} },
			want: []string{"headers.mdbridge-events: mdbridge-* headers"}},
		{name: "authorization with auth", set: func(c *Config) {
			c.BearerToken = "t"
			c.Headers = map[string]pipeline.Secret{"Authorization": "x"}
		}, want: []string{"headers.Authorization: clashes"}},
		{name: "invalid header name", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"X Bad": "x"} },
			want: []string{"headers.X Bad: is not a valid header name"}},
		{name: "header value with newline", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"X-A": "a\r\nX-B: b"} },
			want: []string{"headers.X-A: value must not contain line breaks"}},
		{name: "duplicate header", set: func(c *Config) { c.Headers = map[string]pipeline.Secret{"X-A": "1", "x-a": "2"} },
			want: []string{"headers.x-a: repeats header X-A"}},
		{name: "tls on http", set: func(c *Config) { c.URL = "http://soar.example/"; c.TLS.CAFile = goodFile },
			want: []string{"tls.ca_file: ", "tls: is set but the url is http://"}},
		{name: "tls missing file", set: func(c *Config) { c.TLS.CAFile = filepath.Join(dir, "missing") }, want: []string{"tls.ca_file: "}},
		{name: "tls cert without key", set: func(c *Config) { c.TLS.CertFile = goodFile }, want: []string{"tls.cert_file: "}},
		{name: "zero timeout", set: func(c *Config) { c.Timeout = 0 }, want: []string{"timeout: must be positive"}},
		{name: "concurrency", set: func(c *Config) { c.Concurrency = 0 }, want: []string{"concurrency: must be between 1 and 64"}},
		{name: "max_batch_bytes", set: func(c *Config) { c.MaxBatchBytes = 100 }, want: []string{"max_batch_bytes: must be between 1KiB and 64MiB"}},
		{name: "common keys", set: func(c *Config) { c.Format, c.Batch, c.Start = "xml", 0, "now" },
			want: []string{"format: unknown format", "batch: must be between", "start: must be"}},
		{name: "several at once", set: func(c *Config) { c.URL = ""; c.Concurrency = 0; c.Secret = "nope" },
			want: []string{"url: ", "secret: ", "concurrency: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.URL = "https://soar.example/hook"
			tt.set(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate gave %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("error %d: %q, want it to start with %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestCommon(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Format, cfg.Batch, cfg.Start = "json", 42, sinks.StartEarliest
	if got, want := cfg.Common(), (sinks.Common{Format: "json", Batch: 42, Start: sinks.StartEarliest}); got != want {
		t.Errorf("Common() = %+v, want %+v", got, want)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.URL = "https://soar.example/hook?token=query-token-value"
	cfg.Concurrency = 0
	_, err := New(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "concurrency: ") || !strings.Contains(err.Error(), "https://soar.example/hook?...") {
		t.Fatalf("New: %v", err)
	}
	if strings.Contains(err.Error(), "query-token-value") {
		t.Errorf("New error %q shows the query", err)
	}
}

// TestREADMEConfigMatchesConfig keeps the README's example in step with
// Config: the same keys as the koanf tags, and the defaults of DefaultConfig.
func TestREADMEConfigMatchesConfig(t *testing.T) {
	block := readmeYAML(t)
	var doc struct {
		Sinks map[string]map[string]any `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("README yaml block: %v", err)
	}
	if len(doc.Sinks) != 1 {
		t.Fatalf("README yaml block should configure exactly one sink, has %d", len(doc.Sinks))
	}
	var keys map[string]any
	for _, v := range doc.Sinks {
		keys = v
	}
	if keys["type"] != Type {
		t.Errorf("README example has type %v, want %q", keys["type"], Type)
	}
	delete(keys, "type")

	def := reflect.ValueOf(DefaultConfig())
	typ := def.Type()
	var tags []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		tags = append(tags, tag)
		v, ok := keys[tag]
		if !ok {
			continue // reported by the key comparison below
		}
		dv := def.Field(i)
		if dv.IsZero() {
			continue // no default: the README shows an example
		}
		switch d := dv.Interface().(type) {
		case pipeline.ByteSize:
			got, err := pipeline.ParseByteSize(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s: %v, default is %s", tag, v, d)
			}
		case time.Duration:
			got, err := time.ParseDuration(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s: %v, default is %s", tag, v, d)
			}
		default:
			if fmt.Sprint(v) != fmt.Sprint(d) {
				t.Errorf("README %s: %v, default is %v", tag, v, d)
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
		t.Errorf("README keys %v, Config koanf tags %v", readmeKeys, tags)
	}
}

func readmeYAML(t *testing.T) string {
	t.Helper()
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
	if strings.Contains(rest[len(block):], "```yaml") {
		t.Fatal("README.md has more than one yaml block; the test reads the first only")
	}
	return block
}
