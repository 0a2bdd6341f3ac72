package receiver

import (
	"io"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/nack"
)

// rxObject is an object being received from one sender.
type rxObject struct {
	id      uint16
	file    bool
	size    uint64
	part    fec.Partition
	symLen  int
	parity  int
	maxK    int        // the FTI's maximum source block length
	codec   *fec.Codec // made when a block first needs decoding
	info    []byte
	infoOK  bool
	track   nack.Object
	sink    io.WriterAt
	data    []byte // in-memory destination when sink is nil, grown as blocks arrive
	stored  uint64 // in memory: bytes of data copied in
	blocks  []*blockBuf
	last    *blockBuf // the block found last, in blocks: symbols come in runs
	held    int64     // bytes of r.buffer accounted to this object
	hiBlock uint32    // newest block a symbol arrived for
	seen    bool
	stalled int // NACK cycles without progress
	stream  *rxStream
	moved   bool // a new symbol arrived since the last NACK cycle
	waiting bool // a symbol was dropped for room the application holds
}

// blockBuf holds the symbols of one partially received block until any k of
// them are present and the block can be decoded and delivered.
type blockBuf struct {
	block    uint32
	buf      []byte
	syms     [][]byte // by encoding symbol id; len 0 = missing
	size     int64    // bytes the block is charged: room for all its symbols
	complete bool     // decoded, waiting to be stored in order (in-memory objects)
}

// room returns space for one symbol of symLen bytes (length 0, capacity
// symLen) in the block's buffer, which with Config.SharedPayloads holds only
// what cannot be kept by reference: short symbols padded to full length and
// rebuilt ones. A full buffer is replaced by a larger one; the symbols in
// the old one stay where they are.
func (bb *blockBuf) room(symLen int, p *bufPool) []byte {
	if cap(bb.buf) == 0 && p.spare != nil {
		bb.buf, p.spare = p.spare[:0], nil
	}
	if len(bb.buf)+symLen > cap(bb.buf) {
		bb.buf = make([]byte, 0, max(2*cap(bb.buf), 4*symLen))
	}
	n := len(bb.buf)
	bb.buf = bb.buf[:n+symLen]
	return bb.buf[n : n : n+symLen]
}

func (r *Receiver) findBlock(o *rxObject, b uint32) *blockBuf {
	if o.last != nil && o.last.block == b {
		return o.last
	}
	for _, bb := range o.blocks {
		r.work++
		if bb.block == b {
			o.last = bb
			return bb
		}
	}
	return nil
}

func (o *rxObject) dropBlock(bb *blockBuf) {
	if o.last == bb {
		o.last = nil
	}
	for i, x := range o.blocks {
		if x == bb {
			o.blocks[i] = o.blocks[len(o.blocks)-1]
			o.blocks[len(o.blocks)-1] = nil
			o.blocks = o.blocks[:len(o.blocks)-1]
			return
		}
	}
}

// bufPool recycles block buffers: every partially received block needs
// k+p symbols of room, and allocating that per block would make garbage at
// the packet rate.
type bufPool struct {
	free  []*blockBuf
	bytes int // held by free
	// spare is, with Config.SharedPayloads, the one buffer kept for
	// whichever block next needs to copy a symbol; spares in free hold
	// none, so a receiver keeps one buffer beyond its blocks' needs.
	spare []byte
}

// maxSpareBytes bounds the memory bufPool keeps for reuse, which is outside
// Config.MaxBufferBytes: a few default-sized blocks, not a forged stream's
// 16 MiB ones.
const maxSpareBytes = 8 << 20

func (p *bufPool) get(block uint32, n, symLen int, shared bool, work *uint64) *blockBuf {
	var bb *blockBuf
	for i := len(p.free) - 1; i >= 0; i-- {
		*work++
		if (shared || cap(p.free[i].buf) >= n*symLen) && cap(p.free[i].syms) >= n {
			bb = p.free[i]
			p.free[i] = p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			p.bytes -= cap(bb.buf)
			break
		}
	}
	if bb == nil {
		bb = &blockBuf{syms: make([][]byte, n)}
		if !shared {
			bb.buf = make([]byte, n*symLen)
		}
	}
	bb.block, bb.complete, bb.size = block, false, int64(n*symLen)
	bb.syms = bb.syms[:n]
	if shared {
		// Symbols are kept by reference; the buffer takes only what must
		// be copied, from its start.
		bb.buf = bb.buf[:0]
		clear(bb.syms)
		return bb
	}
	bb.buf = bb.buf[:n*symLen]
	for i := range bb.syms {
		bb.syms[i] = bb.buf[i*symLen : i*symLen : (i+1)*symLen]
	}
	return bb
}

func (p *bufPool) put(bb *blockBuf, shared bool) {
	if shared {
		// Many simulated receivers share one process: spares keep no
		// references to packets, and at most one buffer.
		clear(bb.syms)
		if cap(bb.buf) > cap(p.spare) {
			p.spare = bb.buf[:0]
		}
		bb.buf = nil
	}
	// A few spares cover the blocks in flight.
	if len(p.free) < 4 && p.bytes+cap(bb.buf) <= maxSpareBytes {
		p.free = append(p.free, bb)
		p.bytes += cap(bb.buf)
	}
}
