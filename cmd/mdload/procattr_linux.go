package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// maxRSSMiB converts ru_maxrss, in KiB on Linux.
func maxRSSMiB(ru *syscall.Rusage) float64 { return float64(ru.Maxrss) / 1024 }

// procMem reads a process's resident memory from /proc: anonymous (heap,
// stacks) and file-backed (mapped files such as bbolt's), in bytes.
func procMem(pid int) (anon, file int64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, rest, found := strings.Cut(line, ":")
		if !found || (name != "RssAnon" && name != "RssFile") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "RssAnon" {
			anon = kb << 10
		} else {
			file = kb << 10
		}
		ok = true
	}
	return anon, file, ok
}

// openDirect opens path for reading with O_DIRECT, so that counting the
// file sink's output neither fills the page cache nor copies through it:
// the sink writes its blocks with O_DIRECT, so buffered reads would fetch
// every byte from disk into freshly allocated cache pages, which on the
// 2-core VM cost the harness 0.1 core at 50,000 events/s, taken from the
// bridge it measures. ok is false when the file system refuses it.
func openDirect(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err == nil {
		return f, true, nil
	}
	f, err = os.Open(path)
	return f, false, err
}

// alignedBuffer returns n bytes aligned for O_DIRECT (mapped memory is
// page-aligned) and the function that unmaps them, or an ordinary slice
// and nil when the mapping fails.
func alignedBuffer(n int) ([]byte, func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n), nil
	}
	return b, func() { _ = syscall.Munmap(b) }
}
