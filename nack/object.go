package nack

import (
	"errors"
	"fmt"
)

// MaxBlocks is the largest number of source blocks an Object tracks. Block
// numbers of FEC ids 2 and 5 are 24 bits wide; the reference implementation
// refuses larger objects for every FEC id, so Shoal does too.
const MaxBlocks = 1 << 24

// ErrLayout is returned by Object.Init for a Layout it cannot track.
var ErrLayout = errors.New("nack: object layout out of range")

// Pool holds the per-block receive state of every partially received block
// of a receiver's objects: a fixed number of slots, each with a bitmask as
// wide as the largest block (source plus parity symbols). An Object takes a
// slot when the first symbol of a block arrives and returns it when the
// block completes or the object is released, so a receiver with many
// objects and blocks has its memory bounded by the pool, however many
// blocks its objects have.
//
// Slots are made in chunks as they are first needed, so an engine that
// never has more than a few blocks in flight (the usual case, and what lets
// a process simulate ten thousand receivers) holds memory for those few;
// once made, slots are reused and a steady flow of packets allocates
// nothing.
//
// A Pool is not safe for concurrent use; one engine owns it.
type Pool struct {
	free    []*slot
	made    int // slots made so far
	limit   int // slots the pool may make
	symbols int
}

// slot is one block's state, laid out in 64 bytes: a receiver of a
// simulation with thousands looks at it once per packet, and each cache
// line it spans is a miss.
type slot struct {
	// bits are the symbols received, for blocks of up to slotSymbols
	// symbols (FEC id 5 has at most 256); a pool of wider blocks keeps them
	// in wide instead.
	bits  [slotSymbols / 64]uint64
	wide  *Bitmask
	block uint32
	k     int32 // source symbols in the block
	count int32 // distinct symbols received, source and parity
	src   int32 // source symbols received
	from  int32 // source symbols below this are given up: not asked for (GiveUp)
}

const slotSymbols = 256

// test reports whether symbol i was received.
func (s *slot) test(i int) bool {
	if s.wide != nil {
		return s.wide.Test(i)
	}
	return uint(i) < slotSymbols && s.bits[i>>6]&(1<<(uint(i)&63)) != 0
}

// set records symbol i, which is below the block's symbols.
func (s *slot) set(i int) {
	if s.wide != nil {
		s.wide.Set(i)
	} else if uint(i) < slotSymbols {
		s.bits[i>>6] |= 1 << (uint(i) & 63)
	}
}

// reset empties the slot for a block of n symbols.
func (s *slot) reset(n int) {
	if s.wide != nil {
		s.wide.Resize(n)
	} else {
		s.bits = [slotSymbols / 64]uint64{}
	}
}

// mask returns the symbols received as a Bitmask of the block's n symbols,
// sharing the slot's storage.
func (s *slot) mask(n int) Bitmask {
	if s.wide != nil {
		return Bitmask{w: s.wide.w, n: min(n, s.wide.n)}
	}
	return Bitmask{w: s.bits[:], n: min(n, slotSymbols)}
}

// poolChunk is how many slots a Pool makes at a time.
const poolChunk = 32

// NewPool returns a pool of blocks slots, each able to track symbols
// encoding symbol ids (source and parity: at most 256 for FEC id 5).
func NewPool(blocks, symbols int) *Pool {
	blocks, symbols = max(blocks, 0), max(symbols, 1)
	return &Pool{limit: blocks, symbols: symbols}
}

// Free returns the number of slots not in use.
func (p *Pool) Free() int { return len(p.free) + p.limit - p.made }

// Symbols returns the number of encoding symbol ids each slot can track.
func (p *Pool) Symbols() int { return p.symbols }

func (p *Pool) get() *slot {
	n := len(p.free)
	if n == 0 {
		if p.made == p.limit {
			return nil
		}
		p.grow()
		n = len(p.free)
	}
	s := p.free[n-1]
	p.free = p.free[:n-1]
	return s
}

// grow makes the next chunk of slots, and for wide blocks their bitmasks in
// one array.
func (p *Pool) grow() {
	c := min(poolChunk, p.limit-p.made)
	var store []uint64
	var wide []Bitmask
	words := (p.symbols + 63) / 64
	if p.symbols > slotSymbols {
		store, wide = make([]uint64, c*words), make([]Bitmask, c)
	}
	slots := make([]slot, c)
	if cap(p.free) < p.made+c {
		free := make([]*slot, len(p.free), min(max(2*cap(p.free), p.made+c), p.limit))
		copy(free, p.free)
		p.free = free
	}
	for i := range slots {
		s := &slots[i]
		if wide != nil {
			wide[i] = newBitmaskIn(store[i*words : (i+1)*words : (i+1)*words])
			s.wide = &wide[i]
		}
		p.free = append(p.free, s)
	}
	p.made += c
}

func (p *Pool) put(s *slot) { p.free = append(p.free, s) }

// Layout is what a receiver knows of an object's blocking from its FEC
// Object Transmission Information (EXT_FTI) and the FEC scheme's
// partitioning (package fec computes it; this package only needs the
// numbers).
type Layout struct {
	// Blocks is the number of source blocks.
	Blocks uint32
	// MaxBlockLen is the largest number of source symbols in a block (the
	// FTI's maximum source block length).
	MaxBlockLen int
	// Parity is the number of parity symbols the sender can make for each
	// block (the FTI's parity count for FEC id 5); 0 when the sender has no
	// FEC, so that only retransmitting source symbols can repair.
	Parity int
	// Window, if positive, tracks which blocks are complete only for the
	// Window blocks (rounded up to a multiple of 64) from the oldest
	// incomplete one on; blocks before are complete, and a symbol for a
	// block beyond is refused with Ahead. The bitmap is then Window bits,
	// not one per block: a stream's layout spans every block number, and
	// an object's block count comes from a packet, while only a window of
	// blocks is ever in flight.
	Window int
}

// Status is what Object.Receive did with a symbol.
type Status uint8

// Receive results.
const (
	// Invalid: the block, symbol id or block length is out of range for
	// the object's Layout or disagrees with earlier symbols; ignored.
	Invalid Status = iota
	// Duplicate: the symbol, or its whole block, was already received.
	Duplicate
	// NoRoom: the pool has no free slot for a new block; the symbol was not
	// recorded (the block stays wholly missing).
	NoRoom
	// Stored: a new symbol; its block still needs more.
	Stored
	// BlockComplete: the symbol completed its block (k distinct symbols).
	BlockComplete
	// ObjectComplete: the symbol completed its block and that was the
	// object's last incomplete block.
	ObjectComplete
	// Ahead: the block is beyond the tracking window (Layout.Window) of
	// the oldest incomplete block; the symbol was not recorded, and the
	// block stays wholly missing until the window gets there.
	Ahead
)

var statusNames = [...]string{"Invalid", "Duplicate", "NoRoom", "Stored", "BlockComplete", "ObjectComplete", "Ahead"}

// String returns the status's name.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Object is a receiver's loss bookkeeping for one object (RFC 5740 §5.3):
// which blocks are complete, which symbols of each partially received block
// have arrived, whether the object's NORM_INFO is still missing, and how far
// the sender has got, so that Builder can say what to NACK for and
// Suppressor whether other receivers already did.
//
// A block is complete once any k of its symbols, source or parity, have
// arrived (k is its number of source symbols): with FEC id 5 any k symbols
// rebuild the block.
//
// The zero Object is unusable; call Init. Objects are meant to be reused:
// Init and Release keep their storage. Not safe for concurrent use.
type Object struct {
	id     uint16
	pool   *Pool
	layout Layout
	done   Bitmask // complete blocks
	ndone  uint32
	// active are the partially received blocks, by block number. Each
	// holds its number beside its slot: a receiver looks a block up twice
	// per packet, and reading the number from the slot, or from an array
	// of its own, costs simulations of thousands of receivers a cache miss
	// per step.
	active  []activeSlot
	info    bool   // NORM_INFO still missing
	seen    bool   // some symbol has arrived
	hiBlock uint32 // highest block a symbol arrived for
	hiSym   int    // one past the highest symbol id that arrived for hiBlock
	steps   uint64 // loop iterations in SkipTo, for tests that bound work

	// With a window (Layout.Window), bit i of done is block base+i and
	// every block before base is complete; base is a multiple of 64.
	// Without, base is 0 and done has a bit per block.
	base     uint32
	windowed bool
}

// Init starts tracking object id with the given layout, taking block slots
// from p. It releases whatever the object tracked before. It fails with
// ErrLayout if the layout has more than MaxBlocks blocks, a negative
// length or parity count, or blocks wider (MaxBlockLen + Parity) than the
// pool's slots. Init allocates only when the object has more blocks than
// it had room for before; Receive never allocates.
func (o *Object) Init(p *Pool, id uint16, l Layout) error {
	o.Release()
	if p == nil {
		return fmt.Errorf("%w: no pool", ErrLayout)
	}
	if l.Blocks > MaxBlocks || l.MaxBlockLen < 0 || l.Parity < 0 || l.Window < 0 ||
		(l.Blocks > 0 && (l.MaxBlockLen < 1 || l.MaxBlockLen+l.Parity > p.symbols)) {
		return fmt.Errorf("%w: %d blocks of up to %d+%d symbols (pool slots hold %d)",
			ErrLayout, l.Blocks, l.MaxBlockLen, l.Parity, p.symbols)
	}
	*o = Object{id: id, pool: p, layout: l, done: o.done, active: o.active[:0]}
	bits := int(l.Blocks)
	if l.Window > 0 && uint64(l.Window) < uint64(l.Blocks) {
		bits, o.windowed = (min(l.Window, MaxBlocks)+63)&^63, true
	}
	o.done.Resize(bits)
	// Room for as many partial blocks as the object can hold slots, so
	// that Receive never grows it.
	if n := min(int(l.Blocks), p.limit); cap(o.active) < n {
		o.active = make([]activeSlot, 0, n)
	}
	return nil
}

// Release returns the object's block slots to its pool. The object then
// tracks nothing until the next Init.
func (o *Object) Release() {
	for _, a := range o.active {
		o.pool.put(a.s)
	}
	clear(o.active)
	o.active = o.active[:0]
	o.layout = Layout{}
	o.done.Resize(0)
	o.ndone, o.seen, o.info = 0, false, false
	o.base, o.windowed = 0, false
}

// isDone reports whether block b is complete.
func (o *Object) isDone(b uint32) bool { return b < o.base || o.done.Test(int(b-o.base)) }

// setDone records that block b, incomplete and within the window, is
// complete.
func (o *Object) setDone(b uint32) {
	o.done.Set(int(b - o.base))
	o.ndone++
	o.slide()
}

// slide moves a window on past its leading complete words.
func (o *Object) slide() {
	if !o.windowed {
		return
	}
	w := o.done.w[:o.done.n/64]
	n := 0
	for n < len(w) && w[n] == ^uint64(0) {
		n++
	}
	if n == 0 {
		return
	}
	o.steps += uint64(len(w))
	copy(w, w[n:])
	clear(w[len(w)-n:])
	o.base += uint32(64 * n)
}

// nextClear returns the first incomplete block at or after i, or -1.
func (o *Object) nextClear(i uint32) int {
	i = max(i, o.base)
	if i >= o.layout.Blocks {
		return -1
	}
	if i-o.base >= uint32(o.done.Len()) {
		return int(i) // beyond the window: nothing is complete there
	}
	if j := o.done.NextClear(int(i - o.base)); j >= 0 {
		return int(o.base) + j
	}
	if e := o.base + uint32(o.done.Len()); e < o.layout.Blocks {
		return int(e)
	}
	return -1
}

// nextSet returns the first complete block at or after i, or -1.
func (o *Object) nextSet(i uint32) int {
	if i < o.base {
		return int(i)
	}
	if i-o.base >= uint32(o.done.Len()) {
		return -1
	}
	if j := o.done.NextSet(int(i - o.base)); j >= 0 {
		return int(o.base) + j
	}
	return -1
}

// ID returns the object's transport id.
func (o *Object) ID() uint16 { return o.id }

// Layout returns the layout the object was initialized with.
func (o *Object) Layout() Layout { return o.layout }

// SetInfoPending records whether the object's NORM_INFO is still missing
// (RFC 5740 §4.2.1: NORM_DATA with the INFO flag says the object has one).
// While it is, NACKs for the object carry the INFO flag.
func (o *Object) SetInfoPending(pending bool) { o.info = pending }

// InfoPending reports whether the object's NORM_INFO is still missing.
func (o *Object) InfoPending() bool { return o.info }

// Complete reports whether every block of the object is complete.
func (o *Object) Complete() bool { return o.ndone == o.layout.Blocks }

// Receive records the arrival of a symbol: encoding symbol id symbol of
// source block block, which has k source symbols (the partition's length
// for that block, or the payload id's source block length for FEC id 129).
// Source symbols are ids 0 to k-1, parity symbols k to k+Parity-1. The
// arrival also tells how far the sender has got, which bounds what a NACK
// without flush asks for.
//
// When a block completes its slot goes back to the pool: which symbols the
// decoder has is the engine's business, from its own symbol buffers.
func (o *Object) Receive(block uint32, symbol uint16, k int) Status {
	sym := int(symbol)
	if block >= o.layout.Blocks || k < 1 || k > o.layout.MaxBlockLen || sym >= k+o.layout.Parity {
		return Invalid
	}
	i, s := o.find(block)
	if s != nil && int(s.k) != k {
		return Invalid
	}
	switch {
	case !o.seen || block > o.hiBlock:
		o.seen, o.hiBlock, o.hiSym = true, block, sym+1
	case block == o.hiBlock && sym >= o.hiSym:
		o.hiSym = sym + 1
	}
	if o.isDone(block) {
		return Duplicate
	}
	if block-o.base >= uint32(o.done.Len()) {
		return Ahead
	}
	if s == nil {
		if s = o.pool.get(); s == nil {
			return NoRoom
		}
		s.block, s.k, s.count, s.src, s.from = block, int32(k), 0, 0, 0
		s.reset(k + o.layout.Parity)
		o.active = append(o.active, activeSlot{})
		copy(o.active[i+1:], o.active[i:])
		o.active[i] = activeSlot{block, s}
	}
	if s.test(sym) {
		return Duplicate
	}
	s.set(sym)
	s.count++
	if sym < k {
		s.src++
	}
	if int(s.count) < k {
		return Stored
	}
	o.setDone(block)
	o.remove(i)
	o.pool.put(s)
	if o.Complete() {
		return ObjectComplete
	}
	return BlockComplete
}

// SkipTo marks every block before block as complete without receiving it,
// releasing any state held for them: a stream receiver that joins in the
// middle of a stream, or whose sender no longer holds older blocks, starts
// there instead of asking for everything before.
func (o *Object) SkipTo(block uint32) {
	block = min(block, o.layout.Blocks)
	for i := 0; i < len(o.active); {
		if s := o.active[i].s; s.block < block {
			o.pool.put(s)
			o.remove(i)
			continue
		}
		i++
	}
	if block <= o.base {
		return
	}
	if o.windowed && block-o.base >= uint32(o.done.Len()) {
		// The whole window is skipped: start a new one at block.
		o.ndone += block - o.base - uint32(o.done.Count())
		o.steps += uint64(o.done.Len() / 64)
		o.done.Reset()
		o.base = block &^ 63
		o.done.setRangeCount(0, int(block-o.base))
		return
	}
	// Word at a time: a stream may start, or be squelched to, near block
	// 2^24, and a bit at a time that is millions of steps for one packet.
	n, words := o.done.setRangeCount(0, int(block-o.base))
	o.ndone += uint32(n)
	o.steps += uint64(words)
	o.slide()
}

// GiveUp stops asking for source symbols below symbol of block: a
// deadline-bounded stream that gave up its data before a segment in the
// middle of a block still wants the block's later symbols, not the
// earlier ones. Requests for such a block name its missing source symbols
// from symbol on, no parity. A block with nothing received yet, or
// complete, is left alone.
func (o *Object) GiveUp(block uint32, symbol int) {
	if _, s := o.find(block); s != nil && symbol > int(s.from) {
		s.from = int32(min(symbol, int(s.k)))
	}
}

// Needed returns how many more symbols block needs before it is complete
// (its erasure count, k minus the symbols received): 0 for a complete
// block or one outside the object, k for a block nothing has arrived for.
func (o *Object) Needed(block uint32, k int) int {
	if block >= o.layout.Blocks || o.isDone(block) {
		return 0
	}
	if _, s := o.find(block); s != nil {
		return int(s.k - s.count)
	}
	return k
}

// Received reports whether the given symbol of the given block has
// arrived, or its block is complete.
func (o *Object) Received(block uint32, symbol uint16) bool {
	if block >= o.layout.Blocks {
		return false
	}
	if o.isDone(block) {
		return true
	}
	_, s := o.find(block)
	return s != nil && s.test(int(symbol))
}

// Pending reports whether the object needs anything: an incomplete block
// or its NORM_INFO.
func (o *Object) Pending() bool { return o.info || !o.Complete() }

// remove drops active slot i.
func (o *Object) remove(i int) {
	copy(o.active[i:], o.active[i+1:])
	o.active[len(o.active)-1] = activeSlot{}
	o.active = o.active[:len(o.active)-1]
}

// find returns the slot of block, or nil and the index where it belongs.
func (o *Object) find(block uint32) (int, *slot) {
	// Symbols mostly arrive for the newest block, so look there first.
	as := o.active
	n := len(as)
	if n > 0 && as[n-1].block <= block {
		if as[n-1].block == block {
			return n - 1, as[n-1].s
		}
		return n, nil
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if as[m].block < block {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n && as[lo].block == block {
		return lo, as[lo].s
	}
	return lo, nil
}

// Needs of an object, walked in block order by Builder and Suppressor.

type activeSlot struct {
	block uint32
	s     *slot
}

type needKind uint8

const (
	needBlocks  needKind = iota + 1 // blocks first..last, nothing received
	needSymbols                     // symbols of one partially received block
)

type need struct {
	kind        needKind
	first, last uint32
	s           *slot
	limit       int // needSymbols: ask only for source symbols below limit; -1 for no limit
}

type needIter struct {
	o      *Object
	next   uint32 // next block to look at
	end    uint32 // last block to look at
	endSym int    // of block end, ask only for source symbols below this; -1 for all
	si     int    // index into o.active
	ok     bool
}

// Mark is how far a receiver has seen the sender get in one object: the
// newest block a symbol arrived for and one past the newest symbol id in it.
// A receiver takes a Mark when it starts a NACK back-off and later asks only
// for what was missing then (see Builder.AddObjectUpTo), so that receivers
// whose timers fire at different times ask for the same thing and suppress
// each other, rather than each adding what the sender sent meanwhile.
type Mark struct {
	Block  uint32
	Symbol int
	valid  bool
}

// MarkAt returns a Mark at symbol (exclusive) of block: a stream receiver
// told by NORM_CMD(FLUSH) how far the sender got asks up to there.
func MarkAt(block uint32, symbol int) Mark { return Mark{Block: block, Symbol: symbol, valid: true} }

// Later returns whichever of m and n is further on.
func (m Mark) Later(n Mark) Mark {
	switch {
	case !n.valid:
		return m
	case !m.valid, n.Block > m.Block, n.Block == m.Block && n.Symbol > m.Symbol:
		return n
	}
	return m
}

// Mark returns the object's current Mark; its zero value (nothing arrived
// yet) asks for nothing.
func (o *Object) Mark() Mark {
	if !o.seen {
		return Mark{}
	}
	return Mark{Block: o.hiBlock, Symbol: o.hiSym, valid: true}
}

// needs walks the object's incomplete blocks. With flush, all of them: the
// sender has finished the object. Otherwise only those up to the newest
// block a symbol arrived for, and of that block only source symbols the
// sender has already sent, as the reference implementation does: what the
// sender has not reached yet is not lost.
func (o *Object) needs(flush bool) needIter {
	if flush {
		return o.needsTo(Mark{Block: o.layout.Blocks - 1, Symbol: -1, valid: o.layout.Blocks > 0})
	}
	return o.needsTo(o.Mark())
}

// needsTo walks the incomplete blocks up to m.
func (o *Object) needsTo(m Mark) needIter {
	it := needIter{o: o, endSym: m.Symbol}
	if o.layout.Blocks == 0 || o.Complete() || !m.valid {
		return it
	}
	it.end, it.ok = min(m.Block, o.layout.Blocks-1), true
	if it.end != m.Block {
		it.endSym = -1
	}
	return it
}

func (it *needIter) nextNeed() (need, bool) {
	o := it.o
	if !it.ok {
		return need{}, false
	}
	nb := o.nextClear(it.next)
	if nb < 0 || uint32(nb) > it.end {
		it.ok = false
		return need{}, false
	}
	b := uint32(nb)
	for it.si < len(o.active) && o.active[it.si].block < b {
		it.si++
	}
	if it.si < len(o.active) && o.active[it.si].block == b {
		s := o.active[it.si].s
		it.next = b + 1
		it.ok = b < it.end
		limit := -1
		if it.endSym >= 0 && b == it.end && it.endSym < int(s.k) {
			limit = it.endSym
		}
		return need{kind: needSymbols, first: b, last: b, s: s, limit: limit}, true
	}
	// A run of blocks nothing has arrived for ends before the next
	// complete block or the next partially received one.
	last := it.end
	if d := o.nextSet(uint32(nb)); d >= 0 && uint32(d)-1 < last {
		last = uint32(d) - 1
	}
	if it.si < len(o.active) && o.active[it.si].block-1 < last {
		last = o.active[it.si].block - 1
	}
	it.next = last + 1
	it.ok = last < it.end
	return need{kind: needBlocks, first: b, last: last}, true
}

// wanted puts into w the symbol ids to ask for to complete the block of n
// and returns how many more symbols the block needs. parityOnly says the
// request is for parity alone (the sender can repair the block with fresh
// parity), which is when an erasure count says the same thing.
//
// The choice follows the reference implementation, so that a reference
// sender repairs as intended and reference receivers' NACKs suppress ours:
// a sender reads the number of ids requested in a block as its erasure
// count and answers a request for parity ids with that many fresh parity
// symbols. So when the sender has parity enough for the missing source
// symbols, ask for the first `needed` parity ids not received; otherwise
// ask explicitly for the missing source symbols beyond the first Parity of
// them plus every parity id not received.
func (o *Object) wanted(n need, w *Bitmask) (needed int, parityOnly bool) {
	s := n.s
	k, p := int(s.k), o.layout.Parity
	w.Resize(k + p)
	mask := s.mask(k + p)
	needed = int(s.k - s.count)
	if s.from > 0 {
		// Some were given up (GiveUp): exactly the later missing ones.
		end := k
		if n.limit >= 0 {
			end = min(end, n.limit)
		}
		needed = 0
		for i := mask.NextClear(int(s.from)); i >= 0 && i < end; i = mask.NextClear(i + 1) {
			w.Set(i)
			needed++
		}
		return needed, false
	}
	if n.limit >= 0 {
		for i := mask.NextClear(0); i >= 0 && i < n.limit; i = mask.NextClear(i + 1) {
			w.Set(i)
		}
		return needed, false
	}
	if missing := k - int(s.src); p > 0 && missing <= p {
		left := needed
		for i := mask.NextClear(k); i >= 0 && left > 0; i = mask.NextClear(i + 1) {
			w.Set(i)
			left--
		}
		return needed, true
	}
	// More than p source symbols are missing, so the first p missing ids
	// are all source: those are the ones the parity will stand in for.
	skip := p
	for i := mask.NextClear(0); i >= 0; i = mask.NextClear(i + 1) {
		if skip > 0 {
			skip--
			continue
		}
		w.Set(i)
	}
	return needed, false
}
