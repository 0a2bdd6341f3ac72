package fec

import (
	"errors"
	"fmt"
)

// Limits of a FEC Encoding ID 5 object, as its EXT_FTI and FEC payload id can
// express them.
const (
	// MaxObjectSize is the largest transfer length, a 48-bit field.
	MaxObjectSize = 1<<48 - 1
	// MaxSegmentSize is the largest encoding symbol length, a 16-bit field.
	MaxSegmentSize = 1<<16 - 1
	// MaxBlockLen is the largest maximum source block length: encoding
	// symbol ids are 8 bits wide.
	MaxBlockLen = 255
	// MaxBlocks is the largest number of source blocks in one object. Source
	// block numbers are 24 bits wide, but the reference implementation
	// refuses objects that need more than 2^24-1 blocks, so Shoal does too
	// rather than send objects its peers cannot receive.
	MaxBlocks = 1<<24 - 1
)

// Errors returned by [NewPartition]; test for them with errors.Is.
var (
	ErrSegmentSize = errors.New("fec: segment size out of range")
	ErrBlockLen    = errors.New("fec: maximum source block length out of range")
	ErrObjectSize  = errors.New("fec: object size exceeds the 48-bit transfer length")
	ErrBlockCount  = errors.New("fec: object needs too many source blocks")
)

// Partition is the division of one object into segments (the source
// symbols) and source blocks, as sender and receiver must both compute it
// from the object's FEC Object Transmission Information.
//
// Segments are numbered 0 to Segments()-1 through the whole object and are
// all SegmentSize() bytes except the last, which may be shorter. Blocks are
// numbered 0 to Blocks()-1; block b holds BlockLen(b) consecutive segments,
// the first ones one segment longer than the rest when the segments do not
// divide evenly, so every block is within one segment of the others (147
// segments with a maximum block length of 64 give three blocks of 49, not
// 64+64+19).
//
// Methods taking a block number or a symbol index accept any value, since
// both arrive from the network: out-of-range ones yield zero lengths or
// ok == false, never a panic. The zero Partition describes an empty object.
// A Partition is a small value; copy it freely.
type Partition struct {
	objectSize  uint64
	segmentSize int
	maxBlockLen int
	segments    uint64
	blocks      int
	largeLen    int // length of blocks 0 to largeCount-1
	smallLen    int // length of the remaining blocks
	largeCount  int
}

// NewPartition computes the partition of an object of objectSize bytes into
// segments of segmentSize bytes and source blocks of at most maxBlockLen
// segments (the FTI's encoding symbol length and maximum source block
// length).
//
// It fails with [ErrSegmentSize] unless 1 <= segmentSize <= MaxSegmentSize,
// [ErrBlockLen] unless 1 <= maxBlockLen <= MaxBlockLen, [ErrObjectSize] if
// objectSize > MaxObjectSize, and [ErrBlockCount] if the object would need
// more than MaxBlocks blocks (use larger segments or blocks). An empty object
// has no segments and no blocks.
func NewPartition(objectSize uint64, segmentSize, maxBlockLen int) (Partition, error) {
	switch {
	case segmentSize < 1 || segmentSize > MaxSegmentSize:
		return Partition{}, fmt.Errorf("%w: %d, want 1 to %d", ErrSegmentSize, segmentSize, MaxSegmentSize)
	case maxBlockLen < 1 || maxBlockLen > MaxBlockLen:
		return Partition{}, fmt.Errorf("%w: %d, want 1 to %d", ErrBlockLen, maxBlockLen, MaxBlockLen)
	case objectSize > MaxObjectSize:
		return Partition{}, fmt.Errorf("%w: %d bytes", ErrObjectSize, objectSize)
	}
	e, b := uint64(segmentSize), uint64(maxBlockLen)
	t := ceilDiv(objectSize, e)
	n := ceilDiv(t, b)
	if n > MaxBlocks {
		return Partition{}, fmt.Errorf("%w: %d bytes in %d-byte segments and blocks of %d need %d blocks, limit %d",
			ErrBlockCount, objectSize, segmentSize, maxBlockLen, n, MaxBlocks)
	}
	p := Partition{
		objectSize:  objectSize,
		segmentSize: segmentSize,
		maxBlockLen: maxBlockLen,
		segments:    t,
		blocks:      int(n),
	}
	if n > 0 {
		p.largeLen = int(ceilDiv(t, n))
		p.smallLen = int(t / n)
		p.largeCount = int(t - uint64(p.smallLen)*n)
	}
	return p, nil
}

func ceilDiv(a, b uint64) uint64 {
	if a == 0 {
		return 0
	}
	return (a-1)/b + 1
}

// ObjectSize returns the object's length in bytes.
func (p Partition) ObjectSize() uint64 { return p.objectSize }

// SegmentSize returns the length of every segment but possibly the last.
func (p Partition) SegmentSize() int { return p.segmentSize }

// MaxBlockLen returns the maximum source block length the partition was
// computed for. Blocks may be shorter: see [Partition.BlockLen].
func (p Partition) MaxBlockLen() int { return p.maxBlockLen }

// Segments returns the number of segments (source symbols) in the object.
func (p Partition) Segments() uint64 { return p.segments }

// Blocks returns the number of source blocks, at most [MaxBlocks].
func (p Partition) Blocks() int { return p.blocks }

// BlockLen returns the number of source symbols in block b, the k′ to hand
// to [Codec.Encode] and [Codec.Reconstruct], or 0 if the object has no block
// b. It is at most MaxBlockLen() and may be less for every block, not only
// the last: the codec then treats the block as a shortened code.
func (p Partition) BlockLen(b int) int {
	switch {
	case b < 0 || b >= p.blocks:
		return 0
	case b < p.largeCount:
		return p.largeLen
	default:
		return p.smallLen
	}
}

// FirstSegment returns the object-wide index of the first segment of block
// b, which is also the number of segments in the blocks before it. For
// b >= Blocks() it returns Segments(), and for b < 0 it returns 0.
func (p Partition) FirstSegment(b int) uint64 {
	switch {
	case b <= 0:
		return 0
	case b >= p.blocks:
		return p.segments
	case b <= p.largeCount:
		return uint64(b) * uint64(p.largeLen)
	default:
		return uint64(p.largeCount)*uint64(p.largeLen) + uint64(b-p.largeCount)*uint64(p.smallLen)
	}
}

// Segment returns where segment i of block b lies in the object: its byte
// offset and its length, which is SegmentSize() except for the object's last
// segment. A length of 0 means the object has no such segment (every real
// segment has at least one byte).
//
// Encoding symbols are longer than segments: see [Codec] for how the
// reference pads them.
func (p Partition) Segment(b, i int) (offset uint64, length int) {
	if i < 0 || i >= p.BlockLen(b) {
		return 0, 0
	}
	offset = (p.FirstSegment(b) + uint64(i)) * uint64(p.segmentSize)
	length = p.segmentSize
	if rest := p.objectSize - offset; rest < uint64(length) {
		length = int(rest)
	}
	return offset, length
}

// Locate returns the block and the index within it of the object-wide
// segment seg, or ok == false if seg >= Segments().
func (p Partition) Locate(seg uint64) (block, index int, ok bool) {
	if seg >= p.segments {
		return 0, 0, false
	}
	large := uint64(p.largeCount) * uint64(p.largeLen)
	if seg < large {
		return int(seg / uint64(p.largeLen)), int(seg % uint64(p.largeLen)), true
	}
	rest := seg - large
	return p.largeCount + int(rest/uint64(p.smallLen)), int(rest % uint64(p.smallLen)), true
}
