package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/pipeline"
)

// entries returns n entries with seq start, start+1, ..., each data exactly
// size bytes of JSON.
func entries(start uint64, n, size int) []pipeline.Entry {
	out := make([]pipeline.Entry, n)
	for i := range out {
		seq := start + uint64(i)
		head := fmt.Sprintf(`{"id":"ev-%08d","pad":"`, seq)
		const tail = `"}`
		pad := size - len(head) - len(tail)
		if pad < 0 {
			panic("entry size too small")
		}
		out[i] = pipeline.Entry{Seq: seq, Data: []byte(head + strings.Repeat("x", pad) + tail)}
	}
	return out
}

// lines renders entries as the file should hold them.
func lines(es ...[]pipeline.Entry) string {
	var b strings.Builder
	for _, batch := range es {
		for _, e := range batch {
			b.Write(e.Data)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func testConfig(path string) Config {
	cfg := DefaultConfig()
	cfg.Path = path
	return cfg
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNew(t *testing.T, cfg Config, log *zap.Logger) *Sink {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestDeliverWritesLinesInOrder(t *testing.T) {
	tests := []struct {
		name    string
		sync    string
		batches []int // events per batch
		size    int
		reopen  int // close and reopen the sink after this many batches (0: never)
	}{
		{name: "one event", sync: SyncBatch, batches: []int{1}, size: 40},
		{name: "several batches", sync: SyncBatch, batches: []int{3, 1, 7, 0, 2}, size: 100},
		{name: "sync none", sync: SyncNone, batches: []int{5, 5, 5}, size: 1200},
		{name: "append after reopen", sync: SyncBatch, batches: []int{4, 4, 4, 4}, size: 300, reopen: 2},
		{name: "large batch", sync: SyncBatch, batches: []int{5000}, size: 1200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			cfg := testConfig(path)
			cfg.Sync = tt.sync
			s := mustNew(t, cfg, nil)
			var want []pipeline.Entry
			seq := uint64(1)
			for i, n := range tt.batches {
				if tt.reopen > 0 && i == tt.reopen {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = mustNew(t, cfg, nil)
				}
				batch := entries(seq, n, tt.size)
				seq += uint64(n)
				if err := s.Deliver(context.Background(), batch); err != nil {
					t.Fatalf("Deliver batch %d: %v", i, err)
				}
				want = append(want, batch...)
			}
			got := readFile(t, path)
			if got != lines(want) {
				gotLines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
				first := len(gotLines)
				for i := range min(len(gotLines), len(want)) {
					if gotLines[i] != string(want[i].Data) {
						first = i
						break
					}
				}
				t.Fatalf("file holds %d lines (%d bytes), want %d lines (%d bytes) equal to the input in order; first difference at line %d",
					len(gotLines), len(got), len(want), len(lines(want)), first+1)
			}
		})
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		name  string
		umask int
	}{
		{"umask 022", 0o022},
		{"umask 077", 0o077},
		// Takes the owner's write and exec bits: without a chmod after
		// create the directories would be 0500 and the file 0400.
		{"umask 277", 0o277},
		{"umask 000", 0o000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, "a", "b", "events.jsonl")
			cfg := testConfig(path)
			cfg.MaxBytes = 4096
			old := syscall.Umask(tt.umask)
			s, err := New(cfg, nil)
			if err == nil {
				// Two batches of 3000 bytes: the second rotates.
				for i := range 2 {
					if err = s.Deliver(context.Background(), entries(uint64(i*3), 3, 999)); err != nil {
						break
					}
				}
			}
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				path string
				want os.FileMode
			}{
				{root, 0o755}, // existed: left alone
				{filepath.Join(root, "a"), 0o700},
				{filepath.Join(root, "a", "b"), 0o700},
				{path, 0o600},
				{path + ".1", 0o600},
			} {
				if got := mode(t, c.path); got != c.want {
					t.Errorf("%s: mode %#o, want %#o", c.path, got, c.want)
				}
			}
		})
	}
}

func TestExistingFileKeepsItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, testConfig(path), nil)
	if err := s.Deliver(context.Background(), entries(1, 1, 50)); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, path); got != 0o640 {
		t.Fatalf("mode %#o, want the operator's 0640 kept", got)
	}
}

func TestRotationRetention(t *testing.T) {
	// Lines of 1000 bytes, batches of 2 lines, max_bytes 4096: a file holds
	// two batches; 12 batches fill 6 files, which is 5 rotations.
	const (
		perBatch  = 2
		batches   = 12
		perFile   = 4
		rotations = 5
	)
	for _, maxFiles := range []int{0, 1, 2, 5, 10} {
		t.Run(fmt.Sprintf("max_files=%d", maxFiles), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.jsonl")
			cfg := testConfig(path)
			cfg.MaxBytes = 4096
			cfg.MaxFiles = maxFiles
			core, logs := observer.New(zap.InfoLevel)
			s := mustNew(t, cfg, zap.New(core))
			var all []pipeline.Entry
			for i := range batches {
				batch := entries(uint64(i*perBatch), perBatch, 999)
				if err := s.Deliver(context.Background(), batch); err != nil {
					t.Fatalf("Deliver batch %d: %v", i, err)
				}
				all = append(all, batch...)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := logs.FilterMessage("file sink rotated").Len(); got != rotations {
				t.Errorf("%d rotations logged, want %d", got, rotations)
			}
			if got := logs.Len(); got != rotations {
				t.Errorf("%d log lines, want one per rotation (%d)", got, rotations)
			}

			kept := min(maxFiles, rotations)
			wantNames := []string{"events.jsonl"}
			for i := 1; i <= kept; i++ {
				wantNames = append(wantNames, fmt.Sprintf("events.jsonl.%d", i))
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var gotNames []string
			for _, de := range des {
				gotNames = append(gotNames, de.Name())
			}
			sort.Strings(wantNames)
			if !slices.Equal(gotNames, wantNames) {
				t.Fatalf("files %v, want %v", gotNames, wantNames)
			}

			if got, want := readFile(t, path), lines(all[len(all)-perFile:]); got != want {
				t.Errorf("active file does not hold the newest %d events", perFile)
			}
			// Oldest first: .kept, ..., .1, active.
			var cat strings.Builder
			for i := kept; i >= 1; i-- {
				c := readFile(t, fmt.Sprintf("%s.%d", path, i))
				if len(c) > int(cfg.MaxBytes) {
					t.Errorf("%s.%d holds %d bytes, more than max_bytes", path, i, len(c))
				}
				cat.WriteString(c)
			}
			cat.WriteString(readFile(t, path))
			keptEvents := (kept + 1) * perFile
			if got, want := cat.String(), lines(all[len(all)-keptEvents:]); got != want {
				t.Errorf("kept files' concatenation (%d bytes) is not the last %d events in order (%d bytes)",
					len(got), keptEvents, len(want))
			}
		})
	}
}

func TestRotationDeletesFilesBeyondMaxFiles(t *testing.T) {
	// Left by an earlier run with a larger max_files.
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	for _, name := range []string{"events.jsonl.1", "events.jsonl.2", "events.jsonl.3", "events.jsonl.9", "events.jsonl.old", "events.jsonl.07"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(path)
	cfg.MaxBytes = 4096
	cfg.MaxFiles = 2
	s := mustNew(t, cfg, nil)
	first := entries(0, 3, 999)
	second := entries(3, 3, 999)
	for _, b := range [][]pipeline.Entry{first, second} {
		if err := s.Deliver(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	// Not ours (no plain positive number): events.jsonl.old, events.jsonl.07.
	want := []string{"events.jsonl", "events.jsonl.07", "events.jsonl.1", "events.jsonl.2", "events.jsonl.old"}
	if !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if c := readFile(t, path+".1"); c != lines(first) {
		t.Errorf(".1 does not hold the first batch")
	}
	if c := readFile(t, path+".2"); c != "events.jsonl.1\n" {
		t.Errorf(".2 = %q, want the old .1", c)
	}
}

func TestBatchLargerThanMaxBytes(t *testing.T) {
	small1, big, small2 := entries(0, 1, 999), entries(1, 10, 999), entries(11, 1, 999) // 1000, 10000, 1000 bytes
	tests := []struct {
		name    string
		batches [][]pipeline.Entry
		want    []string // file contents: active, .1, .2
	}{
		{
			name:    "big batch into an empty file",
			batches: [][]pipeline.Entry{big},
			want:    []string{lines(big)},
		},
		{
			name:    "big batch after a small one, then another small one",
			batches: [][]pipeline.Entry{small1, big, small2},
			want:    []string{lines(small2), lines(big), lines(small1)},
		},
		{
			name:    "two big batches",
			batches: [][]pipeline.Entry{big, big},
			want:    []string{lines(big), lines(big)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.jsonl")
			cfg := testConfig(path)
			cfg.MaxBytes = 4096
			s := mustNew(t, cfg, nil)
			for _, b := range tt.batches {
				if err := s.Deliver(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(des) != len(tt.want) {
				t.Fatalf("%d files, want %d", len(des), len(tt.want))
			}
			for i, want := range tt.want {
				name := path
				if i > 0 {
					name = fmt.Sprintf("%s.%d", path, i)
				}
				if got := readFile(t, name); got != want {
					t.Errorf("%s holds %d bytes, want %d", name, len(got), len(want))
				}
			}
		})
	}
}

func TestRepairPartialLineOnOpen(t *testing.T) {
	longTail := strings.Repeat("x", 3*repairChunk+17)
	tests := []struct {
		name    string
		content string
		want    string
		cut     int64 // 0: no warning expected
	}{
		{name: "empty file", content: "", want: ""},
		{name: "complete lines", content: "{\"a\":1}\n{\"b\":2}\n", want: "{\"a\":1}\n{\"b\":2}\n"},
		{name: "partial last line", content: "{\"a\":1}\n{\"b\":", want: "{\"a\":1}\n", cut: 5},
		{name: "no newline at all", content: "{\"a\":1", want: "", cut: 6},
		{name: "tail longer than a read chunk", content: "{\"a\":1}\n" + longTail, want: "{\"a\":1}\n", cut: int64(len(longTail))},
		{name: "newline just before a chunk boundary", content: strings.Repeat("y", repairChunk-1) + "\n" + longTail,
			want: strings.Repeat("y", repairChunk-1) + "\n", cut: int64(len(longTail))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.WarnLevel)
			s := mustNew(t, testConfig(path), zap.New(core))
			if got := readFile(t, path); got != tt.want {
				t.Fatalf("after open the file holds %d bytes, want %d", len(got), len(tt.want))
			}
			warns := logs.All()
			switch {
			case tt.cut == 0 && len(warns) != 0:
				t.Errorf("unexpected log: %v", warns[0].Message)
			case tt.cut != 0 && len(warns) != 1:
				t.Errorf("%d warnings, want 1", len(warns))
			case tt.cut != 0:
				if got := warns[0].ContextMap()["bytes_cut"]; got != tt.cut {
					t.Errorf("bytes_cut = %v, want %d", got, tt.cut)
				}
			}
			e := entries(1, 2, 60)
			if err := s.Deliver(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != tt.want+lines(e) {
				t.Errorf("after a batch the file is not the repaired content plus the batch")
			}
		})
	}
}

// TestBadEntriesAreRejected: an entry that cannot be a line is handed back
// for dead-letter, and the rest of its batch is written.
func TestBadEntriesAreRejected(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"newline inside", "{\"a\":\n1}"},
		{"trailing newline", "{\"a\":1}\n"},
		{"only a newline", "\n"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			s := mustNew(t, testConfig(path), nil)
			before := entries(1, 2, 50)
			if err := s.Deliver(context.Background(), before); err != nil {
				t.Fatal(err)
			}
			batch := entries(3, 3, 50)
			batch[1].Data = []byte(tt.data)
			err := s.Deliver(context.Background(), batch)
			var rej *pipeline.RejectedError
			if !errors.As(err, &rej) || rej.Err != nil || len(rej.Items) != 1 || rej.Items[0].Index != 1 {
				t.Fatalf("err = %v, want entry 1 rejected and the rest written", err)
			}
			if r := rej.Items[0].Reason; !strings.Contains(r, path) || !strings.Contains(r, "seq 4") {
				t.Errorf("reason %q should name the path and the entry's seq", r)
			}
			if got := readFile(t, path); got != lines(before, []pipeline.Entry{batch[0], batch[2]}) {
				t.Errorf("file is not the earlier batch plus the two good entries")
			}
			// The sink stays usable.
			after := entries(3, 1, 50)
			if err := s.Deliver(context.Background(), after); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != lines(before, []pipeline.Entry{batch[0], batch[2]}, after) {
				t.Errorf("file not as expected after the next good batch")
			}
		})
	}
}

const efbigEnv = "MDBTEST_FILESINK_EFBIG_DIR"

// TestWriteFailureLeavesNoPartialLine makes a real write fail part-way: a
// child process lowers its RLIMIT_FSIZE so that a batch can only partly fit,
// which the kernel answers with a short write and then EFBIG.
func TestWriteFailureLeavesNoPartialLine(t *testing.T) {
	first := entries(1, 5, 999)  // 5000 bytes
	second := entries(6, 6, 999) // 6000 bytes: only 5000 fit under the limit
	const limit = 10000

	if dir := os.Getenv(efbigEnv); dir != "" {
		efbigChild(t, filepath.Join(dir, "events.jsonl"), limit, first, second)
		fmt.Println("efbig-scenario-done")
		return
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFailureLeavesNoPartialLine$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), efbigEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("efbig-scenario-done")) {
		t.Fatalf("child failed (%v):\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(dir, "events.jsonl")); got != lines(first, second) {
		t.Fatalf("after the retry the file holds %d bytes, want both batches (%d bytes)", len(got), len(lines(first, second)))
	}
}

func efbigChild(t *testing.T, path string, limit uint64, first, second []pipeline.Entry) {
	signal.Ignore(syscall.SIGXFSZ)
	s := mustNew(t, testConfig(path), nil)
	if err := s.Deliver(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur < 1<<20 { // RLIM_INFINITY is the largest value
		t.Skipf("RLIMIT_FSIZE already %d", old.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	for attempt := range 2 {
		err := s.Deliver(context.Background(), second)
		if err == nil {
			t.Fatalf("attempt %d: Deliver succeeded past RLIMIT_FSIZE", attempt)
		}
		if !errors.Is(err, syscall.EFBIG) {
			t.Errorf("attempt %d: err = %v, want EFBIG wrapped", attempt, err)
		}
		if pipeline.IsPermanent(err) {
			t.Errorf("attempt %d: a write failure must be retryable, got %v", attempt, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("attempt %d: error %q does not name the path", attempt, err)
		}
		if got := readFile(t, path); got != lines(first) {
			t.Fatalf("attempt %d: after the failed batch the file holds %d bytes, want only the first batch (%d bytes)",
				attempt, len(got), len(lines(first)))
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), second); err != nil {
		t.Fatalf("retry after space came back: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverAfterCloseAndCanceled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := mustNew(t, testConfig(path), nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, entries(1, 1, 40)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := s.Deliver(context.Background(), entries(1, 1, 40))
	if !errors.Is(err, os.ErrClosed) || pipeline.IsPermanent(err) {
		t.Errorf("after Close: err = %v, want a retryable error wrapping os.ErrClosed", err)
	}
	if got := readFile(t, path); got != "" {
		t.Errorf("file = %q, want empty", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	isDir := filepath.Join(dir, "a-dir")
	if err := os.Mkdir(isDir, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"parent is a file", testConfig(filepath.Join(blocker, "events.jsonl"))},
		{"path is a directory", testConfig(isDir)},
		{"invalid config", func() Config { c := testConfig(filepath.Join(dir, "x.jsonl")); c.Sync = "always"; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, nil)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.cfg.Path) {
				t.Errorf("error %q does not name the path", err)
			}
		})
	}
}

// TestREADMEConfigMatchesConfig keeps the README's example in step with
// Config: the same keys as the koanf tags, and the defaults of DefaultConfig.
func TestREADMEConfigMatchesConfig(t *testing.T) {
	block := readmeYAML(t)
	var doc struct {
		Sinks map[string]map[string]any `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("README yaml block: %v", err)
	}
	if len(doc.Sinks) != 1 {
		t.Fatalf("README yaml block should configure exactly one sink, has %d", len(doc.Sinks))
	}
	var keys map[string]any
	for _, v := range doc.Sinks {
		keys = v
	}
	if keys["type"] != Type {
		t.Errorf("README example has type %v, want %q", keys["type"], Type)
	}
	delete(keys, "type")

	def := reflect.ValueOf(DefaultConfig())
	typ := def.Type()
	var tags []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		tags = append(tags, tag)
		v, ok := keys[tag]
		if !ok {
			continue // reported by the key comparison below
		}
		dv := def.Field(i)
		if dv.IsZero() {
			continue // no default (path): the README shows an example
		}
		switch d := dv.Interface().(type) {
		case pipeline.ByteSize:
			got, err := pipeline.ParseByteSize(fmt.Sprint(v))
			if err != nil || got != d {
				t.Errorf("README %s: %v, default is %s", tag, v, d)
			}
		default:
			if fmt.Sprint(v) != fmt.Sprint(d) {
				t.Errorf("README %s: %v, default is %v", tag, v, d)
			}
		}
	}
	var readmeKeys []string
	for k := range keys {
		readmeKeys = append(readmeKeys, k)
	}
	sort.Strings(tags)
	sort.Strings(readmeKeys)
	if !slices.Equal(readmeKeys, tags) {
		t.Errorf("README keys %v, Config koanf tags %v", readmeKeys, tags)
	}
}

func readmeYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	_, rest, ok := strings.Cut(s, "```yaml\n")
	if !ok {
		t.Fatal("README.md has no ```yaml block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README.md yaml block is not closed")
	}
	if strings.Contains(rest[len(block):], "```yaml") {
		t.Fatal("README.md has more than one yaml block; the test reads the first only")
	}
	return block
}
