package file

import (
	"os"
	"syscall"
)

// openDirect opens path for O_DIRECT writes. A variable, so a test can
// play a file system that refuses O_DIRECT (tmpfs takes it since Linux 6.6).
var openDirect = func(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}
