//go:build !linux

package pipeline

// mapRegion is not available here: the pool uses heap buffers.
func mapRegion(int) ([]byte, bool) { return nil, false }

func releasePages([]byte, int, int) {}
