package configs

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Secrets the fuzz environment plants: one reachable as ${OT_TOKEN}, one
// forced into plant-a's token by an override.
const (
	fuzzVarSecret      = "fuzz-v4r-s3cret-Kq2"
	fuzzOverrideSecret = "fuzz-0verride-s3cret-Zt9"
)

// FuzzParse feeds any bytes to Parse: it must not panic, and when it parses,
// Redacted must show no secret, neither a planted one nor any value held in
// a pipeline.Secret, unless the input itself put that text in a key that is
// not secret.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(minimal))
	f.Add([]byte(withSource(`, token: "${OT_TOKEN}", start: "${OT_TOKEN:-now}"`)))
	f.Add([]byte(withSource(`, tls: {ca_file: "$${X}"}, sites: [{site_ip: a, sensor_ip: b}], fields: {devices: {id: x}}`)))
	f.Add([]byte("state: {max_bytes: 2GiB, retention: 0}\nlog: {level: debug}\n" + minimal))
	f.Add([]byte("sources: {plant-a: {type: otsecurity}}\nsinks: {a: {type: file, path: x}, b: {type: file, path: x}}"))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("- 1\n- 2"))
	env := []string{
		"OT_TOKEN=" + fuzzVarSecret,
		"MDBRIDGE_SOURCES__PLANT_A__TOKEN=" + fuzzOverrideSecret,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with errors")
			}
			if strings.Contains(err.Error(), fuzzOverrideSecret) && !bytes.Contains(data, []byte(fuzzOverrideSecret)) {
				t.Fatalf("error shows the override secret: %v", err)
			}
			return
		}
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		var values []string // string values (not keys) of the output
		var doc any
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("Redacted output is not YAML: %v\n%s", err, out)
		}
		collectValues(doc, &values)

		secret, plain := cfgStrings(cfg)
		for _, s := range append(secret, fuzzVarSecret, fuzzOverrideSecret) {
			if len(s) < minScrubLen || strings.Contains(pipeline.Redacted, s) {
				continue
			}
			for _, v := range values {
				if strings.Contains(v, s) {
					t.Fatalf("Redacted shows secret %q in value %q:\n%s", s, v, out)
				}
			}
		}
		for _, s := range []string{fuzzVarSecret, fuzzOverrideSecret} {
			inPlain := false
			for _, p := range plain {
				inPlain = inPlain || strings.Contains(p, s)
			}
			if !inPlain && strings.Contains(string(out), s) {
				t.Fatalf("Redacted shows planted secret %q:\n%s", s, out)
			}
		}
	})
}

func collectValues(v any, out *[]string) {
	switch c := v.(type) {
	case string:
		*out = append(*out, c)
	case map[string]any:
		for _, e := range c {
			collectValues(e, out)
		}
	case []any:
		for _, e := range c {
			collectValues(e, out)
		}
	}
}

// cfgStrings returns the pipeline.Secret values of cfg and every other
// string in it (values, map keys, instance names).
func cfgStrings(cfg *Config) (secret, plain []string) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch {
		case v.Type() == secretType:
			secret = append(secret, v.String())
		case v.Kind() == reflect.String:
			plain = append(plain, v.String())
		case v.Kind() == reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case v.Kind() == reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case v.Kind() == reflect.Map:
			for _, k := range v.MapKeys() {
				walk(k)
				walk(v.MapIndex(k))
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
	return secret, plain
}
