package receiver

import (
	"time"

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
	held    int64  // bytes of r.buffer accounted to this object
	hiBlock uint32 // newest block a symbol arrived for
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
	syms     [][]byte    // by encoding symbol id; len 0 = missing
	complete bool        // decoded, waiting to be stored in order (in-memory objects)
	ats      []time.Time // when each symbol arrived (deadline-bounded streams)
}

func (r *Receiver) findBlock(o *rxObject, b uint32) *blockBuf {
	for _, bb := range o.blocks {
		r.work++
		if bb.block == b {
			return bb
		}
	}
	return nil
}

func (o *rxObject) dropBlock(bb *blockBuf) {
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
}

// maxSpareBytes bounds the memory bufPool keeps for reuse, which is outside
// Config.MaxBufferBytes: a few default-sized blocks, not a forged stream's
// 16 MiB ones.
const maxSpareBytes = 8 << 20

// maxSpares bounds the spares get searches.
const maxSpares = 64

func (p *bufPool) get(block uint32, n, symLen int, work *uint64) *blockBuf {
	var bb *blockBuf
	for i := len(p.free) - 1; i >= 0; i-- {
		*work++
		if cap(p.free[i].buf) >= n*symLen && cap(p.free[i].syms) >= n {
			bb = p.free[i]
			p.free[i] = p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			p.bytes -= cap(bb.buf)
			break
		}
	}
	if bb == nil {
		bb = &blockBuf{buf: make([]byte, n*symLen), syms: make([][]byte, n)}
	}
	bb.block, bb.complete = block, false
	bb.buf = bb.buf[:n*symLen]
	bb.syms = bb.syms[:n]
	if cap(bb.ats) < n {
		bb.ats = make([]time.Time, n)
	}
	bb.ats = bb.ats[:n]
	for i := range bb.syms {
		bb.syms[i] = bb.buf[i*symLen : i*symLen : (i+1)*symLen]
	}
	return bb
}

func (p *bufPool) put(bb *blockBuf) {
	// Spares cover the blocks in flight. Under loss, dozens of blocks wait
	// for repair at once and are freed together when it comes; keeping
	// only a few made the receiver allocate (and fault in) fresh buffers
	// at the packet rate for the blocks after them.
	if len(p.free) < maxSpares && p.bytes+cap(bb.buf) <= maxSpareBytes {
		p.free = append(p.free, bb)
		p.bytes += cap(bb.buf)
	}
}
