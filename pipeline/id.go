package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// EventID is the deterministic event ID: the first 128 bits, in hex, of a
// SHA-256 over the stream (which names the source instance, site and
// sensor), the kind, the record's natural key and its revision. The same
// record fetched again gets the same ID; a revision gets a new one.
func EventID(stream, kind, key string, revision int) string {
	var stack [256]byte
	b := stack[:0]
	b = append(b, stream...)
	b = append(b, 0)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(revision), 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ContentHash is a fast 64-bit hash (xxHash64) of a record's content, used
// to notice that a record seen before has changed. The parts are hashed as
// one sequence of bytes.
func ContentHash(parts ...[]byte) uint64 {
	if len(parts) == 1 {
		return xxhash.Sum64(parts[0])
	}
	d := xxhash.New()
	for _, p := range parts {
		_, _ = d.Write(p)
	}
	return d.Sum64()
}
