//go:build !linux

package state

import bolt "go.etcd.io/bbolt"

func (s *Store) releaseMapping(*bolt.Tx, int) {}

func (s *Store) dropCache([]Append) {}

// tailMemory returns the tail cache's ring buffer.
func tailMemory(n int) []byte { return make([]byte, n) }
