package file

import (
	"errors"
	"syscall"
	"unsafe"

	"go.uber.org/zap"
)

// Direct I/O modes (the direct_io key).
const (
	DirectAuto = "auto" // write whole blocks with O_DIRECT where the file system allows it
	DirectOff  = "off"  // always write through the page cache
)

// directAlign is the alignment of O_DIRECT buffers, file offsets and
// lengths. 4096 satisfies every block size Linux file systems use for it.
const directAlign = 4096

// Why direct I/O: with sync batch every batch is fsynced anyway, so the
// page cache buys nothing for a file the bridge never reads back, while
// copying each batch into freshly allocated cache pages and writing them
// back costs most of the sink's CPU (on the project's 2-core VM, buffered
// writes of 1.8 GB took 2.1-5.1 s of system time against 0.26 s for the
// same writes with O_DIRECT; BENCHMARKS.md has the figures).
//
// How: O_DIRECT needs aligned offsets and lengths, while lines end
// anywhere. The sink keeps the file's last partial block (tail, fewer than
// directAlign bytes, already in the file) in memory. A batch is rendered
// after a copy of that tail, so the buffer starts at an aligned file
// offset; its whole blocks go out with one O_DIRECT pwrite (rewriting the
// tail's block with the same bytes first), and the remainder is appended
// through the ordinary descriptor. A reader of the file sees only bytes
// that are really events, never padding, and a failed batch is cut off by
// the same truncation as before.

// enableDirect opens the second, O_DIRECT descriptor for the active file
// and loads its tail. It leaves direct I/O off (and says so once) when the
// file system refuses O_DIRECT; nothing here is an error for the sink.
func (s *Sink) enableDirect() {
	if s.cfg.DirectIO == DirectOff || s.cfg.Sync == SyncNone || s.directRefused {
		return
	}
	d, err := openDirect(s.path)
	if err != nil {
		s.directRefused = true
		s.log.Info("file sink writes through the page cache: the file system does not take O_DIRECT", zap.Error(unwrapPath(err)))
		return
	}
	n := s.size % directAlign
	tail := make([]byte, n, directAlign)
	if n > 0 {
		if _, err := s.f.ReadAt(tail, s.size-n); err != nil {
			_ = d.Close()
			s.log.Warn("file sink writes through the page cache: reading the file's last block failed", zap.Error(unwrapPath(err)))
			return
		}
	}
	s.dio, s.tail = d, tail
}

// closeDirect closes the O_DIRECT descriptor, if any.
func (s *Sink) closeDirect() error {
	if s.dio == nil {
		return nil
	}
	err := s.dio.Close()
	s.dio, s.tail = nil, nil
	return err
}

// writeBatch writes buf, whose first tail bytes are the file's current
// tail (already on disk) and the rest the batch, at the end of the file.
func (s *Sink) writeBatch(buf []byte, tail int) error {
	if s.dio == nil || len(s.tail) != tail {
		// Buffered, or rendered before a reopen changed the tail.
		_, err := s.f.Write(buf[tail:])
		return err
	}
	whole := len(buf) &^ (directAlign - 1)
	if whole > 0 {
		blocks := buf[:whole]
		if !aligned(blocks) {
			s.scratch = alignedBuffer(s.scratch, whole)
			blocks = s.scratch[:whole]
			copy(blocks, buf)
		}
		if _, err := s.dio.WriteAt(blocks, s.size-int64(tail)); err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				return err
			}
			// Accepted at open, refused at write (some network and FUSE
			// file systems): fall back for good, losing nothing.
			s.log.Info("file sink writes through the page cache from now on: an O_DIRECT write was refused", zap.Error(unwrapPath(err)))
			s.directRefused = true
			_ = s.closeDirect()
			_, err = s.f.Write(buf[tail:])
			return err
		}
	}
	// The rest after the whole blocks (never the tail again: it is in the
	// file already) is appended through the page cache.
	if rest := max(whole, tail); rest < len(buf) {
		if _, err := s.f.Write(buf[rest:]); err != nil {
			return err
		}
	}
	return nil
}

// keepTail remembers the file's new last partial block after a batch.
func (s *Sink) keepTail(buf []byte) {
	if s.dio != nil {
		s.tail = append(s.tail[:0], buf[len(buf)&^(directAlign-1):]...)
	}
}

// aligned reports whether b starts at a directAlign boundary in memory.
func aligned(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign == 0
}

// alignedBuffer returns b when it is aligned and holds n bytes, or a new
// aligned buffer of at least n bytes (twice n, so growth is amortised).
func alignedBuffer(b []byte, n int) []byte {
	if cap(b) >= n && aligned(b) {
		return b[:0]
	}
	raw := make([]byte, 2*n+directAlign)
	off := int((directAlign - uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%directAlign) % directAlign)
	return raw[off : off : off+2*n]
}
