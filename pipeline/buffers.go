package pipeline

import (
	"sync"
	"unsafe"
)

// BufferPool keeps a few large byte buffers for reuse: encode buffers of
// polls, response bodies. Allocating megabytes afresh for every poll costs
// page faults and zeroing; a pool of one buffer per concurrent poll does not.
//
// Where the system allows (Linux), the pool's buffers are regions of
// memory mapped outside the Go heap, maxCap bytes of address space each,
// of which only the pages written count as resident. The garbage
// collector sizes its next target as a multiple of the live heap; a few
// pointer-free buffers of megabytes held for the whole run made that
// target, and so the process's memory, grow by twice their size. A region
// is never unmapped (a string or slice still pointing into it must stay a
// valid address); its pages beyond what recent uses needed are handed
// back to the kernel. Elsewhere, or when mapping fails, buffers are
// ordinary heap slices, pooled the same way.
type BufferPool struct {
	n      int
	maxCap int

	mu      sync.Mutex
	regions []*region // every region this pool mapped, at most n
	heap    [][]byte  // pooled heap buffers, when regions are not available
}

// region is one mapped buffer and what the pool knows of its use.
type region struct {
	mem    []byte
	inUse  bool
	dirty  int // bytes from the start that may be resident
	peak   int // the largest use in the current window
	window int // uses counted in the current window
}

// releaseWindow is how many uses of a region pass between two checks for
// pages to hand back: the largest of them decides what stays resident, so
// a buffer that alternates between small and large uses keeps its pages.
const releaseWindow = 32

// NewBufferPool keeps up to n buffers, each of at most maxCap bytes.
func NewBufferPool(n, maxCap int) *BufferPool {
	return &BufferPool{n: max(n, 1), maxCap: maxCap}
}

// Get returns an empty buffer with at least minCap bytes of capacity: a
// free region (mapping a new one while fewer than n exist), a pooled heap
// buffer when it is large enough, or a new heap buffer. A request past
// maxCap always gets a heap buffer.
func (p *BufferPool) Get(minCap int) []byte {
	if minCap <= p.maxCap {
		p.mu.Lock()
		for _, r := range p.regions {
			if !r.inUse {
				r.inUse = true
				p.mu.Unlock()
				return r.mem[:0]
			}
		}
		if len(p.regions) < p.n {
			if mem, ok := mapRegion(p.maxCap); ok {
				r := &region{mem: mem, inUse: true}
				p.regions = append(p.regions, r)
				p.mu.Unlock()
				return r.mem[:0]
			}
		}
		if k := len(p.heap); k > 0 {
			b := p.heap[k-1]
			p.heap = p.heap[:k-1]
			if cap(b) >= minCap {
				p.mu.Unlock()
				return b[:0]
			}
		}
		p.mu.Unlock()
	}
	if minCap == 0 {
		return nil
	}
	return make([]byte, 0, RoomFor(minCap))
}

// Put hands a buffer back; len(b) is how much of it the use filled. A
// region becomes free again (and, once a window of uses has passed, hands
// back its pages past the largest of them); a heap buffer is kept when it
// is not past maxCap and the pool has room, else dropped. Putting a free
// region again does nothing.
func (p *BufferPool) Put(b []byte) {
	if cap(b) == 0 {
		return
	}
	base := unsafe.SliceData(b[:1])
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.regions {
		if unsafe.SliceData(r.mem[:1]) != base {
			continue
		}
		if !r.inUse {
			return
		}
		r.inUse = false
		r.dirty = max(r.dirty, len(b))
		r.peak = max(r.peak, len(b))
		if r.window++; r.window >= releaseWindow {
			if keep := min(RoomFor(r.peak), len(r.mem)); r.dirty > keep {
				releasePages(r.mem, keep, r.dirty)
				r.dirty = keep
			}
			r.peak, r.window = 0, 0
		}
		return
	}
	if cap(b) > p.maxCap || len(p.heap)+len(p.regions) >= p.n {
		return
	}
	p.heap = append(p.heap, b[:0])
}

// PutReplaced hands back orig, a buffer Get returned, which the caller may
// have replaced by cur: a larger heap buffer, a slice of orig, or nothing
// after an error. Both go back, so a region is never lost to a use that
// outgrew it.
func (p *BufferPool) PutReplaced(orig, cur []byte) {
	if cap(orig) > 0 && cap(cur) > 0 && unsafe.SliceData(orig[:1]) == unsafe.SliceData(cur[:1]) {
		p.Put(cur)
		return
	}
	p.Put(orig[:0])
	p.Put(cur)
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
