//go:build linux

package pipeline

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of mem the kernel holds in memory (mincore).
func resident(t *testing.T, mem []byte) int {
	t.Helper()
	vec := make([]byte, (len(mem)+4095)/4096)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)),
		uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func same(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a[:1]) == unsafe.SliceData(b[:1])
}

// TestBufferPoolRegions: the pool's buffers are regions outside the Go
// heap, at most n of them, each handed to one user at a time; a region put
// back twice is not handed out twice; one replaced by a larger heap
// buffer still comes back through PutReplaced; past n, buffers come from
// the heap.
func TestBufferPoolRegions(t *testing.T) {
	const maxCap = 4 << 20
	p := NewBufferPool(2, maxCap)
	a, b := p.Get(1000), p.Get(0)
	if cap(a) != maxCap || cap(b) != maxCap || same(a, b) || len(p.regions) != 2 {
		t.Fatalf("caps %d %d, same %v, %d regions: want two distinct regions of %d", cap(a), cap(b), same(a, b), len(p.regions), maxCap)
	}
	if c := p.Get(10); cap(c) >= maxCap || len(p.regions) != 2 {
		t.Fatalf("third buffer: cap %d with %d regions, want a small heap buffer", cap(c), len(p.regions))
	}
	p.Put(a[:100])
	p.Put(a[:100]) // again: ignored
	x, y := p.Get(0), p.Get(0)
	if !same(x, a) || same(y, a) {
		t.Errorf("after a region was put back twice it was handed out twice (or not at all)")
	}
	// Outgrown: the caller's buffer is now a larger heap one.
	grown := append(x[:maxCap], 1)
	p.PutReplaced(x, grown)
	p.PutReplaced(b, nil) // an error left the caller without a buffer
	if z1, z2 := p.Get(0), p.Get(0); !(same(z1, a) || same(z2, a)) || !(same(z1, b) || same(z2, b)) {
		t.Errorf("regions replaced by a heap buffer or lost to an error did not come back")
	}
	if y != nil && cap(y) >= maxCap {
		t.Errorf("fourth buffer has cap %d: want a heap one", cap(y))
	}
}

// TestBufferPoolHandsBackPages: after a large use, a window of small ones
// hands the region's pages past their size back to the kernel; a region
// whose uses stay large keeps them.
func TestBufferPoolHandsBackPages(t *testing.T) {
	const maxCap = 8 << 20
	p := NewBufferPool(1, maxCap)
	buf := p.Get(0)
	big := buf[:6<<20]
	for i := range big {
		big[i] = 1
	}
	p.Put(big)
	r := p.regions[0]
	if got := resident(t, r.mem); got < (6<<20)/4096 {
		t.Fatalf("%d pages resident after writing 6 MiB", got)
	}
	for range releaseWindow {
		b := p.Get(0)[:100<<10]
		b[0] = 2
		p.Put(b)
	}
	// The window that ended had the 6 MiB use in it: nothing released yet.
	if got := resident(t, r.mem); got < (6<<20)/4096 {
		t.Fatalf("%d pages resident: released while the window still had the large use", got)
	}
	for range releaseWindow {
		b := p.Get(0)[:100<<10]
		p.Put(b)
	}
	want := RoomFor(100<<10) / 4096
	if got := resident(t, r.mem); got > want {
		t.Errorf("%d pages resident after a window of 100 KiB uses, want at most %d", got, want)
	}
	if got := p.Get(0); got[:1][0] != 2 {
		t.Errorf("the kept pages lost their contents")
	}
}
