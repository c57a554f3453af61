package file

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// Type is the value of a sink's `type` key that selects this sink.
const Type = "file"

// Sync policies.
const (
	SyncBatch = "batch" // fsync after every delivered batch (default)
	SyncNone  = "none"  // leave flushing to the operating system
)

// Config is the configuration of one file sink.
type Config struct {
	// Path of the active file; rotated files get a numeric suffix.
	Path string `koanf:"path" json:"path"`
	// Sync is the fsync policy: batch or none.
	Sync string `koanf:"sync" json:"sync"`
	// MaxBytes rotates the file when the next batch would take it past this size.
	MaxBytes pipeline.ByteSize `koanf:"max_bytes" json:"max_bytes"`
	// MaxFiles is how many rotated files are kept besides the active one.
	MaxFiles int `koanf:"max_files" json:"max_files"`
	// Format of each line: json (schema v1), cef, leef or ocsf.
	Format string `koanf:"format" json:"format"`
	// Batch is the most events handed to the sink at once.
	Batch int `koanf:"batch" json:"batch"`
	// Start is where a sink new to the state file begins: end or earliest.
	Start string `koanf:"start" json:"start"`
	// DirectIO is auto (with sync batch, write whole blocks with O_DIRECT
	// where the file system takes it) or off (always the page cache).
	DirectIO string `koanf:"direct_io" json:"direct_io"`
}

// Common returns the keys every sink has.
func (c Config) Common() sinks.Common {
	return sinks.Common{Format: c.Format, Batch: c.Batch, Start: c.Start}
}

// DefaultConfig returns the defaults that a user's YAML is decoded onto.
func DefaultConfig() Config {
	return Config{Sync: SyncBatch, MaxBytes: 100 << 20, MaxFiles: 10, Format: format.JSON, Batch: 1000, Start: sinks.StartEnd, DirectIO: DirectAuto}
}

// Validate reports every problem at once; each message starts with the key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Path == "" {
		add("path", "is required")
	} else if filepath.Base(c.Path) == "." || filepath.Base(c.Path) == string(filepath.Separator) {
		add("path", "must name a file")
	}
	if c.Sync != SyncBatch && c.Sync != SyncNone {
		add("sync", "must be %s or %s, got %q", SyncBatch, SyncNone, c.Sync)
	}
	if c.DirectIO != DirectAuto && c.DirectIO != DirectOff {
		add("direct_io", "must be %s or %s, got %q", DirectAuto, DirectOff, c.DirectIO)
	}
	if c.MaxBytes < 4096 {
		add("max_bytes", "must be at least 4KiB")
	}
	if c.MaxFiles < 0 {
		add("max_files", "must not be negative")
	}
	errs = append(errs, c.Common().Validate()...)
	return errors.Join(errs...)
}
