package configs

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
)

// regType is one registered source or sink type and the struct it decodes into.
type regType struct {
	section, typ string
	t            reflect.Type
}

func registeredTypes() []regType {
	var out []regType
	for typ, mk := range sourceTypes {
		out = append(out, regType{"sources", typ, reflect.TypeOf(mk(&SourceConfig{})).Elem()})
	}
	for typ, mk := range sinkTypes {
		out = append(out, regType{"sinks", typ, reflect.TypeOf(mk(&SinkConfig{})).Elem()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].section+out[i].typ < out[j].section+out[j].typ })
	return out
}

// leafPaths lists every leaf key below struct type t as path segments; "[]"
// stands for the first item of a list of structs. fn gets each leaf's type.
func leafPaths(t reflect.Type, prefix []string, fn func(path []string, leaf reflect.Type)) {
	for i := range t.NumField() {
		key, ok := koanfKey(t.Field(i))
		if !ok {
			continue
		}
		ft, path := t.Field(i).Type, append(clone(prefix), key)
		switch {
		case ft.Kind() == reflect.Struct:
			leafPaths(ft, path, fn)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			leafPaths(ft.Elem(), append(path, "[]"), fn)
		default:
			fn(path, ft)
		}
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

// setRaw sets a value at path in a decoded YAML document, creating mappings
// and one-item lists on the way.
func setRaw(m map[string]any, path []string, v any) {
	for i, seg := range path {
		if i == len(path)-1 {
			m[seg] = v
			return
		}
		if path[i+1] == "[]" {
			list, _ := m[seg].([]any)
			if len(list) == 0 {
				list = []any{map[string]any{}}
				m[seg] = list
			}
			sub, ok := list[0].(map[string]any)
			if !ok {
				sub = map[string]any{}
				list[0] = sub
			}
			setRaw(sub, path[i+2:], v)
			return
		}
		sub, ok := m[seg].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[seg] = sub
		}
		m = sub
	}
}

// exampleDoc is example.yaml decoded, fresh on each call.
func exampleDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// instanceOf returns the name of the first instance of typ in doc.
func instanceOf(doc map[string]any, section, typ string) (string, map[string]any) {
	all, _ := doc[section].(map[string]any)
	for _, name := range sortedKeys(all) {
		if m, ok := all[name].(map[string]any); ok && m["type"] == typ {
			return name, m
		}
	}
	return "", nil
}

const planted = "pl4nted-s3cr3t-Vb7Q"

// plantedWebhookSecret is a valid Standard Webhooks secret holding planted.
var plantedWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(planted+"-padding-to-32-bytes"))

// companions are the keys a secret needs beside it to be valid.
var companions = map[string]map[string]any{
	"nats.password":    {"user": "mdbridge"},
	"webhook.password": {"username": "mdbridge"},
	// A user's password replaces the example's API key: one mode at a time.
	"storage_security.password": {"username": "mdbridge", "api_key": ""},
}

// TestSecretsNeverLeak plants a secret in every pipeline.Secret key of every
// registered type, and checks errors, Redacted and JSON for it.
func TestSecretsNeverLeak(t *testing.T) {
	secretKeys := 0
	for _, rt := range registeredTypes() {
		leafPaths(rt.t, nil, func(path []string, leaf reflect.Type) {
			if leaf != secretType {
				return
			}
			secretKeys++
			key := strings.Join(path, ".")
			t.Run(rt.typ+"."+key, func(t *testing.T) {
				scan := func(what, text string) {
					t.Helper()
					if strings.Contains(text, planted) {
						t.Errorf("%s shows the secret:\n%s", what, text)
					}
				}

				// Valid: the secret by value, by ${VAR} and by override.
				for _, how := range []string{"value", "var", "override"} {
					doc := exampleDoc(t)
					name, inst := instanceOf(doc, rt.section, rt.typ)
					if inst == nil {
						t.Fatalf("example.yaml has no %s of type %s", rt.section, rt.typ)
					}
					delete(inst, path[len(path)-1]+"_file")
					for k, v := range companions[rt.typ+"."+key] {
						inst[k] = v
					}
					secret := planted
					if key == "secret" && rt.typ == "webhook" { // it must look like a Standard Webhooks secret
						secret = plantedWebhookSecret
					}
					env := append(exampleEnv[:len(exampleEnv):len(exampleEnv)], "PLANTED="+secret)
					switch how {
					case "value":
						setRaw(inst, path, secret)
					case "var":
						setRaw(inst, path, "${PLANTED}")
					case "override":
						env = append(env, "MDBRIDGE_"+strings.ToUpper(rt.section+"__"+name+"__"+strings.Join(path, "__"))+"="+secret)
					}
					b, _ := yaml.Marshal(doc)
					cfg, err := Parse(b, env)
					if err != nil {
						t.Fatalf("%s: %v", how, err)
					}
					out, err := cfg.Redacted()
					if err != nil {
						t.Fatal(err)
					}
					scan("Redacted()", string(out))
					if secret != planted && strings.Contains(string(out), secret) {
						t.Errorf("Redacted() shows the secret:\n%s", out)
					}
					if !strings.Contains(string(out), pipeline.Redacted) {
						t.Errorf("Redacted() lacks %s:\n%s", pipeline.Redacted, out)
					}
					js, _ := json.Marshal(cfg)
					scan("json.Marshal", string(js))
				}

				// Invalid: the secret in the secret key and pasted into every
				// other key too, so every message has a chance to quote it.
				doc := exampleDoc(t)
				_, inst := instanceOf(doc, rt.section, rt.typ)
				leafPaths(rt.t, nil, func(p []string, leaf reflect.Type) {
					switch leaf.Kind() {
					case reflect.Slice:
						setRaw(inst, p, []any{planted})
					case reflect.Map:
						setRaw(inst, p, map[string]any{planted: map[string]any{planted: planted}})
					default:
						setRaw(inst, p, planted)
					}
				})
				inst[planted] = planted // an unknown key
				doc["log"] = map[string]any{"level": planted, "format": planted}
				doc["state"] = map[string]any{"path": planted, "retention": planted}
				b, _ := yaml.Marshal(doc)
				_, err := Parse(b, []string{"OT_TOKEN=" + planted})
				if err == nil {
					t.Fatal("Parse succeeded")
				}
				if len(messages(err)) < 5 {
					t.Errorf("expected many errors, got %q", messages(err))
				}
				scan("errors", err.Error())
			})
		})
	}
	if secretKeys == 0 {
		t.Fatal("no pipeline.Secret key found in any registered type")
	}
}

func TestErrorsDoNotQuoteValuesOfSecretKeys(t *testing.T) {
	// A secret of the wrong type, or one that fails ${...} expansion.
	for _, token := range []string{"[" + planted + "]", "{" + planted + ": x}", `"${` + planted + `}"`, `"x${NOPE:-` + planted + `"`} {
		_, err := Parse([]byte(withSource(", token: "+token)), nil)
		if err == nil || strings.Contains(err.Error(), planted) {
			t.Errorf("token %s: %v", token, err)
		}
	}
}
