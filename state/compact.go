package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compactTxBytes bounds the data copied per write transaction of Compact,
// so a large journal is not held in memory as one transaction.
const compactTxBytes = 64 << 20

// Compact writes a compacted copy of the state file at src: bbolt never
// shrinks a file, so the pages freed by trimmed journal entries stay until
// the file is rewritten. The copy is written to a temporary file beside
// the destination with the store's bbolt options and src's page size,
// synced, and renamed over dst (0600); an empty dst, or dst equal to src,
// replaces src itself. An existing dst other than src is refused.
//
// src is held under a shared lock throughout, so Compact fails with
// ErrLocked while a bridge runs, and a bridge started meanwhile waits (and
// then opens the new file, see Open). It returns the sizes of src before
// and of the result after.
func Compact(src, dst string, opts Options) (before, after int64, err error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	fi, err := os.Stat(src)
	if err != nil {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	before = fi.Size()
	if dst == "" {
		dst = src
	}
	if dfi, err := os.Stat(dst); err == nil && !os.SameFile(fi, dfi) {
		return 0, 0, fmt.Errorf("state: compact: %s exists; refusing to overwrite it", dst)
	}
	sdb, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return 0, 0, fmt.Errorf("state: compact %s: %w (waited %s; stop the bridge first)", src, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("state: compact: open %s: %w", src, err)
	}
	// Closed only after the rename, so no bridge writes to src in between.
	defer func() {
		if cerr := sdb.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("state: compact: close %s: %w", src, cerr)
		}
	}()

	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".compact-*")
	if err != nil {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	if err := writeCompacted(sdb, tmpPath); err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmpPath, dst); err != nil {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	renamed = true
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, 0, err
	}
	fi, err = os.Stat(dst)
	if err != nil {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	return before, fi.Size(), nil
}

// writeCompacted copies every bucket of src into the new, empty file at
// path, then syncs and closes it.
func writeCompacted(src *bolt.DB, path string) error {
	ddb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		PageSize:       src.Info().PageSize,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return fmt.Errorf("state: compact: create %s: %w", path, err)
	}
	if err := compactFrom(ddb, src); err != nil {
		_ = ddb.Close()
		return fmt.Errorf("state: compact: copy: %w", err)
	}
	if err := ddb.Close(); err != nil {
		return fmt.Errorf("state: compact: close %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("state: compact: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("state: compact: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("state: compact: sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state: compact: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state: compact: sync %s: %w", dir, err)
	}
	return nil
}

// compactFrom is bolt.Compact, with a damaged page of src an error (bbolt
// panics on one) naming the file.
func compactFrom(dst, src *bolt.DB) (err error) {
	defer recoverDamage(src.Path(), &err)
	return bolt.Compact(dst, src, compactTxBytes)
}
