package file

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestDirectIOWritesTheSameFile delivers batches whose sizes end at every
// kind of offset (inside a block, on a boundary, spanning many blocks) and
// checks that the file is byte for byte what the page-cache path writes,
// also across a reopen of a file whose size is not block-aligned and a
// rotation.
func TestDirectIOWritesTheSameFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct I/O is used on Linux only")
	}
	type step struct{ n, size int }
	steps := []step{{1, 100}, {3, 1000}, {40, 1024}, {1, 4096}, {7, 333}, {200, 900}, {2, 2048}, {1, 4000}, {90, 1111}, {1, 50}, {2, 60}}
	run := func(t *testing.T, direct string) (string, bool) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		cfg := testConfig(path)
		cfg.DirectIO = direct
		cfg.MaxBytes = 256 << 10 // rotates once or twice on the way
		s := mustNew(t, cfg, nil)
		usedDirect := false
		seq := uint64(1)
		for i, st := range steps {
			if i == len(steps)/2 {
				// Reopen mid-way: the tail comes back from the file.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = mustNew(t, cfg, nil)
			}
			if err := s.Deliver(context.Background(), entries(seq, st.n, st.size)); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if direct == DirectAuto && s.dio == nil && !usedDirect {
				break // the file system refuses O_DIRECT: skipped below
			}
			if direct == DirectAuto && (s.dio == nil || s.directRefused) {
				t.Fatalf("step %d: direct I/O was given up on", i)
			}
			usedDirect = s.dio != nil
			seq += uint64(st.n)
		}
		var all strings.Builder
		for _, p := range []string{path + ".2", path + ".1", path} {
			if b, err := os.ReadFile(p); err == nil {
				all.Write(b)
			}
		}
		return all.String(), usedDirect
	}
	want, used := run(t, DirectOff)
	if used {
		t.Fatal("direct_io: off opened an O_DIRECT descriptor")
	}
	got, used := run(t, DirectAuto)
	if !used {
		t.Skip("the test directory's file system refuses O_DIRECT; nothing to compare")
	}
	if got != want {
		t.Fatalf("direct I/O wrote %d bytes that differ from the page-cache path's %d", len(got), len(want))
	}
	var wantAll []pipeline.Entry
	seq := uint64(1)
	for _, st := range steps {
		wantAll = append(wantAll, entries(seq, st.n, st.size)...)
		seq += uint64(st.n)
	}
	if got != lines(wantAll) {
		t.Fatal("the files do not hold every event once, in order")
	}
}

// TestDirectIOFallsBackWhereRefused plays a file system that refuses
// O_DIRECT (tmpfs before Linux 6.6, some network file systems): the sink
// says so once and writes every line through the page cache.
func TestDirectIOFallsBackWhereRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct I/O is used on Linux only")
	}
	orig := openDirect
	openDirect = func(path string) (*os.File, error) {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EINVAL}
	}
	t.Cleanup(func() { openDirect = orig })
	core, logs := observer.New(zap.InfoLevel)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	cfg := testConfig(path)
	cfg.MaxBytes = 16 << 10 // rotations open the file again: still one line
	s := mustNew(t, cfg, zap.New(core))
	var all []pipeline.Entry
	for i := range 5 {
		b := entries(uint64(1+10*i), 10, 1000)
		if err := s.Deliver(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if s.dio != nil {
		t.Fatal("the sink has an O_DIRECT descriptor although opening one failed")
	}
	if n := logs.FilterMessageSnippet("does not take O_DIRECT").Len(); n != 1 {
		t.Errorf("%d log lines about the refusal, want 1", n)
	}
	got := readFile(t, path+".1") + readFile(t, path)
	if !strings.HasSuffix(lines(all), got) || !strings.HasSuffix(got, lines(all[40:])) {
		t.Error("the files do not end with the delivered batches in order")
	}
}
