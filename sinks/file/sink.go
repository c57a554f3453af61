// Package file is the file sink: it appends events as JSON lines to a local
// file, fsyncs after every batch by default, and rotates the file by size,
// keeping a bounded number of rotated files.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks/format"
)

const (
	fileMode = 0o600
	dirMode  = 0o700

	// maxKeptBuffer is the largest write buffer kept between batches. A
	// default batch (1000 events of ~1.2 KB) fits well below it; a buffer
	// grown past it by an unusually large batch is released after use so
	// memory stays flat.
	maxKeptBuffer = 16 << 20

	// repairChunk is how much of the file's tail is read at a time when
	// looking for the last newline on open.
	repairChunk = 64 << 10
)

// Sink appends events to a file as JSON lines. Deliver and Close are meant to
// be called from the sink's dispatcher goroutine; they are also safe to call
// concurrently (a mutex serialises them). A Sink starts no goroutines.
type Sink struct {
	mu  sync.Mutex
	cfg Config
	log *zap.Logger

	path string // active file
	dir  string // its directory
	base string // its base name; rotated files are base.1, base.2, ...

	f    *os.File // nil after a failed reopen or after Close
	size int64    // bytes in the active file, always at a line boundary

	// dirty is set when a failed batch could not be truncated away; the next
	// Deliver must truncate the file back to size before writing anything.
	dirty bool
	// dirSyncPending is set when a rotation's directory fsync failed; the next
	// Deliver retries it before writing.
	dirSyncPending bool
	closed         bool

	buf    []byte // one write buffer, reused across batches
	format format.Formatter

	// Direct I/O (direct.go): dio is the active file opened with O_DIRECT,
	// tail a copy of the file's last partial block; both nil when the sink
	// writes through the page cache. scratch is an aligned buffer for a
	// batch whose rendering outgrew s.buf.
	dio           *os.File
	tail          []byte
	scratch       []byte
	directRefused bool
}

var _ pipeline.Sink = (*Sink)(nil)

// New validates cfg, creates the file's missing parent directories (mode
// 0700), and opens or creates the file (mode 0600) for appending. If the file
// does not end with a newline, the incomplete last line is cut off and a
// warning is logged. A nil log discards log output.
func New(cfg Config, log *zap.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("file sink %s: invalid config: %w", cfg.Path, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	path := filepath.Clean(cfg.Path)
	f, err := format.New(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("file sink %s: format: %w", cfg.Path, err)
	}
	s := &Sink{
		format: f,
		cfg:    cfg,
		log:    log.With(zap.String("path", path)),
		path:   path,
		dir:    filepath.Dir(path),
		base:   filepath.Base(path),
	}
	if err := mkdirAll(s.dir); err != nil {
		return nil, fmt.Errorf("file sink %s: create directory %s: %w", path, s.dir, err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// Deliver appends batch to the file, one line per entry, with a single write
// of one buffer, then fsyncs the file unless sync is none. When the batch
// would take a non-empty file past max_bytes, the file is rotated first; a
// batch is never split across files.
//
// If the write or the fsync fails, the file is truncated back to its size
// before the batch, so no partial line stays, and the error is returned for
// the dispatcher to retry. An entry that cannot be rendered in the sink's
// format, or whose rendering is empty or holds a newline, is not written:
// it comes back in a pipeline.Rejected error (to dead-letter) while the
// rest of the batch is written.
func (s *Sink) Deliver(ctx context.Context, batch []pipeline.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("file sink %s: %w", s.path, os.ErrClosed)
	}

	// Render first: a bad entry is rejected whatever state the file is in.
	// With direct I/O the rendering follows a copy of the file's last
	// partial block, so the buffer starts at an aligned file offset.
	buf := append(s.buf[:0], s.tail...)
	tail := len(buf)
	var rejected []pipeline.Rejection
	for i := range batch {
		start := len(buf)
		out, err := s.format.Append(buf, batch[i].Data)
		switch {
		case err != nil:
			err = fmt.Errorf("file sink %s: entry seq %d: %w", s.path, batch[i].Seq, err)
		case len(out) == start:
			err = fmt.Errorf("file sink %s: entry seq %d has no data", s.path, batch[i].Seq)
		case bytes.IndexByte(out[start:], '\n') >= 0:
			err = fmt.Errorf("file sink %s: entry seq %d contains a newline, which would break the lines file", s.path, batch[i].Seq)
		}
		if err != nil {
			rejected = append(rejected, pipeline.Rejection{Index: i, Reason: err.Error()})
			buf = out[:start]
			continue
		}
		buf = append(out, '\n')
	}
	switch {
	case cap(buf) > maxKeptBuffer:
		s.buf = nil
	case s.dio != nil && !aligned(buf):
		// Rendering outgrew the aligned buffer; the next one is aligned.
		s.buf = alignedBuffer(nil, cap(buf))
	default:
		s.buf = buf[:0]
	}
	done := func(err error) error {
		if len(rejected) > 0 && err == nil {
			return pipeline.Rejected(rejected, nil)
		}
		return err
	}
	n := int64(len(buf) - tail)
	if n == 0 {
		return done(nil)
	}

	if s.f == nil {
		// A rotation could not open the fresh file; try again.
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.dirty {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("file sink %s: truncate back to %d bytes after a failed batch: %w", s.path, s.size, unwrapPath(err))
		}
		s.dirty = false
	}
	if s.size > 0 && s.size+n > int64(s.cfg.MaxBytes) {
		if err := s.rotate(); err != nil {
			return err
		}
		buf, tail = buf[tail:], 0 // a fresh file has no tail
	}
	if s.dirSyncPending {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("file sink %s: fsync directory %s: %w", s.path, s.dir, unwrapPath(err))
		}
		s.dirSyncPending = false
	}

	if err := s.writeBatch(buf, tail); err != nil {
		return s.undo("write", len(batch), err)
	}
	if s.cfg.Sync != SyncNone {
		if err := s.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: whether the batch is on disk is unknown. Cut it off so
			// the retry writes it exactly once more.
			return s.undo("fsync", len(batch), err)
		}
	}
	s.size += n
	s.keepTail(buf)
	return done(nil)
}

// undo truncates the file back to the size before a failed batch and returns
// the batch's error, joined with the truncation's error if that failed too.
func (s *Sink) undo(op string, events int, cause error) error {
	err := fmt.Errorf("file sink %s: %s batch of %d events: %w", s.path, op, events, unwrapPath(cause))
	if terr := s.f.Truncate(s.size); terr != nil {
		s.dirty = true
		s.log.Error("file sink could not remove a partly written batch; will retry before the next write",
			zap.Int64("size", s.size), zap.Error(terr))
		return errors.Join(err, fmt.Errorf("file sink %s: truncate back to %d bytes: %w", s.path, s.size, unwrapPath(terr)))
	}
	return err
}

// Close fsyncs and closes the file. Later calls return nil; Deliver after
// Close returns an error wrapping os.ErrClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	derr := s.closeDirect()
	if s.dirty {
		// Best effort: never leave a partial line behind on a clean stop.
		_ = f.Truncate(s.size)
	}
	// One fsync at stop, even with sync none: it is cheap and makes a
	// graceful stop durable.
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(serr, cerr, derr); err != nil {
		return fmt.Errorf("file sink %s: close: %w", s.path, err)
	}
	return nil
}

// open opens or creates the active file and repairs an incomplete last line.
func (s *Sink) open() error {
	f, err := openAppend(s.path)
	if err != nil {
		return fmt.Errorf("file sink %s: open: %w", s.path, unwrapPath(err))
	}
	size, cut, err := repairTail(f)
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("file sink %s: repair incomplete last line: %w", s.path, unwrapPath(err))
	}
	if cut > 0 {
		// Why cutting is safe: the sink only confirms a batch after the
		// whole batch was written (and, with sync batch, fsynced), and the
		// dispatcher advances its cursor only on that confirmation. A line
		// without its newline therefore belongs to a batch that was never
		// confirmed (a crash or kill mid-write), so the dispatcher delivers
		// that batch again after the restart, including this event. Keeping
		// the fragment would glue the next line onto it and break both.
		// (Text appended by someone else is not ours to keep either: a JSON
		// lines file cannot hold a line without its newline.)
		s.log.Warn("file sink cut an incomplete last line from the file; the dispatcher re-delivers its batch",
			zap.Int64("bytes_cut", cut), zap.Int64("size", size))
	}
	s.f = f
	s.size = size
	s.dirty = false
	s.enableDirect()
	return nil
}

// rotate moves the active file to base.1 (shifting older ones up and deleting
// those beyond max_files), fsyncs the directory and opens a fresh file.
func (s *Sink) rotate() error {
	keep := s.cfg.MaxFiles
	old := s.f
	oldSize := s.size

	// Delete rotated files that the shift would push past keep, and any left
	// beyond it by an earlier, larger max_files.
	deleted, err := s.removeRotated(keep)
	if err != nil {
		return err
	}
	for i := keep - 1; i >= 1; i-- {
		err := os.Rename(s.rotated(i), s.rotated(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file sink %s: rotate: %w", s.path, err)
		}
	}
	// The open descriptor follows the renamed (or unlinked) file; nothing
	// more is written through it.
	if keep > 0 {
		if err := os.Rename(s.path, s.rotated(1)); err != nil {
			return fmt.Errorf("file sink %s: rotate: %w", s.path, err)
		}
	} else {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("file sink %s: rotate: %w", s.path, err)
		}
		deleted++
	}
	s.f = nil
	if err := s.closeDirect(); err != nil {
		s.log.Warn("file sink: closing the rotated file's direct descriptor failed", zap.Error(err))
	}
	cerr := old.Close()
	if cerr != nil {
		// Every batch in it was written (and, with sync batch, fsynced)
		// already; a close error loses nothing but is worth a line.
		s.log.Warn("file sink: closing the rotated file failed", zap.Error(cerr))
	}
	f, err := createExclusive(s.path)
	if err != nil {
		return fmt.Errorf("file sink %s: open fresh file after rotation: %w", s.path, unwrapPath(err))
	}
	s.f = f
	s.size = 0
	s.enableDirect()
	// One directory fsync makes the renames, the deletions and the new
	// file's entry durable together.
	if err := syncDir(s.dir); err != nil {
		s.dirSyncPending = true
		return fmt.Errorf("file sink %s: fsync directory %s after rotation: %w", s.path, s.dir, unwrapPath(err))
	}
	s.log.Info("file sink rotated",
		zap.Int64("rotated_bytes", oldSize),
		zap.Int("max_files", keep),
		zap.Int("deleted_files", deleted))
	return nil
}

// rotated is the name of the n-th rotated file.
func (s *Sink) rotated(n int) string { return s.path + "." + strconv.Itoa(n) }

// removeRotated deletes rotated files numbered keep or higher and reports how
// many it deleted.
func (s *Sink) removeRotated(keep int) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("file sink %s: rotate: list %s: %w", s.path, s.dir, unwrapPath(err))
	}
	deleted := 0
	prefix := s.base + "."
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		suffix := name[len(prefix):]
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 1 || strconv.Itoa(n) != suffix {
			continue
		}
		if n < keep {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("file sink %s: rotate: %w", s.path, err)
		}
		deleted++
	}
	return deleted, nil
}

// openAppend opens path for reading and appending, creating it with mode
// 0600 (whatever the umask) if it does not exist.
func openAppend(path string) (*os.File, error) {
	f, err := createExclusive(path)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return f, err
	}
	return os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
}

// createExclusive creates path, which must not exist, with mode 0600.
func createExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, err
	}
	// The umask may have removed bits from 0600.
	if err := f.Chmod(fileMode); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// repairTail truncates f after its last newline and returns the new size and
// how many bytes were cut.
func repairTail(f *os.File) (size, cut int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	end := st.Size()
	if end == 0 {
		return 0, 0, nil
	}
	var one [1]byte
	if _, err := f.ReadAt(one[:], end-1); err != nil {
		return 0, 0, err
	}
	if one[0] == '\n' {
		return end, 0, nil
	}
	keep := int64(0) // no newline at all: nothing of the file is a line
	chunk := make([]byte, repairChunk)
	for pos := end; pos > 0; {
		start := max(pos-int64(len(chunk)), 0)
		c := chunk[:pos-start]
		if _, err := f.ReadAt(c, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		if i := bytes.LastIndexByte(c, '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		pos = start
	}
	if err := f.Truncate(keep); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return keep, end - keep, nil
}

// mkdirAll creates dir and its missing parents with mode 0700 (whatever the
// umask). Directories that already exist are left as they are.
func mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, dirMode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // created meanwhile by someone else: not ours to chmod
			}
			return err
		}
		if err := os.Chmod(d, dirMode); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory so renames and new entries in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}

// unwrapPath strips an *fs.PathError, whose path the callers name already,
// so messages do not repeat it; the underlying error stays wrapped.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err
	}
	return err
}
