//go:build !linux

package main

import (
	"os"
	"runtime"
	"syscall"
)

// maxRSSMiB converts ru_maxrss: bytes on macOS, KiB on the BSDs.
func maxRSSMiB(ru *syscall.Rusage) float64 {
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20)
	}
	return float64(ru.Maxrss) / 1024
}

// procMem is only implemented on Linux.
func procMem(int) (anon, file int64, ok bool) { return 0, 0, false }

// openDirect opens path for reading; direct reads are only tried on Linux.
func openDirect(path string) (*os.File, bool, error) {
	f, err := os.Open(path)
	return f, false, err
}

// alignedBuffer returns an ordinary n-byte slice off Linux, and no
// function to release it.
func alignedBuffer(n int) ([]byte, func()) { return make([]byte, n), nil }
