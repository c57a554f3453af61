//go:build !linux

package state

import bolt "go.etcd.io/bbolt"

func (s *Store) releaseMapping(*bolt.Tx, int) {}

func (s *Store) dropCache([]Append) {}
