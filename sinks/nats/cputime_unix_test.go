//go:build unix

package nats

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the whole process (client, embedded
// server, garbage collector) has used so far, so that benchmarks can report
// their cost apart from the load of other processes on a shared machine.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
