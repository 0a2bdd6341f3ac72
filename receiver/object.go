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
	last    *blockBuf // the block found last, in blocks: symbols come in runs
	held    int64     // bytes of r.buffer accounted to this object
	hiBlock uint32    // newest block a symbol arrived for
	seen    bool
	stalled int // NACK cycles without progress
	stream  *rxStream
	moved   bool // a new symbol arrived since the last NACK cycle
	waiting bool // a symbol was dropped for room the application holds
	// proven: a block of the object was written, or as many symbols as a
	// whole block has arrived, so the object is the sender's (a forger
	// pays a block's worth of packets), and its blocks get whole buffers
	// at once (see bufPool.get).
	proven  bool
	symbols int // symbols taken in, counted until proven
}

// blockBuf holds the symbols of one partially received block until any k of
// them are present and the block can be decoded and delivered.
type blockBuf struct {
	block    uint32
	buf      []byte      // symbol slots, taken in the order symbols arrive
	used     int         // slots taken
	symLen   int         // bytes per slot
	charged  int64       // bytes counted against the buffer for this block
	syms     [][]byte    // by encoding symbol id; len 0 = missing, cap 0 = no slot yet
	complete bool        // decoded, waiting to be stored in order (in-memory objects)
	ats      []time.Time // when each symbol arrived (deadline-bounded streams)
	refs     []bool      // with Config.SharedPayloads: the symbol is the packet's own bytes, not in buf
	shared   bool        // Config.SharedPayloads: buf takes only short and rebuilt symbols
	// detached: the block holds no syms and refs, only pos (Config.Arena),
	// until it is decoded or takes a symbol that must be copied (see
	// Receiver.attach). Thousands of simulated receivers each hold dozens
	// of blocks waiting for repair: 4 bytes a symbol the garbage collector
	// need not scan, instead of a 24-byte slice it must.
	detached bool
	pos      []uint32 // while detached: by symbol, 1 + the symbol's position in Config.Arena, 0 = missing
}

// full returns the first n bytes of symbol i (n at most the symbol
// length), the part that did not arrive as zeros: a symbol holds only the
// bytes its packet carried (see handleData).
func (bb *blockBuf) full(i, n int) []byte {
	s := bb.syms[i]
	if len(s) >= n {
		return s[:n]
	}
	if cap(s) < n {
		// A block's first symbol, kept at its own size (see room): moved
		// into a slot of the buffer.
		bb.syms[i] = nil
		d := bb.room(i, n)
		copy(d, s)
		s = d[:len(s)]
	}
	ext := s[:n]
	clear(ext[len(s):])
	bb.syms[i] = ext
	return ext
}

// stamp notes when symbol sym arrived, for deadline-bounded streams.
func (bb *blockBuf) stamp(sym int, now time.Time) {
	if n := len(bb.syms); len(bb.ats) != n {
		if cap(bb.ats) < n {
			bb.ats = make([]time.Time, n)
		}
		bb.ats = bb.ats[:n]
		clear(bb.ats)
	}
	bb.ats[sym] = now
}

// room returns a slot for symbol sym, to hold n bytes (at most symLen).
// The buffer grows by doubling as symbols arrive: what a block costs in
// memory and in time is paid for by the symbols received, not by the
// block size a packet announces (a forged stream's 255 symbols of 65,535
// bytes for one packet would take 16.7 MB to allocate and clear). A
// block's first symbol gets a buffer of its own size, n bytes, which the
// next symbol's growth (or blockBuf.full) moves into a slot: a forged
// sender that opens a new block with every packet, as many at once do,
// costs the receiver its packets' size, not 16 KiB or a 65,000-byte slot
// per packet to allocate and clear.
func (bb *blockBuf) room(sym, n int) []byte {
	if cap(bb.syms[sym]) >= bb.symLen {
		return bb.syms[sym][:bb.symLen]
	}
	if bb.used == 0 && cap(bb.buf) < bb.symLen {
		n = max(n, 1)
		if cap(bb.buf) < n {
			bb.buf = make([]byte, n)
		}
		bb.used = 1
		return bb.buf[:n:n]
	}
	if (bb.used+1)*bb.symLen > cap(bb.buf) {
		bb.grow()
	}
	off := bb.used * bb.symLen
	bb.used++
	return bb.buf[off : off+bb.symLen : off+bb.symLen]
}

// grow doubles the slots (at first 16 KiB's worth, at most one per
// symbol) and moves
// the symbols held into the new buffer.
func (bb *blockBuf) grow() {
	first := 16 << 10 / bb.symLen
	if bb.shared {
		first = 2 // most symbols are kept by reference
	}
	slots := min(max(2*(cap(bb.buf)/bb.symLen), bb.used+1, first), len(bb.syms))
	nb := make([]byte, slots*bb.symLen)
	k := 0
	for j, s := range bb.syms {
		if cap(s) == 0 || bb.refs[j] {
			continue
		}
		off := k * bb.symLen
		copy(nb[off:off+bb.symLen], s)
		bb.syms[j] = nb[off : off+len(s) : off+bb.symLen]
		k++
	}
	bb.buf, bb.used = nb, k
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
	// tabs are symbol tables for blocks of a receiver with Config.Arena,
	// whose spares hold none: only blocks being decoded (or not detached)
	// need one.
	tabs []symTable
}

type symTable struct {
	syms [][]byte
	refs []bool
}

// maxSpareBytes bounds the memory bufPool keeps for reuse, which is outside
// Config.MaxBufferBytes: a few default-sized blocks, not a forged stream's
// 16 MiB ones.
const maxSpareBytes = 8 << 20

// maxSpares bounds the spares get searches.
const maxSpares = 64

// maxTables bounds bufPool.tabs: a block is decoded and delivered at once.
const maxTables = 4

// get returns a buffer for block b of n symbols of symLen bytes. With arena
// (Config.Arena) spares hold no symbol tables, and a detached block takes
// none.
func (p *bufPool) get(block uint32, n, symLen int, shared, arena, detached, proven bool, work *uint64) *blockBuf {
	// A spare big enough for the whole block, else any with symbol room
	// (its buffer then grows as symbols arrive). A block of a proven object
	// that finds no whole spare gets a whole buffer at once: under loss
	// more blocks wait for repair than there are spares, and growing a new
	// buffer by doubling copies and allocates it twice over. A forged
	// packet for such an object costs one buffer of the size the sender's
	// own blocks have, within the blocks the receiver tracks.
	pick := -1
	for i := len(p.free) - 1; i >= 0; i-- {
		*work++
		f := p.free[i]
		if (!arena && cap(f.syms) < n) || (arena && cap(f.pos) < n) {
			continue
		}
		if pick < 0 || cap(f.buf) >= n*symLen {
			pick = i
		}
		if cap(f.buf) >= n*symLen || shared {
			break // shared spares have no buffer: the first fit is as good
		}
	}
	var bb *blockBuf
	if pick >= 0 {
		bb = p.free[pick]
		p.free[pick] = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.bytes -= cap(bb.buf)
	} else if arena {
		bb = &blockBuf{pos: make([]uint32, n)}
	} else {
		bb = &blockBuf{syms: make([][]byte, n)}
	}
	if proven && !shared && cap(bb.buf) < n*symLen {
		bb.buf = make([]byte, n*symLen)
	}
	bb.block, bb.complete, bb.symLen, bb.used, bb.charged = block, false, symLen, 0, 0
	bb.buf = bb.buf[:cap(bb.buf)]
	bb.ats = bb.ats[:0] // taken up by streams only (see stamp)
	bb.shared, bb.detached = shared, detached
	if arena {
		bb.pos = bb.pos[:n]
		clear(bb.pos)
		if detached {
			return bb
		}
		bb.syms, bb.refs = p.table(n)
	}
	bb.syms = bb.syms[:n]
	if cap(bb.refs) < n {
		bb.refs = make([]bool, n)
	}
	bb.refs = bb.refs[:n]
	clear(bb.refs)
	// With shared payloads most symbols are kept by reference: the buffer
	// only takes what must be copied, and grows for it.
	if whole := !shared && cap(bb.buf) >= n*symLen; whole {
		for i := range bb.syms {
			bb.syms[i] = bb.buf[i*symLen : i*symLen : (i+1)*symLen]
		}
		bb.used = n
	} else {
		clear(bb.syms)
	}
	return bb
}

// table returns a cleared symbol table for n symbols.
func (p *bufPool) table(n int) ([][]byte, []bool) {
	for i := len(p.tabs) - 1; i >= 0; i-- {
		if t := p.tabs[i]; cap(t.syms) >= n && cap(t.refs) >= n {
			p.tabs[i] = p.tabs[len(p.tabs)-1]
			p.tabs = p.tabs[:len(p.tabs)-1]
			return t.syms[:n], t.refs[:n]
		}
	}
	return make([][]byte, n), make([]bool, n)
}

func (p *bufPool) put(bb *blockBuf, shared, arena bool) {
	if shared {
		// Many simulated receivers share one process: spares keep no
		// references to packets, and no buffer.
		clear(bb.syms)
		bb.buf = nil
	}
	if arena && bb.syms != nil {
		// Spares keep only positions; a few tables are kept for the
		// blocks to decode.
		if len(p.tabs) < maxTables {
			clear(bb.syms[:cap(bb.syms)])
			clear(bb.refs[:cap(bb.refs)])
			p.tabs = append(p.tabs, symTable{bb.syms, bb.refs})
		}
		bb.syms, bb.refs = nil, nil
	}
	// Spares cover the blocks in flight. Under loss, dozens of blocks wait
	// for repair at once and are freed together when it comes; keeping
	// only a few made the receiver allocate (and fault in) fresh buffers
	// at the packet rate for the blocks after them.
	// Shared spares are only symbol tables, kept as for any receiver: a
	// receiver holds no more of them than it had blocks waiting at once,
	// while dropping them made a block's worth of garbage per block for
	// the collector, which dominated simulations of ten thousand receivers.
	spares := maxSpares
	if len(p.free) < spares && p.bytes+cap(bb.buf) <= maxSpareBytes {
		p.free = append(p.free, bb)
		p.bytes += cap(bb.buf)
	}
}
