package fec

import (
	"errors"
	"testing"
)

func TestNewPartition(t *testing.T) {
	const maxObject = uint64(MaxSegmentSize) * MaxBlockLen * MaxBlocks // largest that blocks
	tests := []struct {
		name     string
		size     uint64
		seg, blk int
		segments uint64
		blocks   int
		lens     []int // block lengths, first blocks first; the last value repeats
		lastSeg  int   // length of the object's last segment
	}{
		{"147 segments at 64", 147, 1, 64, 147, 3, []int{49, 49, 49}, 1},
		{"147 segments of 1400, last short", 147*1400 - 5, 1400, 64, 147, 3, []int{49, 49, 49}, 1395},
		{"uneven: 10 in blocks of 4", 10, 1, 4, 10, 3, []int{4, 3, 3}, 1},
		{"uneven: 11 in blocks of 4", 11, 1, 4, 11, 3, []int{4, 4, 3}, 1},
		{"exact multiple", 128 * 1400, 1400, 64, 128, 2, []int{64, 64}, 1400},
		{"one block exactly", 64 * 1400, 1400, 64, 64, 1, []int{64}, 1400},
		{"one byte", 1, 1400, 64, 1, 1, []int{1}, 1},
		{"empty", 0, 1400, 64, 0, 0, nil, 0},
		{"block length 1", 5 * 1024, 1024, 1, 5, 5, []int{1}, 1024},
		{"largest object FEC id 5 can block", maxObject, MaxSegmentSize, MaxBlockLen,
			maxObject / MaxSegmentSize, MaxBlocks, []int{MaxBlockLen}, MaxSegmentSize},
		{"one byte less", maxObject - 1, MaxSegmentSize, MaxBlockLen,
			maxObject / MaxSegmentSize, MaxBlocks, []int{MaxBlockLen}, MaxSegmentSize - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPartition(tt.size, tt.seg, tt.blk)
			if err != nil {
				t.Fatal(err)
			}
			if p.Segments() != tt.segments || p.Blocks() != tt.blocks {
				t.Fatalf("segments, blocks = %d, %d; want %d, %d", p.Segments(), p.Blocks(), tt.segments, tt.blocks)
			}
			if p.ObjectSize() != tt.size || p.SegmentSize() != tt.seg || p.MaxBlockLen() != tt.blk {
				t.Fatalf("parameters not kept: %d %d %d", p.ObjectSize(), p.SegmentSize(), p.MaxBlockLen())
			}
			for b := 0; b < min(tt.blocks, 1000); b++ {
				want := tt.lens[min(b, len(tt.lens)-1)]
				if got := p.BlockLen(b); got != want {
					t.Errorf("BlockLen(%d) = %d, want %d", b, got, want)
				}
			}
			if tt.blocks > 0 {
				last := tt.blocks - 1
				off, n := p.Segment(last, p.BlockLen(last)-1)
				if n != tt.lastSeg || off+uint64(n) != tt.size {
					t.Errorf("last segment at %d, %d bytes; want %d bytes ending at %d", off, n, tt.lastSeg, tt.size)
				}
			}
			checkPartition(t, p)
		})
	}
}

func TestPartitionLookups(t *testing.T) {
	// 11 segments of 100 bytes (the last 50) in blocks of at most 4: 4, 4, 3.
	p, err := NewPartition(1050, 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		b, i   int
		first  uint64
		off    uint64
		length int
	}{
		{0, 0, 0, 0, 100},
		{0, 3, 0, 300, 100},
		{1, 0, 4, 400, 100},
		{2, 0, 8, 800, 100},
		{2, 2, 8, 1000, 50},
	} {
		if got := p.FirstSegment(tt.b); got != tt.first {
			t.Errorf("FirstSegment(%d) = %d, want %d", tt.b, got, tt.first)
		}
		off, n := p.Segment(tt.b, tt.i)
		if off != tt.off || n != tt.length {
			t.Errorf("Segment(%d, %d) = %d, %d; want %d, %d", tt.b, tt.i, off, n, tt.off, tt.length)
		}
		b, i, ok := p.Locate(tt.first + uint64(tt.i))
		if !ok || b != tt.b || i != tt.i {
			t.Errorf("Locate(%d) = %d, %d, %v; want %d, %d", tt.first+uint64(tt.i), b, i, ok, tt.b, tt.i)
		}
	}
	// Out-of-range values, as a peer may send them.
	for _, bi := range [][2]int{{-1, 0}, {3, 0}, {1 << 24, 0}, {2, 3}, {0, -1}, {0, 4}, {0, 255}} {
		if off, n := p.Segment(bi[0], bi[1]); n != 0 || off != 0 {
			t.Errorf("Segment(%d, %d) = %d, %d; want 0, 0", bi[0], bi[1], off, n)
		}
	}
	for _, b := range []int{-1, 3, 1 << 30} {
		if n := p.BlockLen(b); n != 0 {
			t.Errorf("BlockLen(%d) = %d, want 0", b, n)
		}
	}
	if p.FirstSegment(-5) != 0 || p.FirstSegment(3) != 11 || p.FirstSegment(1<<30) != 11 {
		t.Error("FirstSegment does not clamp out-of-range blocks")
	}
	if _, _, ok := p.Locate(11); ok {
		t.Error("Locate(Segments()) reported ok")
	}
	var zero Partition
	if zero.Segments() != 0 || zero.Blocks() != 0 || zero.BlockLen(0) != 0 {
		t.Error("zero Partition is not an empty object")
	}
	if _, _, ok := zero.Locate(0); ok {
		t.Error("zero Partition located a segment")
	}
}

func TestNewPartitionErrors(t *testing.T) {
	tests := []struct {
		name     string
		size     uint64
		seg, blk int
		want     error
	}{
		{"segment size 0", 100, 0, 64, ErrSegmentSize},
		{"negative segment size", 100, -1, 64, ErrSegmentSize},
		{"segment size over 16 bits", 100, MaxSegmentSize + 1, 64, ErrSegmentSize},
		{"block length 0", 100, 1400, 0, ErrBlockLen},
		{"negative block length", 100, 1400, -3, ErrBlockLen},
		{"block length over 8 bits", 100, 1400, MaxBlockLen + 1, ErrBlockLen},
		{"2^48 bytes", 1 << 48, 1400, 64, ErrObjectSize},
		{"max uint64", ^uint64(0), 1400, 64, ErrObjectSize},
		{"2^48-1 bytes even at max parameters", MaxObjectSize, MaxSegmentSize, MaxBlockLen, ErrBlockCount},
		{"2^24 blocks", 1 << 24, 1, 1, ErrBlockCount},
		{"2^48-1 bytes at defaults", MaxObjectSize, 1400, 64, ErrBlockCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPartition(tt.size, tt.seg, tt.blk)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p != (Partition{}) {
				t.Fatalf("failed NewPartition returned %+v", p)
			}
		})
	}
	// The last object size before the block limit.
	if p, err := NewPartition(MaxBlocks, 1, 1); err != nil || p.Blocks() != MaxBlocks {
		t.Fatalf("2^24-1 blocks: %v, %d blocks", err, p.Blocks())
	}
}

// checkPartition checks the invariants every partition must satisfy. It
// walks every block of small partitions and samples large ones.
func checkPartition(t *testing.T, p Partition) {
	t.Helper()
	n := p.Blocks()
	if n == 0 {
		if p.Segments() != 0 || p.ObjectSize() != 0 {
			t.Fatalf("no blocks for %d segments, %d bytes", p.Segments(), p.ObjectSize())
		}
		return
	}
	if n > MaxBlocks {
		t.Fatalf("%d blocks", n)
	}
	if want := (p.ObjectSize() + uint64(p.SegmentSize()) - 1) / uint64(p.SegmentSize()); p.Segments() != want {
		t.Fatalf("%d segments, want %d", p.Segments(), want)
	}
	if p.FirstSegment(n) != p.Segments() || p.FirstSegment(0) != 0 {
		t.Fatalf("FirstSegment(0), FirstSegment(%d) = %d, %d; want 0, %d", n, p.FirstSegment(0), p.FirstSegment(n), p.Segments())
	}
	bigLen, smallLen := p.BlockLen(0), p.BlockLen(n-1)
	if smallLen > bigLen || bigLen-smallLen > 1 || bigLen > p.MaxBlockLen() || smallLen < 1 {
		t.Fatalf("block lengths from %d down to %d, max %d", bigLen, smallLen, p.MaxBlockLen())
	}
	// Fewer blocks would not do: the blocks are as few as the limit allows.
	if uint64(n-1)*uint64(p.MaxBlockLen()) >= p.Segments() {
		t.Fatalf("%d blocks for %d segments of at most %d per block", n, p.Segments(), p.MaxBlockLen())
	}
	check := func(b int) {
		k := p.BlockLen(b)
		if k < smallLen || k > bigLen {
			t.Fatalf("BlockLen(%d) = %d outside [%d, %d]", b, k, smallLen, bigLen)
		}
		if b > 0 && p.BlockLen(b-1) < k {
			t.Fatalf("block %d longer than block %d", b, b-1)
		}
		first := p.FirstSegment(b)
		if p.FirstSegment(b+1)-first != uint64(k) {
			t.Fatalf("FirstSegment(%d)-FirstSegment(%d) = %d, BlockLen = %d", b+1, b, p.FirstSegment(b+1)-first, k)
		}
		for _, i := range []int{0, k / 2, k - 1} {
			seg := first + uint64(i)
			off, length := p.Segment(b, i)
			if off != seg*uint64(p.SegmentSize()) {
				t.Fatalf("Segment(%d, %d) at %d, want %d", b, i, off, seg*uint64(p.SegmentSize()))
			}
			last := seg == p.Segments()-1
			if !last && length != p.SegmentSize() || last && (length < 1 || off+uint64(length) != p.ObjectSize()) {
				t.Fatalf("Segment(%d, %d) = %d, %d in a %d-byte object", b, i, off, length, p.ObjectSize())
			}
			if lb, li, ok := p.Locate(seg); !ok || lb != b || li != i {
				t.Fatalf("Locate(%d) = %d, %d, %v; want %d, %d", seg, lb, li, ok, b, i)
			}
		}
		if _, length := p.Segment(b, k); length != 0 {
			t.Fatalf("Segment(%d, %d) past the block has length %d", b, k, length)
		}
	}
	if n <= 4096 {
		var sum uint64
		for b := range n {
			check(b)
			sum += uint64(p.BlockLen(b))
		}
		if sum != p.Segments() {
			t.Fatalf("block lengths sum to %d, want %d segments", sum, p.Segments())
		}
		return
	}
	// Too many blocks to walk: sample the ends and the large/small boundary,
	// and check the sum in closed form.
	large := 0
	for lo, hi := 0, n; lo < hi; {
		mid := (lo + hi) / 2
		if p.BlockLen(mid) == bigLen {
			lo, large = mid+1, mid+1
		} else {
			hi = mid
		}
	}
	if bigLen == smallLen {
		large = n
	}
	if sum := uint64(large)*uint64(bigLen) + uint64(n-large)*uint64(smallLen); sum != p.Segments() {
		t.Fatalf("block lengths sum to %d, want %d segments", sum, p.Segments())
	}
	for _, b := range []int{0, 1, large - 1, large, large + 1, n / 2, n - 2, n - 1} {
		if b >= 0 && b < n {
			check(b)
		}
	}
}

func FuzzPartition(f *testing.F) {
	f.Add(uint64(147), 1, 64)
	f.Add(uint64(147*1400-5), 1400, 64)
	f.Add(uint64(0), 1400, 64)
	f.Add(uint64(1), 1, 1)
	f.Add(uint64(MaxObjectSize), MaxSegmentSize, MaxBlockLen)
	f.Add(uint64(1<<48), 1400, 64)
	f.Add(uint64(1<<24), 1, 1)
	f.Add(uint64(12345678901), 8, 255)
	f.Fuzz(func(t *testing.T, size uint64, seg, blk int) {
		p, err := NewPartition(size, seg, blk)
		if err != nil {
			valid := seg >= 1 && seg <= MaxSegmentSize && blk >= 1 && blk <= MaxBlockLen && size <= MaxObjectSize
			if valid && !errors.Is(err, ErrBlockCount) || !valid && errors.Is(err, ErrBlockCount) {
				t.Fatalf("NewPartition(%d, %d, %d): %v", size, seg, blk, err)
			}
			return
		}
		checkPartition(t, p)
	})
}
