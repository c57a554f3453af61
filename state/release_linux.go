//go:build linux

package state

import (
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseEvery is how many journal bytes are read before the read pages of
// the memory map are handed back to the kernel.
const releaseEvery = 16 << 20

// releaseAfterRead keeps the resident set flat while dispatchers stream
// through a journal larger than memory: bbolt reads through a shared,
// read-only file mapping, and every page touched counts as resident until
// unmapped. MADV_DONTNEED drops the process's references; the data stays in
// the page cache and is faulted back in on the next access. It runs inside a
// read transaction, which holds bbolt's mmap lock, so the mapping cannot be
// replaced underneath it.
func (s *Store) releaseAfterRead(tx *bolt.Tx, n int) {
	s.mu.Lock()
	s.readBytes += int64(n)
	due := s.readBytes >= releaseEvery
	if due {
		s.readBytes = 0
	}
	s.mu.Unlock()
	if !due {
		return
	}
	info := tx.DB().Info()
	size := tx.Size()
	if info == nil || info.Data == 0 || size <= 0 {
		return
	}
	mapped := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), info.Data)), size)
	_ = unix.Madvise(mapped, unix.MADV_DONTNEED) // best effort: only a memory optimisation
}
