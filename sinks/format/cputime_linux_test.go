//go:build linux

package format

import (
	"runtime"
	"syscall"
	"time"
)

// threadCPU locks the calling goroutine to its thread and returns a
// function that reports the CPU time the thread used since, so that a
// benchmark can report its cost apart from the load of other processes on
// a shared machine.
func threadCPU() func() (time.Duration, bool) {
	runtime.LockOSThread()
	var start syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &start); err != nil {
		return func() (time.Duration, bool) { runtime.UnlockOSThread(); return 0, false }
	}
	return func() (time.Duration, bool) {
		defer runtime.UnlockOSThread()
		var end syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &end); err != nil {
			return 0, false
		}
		used := func(r *syscall.Rusage) time.Duration {
			return time.Duration(r.Utime.Nano() + r.Stime.Nano())
		}
		return used(&end) - used(&start), true
	}
}
