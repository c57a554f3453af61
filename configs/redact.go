package configs

import (
	"bytes"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Redacted renders the resolved configuration, defaults included, as YAML
// in the same shape and key order as the configuration file, for
// `mdbridge validate`. Secrets are shown as [REDACTED] (or "" when unset),
// durations as "30s" and sizes as "1GiB", so the output can be read back.
func (c *Config) Redacted() ([]byte, error) {
	var secrets []string
	collect := func(v reflect.Value) {
		walkKeys("", v, func(_, _ string, f reflect.Value) {
			if f.Type() == secretType && f.String() != "" {
				secrets = append(secrets, f.String())
			}
		})
	}
	for _, s := range c.Sources {
		if v, ok := component(reflect.ValueOf(s)); ok {
			collect(v)
		}
	}
	for _, s := range c.Sinks {
		if v, ok := component(reflect.ValueOf(s)); ok {
			collect(v)
		}
	}
	r := renderer{secrets: secrets}

	root := mapping()
	r.add(root, "state", reflect.ValueOf(c.State))
	r.add(root, "admin", reflect.ValueOf(c.Admin))
	r.add(root, "log", reflect.ValueOf(c.Log))
	for _, section := range []struct {
		name      string
		instances reflect.Value
	}{{"sources", reflect.ValueOf(c.Sources)}, {"sinks", reflect.ValueOf(c.Sinks)}} {
		all := mapping()
		for _, name := range sortedMapKeys(section.instances) {
			inst := section.instances.MapIndex(reflect.ValueOf(name))
			n := mapping()
			r.add(n, "type", inst.FieldByName("Type"))
			if v, ok := component(inst); ok {
				r.fields(n, v)
			}
			all.Content = append(all.Content, r.scalar(name, "!!str"), n)
		}
		root.Content = append(root.Content, r.scalar(section.name, "!!str"), all)
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// component returns the struct behind the one non-nil per-type pointer of a
// SourceConfig or SinkConfig.
func component(inst reflect.Value) (reflect.Value, bool) {
	for i := range inst.NumField() {
		if f := inst.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			return f.Elem(), true
		}
	}
	return reflect.Value{}, false
}

func sortedMapKeys(m reflect.Value) []string {
	keys := make([]string, 0, m.Len())
	for _, k := range m.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.Sort(keys)
	return keys
}

// renderer builds YAML nodes from config values. Every string value goes
// through scrubText, so a secret pasted into a non-secret key is redacted too.
type renderer struct{ secrets []string }

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func (r renderer) scalar(s, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s}
}

// str is a string value, scrubbed.
func (r renderer) str(s string) *yaml.Node { return r.scalar(scrubText(s, r.secrets), "!!str") }

func (r renderer) add(m *yaml.Node, key string, v reflect.Value) {
	m.Content = append(m.Content, r.scalar(key, "!!str"), r.node(v))
}

// fields adds the koanf-tagged fields of struct v to mapping m, in order.
func (r renderer) fields(m *yaml.Node, v reflect.Value) {
	for i := range v.NumField() {
		key, ok := koanfKey(v.Type().Field(i))
		switch {
		case !ok:
		case key == "url" && v.Field(i).Kind() == reflect.String:
			m.Content = append(m.Content, r.scalar(key, "!!str"), r.str(redactQuery(v.Field(i).String())))
		default:
			r.add(m, key, v.Field(i))
		}
	}
}

func (r renderer) node(v reflect.Value) *yaml.Node {
	switch v.Type() {
	case secretType:
		return r.str(v.Interface().(pipeline.Secret).String())
	case durationType:
		return r.str(formatDuration(time.Duration(v.Int())))
	case byteSizeType:
		if s := pipeline.ByteSize(v.Int()).String(); strings.HasSuffix(s, "B") {
			return r.str(s)
		}
		return r.scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return r.scalar("null", "!!null")
		}
		return r.node(v.Elem())
	case reflect.Struct:
		n := mapping()
		r.fields(n, v)
		return n
	case reflect.Map:
		n := mapping()
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, k := range sortedMapKeys(v) {
			r.add(n, k, v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			e := r.node(v.Index(i))
			if e.Kind != yaml.ScalarNode {
				n.Style = 0
			}
			n.Content = append(n.Content, e)
		}
		return n
	case reflect.Bool:
		return r.scalar(strconv.FormatBool(v.Bool()), "!!bool")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	case reflect.String:
		return r.str(v.String())
	}
	return r.str("")
}

// redactQuery hides the query string of a URL, which may carry an API key
// (a webhook's ?api_key=...): https://h/p?x=1 prints as https://h/p?[REDACTED].
func redactQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.RawQuery == "" && !u.ForceQuery) {
		return s
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.String() + "?" + pipeline.Redacted
}

// formatDuration writes 10m rather than 10m0s and 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
