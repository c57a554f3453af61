//go:build !linux

package file

import (
	"errors"
	"os"
)

// openDirect reports that direct I/O is not used on this platform.
var openDirect = func(string) (*os.File, error) {
	return nil, errors.New("direct I/O is used on Linux only")
}
