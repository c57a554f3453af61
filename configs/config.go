// Package configs loads, checks and prints mdbridge's configuration file
// (DESIGN.md §6; every key is documented in example.yaml).
//
// Loading is strict and reports every problem at once. Each message starts
// with the full path of the key it is about, e.g.
//
//	sources.plant-a.page_limit: must be at least 1
//	sources.plant-a: unknown key "tokn" (did you mean "token"?)
//
// The steps are: parse the YAML; apply MDBRIDGE_* environment overrides;
// expand ${VAR} references in string values; then for every section decode
// the user's values onto the defaults (the component's DefaultConfig for
// sources and sinks), reject unknown keys and wrong value types, and call the
// section's Validate. Secret values never appear in an error or in the output
// of Config.Redacted.
//
// Adding a source or sink type is one line in sourceTypes or sinkTypes.
package configs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/sinks/file"
	"github.com/mdbridge/mdbridge/sinks/nats"
	"github.com/mdbridge/mdbridge/sinks/syslog"
	"github.com/mdbridge/mdbridge/sinks/webhook"
)

// validator is what every decoded section offers: a check that reports all
// problems as errors.Join of "key: message" errors.
type validator interface{ Validate() error }

// sourceTypes maps a source's `type` to a constructor that puts the type's
// defaults into its SourceConfig field and returns that struct to decode into.
var sourceTypes = map[string]func(*SourceConfig) validator{
	otsec.Type: func(s *SourceConfig) validator { c := otsec.DefaultConfig(); s.OTSecurity = &c; return &c },
	mdss.Type:  func(s *SourceConfig) validator { c := mdss.DefaultConfig(); s.StorageSecurity = &c; return &c },
	mdss.ReceiverType: func(s *SourceConfig) validator {
		c := mdss.DefaultReceiverConfig()
		s.MDSSWebhook = &c
		return &c
	},
}

// sinkTypes is the same registry for sinks.
var sinkTypes = map[string]func(*SinkConfig) validator{
	file.Type:    func(s *SinkConfig) validator { c := file.DefaultConfig(); s.File = &c; return &c },
	nats.Type:    func(s *SinkConfig) validator { c := nats.DefaultConfig(); s.NATS = &c; return &c },
	syslog.Type:  func(s *SinkConfig) validator { c := syslog.DefaultConfig(); s.Syslog = &c; return &c },
	webhook.Type: func(s *SinkConfig) validator { c := webhook.DefaultConfig(); s.Webhook = &c; return &c },
}

// Config is the whole resolved configuration.
type Config struct {
	State   State                   `koanf:"state" json:"state"`
	Admin   Admin                   `koanf:"admin" json:"admin"`
	Log     Log                     `koanf:"log" json:"log"`
	Sources map[string]SourceConfig `json:"sources"` // keyed by instance name
	Sinks   map[string]SinkConfig   `json:"sinks"`   // keyed by instance name
}

// State configures the bbolt state file (journal, watermarks, cursors, seen-IDs).
type State struct {
	// Path of the bbolt file.
	Path string `koanf:"path" json:"path"`
	// Retention is how long delivered events stay in the journal for replay.
	Retention time.Duration `koanf:"retention" json:"retention"`
	// MaxBytes is the journal budget; past it, held-back events go to dead-letter.
	MaxBytes pipeline.ByteSize `koanf:"max_bytes" json:"max_bytes"`
	// LockTimeout is how long to wait for the file lock held by another process.
	LockTimeout time.Duration `koanf:"lock_timeout" json:"lock_timeout"`
}

// Admin configures the admin HTTP server (/metrics /healthz /readyz /status).
type Admin struct {
	// Listen is the host:port to serve on; "" turns the server off.
	Listen string `koanf:"listen" json:"listen"`
}

// Log configures logging.
type Log struct {
	// Level is one of debug, info, warn, error.
	Level string `koanf:"level" json:"level"`
	// Format is json or console.
	Format string `koanf:"format" json:"format"`
}

// SourceConfig is one configured source instance. Exactly one of the
// per-type pointers is set, the one that Type selects.
type SourceConfig struct {
	// Name is the instance name, the key under `sources`.
	Name string `json:"name"`
	// Type is the value of the instance's `type` key.
	Type string `json:"type"`
	// OTSecurity is set when Type is otsec.Type.
	OTSecurity *otsec.Config `json:"otsecurity,omitempty"`
	// StorageSecurity is set when Type is mdss.Type.
	StorageSecurity *mdss.Config `json:"storage_security,omitempty"`
	// MDSSWebhook is set when Type is mdss.ReceiverType.
	MDSSWebhook *mdss.ReceiverConfig `json:"mdss_webhook,omitempty"`
}

// SinkConfig is one configured sink instance. Exactly one of the per-type
// pointers is set, the one that Type selects.
type SinkConfig struct {
	// Name is the instance name, the key under `sinks`.
	Name string `json:"name"`
	// Type is the value of the instance's `type` key.
	Type string `json:"type"`
	// File is set when Type is file.Type.
	File *file.Config `json:"file,omitempty"`
	// NATS is set when Type is nats.Type.
	NATS *nats.Config `json:"nats,omitempty"`
	// Syslog is set when Type is syslog.Type.
	Syslog *syslog.Config `json:"syslog,omitempty"`
	// Webhook is set when Type is webhook.Type.
	Webhook *webhook.Config `json:"webhook,omitempty"`
}

// Log levels and formats accepted in Log.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"json", "console"}
)

func defaultConfig() Config {
	return Config{
		State: State{Path: "data/mdbridge.db", Retention: 24 * time.Hour, MaxBytes: 1 << 30, LockTimeout: 5 * time.Second},
		Admin: Admin{Listen: "127.0.0.1:9464"},
		Log:   Log{Level: "info", Format: "json"},
	}
}

// Validate reports every problem of the state section at once.
func (s *State) Validate() error {
	var errs []error
	if s.Path == "" {
		errs = append(errs, errors.New("path: is required"))
	}
	if s.Retention < 0 {
		errs = append(errs, errors.New("retention: must not be negative"))
	}
	if s.MaxBytes < 1<<20 {
		errs = append(errs, errors.New("max_bytes: must be at least 1MiB"))
	}
	if s.LockTimeout <= 0 {
		errs = append(errs, errors.New("lock_timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// Validate checks that Listen is empty or a host:port.
func (a *Admin) Validate() error {
	if a.Listen == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(a.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return errors.New(`listen: must be host:port such as 127.0.0.1:9464, or "" to turn the admin server off`)
	}
	return nil
}

// Validate checks the level and format against LogLevels and LogFormats.
func (l *Log) Validate() error {
	var errs []error
	if !slices.Contains(LogLevels, l.Level) {
		errs = append(errs, fmt.Errorf("level: must be one of %s, got %q", strings.Join(LogLevels, ", "), l.Level))
	}
	if !slices.Contains(LogFormats, l.Format) {
		errs = append(errs, fmt.Errorf("format: must be one of %s, got %q", strings.Join(LogFormats, ", "), l.Format))
	}
	return errors.Join(errs...)
}

// Load reads the YAML file at path and resolves it like Parse.
func Load(path string, env []string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b, env)
}

// Parse resolves a configuration from YAML bytes. env holds the environment
// as "KEY=value" strings, like os.Environ(); it is the only source of
// ${VAR} values and MDBRIDGE_* overrides (nil means an empty environment).
// On any problem it returns nil and every problem joined with errors.Join,
// one error per problem, each naming the key's full path.
func Parse(data []byte, env []string) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(data), kyaml.Parser()); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("config: %w", err)
		}
		var errs []error
		for _, msg := range te.Errors {
			if strings.Contains(msg, "cannot unmarshal") { // it would quote the document
				msg = "the top level must be a mapping of keys (state, admin, log, sources, sinks)"
			}
			errs = append(errs, errors.New("config: "+msg))
		}
		return nil, errors.Join(errs...)
	}
	l := &loader{raw: k.Raw(), env: map[string]string{}, failed: map[string]bool{}, origin: map[string]string{}}
	for _, kv := range env {
		if name, value, ok := strings.Cut(kv, "="); ok {
			l.env[name] = value
		}
	}
	cfg := l.resolve(env)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return cfg, nil
}

// loader collects the problems of one Parse.
type loader struct {
	raw     map[string]any
	env     map[string]string
	errs    []error
	secrets []string          // Secret values seen, scrubbed from every message
	failed  map[string]bool   // full paths already reported as unreadable values
	origin  map[string]string // full path -> the MDBRIDGE_* variable that set it
	// emptyVar: full path -> a variable that is set but empty and was the
	// whole of that key's value, without a :- default.
	emptyVar map[string]string
}

func (l *loader) addf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

// at reports msg about the key at path, naming the override that set the
// key (or a parent of it), if one did.
func (l *loader) at(path, msg string) {
	for p := path; p != ""; {
		if name, ok := l.origin[p]; ok {
			msg += " (set by " + name + ")"
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	l.errs = append(l.errs, errors.New(path+": "+msg))
}

// family describes sources or sinks for the code shared by both.
type family struct {
	section, noun string
	types         []string // sorted
	// build creates the instance's config for a known type, records it in
	// the Config (unless it is nil) and returns the struct to decode into.
	build func(name, typ string) (validator, bool)
}

func sourceFamily(cfg *Config) family {
	return family{"sources", "source", sortedKeys(sourceTypes), func(name, typ string) (validator, bool) {
		mk, ok := sourceTypes[typ]
		if !ok {
			return nil, false
		}
		s := SourceConfig{Name: name, Type: typ}
		v := mk(&s)
		if cfg != nil {
			cfg.Sources[name] = s
		}
		return v, true
	}}
}

func sinkFamily(cfg *Config) family {
	return family{"sinks", "sink", sortedKeys(sinkTypes), func(name, typ string) (validator, bool) {
		mk, ok := sinkTypes[typ]
		if !ok {
			return nil, false
		}
		s := SinkConfig{Name: name, Type: typ}
		v := mk(&s)
		if cfg != nil {
			cfg.Sinks[name] = s
		}
		return v, true
	}}
}

var instanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (l *loader) resolve(env []string) *Config {
	cfg := defaultConfig()
	cfg.Sources = map[string]SourceConfig{}
	cfg.Sinks = map[string]SinkConfig{}

	l.applyOverrides(env)

	for _, key := range sortedKeys(l.raw) {
		switch key {
		case "state", "admin", "log", "sources", "sinks":
		default:
			l.addf("unknown top-level key %q%s (known: admin, log, sinks, sources, state)", key,
				suggest(key, []string{"state", "admin", "log", "sources", "sinks"}))
		}
	}
	l.section("state", l.raw["state"], &cfg.State)
	l.section("admin", l.raw["admin"], &cfg.Admin)
	l.section("log", l.raw["log"], &cfg.Log)

	l.instances(sourceFamily(&cfg))
	l.instances(sinkFamily(&cfg))

	// A webhook receiver joins the streams of a storage_security source.
	for _, name := range sortedKeys(cfg.Sources) {
		w := cfg.Sources[name].MDSSWebhook
		if w == nil || w.Source == "" {
			continue
		}
		if src, ok := cfg.Sources[w.Source]; !ok || src.StorageSecurity == nil {
			l.addf("sources.%s.source: %q is not a source of type %s", name, w.Source, mdss.Type)
		}
	}

	// Two file sinks writing the same file would corrupt it.
	seen := map[string]string{}
	for _, name := range sortedKeys(cfg.Sinks) {
		f := cfg.Sinks[name].File
		if f == nil || f.Path == "" {
			continue
		}
		p := filepath.Clean(f.Path)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if first, dup := seen[p]; dup {
			l.addf("sinks.%s.path: same file as sinks.%s.path", name, first)
			continue
		}
		seen[p] = name
	}

	l.scrub()
	return &cfg
}

// section resolves one fixed top-level section onto its defaults in out.
func (l *loader) section(prefix string, raw any, out validator) {
	l.expand(prefix, raw)
	l.decodeValidate(prefix, raw, out)
}

// instances resolves every instance of the sources or sinks section.
func (l *loader) instances(fam family) {
	raw, present := l.raw[fam.section]
	all, ok := raw.(map[string]any)
	if present && raw != nil && !ok {
		l.addf("%s: must be a mapping of instance name to settings", fam.section)
		return
	}
	if len(all) == 0 {
		l.addf("%s: at least one %s is required", fam.section, fam.noun)
		return
	}
	known := strings.Join(fam.types, ", ")
	for _, name := range sortedKeys(all) {
		prefix := fam.section + "." + name
		if !instanceName.MatchString(name) {
			l.addf("%s: invalid instance name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", fam.section, name)
		}
		m, ok := all[name].(map[string]any)
		if all[name] == nil {
			m, ok = map[string]any{}, true
		}
		if !ok {
			l.addf("%s: must be a mapping of settings with a type (known %s types: %s)", prefix, fam.noun, known)
			continue
		}
		l.expand(prefix, m)
		typ, isText := asText(m["type"])
		var v validator
		switch {
		case m["type"] == nil:
			l.at(prefix+".type", fmt.Sprintf("is required (known %s types: %s)", fam.noun, known))
		case !isText:
			l.at(prefix+".type", fmt.Sprintf("must be a string (known %s types: %s)", fam.noun, known))
		default:
			if v, ok = fam.build(name, typ); !ok {
				l.at(prefix+".type", fmt.Sprintf("unknown %s type %q (known: %s)", fam.noun, typ, known))
			}
		}
		if v == nil {
			continue
		}
		body := make(map[string]any, len(m))
		for k, val := range m {
			if k != "type" {
				body[k] = val
			}
		}
		l.decodeValidate(prefix, body, v)
		l.checkFiles(prefix, reflect.ValueOf(v).Elem())
	}
}

// decodeValidate rejects unknown keys, decodes raw onto out (which holds the
// defaults), collects the Secret values and calls out.Validate. A key that
// failed to expand or decode is not reported again by Validate.
func (l *loader) decodeValidate(prefix string, raw any, out validator) {
	l.checkKeys(prefix, raw, reflect.TypeOf(out).Elem())
	for _, fe := range decode(raw, out) {
		l.failed[join(prefix, fe.key)] = true
		l.at(join(prefix, fe.key), fe.msg)
	}
	l.collectSecrets(prefix, reflect.ValueOf(out).Elem())
	for _, e := range unjoin(out.Validate()) {
		key, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok {
			key, msg = "", e.Error()
		}
		if coveredBy(join(prefix, key), l.failed) {
			continue
		}
		l.at(join(prefix, key), msg)
	}
}

// coveredBy reports whether key or one of its parents failed to decode.
func coveredBy(key string, failed map[string]bool) bool {
	for k := range failed {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// checkFiles checks that every non-empty *_file key of v (a decoded
// component struct) names a readable regular file. It never reads the file.
func (l *loader) checkFiles(prefix string, v reflect.Value) {
	walkKeys(prefix, v, func(path, key string, f reflect.Value) {
		if !strings.HasSuffix(key, "_file") || f.Kind() != reflect.String || f.Type() == secretType || f.String() == "" {
			return
		}
		if err := readable(f.String()); err != nil {
			l.addf("%s: %v", path, err)
		}
	})
}

func readable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file %s does not exist", path)
		}
		return fmt.Errorf("cannot access file %s", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("file %s is not readable", path)
	}
	return f.Close()
}

// collectSecrets remembers every non-empty Secret in v for scrub.
func (l *loader) collectSecrets(prefix string, v reflect.Value) {
	walkKeys(prefix, v, func(path, _ string, f reflect.Value) {
		if f.Type() != secretType {
			return
		}
		if f.String() != "" {
			l.secrets = append(l.secrets, f.String())
		} else if name, ok := l.emptyVar[path]; ok {
			// A credential that silently became "" would turn signing or
			// authentication off; an intended empty value says ${VAR:-}.
			l.addf("%s: environment variable %s is set but empty (write ${%s:-} if empty is meant)", path, name, name)
			l.failed[path] = true
		}
	})
}

// scrub replaces any Secret value that made it into a message (a component
// quoting a value, a secret pasted into the wrong key) with the redaction
// mark. It is a safety net: no message is meant to carry a value that can
// be secret.
func (l *loader) scrub() {
	for i, e := range l.errs {
		if s := scrubText(e.Error(), l.secrets); s != e.Error() {
			l.errs[i] = errors.New(s)
		}
	}
}

// minScrubLen keeps a short test token ("abc") from mangling every message.
const minScrubLen = 6

func scrubText(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= minScrubLen {
			s = strings.ReplaceAll(s, sec, pipeline.Redacted)
		}
	}
	return s
}

// walkKeys calls fn for every leaf (non-struct) field of the struct v and of
// structs nested in it, with the field's koanf path under prefix.
func walkKeys(prefix string, v reflect.Value, fn func(path, key string, f reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		key, ok := koanfKey(t.Field(i))
		if !ok {
			continue
		}
		f, path := v.Field(i), join(prefix, key)
		switch {
		case f.Kind() == reflect.Struct:
			walkKeys(path, f, fn)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := range f.Len() {
				walkKeys(fmt.Sprintf("%s[%d]", path, j), f.Index(j), fn)
			}
		default:
			fn(path, key, f)
		}
	}
}

// koanfKey returns the koanf tag name of a field.
func koanfKey(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	return name, name != "" && name != "-" && f.IsExported()
}

func join(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	}
	return prefix + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
