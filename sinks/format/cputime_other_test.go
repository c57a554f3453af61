//go:build !linux

package format

import "time"

// threadCPU is not measured on this system.
func threadCPU() func() (time.Duration, bool) {
	return func() (time.Duration, bool) { return 0, false }
}
