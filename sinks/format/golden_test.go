package format

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

var update = flag.Bool("update", false, "rewrite the test events and golden files in testdata/")

// goldenExt is the golden file extension per format.
var goldenExt = map[string]string{CEF: ".cef", LEEF: ".leef", OCSF: ".ocsf.json"}

// TestEventFiles keeps testdata/events/<name>.json equal to what
// pipeline.MarshalEvent writes for the Go-built test events, so the golden
// files are renderings of real journal JSON.
func TestEventFiles(t *testing.T) {
	for name, e := range testEvents() {
		t.Run(name, func(t *testing.T) {
			data, err := pipeline.MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, '\n')
			path := filepath.Join("testdata", "events", name+".json")
			if *update {
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("%s is stale:\n got %s\nwant %s(run go test -update)", path, got, data)
			}
		})
	}
}

// eventFiles returns every test event in testdata/events: name → JSON.
func eventFiles(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 12 {
		t.Fatalf("found %d test events in testdata/events, want at least 12", len(paths))
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = bytes.TrimSpace(b)
	}
	return out
}

// TestGolden renders every test event in every format and compares the
// result with testdata/golden/<event><ext>; -update rewrites the files.
func TestGolden(t *testing.T) {
	events := eventFiles(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range events {
			if !yield(n) {
				return
			}
		}
	})
	for _, format := range []string{CEF, LEEF, OCSF} {
		f, err := New(format)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			t.Run(format+"/"+name, func(t *testing.T) {
				got, err := f.Append([]byte("prefix:"), events[name])
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				got, ok := bytes.CutPrefix(got, []byte("prefix:"))
				if !ok {
					t.Fatalf("Append did not append to dst: %q", got)
				}
				if i := bytes.IndexAny(got, "\n\r"); i >= 0 {
					t.Fatalf("rendering has a line break at %d: %q", i, got)
				}
				got = append(got, '\n')
				path := filepath.Join("testdata", "golden", name+goldenExt[format])
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs:\n got %s\nwant %s", path, got, want)
				}
			})
		}
	}
}
