// Package state is mdbridge's durable state in one bbolt file: the
// append-only event journal, a watermark and sequence counter per stream, the
// seen-record index that makes re-reads idempotent, and a cursor per sink.
//
// Layout (SchemaVersion 1):
//
//	meta      schema_version → "1"
//	          journal_seq    → uint64, the last journal sequence number handed out
//	          journal_bytes  → uint64, bytes held by journal values
//	          journal_count  → uint64, entries held by the journal
//	journal   seq (8 bytes, big endian) → event JSON
//	jtime     first seq of a commit (8 bytes) → its commit time (8 bytes, unix ns)
//	streams   stream id → JSON StreamState
//	seen      stream id → bucket: newest record time (8 bytes) + first journal
//	          seq (8 bytes) of one commit → the commit's seen entries, packed;
//	          "floor" → the time before which entries no longer count
//	cursors   sink name → seq of the last delivered entry (8 bytes)
//
// Every write goes through one bbolt transaction; values returned to callers
// are copies, never slices into the memory map.
package state

// SchemaVersion is the layout version this package reads and writes.
const SchemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketJournal = []byte("journal")
	bucketJTime   = []byte("jtime")
	bucketStreams = []byte("streams")
	bucketSeen    = []byte("seen")
	bucketCursors = []byte("cursors")

	keySchemaVersion = []byte("schema_version")
	keyJournalSeq    = []byte("journal_seq")
	keyJournalBytes  = []byte("journal_bytes")
	keyJournalCount  = []byte("journal_count")
	// keySeenSerial names seen-index values that carry no journal event.
	keySeenSerial = []byte("seen_serial")
)

// allBuckets are created on open.
var allBuckets = [][]byte{bucketMeta, bucketJournal, bucketJTime, bucketStreams, bucketSeen, bucketCursors}

// keySeenFloor is the key, within a stream's seen bucket, of the prune
// boundary; every other key there is 16 bytes long.
var keySeenFloor = []byte("floor")

// pageSize is the bbolt page size of new state files. Journal values are
// around 1.4 KB; 64 KiB pages waste little space per page and let a commit
// of thousands of events go out in a few hundred writes instead of
// thousands (BenchmarkCommit: 4 KiB pages 133k events/s, 64 KiB 240k).
// An existing file keeps the page size it was created with.
const pageSize = 64 << 10
