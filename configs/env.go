package configs

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: MDBRIDGE_<PATH>, with "__"
// between path segments, e.g. MDBRIDGE_SINKS__SIEM__ADDRESS.
const EnvPrefix = "MDBRIDGE_"

// EnvConfigFile names the configuration file; it is not an override.
const EnvConfigFile = "MDBRIDGE_CONFIG"

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${VAR} and ${VAR:-default} in every YAML string under v
// (in place; v is a map or list) and turns `$$` into `$`. A string that
// referenced a variable becomes envText, so it converts to the key's type.
// Override values (already envText) are left alone.
func (l *loader) expand(path string, v any) {
	switch c := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(c) {
			if s, ok := c[k].(string); ok {
				c[k] = l.expandString(join(path, k), s)
			} else {
				l.expand(join(path, k), c[k])
			}
		}
	case []any:
		for i := range c {
			p := fmt.Sprintf("%s[%d]", path, i)
			if s, ok := c[i].(string); ok {
				c[i] = l.expandString(p, s)
			} else {
				l.expand(p, c[i])
			}
		}
	}
}

// expandString expands one value; errors name the key and the variable,
// never a value.
func (l *loader) expandString(path, s string) any {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	referenced := false
	for i := 0; i < len(s); {
		switch {
		case s[i] != '$':
			b.WriteByte(s[i])
			i++
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				l.addf("%s: unterminated ${ (write $$ for a literal $)", path)
				l.failed[path] = true
				return s
			}
			name, def, hasDef := strings.Cut(s[i+2:i+2+end], ":-")
			i += end + 3
			if !varName.MatchString(name) {
				l.addf("%s: invalid variable reference: ${...} must hold a variable name such as ${OT_TOKEN} or ${OT_TOKEN:-default} (write $$ for a literal $)", path)
				l.failed[path] = true
				continue
			}
			referenced = true
			val, set := l.env[name]
			switch {
			case hasDef && val == "":
				val = def
			case !set:
				l.addf("%s: environment variable %s is not set", path, name)
				l.failed[path] = true
			case val == "" && s == "${"+name+"}":
				if l.emptyVar == nil {
					l.emptyVar = map[string]string{}
				}
				l.emptyVar[path] = name
			}
			b.WriteString(val)
		default: // a lone $ stays
			b.WriteByte('$')
			i++
		}
	}
	if referenced {
		return envText(b.String())
	}
	return b.String()
}

// applyOverrides applies every MDBRIDGE_* variable of env onto l.raw.
// Instance `type` overrides go first, since the type decides which keys an
// instance has.
func (l *loader) applyOverrides(env []string) {
	type override struct{ name, value string }
	var overrides []override
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if !strings.HasPrefix(upper, EnvPrefix) || upper == EnvConfigFile {
			continue
		}
		overrides = append(overrides, override{name, value})
	}
	isType := func(o override) bool {
		segs := strings.Split(strings.ToLower(o.name), "__")
		return len(segs) == 3 && segs[2] == "type"
	}
	sort.SliceStable(overrides, func(i, j int) bool {
		if ti, tj := isType(overrides[i]), isType(overrides[j]); ti != tj {
			return ti
		}
		return overrides[i].name < overrides[j].name
	})
	for _, o := range overrides {
		path, err := l.override(o.name, o.value)
		if err != "" {
			l.addf("%s: %s", o.name, err)
			continue
		}
		l.origin[path] = o.name
	}
}

// override applies one variable and returns the path it set, or says why it
// cannot (never quoting the value).
func (l *loader) override(name, value string) (string, string) {
	segs := strings.Split(strings.ToLower(name[len(EnvPrefix):]), "__")
	if slices.Contains(segs, "") {
		return "", "malformed override name: want MDBRIDGE_<SECTION>__<KEY>, with __ between path segments"
	}
	path := strings.Join(segs, ".")
	switch segs[0] {
	case "state", "admin", "log":
		f, _ := fieldByKey(reflect.TypeFor[Config](), segs[0])
		m, err := child(l.raw, segs[0], segs[0])
		if err != "" {
			return "", err
		}
		if len(segs) == 1 {
			return "", fmt.Sprintf("%s is a section; override its keys one by one", path)
		}
		return setPath(m, segs[1:], f.Type, segs[0], value)
	case "sources", "sinks":
		fam := sourceFamily(nil)
		if segs[0] == "sinks" {
			fam = sinkFamily(nil)
		}
		if len(segs) < 3 {
			return "", fmt.Sprintf("%s is not a key; name one such as MDBRIDGE_%s__<INSTANCE>__<KEY>", path, strings.ToUpper(segs[0]))
		}
		all, _ := l.raw[segs[0]].(map[string]any)
		var matches []string
		for _, n := range sortedKeys(all) {
			if normalName(n) == normalName(segs[1]) {
				matches = append(matches, n)
			}
		}
		switch len(matches) {
		case 0:
			return "", fmt.Sprintf("no %s instance matches %q in the configuration file", fam.noun, segs[1])
		case 1:
		default:
			return "", fmt.Sprintf("%q matches several %s instances (%s)", segs[1], fam.noun, strings.Join(matches, ", "))
		}
		prefix := segs[0] + "." + matches[0]
		inst, err := child(all, matches[0], prefix)
		if err != "" {
			return "", err
		}
		if len(segs) == 3 && segs[2] == "type" {
			inst["type"] = envText(value)
			return prefix + ".type", ""
		}
		typ, _ := asText(inst["type"])
		if strings.Contains(typ, "$") {
			quiet := &loader{env: l.env, failed: map[string]bool{}, origin: map[string]string{}}
			typ, _ = asText(quiet.expandString("", typ))
		}
		v, ok := fam.build("", typ)
		if !ok {
			return "", fmt.Sprintf("cannot apply: %s has no known type", prefix)
		}
		return setPath(inst, segs[2:], reflect.TypeOf(v), prefix, value)
	}
	return "", fmt.Sprintf("unknown section %q (known: state, admin, log, sources, sinks)", segs[0])
}

// child returns m[key] as a mapping, creating it when absent.
func child(m map[string]any, key, path string) (map[string]any, string) {
	switch c := m[key].(type) {
	case map[string]any:
		return c, ""
	case nil:
		fresh := map[string]any{}
		m[key] = fresh
		return fresh, ""
	}
	return nil, fmt.Sprintf("cannot apply: %s is not a mapping in the configuration file", path)
}

// setPath sets the key at segs below m, whose schema is t, to value, and
// returns the key's full path. It checks the whole path against the schema
// before it creates any missing mapping on the way.
func setPath(m map[string]any, segs []string, t reflect.Type, path, value string) (string, string) {
	types := make([]reflect.Type, len(segs)) // types[i] is the type of segs[i]
	for i, seg := range segs {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByKey(t, seg)
			if !ok {
				return "", fmt.Sprintf("no such key %s%s", join(path, strings.Join(segs[:i+1], ".")), suggest(seg, structKeys(t)))
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return "", fmt.Sprintf("no such key %s", join(path, strings.Join(segs, ".")))
		}
		types[i] = t
	}
	for i, seg := range segs {
		path = join(path, seg)
		if i == len(segs)-1 {
			v, err := envValue(value, types[i])
			if err != "" {
				return "", path + " " + err
			}
			m[seg] = v
			break
		}
		var err string
		if m, err = child(m, seg, path); err != "" {
			return "", err
		}
	}
	return path, ""
}

// envValue turns an override's text into a config value for a key of type
// t: envText for scalars and scalar lists ("a,b"), YAML for lists of
// mappings and for maps (e.g. sites, fields).
func envValue(value string, t reflect.Type) (any, string) {
	switch {
	case t.Kind() == reflect.Struct:
		return nil, "is a section; override its keys one by one"
	case t.Kind() == reflect.Map, t.Kind() == reflect.Slice && !isScalar(t.Elem()):
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return nil, "must be YAML in flow style, e.g. [{a: 1, b: 2}] or {a: 1}"
		}
		return literal(v), ""
	}
	return envText(value), ""
}

// literal marks every string under v as envText, so ${...} in an override's
// YAML is not expanded and converts like any environment value.
func literal(v any) any {
	switch c := v.(type) {
	case string:
		return envText(c)
	case map[string]any:
		for k, e := range c {
			c[k] = literal(e)
		}
	case []any:
		for i, e := range c {
			c[i] = literal(e)
		}
	}
	return v
}

// normalName folds an instance name for matching an override segment:
// case-insensitive, with '-', '.' and '_' alike.
func normalName(s string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToLower(s))
}
