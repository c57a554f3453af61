package configs

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/sinks/file"
)

// exampleEnv is what example.yaml references.
var exampleEnv = []string{"OT_TOKEN=example-t0ken", "MDSS_API_KEY=example-mdss-k3y", "MDSS_HOOK_SECRET=example-mdss-h00k", "HOOK_SECRET=whsec_c2lnbmluZy1zZWNyZXQtb2YtdGhlLWV4YW1wbGUtMzI="}

func TestExampleDecodes(t *testing.T) {
	cfg, err := Load("example.yaml", exampleEnv)
	if err != nil {
		t.Fatalf("example.yaml:\n%s", strings.Join(messages(err), "\n"))
	}
	src, ok := cfg.Sources["plant-a"]
	if !ok || src.Type != otsec.Type || src.OTSecurity == nil || len(cfg.Sources) != 3 {
		t.Fatalf("sources = %+v", cfg.Sources)
	}
	if o := src.OTSecurity; o.URL != "https://10.0.0.5:3003" || o.Token.Reveal() != "example-t0ken" || o.TokenFile != "" {
		t.Errorf("plant-a = %+v", *o)
	}
	st, ok := cfg.Sources["storage"]
	if !ok || st.Type != mdss.Type || st.StorageSecurity == nil || st.StorageSecurity.APIKey.Reveal() != "example-mdss-k3y" {
		t.Fatalf("storage = %+v", st)
	}
	push, ok := cfg.Sources["storage-push"]
	if !ok || push.Type != mdss.ReceiverType || push.MDSSWebhook == nil || push.MDSSWebhook.Secret.Reveal() != "example-mdss-h00k" || push.MDSSWebhook.Source != "storage" {
		t.Fatalf("storage-push = %+v", push)
	}
	sink, ok := cfg.Sinks["archive"]
	if !ok || sink.Type != file.Type || sink.File == nil || sink.File.Path != "out/events.jsonl" || len(cfg.Sinks) != 4 {
		t.Fatalf("sinks = %+v", cfg.Sinks)
	}

	// Every other value shown is the default: the example resolves to the
	// same configuration as one that sets only the required keys.
	want := mustParse(t, `
sources:
  plant-a: {type: otsecurity, url: "https://10.0.0.5:3003", token: example-t0ken}
  storage: {type: storage_security, url: "https://mdss.example", api_key: example-mdss-k3y}
  storage-push: {type: mdss_webhook, secret: example-mdss-h00k, source: storage}
sinks:
  archive: {type: file, path: out/events.jsonl}
  bus: {type: nats, jetstream: true}
  siem: {type: syslog, address: "tcp://127.0.0.1:6514"}
  soar: {type: webhook, url: "https://soar.example/hook", secret: "whsec_c2lnbmluZy1zZWNyZXQtb2YtdGhlLWV4YW1wbGUtMzI="}
`)
	got, _ := cfg.Redacted()
	wantOut, _ := want.Redacted()
	if string(got) != string(wantOut) {
		t.Errorf("example.yaml does not show the defaults:\n%s\nwant\n%s", got, wantOut)
	}
}

// allKeys lists every koanf key of struct type t and the structs inside it.
func allKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		key, ok := koanfKey(t.Field(i))
		if !ok {
			continue
		}
		keys = append(keys, key)
		ft := t.Field(i).Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			keys = append(keys, allKeys(ft)...)
		}
	}
	return keys
}

// block returns the lines of the YAML block under the first line, at or after
// line from, that is exactly indent + key + ":" (with anything after it):
// every following line that is blank or indented deeper.
func block(lines []string, from int, indent, key string) ([]string, int) {
	for i := from; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], indent+key+":") {
			continue
		}
		end := i + 1
		for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || len(lines[end])-len(strings.TrimLeft(lines[end], " ")) > len(indent)) {
			end++
		}
		return lines[i:end], i
	}
	return nil, -1
}

// TestExampleDocumentsEveryKey checks that every key of every section and
// registered type appears, with a comment, in that section's or an
// instance's block of example.yaml. Alternatives that cannot be set at the
// same time (token_file, sites items) may appear in a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	check := func(what string, blk []string, keys []string) {
		t.Helper()
		if blk == nil {
			t.Errorf("example.yaml has no %s", what)
			return
		}
		for _, key := range keys {
			re := regexp.MustCompile(`(^|[\s{,#-])` + regexp.QuoteMeta(key) + `:`)
			found := false
			for i, line := range blk {
				if !re.MatchString(line) {
					continue
				}
				found = true
				trimmed := strings.TrimSpace(line)
				if !strings.HasPrefix(trimmed, "#") && (i == 0 || !strings.HasPrefix(strings.TrimSpace(blk[i-1]), "#")) && !strings.Contains(line, " # ") {
					t.Errorf("example.yaml: %s key %q has no comment", what, key)
				}
				break
			}
			if !found {
				t.Errorf("example.yaml: %s does not document key %q", what, key)
			}
		}
	}

	cfgType := reflect.TypeFor[Config]()
	for _, section := range []string{"state", "admin", "log"} {
		f, _ := fieldByKey(cfgType, section)
		blk, _ := block(lines, 0, "", section)
		check(section, blk, allKeys(f.Type))
	}

	doc := exampleDoc(t)
	for _, rt := range registeredTypes() {
		name, _ := instanceOf(doc, rt.section, rt.typ)
		if name == "" {
			t.Errorf("example.yaml has no %s of type %s", rt.section, rt.typ)
			continue
		}
		_, at := block(lines, 0, "", rt.section)
		blk, _ := block(lines, at, "  ", name)
		check(rt.section+"."+name+" ("+rt.typ+")", blk, allKeys(rt.t))
	}
}
