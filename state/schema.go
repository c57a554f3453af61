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
//	journal   seq (8 bytes, big endian) → appended-at (8 bytes, unix ns) + event JSON
//	streams   stream id → JSON StreamState
//	seen      stream id → bucket: record time (8 bytes) + natural key → SeenEntry value
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
	bucketStreams = []byte("streams")
	bucketSeen    = []byte("seen")
	bucketCursors = []byte("cursors")

	keySchemaVersion = []byte("schema_version")
	keyJournalSeq    = []byte("journal_seq")
	keyJournalBytes  = []byte("journal_bytes")
	keyJournalCount  = []byte("journal_count")
)

// allBuckets are created on open.
var allBuckets = [][]byte{bucketMeta, bucketJournal, bucketStreams, bucketSeen, bucketCursors}

// entryHeader is the size of the appended-at prefix of a journal value.
const entryHeader = 8
