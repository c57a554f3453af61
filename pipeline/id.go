package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strconv"
)

// EventID is the deterministic event ID: the first 128 bits, in hex, of a
// SHA-256 over the stream (which names the source instance, site and
// sensor), the kind, the record's natural key and its revision. The same
// record fetched again gets the same ID; a revision gets a new one.
func EventID(stream, kind, key string, revision int) string {
	h := sha256.New()
	var sep = []byte{0}
	h.Write([]byte(stream))
	h.Write(sep)
	h.Write([]byte(kind))
	h.Write(sep)
	h.Write([]byte(key))
	h.Write(sep)
	h.Write(strconv.AppendInt(nil, int64(revision), 10))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// ContentHash is a fast 64-bit hash of a record's content, used to notice
// that a record seen before has changed.
func ContentHash(parts ...[]byte) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum64()
}
