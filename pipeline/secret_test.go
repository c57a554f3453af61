package pipeline_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

const secValue = "s3cr3t-T0ken-value"

// secHolder is how configuration holds a secret.
type secHolder struct {
	Name  string          `json:"name"`
	Token pipeline.Secret `json:"token"`
	Ptr   *pipeline.Secret
}

func TestSecretNeverPrints(t *testing.T) {
	s := pipeline.Secret(secValue)
	h := secHolder{Name: "em", Token: s, Ptr: &s}
	verbs := []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%10s", "%-30v", "%d", "%t", "%T %v"}
	for _, verb := range verbs {
		for name, arg := range map[string]any{"Secret": s, "*Secret": &s, "struct": h, "*struct": &h, "slice": []pipeline.Secret{s}, "map": map[string]pipeline.Secret{"k": s}} {
			got := fmt.Sprintf(verb, arg)
			if strings.Contains(got, secValue) || strings.Contains(got, fmt.Sprintf("%x", secValue)) || strings.Contains(got, fmt.Sprintf("%X", secValue)) {
				t.Errorf("Sprintf(%q, %s) = %q reveals the secret", verb, name, got)
			}
		}
	}
	if got := fmt.Sprint(s); got != pipeline.Redacted {
		t.Errorf("Sprint(secret) = %q; want %q", got, pipeline.Redacted)
	}
	if got := fmt.Sprintf("%#v", s); got != pipeline.Redacted {
		t.Errorf("Sprintf(%%#v, secret) = %q; want %q", got, pipeline.Redacted)
	}
	if got := s.Reveal(); got != secValue {
		t.Errorf("Reveal() = %q; want the value", got)
	}
}

func TestSecretMarshal(t *testing.T) {
	s := pipeline.Secret(secValue)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"struct", secHolder{Name: "em", Token: s}, `{"name":"em","token":"[REDACTED]","Ptr":null}`},
		{"pointer field", secHolder{Ptr: &s}, `{"name":"","token":"","Ptr":"[REDACTED]"}`},
		{"bare", s, `"[REDACTED]"`},
		{"map value", map[string]pipeline.Secret{"k": s}, `{"k":"[REDACTED]"}`},
		// (Not tested: a Secret as a map key. encoding/json writes keys of
		// a string kind directly, without MarshalText.)
		{"empty", pipeline.Secret(""), `""`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Errorf("%s: json.Marshal error %v", tc.name, err)
			continue
		}
		if strings.Contains(string(b), secValue) {
			t.Errorf("%s: json.Marshal = %s reveals the secret", tc.name, b)
		}
		if string(b) != tc.want {
			t.Errorf("%s: json.Marshal = %s; want %s", tc.name, b, tc.want)
		}
	}
	txt, err := s.MarshalText()
	if err != nil || string(txt) != pipeline.Redacted {
		t.Errorf("MarshalText = %q, %v; want %q", txt, err, pipeline.Redacted)
	}
	if got := pipeline.Secret("").String(); got != "" {
		t.Errorf("empty Secret String() = %q; want \"\"", got)
	}
}

// TestCredentialNeverPrints: a Credential holds the value it read; printing
// one (say, %+v of a client in a debug log) must not reveal it.
func TestCredentialNeverPrints(t *testing.T) {
	inline := pipeline.NewCredential(secValue, "")
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(secValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := pipeline.NewCredential("", path)
	if _, err := file.Get(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*pipeline.Credential{"inline": inline, "file": file} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if got := fmt.Sprintf(verb, c); strings.Contains(got, secValue) {
				t.Errorf("Sprintf(%q, %s credential) = %q reveals the secret", verb, name, got)
			}
		}
		if b, err := json.Marshal(c); err != nil || strings.Contains(string(b), secValue) {
			t.Errorf("json.Marshal(%s credential) = %s, %v", name, b, err)
		}
	}
}

func TestCredentialInline(t *testing.T) {
	c := pipeline.NewCredential(secValue, "")
	if got, err := c.Get(); err != nil || got != secValue {
		t.Errorf("inline Get() = %q, %v; want the value", got, err)
	}
	if got, err := pipeline.NewCredential("", "").Get(); err != nil || got != "" {
		t.Errorf("empty Get() = %q, %v; want \"\", nil", got, err)
	}
	var nilCred *pipeline.Credential
	if got, err := nilCred.Get(); err != nil || got != "" {
		t.Errorf("nil Get() = %q, %v; want \"\", nil", got, err)
	}
}

func secWrite(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	secWrite(t, path, "  first-token\n", t0)
	c := pipeline.NewCredential("inline-ignored", path)

	steps := []struct {
		name    string
		do      func()
		want    string
		wantErr string // substring
	}{
		{name: "initial read, trimmed", do: func() {}, want: "first-token"},
		{name: "unchanged", do: func() {}, want: "first-token"},
		{name: "same size, new mtime", do: func() { secWrite(t, path, "  secnd-token\n", t0.Add(time.Minute)) }, want: "secnd-token"},
		{name: "longer, same mtime", do: func() { secWrite(t, path, "third-token-longer", t0.Add(time.Minute)) }, want: "third-token-longer"},
		{name: "rotated by rename", do: func() {
			tmp := filepath.Join(dir, "token.new")
			secWrite(t, tmp, "fourth-token\r\n", t0.Add(2*time.Minute))
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, want: "fourth-token"},
		{name: "emptied", do: func() { secWrite(t, path, "", t0.Add(3*time.Minute)) }, wantErr: "empty"},
		{name: "whitespace only", do: func() { secWrite(t, path, " \n\t\n", t0.Add(4*time.Minute)) }, wantErr: "empty"},
		{name: "back", do: func() { secWrite(t, path, "fifth-token", t0.Add(5*time.Minute)) }, want: "fifth-token"},
		{name: "removed", do: func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "token"},
		{name: "restored", do: func() { secWrite(t, path, "sixth-token", t0.Add(6*time.Minute)) }, want: "sixth-token"},
	}
	for _, st := range steps {
		st.do()
		got, err := c.Get()
		if st.wantErr != "" {
			if err == nil {
				t.Fatalf("%s: Get() = %q, nil; want an error containing %q", st.name, got, st.wantErr)
			}
			if !strings.Contains(err.Error(), st.wantErr) {
				t.Errorf("%s: error %q does not contain %q", st.name, err, st.wantErr)
			}
			for _, v := range []string{"first-token", "secnd-token", "third-token-longer", "fourth-token", "fifth-token", "inline-ignored"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("%s: error %q reveals a secret", st.name, err)
				}
			}
			if got != "" {
				t.Errorf("%s: Get() returned %q with its error; want \"\"", st.name, got)
			}
			continue
		}
		if err != nil || got != st.want {
			t.Fatalf("%s: Get() = %q, %v; want %q", st.name, got, err, st.want)
		}
	}
}

func TestCredentialMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-token")
	c := pipeline.NewCredential(secValue, path)
	got, err := c.Get()
	if err == nil {
		t.Fatalf("Get() = %q, nil; want an error", got)
	}
	if !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "no-such-token") {
		t.Errorf("error %q does not name the file", err)
	}
	if strings.Contains(err.Error(), secValue) {
		t.Errorf("error %q reveals the inline secret", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestCredentialEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := pipeline.NewCredential("", path).Get()
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Get() = %q, %v; want an error saying the file is empty", got, err)
	}
}

func TestCredentialConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	secWrite(t, path, "tok-0", time.Now().Add(-time.Hour))
	c := pipeline.NewCredential("", path)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if v, err := c.Get(); err == nil && !strings.HasPrefix(v, "tok-") {
					t.Errorf("Get() = %q", v)
					return
				}
			}
		}()
	}
	for i := 1; i < 20; i++ {
		secWrite(t, path, fmt.Sprintf("tok-%d", i), time.Now().Add(time.Duration(i)*time.Second))
	}
	wg.Wait()
}
