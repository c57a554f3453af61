package nats

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

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

// errKeys returns the key each line of a Validate error starts with.
func errKeys(err error) []string {
	if err == nil {
		return nil
	}
	var keys []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		key, _, _ := strings.Cut(line, ": ")
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const secretValue = "s3cr3t-VALUE-never-printed"

// TestValidate checks that every bad key is reported, by its path relative
// to the sink, and that good configs pass.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", secretValue+"\n")
	emptyFile := writeFile(t, dir, "empty", "\n")
	garbage := writeFile(t, dir, "garbage", "not a key")
	userKP, _ := nkeys.CreateUser()
	userSeed, _ := userKP.Seed()
	seedFile := writeFile(t, dir, "user.nk", string(userSeed))
	acctKP, _ := nkeys.CreateAccount()
	acctSeed, _ := acctKP.Seed()
	acctSeedFile := writeFile(t, dir, "account.nk", string(acctSeed))
	creds := testCreds(t)
	credsFile := writeFile(t, dir, "user.creds", creds.creds)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name string
		edit func(c *Config)
		want []string // keys named by the errors; nil: valid
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "jetstream without a stream block", edit: func(c *Config) { c.JetStream = true }},
		{name: "full valid", edit: func(c *Config) {
			c.URL = "tls://a.example:4222, tls://b.example:4222"
			c.JetStream = true
			c.Stream = &StreamConfig{Name: "EVENTS", Subjects: []string{"mdbridge.>", "x.*.y"}, Storage: StorageMemory, Replicas: 3,
				MaxAge: time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 10 * time.Minute}
			c.User, c.PasswordFile = "bridge", tokenFile
		}},
		{name: "token file", edit: func(c *Config) { c.TokenFile = tokenFile }},
		{name: "nkey", edit: func(c *Config) { c.NKeySeedFile = seedFile }},
		{name: "creds", edit: func(c *Config) { c.CredsFile = credsFile }},
		{name: "websocket URL with a path", edit: func(c *Config) { c.URL = "wss://nats.example/ws" }},

		{name: "no url", edit: func(c *Config) { c.URL = " , " }, want: []string{"url"}},
		{name: "http url", edit: func(c *Config) { c.URL = "http://nats.example:4222" }, want: []string{"url"}},
		{name: "url without host", edit: func(c *Config) { c.URL = "nats://:4222" }, want: []string{"url"}},
		{name: "url with a path", edit: func(c *Config) { c.URL = "nats://h:4222/x" }, want: []string{"url"}},
		{name: "url with credentials", edit: func(c *Config) { c.URL = "nats://bridge:" + secretValue + "@h:4222" }, want: []string{"url"}},
		{name: "no subject", edit: func(c *Config) { c.Subject = "" }, want: []string{"subject"}},
		{name: "unknown placeholder", edit: func(c *Config) { c.Subject = "mdbridge.{site}" }, want: []string{"subject"}},
		{name: "wildcard subject", edit: func(c *Config) { c.Subject = "mdbridge.>" }, want: []string{"subject"}},
		{name: "stream without jetstream", edit: func(c *Config) { c.Stream = &StreamConfig{Name: "E"} }, want: []string{"stream"}},
		{name: "bad stream block", edit: func(c *Config) {
			c.JetStream = true
			c.Stream = &StreamConfig{Name: "a.b", Subjects: []string{"ok.>", "a..b", "a.>.b", "a.b*"}, Storage: "disk", Replicas: 7,
				MaxAge: -time.Second, MaxBytes: -1, DuplicateWindow: -time.Second}
		}, want: []string{"stream.duplicate_window", "stream.max_age", "stream.max_bytes", "stream.name", "stream.replicas",
			"stream.storage", "stream.subjects[1]", "stream.subjects[2]", "stream.subjects[3]"}},
		{name: "stream without a name", edit: func(c *Config) { c.JetStream = true; c.Stream = &StreamConfig{} }, want: []string{"stream.name"}},
		{name: "duplicate window longer than max age", edit: func(c *Config) {
			c.JetStream = true
			c.Stream = &StreamConfig{Name: "E", MaxAge: time.Minute}
		}, want: []string{"stream.duplicate_window"}},
		{name: "template starting with a placeholder needs stream subjects", edit: func(c *Config) {
			c.JetStream = true
			c.Subject = "{source}.events"
			c.Stream = &StreamConfig{Name: "E"}
		}, want: []string{"stream.subjects"}},
		{name: "bad numbers", edit: func(c *Config) {
			c.MaxPending, c.AckTimeout, c.ConnectTimeout, c.ReconnectWait = 0, 0, -time.Second, 0
		}, want: []string{"ack_timeout", "connect_timeout", "max_pending", "reconnect_wait"}},
		{name: "max_pending too large", edit: func(c *Config) { c.MaxPending = maxMaxPending + 1 }, want: []string{"max_pending"}},
		{name: "batch_publish on", edit: func(c *Config) { c.JetStream, c.BatchPublish = true, BatchPublishOn }},
		{name: "batch_publish off", edit: func(c *Config) { c.BatchPublish = BatchPublishOff }},
		{name: "batch_publish on without jetstream", edit: func(c *Config) { c.BatchPublish = BatchPublishOn }, want: []string{"batch_publish"}},
		{name: "batch_publish unknown", edit: func(c *Config) { c.JetStream, c.BatchPublish = true, "yes" }, want: []string{"batch_publish"}},
		{name: "batch_publish empty", edit: func(c *Config) { c.BatchPublish = "" }, want: []string{"batch_publish"}},
		{name: "token and user", edit: func(c *Config) { c.Token, c.User, c.Password = secretValue, "u", secretValue },
			want: []string{"user"}},
		{name: "all four methods", edit: func(c *Config) {
			c.TokenFile, c.User, c.Password, c.NKeySeedFile, c.CredsFile = tokenFile, "u", secretValue, seedFile, credsFile
		}, want: []string{"creds_file", "nkey_seed_file", "user"}},
		{name: "token and token_file", edit: func(c *Config) { c.Token, c.TokenFile = secretValue, tokenFile }, want: []string{"token_file"}},
		{name: "password and password_file", edit: func(c *Config) { c.User, c.Password, c.PasswordFile = "u", secretValue, tokenFile },
			want: []string{"password_file"}},
		{name: "password without user", edit: func(c *Config) { c.Password = secretValue }, want: []string{"user"}},
		{name: "user without password", edit: func(c *Config) { c.User = "u" }, want: []string{"password"}},
		{name: "missing token file", edit: func(c *Config) { c.TokenFile = missing }, want: []string{"token_file"}},
		{name: "empty password file", edit: func(c *Config) { c.User, c.PasswordFile = "u", emptyFile }, want: []string{"password_file"}},
		{name: "missing seed", edit: func(c *Config) { c.NKeySeedFile = missing }, want: []string{"nkey_seed_file"}},
		{name: "not a seed", edit: func(c *Config) { c.NKeySeedFile = garbage }, want: []string{"nkey_seed_file"}},
		{name: "account seed", edit: func(c *Config) { c.NKeySeedFile = acctSeedFile }, want: []string{"nkey_seed_file"}},
		{name: "not creds", edit: func(c *Config) { c.CredsFile = garbage }, want: []string{"creds_file"}},
		{name: "tls files", edit: func(c *Config) { c.TLS = sinks.TLS{CAFile: missing, CertFile: garbage} },
			want: []string{"tls.ca_file", "tls.cert_file"}},
		{name: "common keys", edit: func(c *Config) { c.Format, c.Batch, c.Start = "xml", 0, "middle" },
			want: []string{"batch", "format", "start"}},
		{name: "everything at once", edit: func(c *Config) {
			c.URL, c.Subject, c.MaxPending, c.Token, c.User, c.Format = "", "{x}", -1, secretValue, "u", "xml"
		}, want: []string{"format", "max_pending", "password", "subject", "url", "user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if got := errKeys(err); !slices.Equal(got, tt.want) {
				t.Fatalf("errors name %v, want %v; errors:\n%v", got, tt.want, err)
			}
			if err != nil && strings.Contains(err.Error(), secretValue) {
				t.Errorf("error shows a secret:\n%v", err)
			}
		})
	}
}

// TestSecretsNotPrinted: the config prints, marshals and logs without its
// secrets.
func TestSecretsNotPrinted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Token = secretValue
	cfg.Password = secretValue
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, secretValue) {
			t.Errorf("printed config shows the secret: %s", s)
		}
	}
}

// TestREADMEConfigMatchesConfig keeps the README's example in step with
// Config: the same keys as the koanf tags (the stream and tls blocks too),
// and the defaults of DefaultConfig and of the stream block.
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
	compareKeys(t, "", keys, reflect.ValueOf(DefaultConfig()), nil)

	stream, ok := keys["stream"].(map[string]any)
	if !ok {
		t.Fatal("README example has no stream block")
	}
	tmpl, _ := parseTemplate(DefaultSubject)
	compareKeys(t, "stream.", stream, reflect.ValueOf(StreamConfig{}.withDefaults(tmpl)), []string{"name"})
	tls, ok := keys["tls"].(map[string]any)
	if !ok {
		t.Fatal("README example has no tls block")
	}
	compareKeys(t, "tls.", tls, reflect.ValueOf(sinks.TLS{}), nil)
}

// compareKeys checks that keys holds exactly the koanf keys of the struct
// def, each with def's value; only the keys in examples (required keys
// without a default) may show something else.
func compareKeys(t *testing.T, prefix string, keys map[string]any, def reflect.Value, examples []string) {
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
		dv := def.Field(i)
		if !ok || dv.IsZero() || dv.Kind() == reflect.Struct || dv.Kind() == reflect.Pointer {
			if ok && dv.IsZero() && dv.Kind() != reflect.Struct && dv.Kind() != reflect.Pointer && !isZeroYAML(v) && !slices.Contains(examples, tag) {
				t.Errorf("README %s%s: %v, default is the zero value", prefix, tag, v)
			}
			continue
		}
		switch d := dv.Interface().(type) {
		case time.Duration:
			got, err := time.ParseDuration(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s%s: %v, default is %s", prefix, tag, v, d)
			}
		case pipeline.ByteSize:
			got, err := pipeline.ParseByteSize(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s%s: %v, default is %s", prefix, tag, v, d)
			}
		case []string:
			if fmt.Sprint(v) != fmt.Sprint(d) {
				t.Errorf("README %s%s: %v, default is %v", prefix, tag, v, d)
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
		t.Errorf("README %skeys %v, Config koanf tags %v", prefix, readmeKeys, tags)
	}
}

func isZeroYAML(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		if x == "" || x == "0" {
			return true
		}
		d, err := time.ParseDuration(x)
		return err == nil && d == 0
	case int:
		return x == 0
	case bool:
		return !x
	}
	return false
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
