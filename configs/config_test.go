package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/sinks/file"
)

// minimal is the smallest valid configuration.
const minimal = `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl}
`

// messages splits a Parse error into the lines a user sees.
func messages(err error) []string {
	var out []string
	for _, e := range unjoin(err) {
		out = append(out, e.Error())
	}
	return out
}

func mustParse(t *testing.T, doc string, env ...string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(doc), env)
	if err != nil {
		t.Fatalf("Parse: unexpected errors:\n%s", strings.Join(messages(err), "\n"))
	}
	return cfg
}

func TestParseAppliesDefaults(t *testing.T) {
	cfg := mustParse(t, minimal)

	if want := (State{Path: "data/mdbridge.db", Retention: 24 * time.Hour, MaxBytes: 1 << 30, LockTimeout: 5 * time.Second}); cfg.State != want {
		t.Errorf("State = %+v, want %+v", cfg.State, want)
	}
	if cfg.Admin.Listen != "127.0.0.1:9464" || cfg.Log != (Log{Level: "info", Format: "json"}) {
		t.Errorf("Admin, Log = %+v, %+v", cfg.Admin, cfg.Log)
	}

	src := cfg.Sources["plant-a"]
	if src.Name != "plant-a" || src.Type != otsec.Type || src.OTSecurity == nil {
		t.Fatalf("source = %+v", src)
	}
	want := otsec.DefaultConfig()
	want.URL, want.Token = "https://ot.example:3003", "t0ken-value"
	if !reflect.DeepEqual(*src.OTSecurity, want) {
		t.Errorf("otsecurity config =\n%+v\nwant\n%+v", *src.OTSecurity, want)
	}

	sink := cfg.Sinks["archive"]
	wantSink := file.DefaultConfig()
	wantSink.Path = "out/events.jsonl"
	if sink.Name != "archive" || sink.Type != file.Type || sink.File == nil || *sink.File != wantSink {
		t.Errorf("sink = %+v (file %+v), want file %+v", sink, sink.File, wantSink)
	}
}

func TestParseValues(t *testing.T) {
	cfg := mustParse(t, `
state: {path: /var/lib/mdbridge/state.db, retention: 0, max_bytes: 2097152, lock_timeout: 1m}
admin: {listen: ""}
log: {level: debug, format: console}
sources:
  plant-a:
    type: otsecurity
    url: https://ot.example:3003
    token: t0ken-value
    tls: {insecure_skip_verify: true}
    interval: 1m30s
    max_body_bytes: 1.5MiB
    streams: [devices]
    sites: [{site_ip: 10.0.0.1, sensor_ip: 10.0.0.2}]
    page_limit: 50
    max_page_limit: 1e3
    start: 24h
    raw: false
    fields: {suricata_alerts: {id: alert_id}}
sinks:
  archive: {type: file, path: out/a.jsonl, sync: none, max_bytes: 64KiB, max_files: 0}
`)
	if cfg.State.Retention != 0 || cfg.State.MaxBytes != 2<<20 || cfg.State.LockTimeout != time.Minute {
		t.Errorf("State = %+v", cfg.State)
	}
	if cfg.Admin.Listen != "" || cfg.Log.Level != "debug" || cfg.Log.Format != "console" {
		t.Errorf("Admin, Log = %+v, %+v", cfg.Admin, cfg.Log)
	}
	o := cfg.Sources["plant-a"].OTSecurity
	if !o.TLS.InsecureSkipVerify || o.Interval != 90*time.Second || o.MaxBodyBytes != 3<<19 ||
		!slices.Equal(o.Streams, []string{"devices"}) || o.PageLimit != 50 || o.MaxPageLimit != 1000 ||
		o.Start != "24h" || o.Raw || o.Fields["suricata_alerts"]["id"] != "alert_id" ||
		!reflect.DeepEqual(o.Sites, []otsec.Site{{SiteIP: "10.0.0.1", SensorIP: "10.0.0.2"}}) {
		t.Errorf("otsecurity = %+v", *o)
	}
	// Defaults stay where the file says nothing.
	if o.Timeout != 30*time.Second || o.Lookback != 10*time.Minute {
		t.Errorf("defaults lost: %+v", *o)
	}
	f := cfg.Sinks["archive"].File
	if f.Sync != "none" || f.MaxBytes != 64<<10 || f.MaxFiles != 0 || f.Batch != 1000 {
		t.Errorf("file = %+v", *f)
	}
}

func TestParseNullKeepsDefault(t *testing.T) {
	cfg := mustParse(t, `
state:
log: {level: }
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, page_limit: ~}
sinks:
  archive: {type: file, path: out/events.jsonl}
`)
	if cfg.State.Path != "data/mdbridge.db" || cfg.Log.Level != "info" || cfg.Sources["plant-a"].OTSecurity.PageLimit != 200 {
		t.Errorf("null did not keep the default: %+v %+v %+v", cfg.State, cfg.Log, cfg.Sources["plant-a"].OTSecurity)
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cr3t-in-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		env  []string
		want []string
	}{
		{
			name: "unknown state key",
			doc:  minimal + "state: {pth: x}\n",
			want: []string{`state: unknown key "pth" (did you mean "path"?)`},
		},
		{
			name: "unknown top-level key",
			doc:  minimal + "sauces: {}\n",
			want: []string{`unknown top-level key "sauces" (did you mean "sources"?) (known: admin, log, sinks, sources, state)`},
		},
		{
			name: "unknown source key",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, tokn: x}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{`sources.plant-a: unknown key "tokn" (did you mean "token"?)`},
		},
		{
			name: "unknown nested key",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, tls: {ca_fil: x}}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{`sources.plant-a.tls: unknown key "ca_fil" (did you mean "ca_file"?)`},
		},
		{
			name: "unknown key in a list item",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, sites: [{site_ip: a, sensor_ip: b, sensor: c}]}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{`sources.plant-a.sites[0]: unknown key "sensor" (did you mean "sensor_ip"?)`},
		},
		{
			name: "keys are case-sensitive",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, Page_Limit: 5}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{`sources.plant-a: unknown key "Page_Limit" (did you mean "page_limit"?)`},
		},
		{
			name: "unknown sink key",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl, maxbytes: 1}
`,
			want: []string{`sinks.archive: unknown key "maxbytes" (did you mean "max_bytes"?)`},
		},
		{
			name: "key of another type is unknown",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, sync: batch}
sinks:
  archive: {type: file, path: out/events.jsonl, token: x}
`,
			want: []string{
				`sources.plant-a: unknown key "sync"`,
				`sinks.archive: unknown key "token"`,
			},
		},
		{
			name: "missing and unknown types",
			doc: `
sources:
  plant-a: {url: "https://ot.example:3003"}
  plant-b: {type: otsec}
  plant-c: {type: [otsecurity]}
sinks:
  archive: {type: kafka}
  empty:
`,
			want: []string{
				`sources.plant-a.type: is required (known source types: mdss_webhook, otsecurity, storage_security)`,
				`sources.plant-b.type: unknown source type "otsec" (known: mdss_webhook, otsecurity, storage_security)`,
				`sources.plant-c.type: must be a string (known source types: mdss_webhook, otsecurity, storage_security)`,
				`sinks.archive.type: unknown sink type "kafka" (known: file, nats, syslog, webhook)`,
				`sinks.empty.type: is required (known sink types: file, nats, syslog, webhook)`,
			},
		},
		{
			name: "wrong value types",
			doc: `
state: {retention: forever, max_bytes: lots, lock_timeout: 5}
admin: {listen: [a]}
log: "debug"
sources:
  plant-a:
    type: otsecurity
    url: https://ot.example:3003
    token: 12345
    tls: insecure
    interval: 30
    streams: devices
    sites: [{site_ip: 10.0.0.1, sensor_ip: 10.0.0.2}, x]
    page_limit: "abc"
    max_page_limit: 1.5
    raw: "yes"
    fields: {suricata_alerts: [id]}
sinks:
  archive: {type: file, path: {a: b}, max_files: -1.0}
`,
			want: []string{
				`state.lock_timeout: must be a duration such as 30s, 10m or 1h30m, got a number`,
				`state.max_bytes: must be a size such as 512MiB, 1GiB or a number of bytes`,
				`state.retention: must be a duration such as 30s, 10m or 1h30m`,
				`admin.listen: must be a string, got a list`,
				`log: must be a mapping of keys, got a string`,
				`sources.plant-a.fields.suricata_alerts: must be a mapping of keys, got a list`,
				`sources.plant-a.interval: must be a duration such as 30s, 10m or 1h30m, got a number`,
				`sources.plant-a.max_page_limit: must be an integer, got a number`,
				`sources.plant-a.page_limit: must be an integer, got a string`,
				`sources.plant-a.raw: must be true or false, got a string`,
				`sources.plant-a.sites[1]: must be a mapping of keys, got a string`,
				`sources.plant-a.streams: must be a list, got a string`,
				`sources.plant-a.tls: must be a mapping of keys, got a string`,
				`sources.plant-a.token: must be a string, got a number (put it in quotes)`,
				`sinks.archive.path: must be a string, got a mapping`,
				`sinks.archive.max_files: must not be negative`,
			},
		},
		{
			name: "component validation is prefixed",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "ftp://ot.example", token: t0ken-value, page_limit: 0, streams: [devices, assets], start: soon}
sinks:
  archive: {type: file, path: out/events.jsonl, sync: always, batch: 0}
`,
			want: []string{
				`sources.plant-a.url: must be an http:// or https:// URL with a host`,
				`sources.plant-a.streams[1]: unknown stream "assets" (supported: device_alerts, conn_alerts, suricata_alerts, devices, cves, patch_requests)`,
				`sources.plant-a.page_limit: must be at least 1`,
				`sources.plant-a.start: want all, now or a positive duration such as 24h, got "soon"`,
				`sinks.archive.sync: must be batch or none, got "always"`,
				`sinks.archive.batch: must be between 1 and 100000`,
			},
		},
		{
			name: "state, admin and log validation",
			doc: minimal + `
state: {path: "", retention: -1s, max_bytes: 1000KiB, lock_timeout: 0s}
admin: {listen: localhost}
log: {level: verbose, format: text}
`,
			want: []string{
				`state.path: is required`,
				`state.retention: must not be negative`,
				`state.max_bytes: must be at least 1MiB`,
				`state.lock_timeout: must be positive`,
				`admin.listen: must be host:port such as 127.0.0.1:9464, or "" to turn the admin server off`,
				`log.level: must be one of debug, info, warn, error, got "verbose"`,
				`log.format: must be one of json, console, got "text"`,
			},
		},
		{
			name: "no sources, no sinks",
			doc:  "log: {level: info}\n",
			want: []string{
				`sources: at least one source is required`,
				`sinks: at least one sink is required`,
			},
		},
		{
			name: "empty file",
			doc:  "",
			want: []string{
				`sources: at least one source is required`,
				`sinks: at least one sink is required`,
			},
		},
		{
			name: "sections of the wrong kind",
			doc:  "sources: [a]\nsinks: {archive: out.jsonl}\n",
			want: []string{
				`sources: must be a mapping of instance name to settings`,
				`sinks.archive: must be a mapping of settings with a type (known sink types: file, nats, syslog, webhook)`,
			},
		},
		{
			name: "instance names",
			doc: `
sources:
  "plant a": {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
  -plant: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
  Plant_1.b-c: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{
				`sources: invalid instance name "-plant": use letters, digits, '_', '.' and '-', starting with a letter or digit`,
				`sources: invalid instance name "plant a": use letters, digits, '_', '.' and '-', starting with a letter or digit`,
			},
		},
		{
			name: "two file sinks on one file",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl}
  backup: {type: file, path: ./out//events.jsonl}
  other: {type: file, path: out/other.jsonl}
`,
			want: []string{`sinks.backup.path: same file as sinks.archive.path`},
		},
		{
			name: "secret files are checked, never read",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token_file: ` + filepath.Join(dir, "missing") + `, tls: {ca_file: ` + dir + `}}
  plant-b: {type: otsecurity, url: "https://ot.example:3003", token_file: ` + tokenFile + `}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{
				`sources.plant-a.token_file: file ` + filepath.Join(dir, "missing") + ` does not exist`,
				`sources.plant-a.tls.ca_file: ` + dir + ` is not a regular file`,
			},
		},
		{
			name: "a failed key is reported once",
			doc: `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: "${NO_SUCH_TOKEN}", page_limit: x, streams: [devices, {a: b}]}
sinks:
  archive: {type: file, path: out/events.jsonl}
`,
			want: []string{
				`sources.plant-a.token: environment variable NO_SUCH_TOKEN is not set`,
				`sources.plant-a.page_limit: must be an integer, got a string`,
				`sources.plant-a.streams[1]: must be a string, got a mapping`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.doc), tt.env)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors:\n%s", cfg, strings.Join(tt.want, "\n"))
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its errors")
			}
			if got := messages(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseUnreadableSecretFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(`
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token_file: `+path+`}
sinks:
  archive: {type: file, path: out/events.jsonl}
`), nil)
	want := []string{`sources.plant-a.token_file: file ` + path + ` is not readable`}
	if got := messages(err); !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte(`
state: {max_bytes: 10KiB}
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, page_limit: 0}
sinks:
  archive: {type: file, path: out/events.jsonl, sink: x}
`), nil)
	want := []string{
		`state.max_bytes: must be at least 1MiB`,
		`sources.plant-a.page_limit: must be at least 1`,
		`sinks.archive: unknown key "sink" (did you mean "sync"?)`,
	}
	if got := messages(err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseYAMLErrors(t *testing.T) {
	for _, doc := range []string{"s3cr3t-t0ken-value", "- s3cr3t-t0ken-value", "a: [b\n", "a: b\na: c\n"} {
		_, err := Parse([]byte(doc), nil)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", doc)
			continue
		}
		if !strings.HasPrefix(err.Error(), "config: ") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Parse(%q) = %q", doc, err)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mdbridge.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{"MDBRIDGE_LOG__LEVEL=warn"})
	if err != nil || cfg.Log.Level != "warn" {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml"), nil); err == nil || !strings.HasPrefix(err.Error(), "config: open ") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestRedactedRoundTrips(t *testing.T) {
	cfg := mustParse(t, `
state: {retention: 90m}
sources:
  plant-a:
    type: otsecurity
    url: https://ot.example:3003
    token: t0ken-value
    sites: [{site_ip: 10.0.0.1, sensor_ip: 10.0.0.2}]
    fields: {devices: {id: uuid, ip: addr}}
  plant.b: {type: otsecurity, url: "https://ot2.example:3003", token: other-t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl, max_bytes: 5000}
`)
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"retention: 1h30m\n", "max_bytes: 1GiB\n", "token: '[REDACTED]'\n", "token_file: \"\"\n",
		"streams: [device_alerts, conn_alerts, suricata_alerts, devices]\n", "max_bytes: 5000\n",
		"    sites:\n      - site_ip: 10.0.0.1\n        sensor_ip: 10.0.0.2\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Redacted() lacks %q:\n%s", want, out)
		}
	}
	// The output is itself a valid configuration: the same one, but for the
	// secrets, which now read [REDACTED].
	again := mustParse(t, string(out))
	for _, name := range []string{"plant-a", "plant.b"} {
		cfg.Sources[name].OTSecurity.Token = pipeline.Redacted
	}
	out2, err := again.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("round trip changed the config:\n%s\nthen\n%s", out, out2)
	}
	if got, want := again.Sources["plant-a"].OTSecurity, cfg.Sources["plant-a"].OTSecurity; !reflect.DeepEqual(got, want) {
		t.Errorf("round trip: %+v, want %+v", got, want)
	}
}
