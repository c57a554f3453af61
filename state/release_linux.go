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

// dropEvery is how many journal bytes are committed between two hints that
// the file's cached pages can go.
const dropEvery = 32 << 20

// dropCache tells the kernel, every dropEvery bytes of commits, that the
// state file's cached pages are not needed any more (POSIX_FADV_DONTNEED).
//
// Why: every commit is fsynced, so the cached pages are clean copies of what
// is on disk, and the journal is read back from memory (tailCache) by
// dispatchers that keep up. Left alone, the page cache grows by every byte
// journaled, and on the project's VM filling fresh cache pages made the
// journal's writes cost 3.4-4.9 s of system time per 1.8 GB; with the pages
// handed back after each sync the kernel reuses them and the same writes
// took 0.9 s (BENCHMARKS.md). Dirty and mapped pages are left alone by the
// kernel, so this never loses or blocks anything; a sink that has fallen
// behind the tail cache reads its backlog from disk instead of from memory.
func (s *Store) dropCache(events []Append) {
	if s.advise == nil {
		return
	}
	for i := range events {
		s.unadvised += int64(len(events[i].Data))
	}
	if s.unadvised < dropEvery {
		return
	}
	s.unadvised = 0
	_ = unix.Fadvise(int(s.advise.Fd()), 0, 0, unix.FADV_DONTNEED) // a hint: its failure costs only speed
}
