package pipeline

// BufferPool keeps a few large byte buffers for reuse: encode buffers of
// polls, response bodies. Allocating megabytes afresh for every poll costs
// page faults and zeroing; a pool of one buffer per concurrent poll does not.
type BufferPool struct {
	c      chan []byte
	maxCap int
}

// NewBufferPool keeps up to n buffers, each of at most maxCap bytes.
func NewBufferPool(n, maxCap int) *BufferPool {
	return &BufferPool{c: make(chan []byte, n), maxCap: maxCap}
}

// Get returns an empty buffer with at least minCap bytes of capacity (a
// pooled one when it is large enough, else a new one).
func (p *BufferPool) Get(minCap int) []byte {
	select {
	case b := <-p.c:
		if cap(b) >= minCap {
			return b[:0]
		}
	default:
	}
	if minCap == 0 {
		return nil
	}
	return make([]byte, 0, RoomFor(minCap))
}

// RoomFor is the capacity to allocate for a buffer that must hold n bytes
// and will be reused: n plus an eighth, rounded up to 64 KiB. Bodies and
// encoded batches of one stream vary by a few bytes from poll to poll, and
// a pooled buffer allocated to the exact size of the last one would be too
// small for the next, slightly larger one, and replaced: two buffers
// alive instead of one, and the garbage collector's target sized by both.
func RoomFor(n int) int {
	const round = 64 << 10
	if n <= 0 {
		return 0
	}
	m := n + n/8
	return (m + round - 1) / round * round
}

// Put hands a buffer back; it is dropped when it is empty, past maxCap, or
// the pool is full.
func (p *BufferPool) Put(b []byte) {
	if cap(b) == 0 || cap(b) > p.maxCap {
		return
	}
	select {
	case p.c <- b[:0]:
	default:
	}
}
