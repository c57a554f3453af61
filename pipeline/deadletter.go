package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// deadLetters appends undeliverable events to one JSON-lines file per sink:
// {"time":..., "sink":..., "seq":..., "error":..., "event":{...}}. Each
// write is synced before it returns, because the journal entry is deleted
// afterwards.
//
// `mdbridge replay` may rename a file away while the bridge runs, so every
// write takes an exclusive lock on the file and first checks that the open
// file is still the one at the path, reopening it when not; the replayer
// takes the same lock after the rename and before reading, so no record can
// land in a file after it has been read.
type deadLetters struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
}

func newDeadLetters(dir string) *deadLetters {
	return &deadLetters{dir: dir, files: map[string]*os.File{}}
}

// DeadLetterPath is the dead-letter file of a sink within dir.
func DeadLetterPath(dir, sink string) string {
	return filepath.Join(dir, sink+".deadletter.jsonl")
}

// DeadLetter is one record of a dead-letter file.
type DeadLetter struct {
	// Time is when the event was given up on.
	Time time.Time `json:"time"`
	// Sink is the sink that could not take it.
	Sink string `json:"sink"`
	// Seq is the event's journal sequence number.
	Seq uint64 `json:"seq"`
	// Error says why.
	Error string `json:"error"`
	// Event is the event's schema-v1 JSON.
	Event json.RawMessage `json:"event"`
}

// open returns the sink's file, reopened when the path no longer names it.
// The caller holds d.mu.
func (d *deadLetters) open(sink string) (*os.File, error) {
	path := DeadLetterPath(d.dir, sink)
	if f := d.files[sink]; f != nil {
		if sameFile(f, path) {
			return f, nil
		}
		_ = f.Close()
		delete(d.files, sink)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("dead-letter: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dead-letter: %w", err)
	}
	d.files[sink] = f
	return f, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func (d *deadLetters) write(sink string, entries []Entry, reason string) error {
	if d.dir == "" {
		return fmt.Errorf("dead-letter: no directory configured")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var f *os.File
	for range 3 {
		var err error
		if f, err = d.open(sink); err != nil {
			return err
		}
		if err := lockFile(f); err != nil {
			return fmt.Errorf("dead-letter %s: lock: %w", f.Name(), err)
		}
		if sameFile(f, DeadLetterPath(d.dir, sink)) {
			break
		}
		_ = unlockFile(f) // renamed by a replay between open and lock
		f = nil
	}
	if f == nil {
		return fmt.Errorf("dead-letter %s: the file keeps being renamed", DeadLetterPath(d.dir, sink))
	}
	defer func() { _ = unlockFile(f) }()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var buf []byte
	for _, e := range entries {
		head, _ := json.Marshal(struct {
			Time  string `json:"time"`
			Sink  string `json:"sink"`
			Seq   uint64 `json:"seq"`
			Error string `json:"error"`
		}{now, sink, e.Seq, reason})
		buf = append(buf, head[:len(head)-1]...)
		buf = append(buf, `,"event":`...)
		buf = append(buf, e.Data...)
		buf = append(buf, '}', '\n')
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("dead-letter %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("dead-letter %s: %w", f.Name(), err)
	}
	return nil
}

func (d *deadLetters) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	for _, f := range d.files {
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("dead-letter: %w", err)
		}
	}
	d.files = map[string]*os.File{}
	return first
}

// maxDeadLetterLine bounds one dead-letter record when reading.
const maxDeadLetterLine = 256 << 20

// ReadDeadLetters calls fn with every record of the dead-letter file r, in
// order. A last line without its newline (a write cut short by a crash) is
// skipped and reported in torn; any other malformed line is an error that
// names its line number.
func ReadDeadLetters(r io.Reader, fn func(DeadLetter) error) (torn bool, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			var long []byte
			long = append(long, b...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxDeadLetterLine {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			if len(long) > maxDeadLetterLine {
				return false, fmt.Errorf("line %d: longer than %d bytes", line, maxDeadLetterLine)
			}
			b = long
		}
		if err == io.EOF {
			return len(bytes.TrimSpace(b)) > 0, nil
		}
		if err != nil {
			return false, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var dl DeadLetter
		if jerr := json.Unmarshal(b, &dl); jerr != nil {
			return false, fmt.Errorf("line %d: %w", line, jerr)
		}
		if len(dl.Event) == 0 || dl.Event[0] != '{' {
			return false, fmt.Errorf("line %d: no event object", line)
		}
		if err := fn(dl); err != nil {
			return false, err
		}
	}
}
