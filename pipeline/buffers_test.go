package pipeline_test

import (
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestRoomFor(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0},
		{-5, 0},
		{1, 64 << 10},
		{64 << 10, 128 << 10},          // 72 KiB rounded up
		{8 << 20, 9 << 20},             // 9 MiB is a multiple of 64 KiB
		{8_400_000, 9_502_720},         // 9,450,000 rounded up to 64 KiB
		{(1 << 20) - 1, 1152 << 10},    // 1.125 MiB - 1 byte, rounded up
		{100 << 20, 112<<20 + 512<<10}, // large bodies keep an eighth too
	} {
		if got := pipeline.RoomFor(c.n); got != c.want {
			t.Errorf("RoomFor(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestBufferPoolReusesForSlightlyLarger: a buffer the pool allocated for n
// bytes serves the next request for a few bytes more (bodies and encoded
// batches of a stream vary a little from poll to poll) instead of being
// replaced, which kept two buffers alive.
func TestBufferPoolReusesForSlightlyLarger(t *testing.T) {
	p := pipeline.NewBufferPool(1, 64<<20)
	a := p.Get(8_400_000)
	if cap(a) < 8_400_000 {
		t.Fatalf("cap %d", cap(a))
	}
	p.Put(a)
	b := p.Get(8_400_000 + 4096)
	if &b[:1][0] != &a[:1][0] {
		t.Errorf("a request 4 KiB larger got a new buffer (cap %d), want the pooled one (cap %d)", cap(b), cap(a))
	}
	p.Put(b)
	// One past the pooled buffer's room is a new buffer.
	c := p.Get(cap(b) + 1)
	if &c[:1][0] == &b[:1][0] || cap(c) < cap(b)+1 {
		t.Errorf("a request past the pooled capacity reused it")
	}
}
