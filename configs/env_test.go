package configs

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec"
)

// withSource is a valid configuration whose plant-a source also has extra
// (flow-style keys, with a leading comma), which may replace token.
func withSource(extra string) string {
	base := ""
	for _, kv := range []string{`url: "https://ot.example:3003"`, "token: t0ken-value"} {
		if key, _, _ := strings.Cut(kv, ":"); !strings.Contains(extra, key+":") {
			base += ", " + kv
		}
	}
	return `
sources:
  plant-a: {type: otsecurity` + base + extra + `}
sinks:
  archive: {type: file, path: out/events.jsonl}
`
}

func TestExpand(t *testing.T) {
	env := []string{"HOST=ot.example", "EMPTY=", "PL=500", "YES=true", "STREAMS=devices, conn_alerts", "TRICKY=a: [b, {c", "DOLLAR=$HOME"}
	tests := []struct {
		name  string
		extra string
		check func(o *otsec.Config) bool
	}{
		{"whole value", `, url: "https://${HOST}:3003"`, func(o *otsec.Config) bool { return o.URL == "https://ot.example:3003" }},
		{"default when unset", `, start: "${UNSET:-now}"`, func(o *otsec.Config) bool { return o.Start == "now" }},
		{"default when empty", `, start: "${EMPTY:-24h}"`, func(o *otsec.Config) bool { return o.Start == "24h" }},
		{"set wins over default", `, page_limit: "${PL:-7}"`, func(o *otsec.Config) bool { return o.PageLimit == 500 }},
		{"empty default", `, tls: {ca_file: "${UNSET:-}"}`, func(o *otsec.Config) bool { return o.TLS.CAFile == "" }},
		{"$$ is a literal $", `, token: "pa$$word$${HOST}"`, func(o *otsec.Config) bool { return o.Token == "pa$word${HOST}" }},
		{"$$ then a variable", `, token: "$$${HOST}"`, func(o *otsec.Config) bool { return o.Token == "$ot.example" }},
		{"a lone $ stays", `, token: "pa$word$"`, func(o *otsec.Config) bool { return o.Token == "pa$word$" }},
		{"values are not expanded again", `, token: "${DOLLAR}"`, func(o *otsec.Config) bool { return o.Token == "$HOME" }},
		{"never textual: YAML in a value stays text", `, token: "${TRICKY}"`, func(o *otsec.Config) bool { return o.Token == "a: [b, {c" }},
		{"integer from a variable", `, max_page_limit: "${PL}"`, func(o *otsec.Config) bool { return o.MaxPageLimit == 500 }},
		{"bool from a variable", `, raw: "${YES}"`, func(o *otsec.Config) bool { return o.Raw }},
		{"duration with a default", `, interval: "${UNSET:-1m}"`, func(o *otsec.Config) bool { return o.Interval == time.Minute }},
		{"list from a variable", `, streams: "${STREAMS}"`, func(o *otsec.Config) bool {
			return slices.Equal(o.Streams, []string{"devices", "conn_alerts"})
		}},
		{"list items", `, streams: ["${UNSET:-devices}", suricata_alerts]`, func(o *otsec.Config) bool {
			return slices.Equal(o.Streams, []string{"devices", "suricata_alerts"})
		}},
		{"map values", `, fields: {devices: {id: "${UNSET:-uuid}"}}`, func(o *otsec.Config) bool { return o.Fields["devices"]["id"] == "uuid" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, withSource(tt.extra), env...)
			if o := cfg.Sources["plant-a"].OTSecurity; !tt.check(o) {
				t.Errorf("got %+v", *o)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		env   []string
		want  []string
		avoid string // must appear in no message
	}{
		{
			name: "unset variable",
			doc:  withSource(`, url: "https://${OT_HOST}:3003"`),
			want: []string{`sources.plant-a.url: environment variable OT_HOST is not set`},
		},
		{
			name: "two unset variables in one value, one in a list",
			doc:  withSource(`, url: "${SCHEME}://${HOST}", streams: [devices, "${S}"]`),
			want: []string{
				`sources.plant-a.streams[1]: environment variable S is not set`,
				`sources.plant-a.url: environment variable SCHEME is not set`,
				`sources.plant-a.url: environment variable HOST is not set`,
			},
		},
		{
			name: "secret from a set but empty variable",
			doc:  withSource(`, token: "${OT_TOKEN}"`),
			env:  []string{"OT_TOKEN="},
			want: []string{`sources.plant-a.token: environment variable OT_TOKEN is set but empty (write ${OT_TOKEN:-} if empty is meant)`},
		},
		{
			name: "unset in state and sink",
			doc:  withSource("") + "state: {path: \"${DATA}/db\"}\n",
			want: []string{`state.path: environment variable DATA is not set`},
		},
		{
			name: "unterminated",
			doc:  withSource(`, token: "${OT_TOKEN"`),
			env:  []string{"OT_TOKEN=s3cr3t-t0ken-value"},
			want: []string{`sources.plant-a.token: unterminated ${ (write $$ for a literal $)`},
		},
		{
			name:  "not a variable name",
			doc:   withSource(`, token: "${my s3cr3t}"`),
			want:  []string{`sources.plant-a.token: invalid variable reference: ${...} must hold a variable name such as ${OT_TOKEN} or ${OT_TOKEN:-default} (write $$ for a literal $)`},
			avoid: "my s3cr3t",
		},
		{
			name:  "a bad value from a variable is not quoted",
			doc:   withSource(`, page_limit: "${PL}"`),
			env:   []string{"PL=s3cr3t-t0ken-value"},
			want:  []string{`sources.plant-a.page_limit: must be an integer`},
			avoid: "s3cr3t",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), tt.env)
			got := messages(err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.avoid != "" && strings.Contains(strings.Join(got, "\n"), tt.avoid) {
				t.Errorf("errors quote %q", tt.avoid)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	doc := `
state: {max_bytes: 1GiB}
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: "${OT_TOKEN}"}
  Plant.B: {type: otsecurity, url: "https://ot2.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl}
`
	tests := []struct {
		name  string
		env   []string
		check func(c *Config) bool
	}{
		{"size", []string{"MDBRIDGE_STATE__MAX_BYTES=2GiB", "OT_TOKEN=x"}, func(c *Config) bool { return c.State.MaxBytes == 2<<30 }},
		{"duration", []string{"MDBRIDGE_STATE__RETENTION=1h", "OT_TOKEN=x"}, func(c *Config) bool { return c.State.Retention == time.Hour }},
		{"empty string", []string{"MDBRIDGE_ADMIN__LISTEN=", "OT_TOKEN=x"}, func(c *Config) bool { return c.Admin.Listen == "" }},
		{"override wins and makes an unset ${VAR} moot", []string{"MDBRIDGE_SOURCES__PLANT_A__TOKEN=from-env"}, func(c *Config) bool {
			return c.Sources["plant-a"].OTSecurity.Token == "from-env"
		}},
		{"case-insensitive, - _ . alike", []string{"mdbridge_Sources__plant_b__Page_Limit=7", "MDBRIDGE_SOURCES__PLANT-A__PAGE_LIMIT=9", "OT_TOKEN=x"}, func(c *Config) bool {
			return c.Sources["Plant.B"].OTSecurity.PageLimit == 7 && c.Sources["plant-a"].OTSecurity.PageLimit == 9
		}},
		{"override values are literal", []string{"MDBRIDGE_SOURCES__PLANT_A__TOKEN=${X}$$"}, func(c *Config) bool {
			return c.Sources["plant-a"].OTSecurity.Token == "${X}$$"
		}},
		{"list, comma-separated", []string{"MDBRIDGE_SOURCES__PLANT_A__STREAMS=devices, suricata_alerts", "OT_TOKEN=x"}, func(c *Config) bool {
			return slices.Equal(c.Sources["plant-a"].OTSecurity.Streams, []string{"devices", "suricata_alerts"})
		}},
		{"bool into a section the file lacks", []string{"MDBRIDGE_SOURCES__PLANT_A__TLS__INSECURE_SKIP_VERIFY=true", "OT_TOKEN=x"}, func(c *Config) bool {
			return c.Sources["plant-a"].OTSecurity.TLS.InsecureSkipVerify
		}},
		{"list of mappings as YAML", []string{"MDBRIDGE_SOURCES__PLANT_A__SITES=[{site_ip: 10.0.0.1, sensor_ip: 10.0.0.2}]", "OT_TOKEN=x"}, func(c *Config) bool {
			return reflect.DeepEqual(c.Sources["plant-a"].OTSecurity.Sites, []otsec.Site{{SiteIP: "10.0.0.1", SensorIP: "10.0.0.2"}})
		}},
		{"map entry", []string{"MDBRIDGE_SOURCES__PLANT_A__FIELDS__SURICATA_ALERTS__ID=alert_id", "OT_TOKEN=x"}, func(c *Config) bool {
			return c.Sources["plant-a"].OTSecurity.Fields["suricata_alerts"]["id"] == "alert_id"
		}},
		{"sink", []string{"MDBRIDGE_SINKS__ARCHIVE__PATH=/var/log/mdbridge.jsonl", "MDBRIDGE_SINKS__ARCHIVE__MAX_FILES=3", "OT_TOKEN=x"}, func(c *Config) bool {
			return c.Sinks["archive"].File.Path == "/var/log/mdbridge.jsonl" && c.Sinks["archive"].File.MaxFiles == 3
		}},
		{"MDBRIDGE_CONFIG is not an override", []string{"MDBRIDGE_CONFIG=/etc/mdbridge.yaml", "mdbridge_config=x", "OT_TOKEN=x"}, func(c *Config) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, doc, tt.env...)
			if !tt.check(cfg) {
				out, _ := cfg.Redacted()
				t.Errorf("override not applied:\n%s", out)
			}
		})
	}
}

func TestEnvOverrideType(t *testing.T) {
	cfg := mustParse(t, `
sources:
  plant-a: {url: "https://ot.example:3003", token: t0ken-value}
  plant-b: {type: "${SRC_TYPE}", url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {path: out/events.jsonl}
`, "MDBRIDGE_SOURCES__PLANT_A__TYPE=otsecurity", "MDBRIDGE_SINKS__ARCHIVE__TYPE=file",
		"SRC_TYPE=otsecurity", "MDBRIDGE_SOURCES__PLANT_B__PAGE_LIMIT=3")
	if cfg.Sources["plant-a"].Type != otsec.Type || cfg.Sinks["archive"].File == nil || cfg.Sources["plant-b"].OTSecurity.PageLimit != 3 {
		t.Errorf("type overrides not applied: %+v", cfg)
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	doc := `
sources:
  plant-a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
  plant_a: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value}
  plant-c: {type: otsecurity, url: "https://ot.example:3003", token: t0ken-value, tls: 5}
  plant-d: {url: "https://ot.example:3003", token: t0ken-value}
sinks:
  archive: {type: file, path: out/events.jsonl}
`
	tests := []struct {
		env  string
		want []string
	}{
		{"MDBRIDGE_STATE__PTH=x", []string{`MDBRIDGE_STATE__PTH: no such key state.pth (did you mean "path"?)`}},
		{"MDBRIDGE_STATE__PATH__X=x", []string{`MDBRIDGE_STATE__PATH__X: no such key state.path.x`}},
		{"MDBRIDGE_STATE=x", []string{`MDBRIDGE_STATE: state is a section; override its keys one by one`}},
		{"MDBRIDGE_STATUS__PATH=x", []string{`MDBRIDGE_STATUS__PATH: unknown section "status" (known: state, admin, log, sources, sinks)`}},
		{"MDBRIDGE_STATE_PATH=x", []string{`MDBRIDGE_STATE_PATH: unknown section "state_path" (known: state, admin, log, sources, sinks)`}},
		{"MDBRIDGE_STATE____PATH=x", []string{`MDBRIDGE_STATE____PATH: malformed override name: want MDBRIDGE_<SECTION>__<KEY>, with __ between path segments`}},
		{"MDBRIDGE_SOURCES__PLANT_B__TOKEN=x", []string{`MDBRIDGE_SOURCES__PLANT_B__TOKEN: no source instance matches "plant_b" in the configuration file`}},
		{"MDBRIDGE_SOURCES__PLANT_A__TOKEN=x", []string{`MDBRIDGE_SOURCES__PLANT_A__TOKEN: "plant_a" matches several source instances (plant-a, plant_a)`}},
		{"MDBRIDGE_SINKS__ARCHIVE=x", []string{`MDBRIDGE_SINKS__ARCHIVE: sinks.archive is not a key; name one such as MDBRIDGE_SINKS__<INSTANCE>__<KEY>`}},
		{"MDBRIDGE_SINKS__ARCHIVE__URL=x", []string{`MDBRIDGE_SINKS__ARCHIVE__URL: no such key sinks.archive.url`}},
		{"MDBRIDGE_SOURCES__PLANT_C__TLS=x", []string{`MDBRIDGE_SOURCES__PLANT_C__TLS: sources.plant-c.tls is a section; override its keys one by one`}},
		{"MDBRIDGE_SOURCES__PLANT_C__TLS__CA_FILE=x", []string{`MDBRIDGE_SOURCES__PLANT_C__TLS__CA_FILE: cannot apply: sources.plant-c.tls is not a mapping in the configuration file`}},
		{"MDBRIDGE_SOURCES__PLANT_D__URL=x", []string{`MDBRIDGE_SOURCES__PLANT_D__URL: cannot apply: sources.plant-d has no known type`}},
		{"MDBRIDGE_SOURCES__PLANT_C__SITES=[{", []string{`MDBRIDGE_SOURCES__PLANT_C__SITES: sources.plant-c.sites must be YAML in flow style, e.g. [{a: 1, b: 2}] or {a: 1}`}},
		{"MDBRIDGE_SOURCES__PLANT_C__PAGE_LIMIT=lots", []string{`sources.plant-c.page_limit: must be an integer (set by MDBRIDGE_SOURCES__PLANT_C__PAGE_LIMIT)`}},
		{"MDBRIDGE_SOURCES__PLANT_C__PAGE_LIMIT=0", []string{`sources.plant-c.page_limit: must be at least 1 (set by MDBRIDGE_SOURCES__PLANT_C__PAGE_LIMIT)`}},
		{"MDBRIDGE_SOURCES__PLANT_C__SITES=[{site_ip: a}]", []string{`sources.plant-c.sites[0].sensor_ip: is required (set by MDBRIDGE_SOURCES__PLANT_C__SITES)`}},
		{"MDBRIDGE_SOURCES__PLANT_C__SITES=[{site_ip: a, sensor: b}]", []string{
			`sources.plant-c.sites[0]: unknown key "sensor" (did you mean "sensor_ip"?)`,
			`sources.plant-c.sites[0].sensor_ip: is required (set by MDBRIDGE_SOURCES__PLANT_C__SITES)`,
		}},
		{"MDBRIDGE_SOURCES__PLANT_C__RAW=maybe", []string{`sources.plant-c.raw: must be true or false (set by MDBRIDGE_SOURCES__PLANT_C__RAW)`}},
	}
	// Every case also carries the errors the file has without overrides.
	base := []string{
		`sources.plant-c.tls: must be a mapping of keys, got a number`,
		`sources.plant-d.type: is required (known source types: mdss_webhook, otsecurity, storage_security)`,
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Parse([]byte(doc), []string{tt.env})
			var got []string
			for _, m := range messages(err) {
				if !slices.Contains(base, m) {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSecretSourcesAgree(t *testing.T) {
	// The same secret by value, by ${VAR} and by override.
	for _, env := range [][]string{
		{"OT_TOKEN=abc123"},
		{"MDBRIDGE_SOURCES__PLANT_A__TOKEN=abc123"},
	} {
		cfg := mustParse(t, withSource(`, token: "${OT_TOKEN:-abc123}"`), env...)
		if got := cfg.Sources["plant-a"].OTSecurity.Token; got != pipeline.Secret("abc123") {
			t.Errorf("env %v: token = %q", env, got.Reveal())
		}
	}
}
