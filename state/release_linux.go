//go:build linux

package state

import (
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseEvery is how many journal bytes are read or committed before the
// touched pages of the memory map are handed back to the kernel.
const releaseEvery = 8 << 20

// releaseMapping keeps the resident set flat while dispatchers stream
// through a journal larger than memory and commits walk the file's pages:
// bbolt reads through a shared, read-only file mapping, and every page
// touched counts as resident until unmapped. MADV_DONTNEED drops the
// process's references; the data stays in the page cache (or on disk) and
// is faulted back in on the next access. It runs inside a transaction: a
// read transaction holds bbolt's mmap lock, and within a write transaction
// only that transaction's own commit could replace the mapping, so the
// mapping cannot change underneath it.
func (s *Store) releaseMapping(tx *bolt.Tx, n int) {
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
// kernel, so this never loses or blocks anything. It is skipped while a
// sink reads from behind the tail cache (a sink that is down, or new with
// start: earliest): the file's pages are what it reads next, and dropping
// them would make it read its backlog from disk.
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
	if !s.sinksReadFromTail() {
		return
	}
	_ = unix.Fadvise(int(s.advise.Fd()), 0, 0, unix.FADV_DONTNEED) // a hint: its failure costs only speed
}

// tailMemory returns the tail cache's ring buffer: n bytes mapped outside
// the Go heap, so that the garbage collector, which sets its next target
// as a multiple of the live heap, does not count these 8 MiB twice. The
// ring lives as long as the store and its contents are always copied in
// and out, so nothing points into it; it is never unmapped all the same
// (see pipeline.BufferPool). Pages not yet written cost nothing.
func tailMemory(n int) []byte {
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return make([]byte, n)
	}
	return mem
}
