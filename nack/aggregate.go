package nack

import "github.com/shoalnet/shoal/framing"

// Aggregator is a sender's collection of the NACKs of one aggregation
// window (RFC 5740 §5.4, see AggregationWindow): it merges their repair
// requests per object and block so that the sender answers every receiver
// with one set of repairs, then hands the engine a repair plan in object
// and block order.
//
// For each block it keeps the union of the symbol ids requested and the
// largest erasure count any one receiver reported: an ERASURES item's
// count, or the number of symbol ids one NACK requested in the block, which
// is how a reference receiver states its erasure count. A sender with FEC
// answers with that many fresh parity symbols, since one parity symbol
// repairs a different loss at each receiver; a sender without answers with
// the requested source symbols.
//
// Memory is bounded by the sizes given to NewAggregator. A request that
// does not fit is widened, never dropped: symbols to their whole block,
// blocks to their whole object. Widened counts how often that happened;
// the sender then repairs more than was asked, not less. After its tables
// have been made, an Aggregator does not allocate. Not safe for concurrent
// use.
type Aggregator struct {
	t table
}

// NewAggregator returns an Aggregator that keeps symbol-level state for up
// to blocks distinct blocks, and as many ranges of whole blocks, of up to
// symbols encoding symbol ids each (256 covers FEC id 5). Requests for ids
// from symbols on belong to no block and are reported as malformed.
func NewAggregator(blocks, symbols int) *Aggregator {
	return &Aggregator{t: newTable(blocks, symbols, true)}
}

// Reset forgets every request and starts a new window. Plans list objects
// in serial-number order starting from base: give the oldest object the
// sender still holds, so that transport ids that wrapped past 65535 come
// after the ones that did not.
func (a *Aggregator) Reset(base uint16) { a.t.reset(base) }

// Add merges the repair requests of one NORM_NACK's Content (one call per
// NACK: erasure counts are taken per NACK). fecM is the field size for FEC
// id 2 payload ids (the message's FECM). Malformed requests are skipped and
// reported with an error wrapping framing.ErrContent; the well formed ones
// are merged all the same.
func (a *Aggregator) Add(content []byte, fecM uint8) error { return a.t.add(content, fecM) }

// Empty reports whether nothing has been requested since Reset.
func (a *Aggregator) Empty() bool { return a.t.empty() }

// Widened returns how many requests since Reset were widened because the
// tables were full.
func (a *Aggregator) Widened() int { return a.t.widened }

// Repair is one element of a repair plan.
type Repair struct {
	// Level is what is to be repaired, one of framing.RepairObject (the
	// whole object), framing.RepairInfo (its NORM_INFO),
	// framing.RepairBlock (whole blocks Block to LastBlock) or
	// framing.RepairSegment (symbols of block Block).
	Level  framing.RepairFlags
	Object uint16
	Block  uint32
	// LastBlock is the last block of a framing.RepairBlock range; for
	// the other levels it equals Block.
	LastBlock uint32
	// Symbols holds, for framing.RepairSegment, the encoding symbol ids
	// requested (source and parity ids alike). It belongs to the
	// Aggregator and changes with the next Add or Reset.
	Symbols *Bitmask
	// Erasures is, for framing.RepairSegment, the largest number of
	// symbols any one receiver still needs for the block.
	Erasures int
}

// Plan returns an iterator over the aggregated repairs in object order
// (serial-number order from the Reset base), and within an object its
// NORM_INFO first, then blocks in order. Requests another one includes are
// left out: nothing else of an object requested whole, no symbols of a
// block inside a requested block range.
//
//	for p := a.Plan(); p.Next(); {
//		r := p.Repair()
//		...
//	}
func (a *Aggregator) Plan() Plan { return Plan{t: &a.t, objNext: -1, infoNext: -1} }

// Plan iterates over an Aggregator's repairs; see Aggregator.Plan. It is
// invalidated by Add and Reset.
type Plan struct {
	t        *table
	r        Repair
	off      int    // next object offset to look at
	cur      uint16 // object offset being listed
	inObj    bool
	infoDone bool
	si, ei   int    // next span, next entry (index into t.index)
	skip     uint32 // with skipping: entries up to this block are in a listed span
	skipping bool
	objNext  int // next object offset requested whole at or after off, or objectIDs
	infoNext int // same for NORM_INFO requests
}

func nextOrEnd(m *Bitmask, i int) int {
	if x := m.NextSet(i); x >= 0 {
		return x
	}
	return objectIDs
}

// Repair returns the repair Next moved to.
func (p *Plan) Repair() Repair { return p.r }

// Next moves to the next repair and reports whether there is one.
func (p *Plan) Next() bool {
	t := p.t
	if t == nil {
		return false
	}
	for {
		if p.inObj {
			if p.listBlocks() {
				return true
			}
			p.inObj = false
			continue
		}
		// The object bitmasks are 64 Ki bits; search each again only once
		// the listing has passed its last hit.
		if p.objNext < p.off {
			p.objNext = nextOrEnd(&t.objects, p.off)
		}
		if p.infoNext < p.off {
			p.infoNext = nextOrEnd(&t.info, p.off)
		}
		next := min(p.objNext, p.infoNext)
		if p.si < len(t.spans) {
			next = min(next, int(t.spans[p.si].obj))
		}
		if p.ei < len(t.index) {
			next = min(next, int(p.entryObj(p.ei)))
		}
		if next >= objectIDs {
			return false
		}
		p.cur, p.off = uint16(next), next+1
		p.infoDone, p.skipping = false, false
		id := t.base + p.cur
		if t.objects.Test(next) {
			for p.si < len(t.spans) && t.spans[p.si].obj == p.cur {
				p.si++
			}
			for p.ei < len(t.index) && p.entryObj(p.ei) == p.cur {
				p.ei++
			}
			p.r = Repair{Level: framing.RepairObject, Object: id}
			return true
		}
		p.inObj = true
	}
}

// listBlocks moves to the next repair of the current object, if any.
func (p *Plan) listBlocks() bool {
	t := p.t
	id := t.base + p.cur
	if !p.infoDone {
		p.infoDone = true
		if t.info.Test(int(p.cur)) {
			p.r = Repair{Level: framing.RepairInfo, Object: id}
			return true
		}
	}
	var sp *span
	if p.si < len(t.spans) && t.spans[p.si].obj == p.cur {
		sp = &t.spans[p.si]
	}
	var e *entry
	for p.ei < len(t.index) && p.entryObj(p.ei) == p.cur {
		c := &t.entries[t.index[p.ei]]
		if p.skipping && uint32(c.key) <= p.skip {
			p.ei++
			continue
		}
		e = c
		break
	}
	switch {
	case sp != nil && (e == nil || sp.first <= uint32(e.key)):
		p.si++
		p.skip, p.skipping = sp.last, true
		p.r = Repair{Level: framing.RepairBlock, Object: id, Block: sp.first, LastBlock: sp.last}
		return true
	case e != nil:
		p.ei++
		b := uint32(e.key)
		p.r = Repair{Level: framing.RepairSegment, Object: id, Block: b, LastBlock: b,
			Symbols: &e.syms, Erasures: max(e.erasures, e.counted)}
		return true
	}
	return false
}

func (p *Plan) entryObj(i int) uint16 { return uint16(p.t.entries[p.t.index[i]].key >> 32) }
