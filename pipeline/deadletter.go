package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// deadLetters appends undeliverable events to one JSON-lines file per sink:
// {"time":..., "sink":..., "error":..., "event":{...}}. Each write is synced
// before it returns, because the journal entry is deleted afterwards.
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

func (d *deadLetters) write(sink string, entries []Entry, reason string) error {
	if d.dir == "" {
		return fmt.Errorf("dead-letter: no directory configured")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.files[sink]
	if f == nil {
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return fmt.Errorf("dead-letter: %w", err)
		}
		var err error
		f, err = os.OpenFile(DeadLetterPath(d.dir, sink), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("dead-letter: %w", err)
		}
		d.files[sink] = f
	}
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
