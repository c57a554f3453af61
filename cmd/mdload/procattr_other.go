//go:build !linux

package main

import (
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
