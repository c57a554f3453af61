//go:build linux

package pipeline

import "golang.org/x/sys/unix"

// mapRegion maps n bytes of private anonymous memory outside the Go heap.
// MAP_NORESERVE: only the pages written are charged.
func mapRegion(n int) ([]byte, bool) {
	if n <= 0 {
		return nil, false
	}
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, false // the pool falls back to heap buffers
	}
	return mem, true
}

// releasePages hands the pages of mem[from:to] back to the kernel; they
// read as zeros afterwards and cost nothing until written again.
func releasePages(mem []byte, from, to int) {
	const page = 4096
	from = (from + page - 1) / page * page
	to = min(to, len(mem))
	if from >= to {
		return
	}
	_ = unix.Madvise(mem[from:to], unix.MADV_DONTNEED) // a memory optimisation only
}
