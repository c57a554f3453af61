package state

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is wrapped by the error of any call that met a page of the
// state file that is not what bbolt expects (bbolt panics on those).
var ErrDamaged = errors.New("the state file is damaged")

// view is db.View, with a damaged page an error instead of a panic.
//
// Write transactions have no such wrapper: when one fails, bbolt rolls it
// back and, as the file does not keep its free list (NoFreelistSync),
// rebuilds the list by walking every page in a goroutine of its own, where
// a damaged page panics beyond any recover. A file damaged while the
// bridge runs thus stops it at the next commit that meets the damage, and
// the restart's Open (verifyPages) then says what is wrong.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(s.path, &err)
	return s.db.View(fn)
}

// recoverDamage, deferred, turns a panic into an error about the file at
// path wrapping ErrDamaged. It recovers every panic, so that a bridge with a
// damaged file says so and keeps its other streams and sinks going rather
// than exiting with a stack trace; the panic's own words are kept in the
// error.
func recoverDamage(path string, err *error) {
	if r := recover(); r != nil {
		*err = damaged(path, r)
	}
}

// damaged is the error for the file at path, with what bbolt said.
func damaged(path string, cause any) error {
	return fmt.Errorf("state: %s: %w (%v); `mdbridge state check` lists the damage; restore the file from a backup, or move it aside to start afresh", path, ErrDamaged, cause)
}

// verifyPages reads every page of an existing state file before it is
// opened for writing. Opened for writing, bbolt rebuilds its free list by
// walking every page in a goroutine of its own (the file does not keep the
// list: NoFreelistSync), and a damaged page there crashes the process with
// no word of which file or what to do. Opened read-only it does not, and
// the same walk in this goroutine can recover and say so. It costs about
// what bbolt's own walk does.
func verifyPages(path string, opts Options) error {
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return nil // a new file, or one Open will report on
	}
	ro := opts
	ro.ReadOnly = true
	db, err := openBolt(path, ro)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.View(readAll); err != nil { // readAll recovers bbolt's panic
		return damaged(path, err)
	}
	return nil
}
