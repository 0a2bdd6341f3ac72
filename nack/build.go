package nack

import (
	"fmt"

	"github.com/shoalnet/shoal/framing"
)

// Position is a place in the order a Builder adds repair requests in:
// objects in the order the caller adds them (ascending transport id in
// 16-bit serial-number arithmetic, since transport ids wrap), then blocks,
// then symbols.
type Position struct {
	Object uint16
	Block  uint32
	Symbol uint16
}

// before reports whether p comes before q. Object ids compare in 16-bit
// serial-number arithmetic, as NORM's transport ids wrap.
func (p Position) before(q Position) bool {
	if d := int16(p.Object - q.Object); d != 0 {
		return d < 0
	}
	if p.Block != q.Block {
		return p.Block < q.Block
	}
	return p.Symbol < q.Symbol
}

// builderItems is how many repair items one request of a Builder holds
// before it starts another; at 12 bytes an item (FEC id 129) a request
// stays far below the 16-bit length limit.
const builderItems = 256

// Builder writes the content of a NORM_NACK (RFC 5740 §4.3.1): repair
// requests for what a receiver is missing, in the most compact form the
// protocol offers, into a caller-owned buffer through
// framing.AppendRepairRequest.
//
// The caller adds, in ascending object order, objects it has no state for
// (AddMissingObject) and objects it is receiving (AddObject). Each run of
// consecutive missing things becomes one item when it is one or two long
// (ITEMS form) and a first..last pair when longer (RANGES form): whole
// objects at the OBJECT level, whole blocks nothing has arrived for at the
// BLOCK level, symbols at the SEGMENT level, and, for an object whose
// NORM_INFO alone is missing, an INFO-level item; requests for an object
// whose NORM_INFO is missing carry the INFO flag too. Consecutive runs of
// the same form and level share one request header. Runs are written in
// ascending order, as the reference implementation writes them, because a
// reference sender counts the ids a NACK requests in a block as that
// block's erasure count while it reads them in order.
//
// Content is limited to a maximum size, normally the sender's segment size
// (the reference implementation splits larger NACKs likewise). When the
// next run does not fit the Builder stops, and Stopped says where; a caller
// that wants to send everything sends what it has, then builds the rest
// after Reset and ResumeAt.
//
// A Builder reuses its storage: with a buffer of enough capacity, building
// allocates nothing. Not safe for concurrent use.
type Builder struct {
	// Erasures makes the Builder request a block that fresh parity can
	// repair with one ERASURES-form item carrying the number of symbols the
	// block still needs (RFC 5740 §4.3.1), instead of that many parity ids.
	// A Shoal sender reads both the same way. The reference implementation
	// does not read the ERASURES form (it takes the count for a symbol id),
	// so leave this off in sessions with reference senders.
	Erasures bool

	fecID, fecM      uint8
	maxBlock, maxSym uint32
	itemLen          int

	content []byte
	base    int
	max     int
	items   []framing.SymbolRef
	open    bool
	form    framing.RepairForm
	flags   framing.RepairFlags
	run     objectRun
	resume  bool
	from    Position
	stopped bool
	stop    Position
	err     error
	want    Bitmask
}

// objectRun is a run of consecutive objects requested whole (or for their
// NORM_INFO), held back until it ends so that its form is known. Its size
// is counted against the limit while it grows, so writing it always fits.
type objectRun struct {
	active bool
	flags  framing.RepairFlags
	first  uint16
	count  int
}

// NewBuilder returns a Builder for repair items of FEC encoding id fecID
// (0, 2, 5 or 129; fecM is the field size for FEC id 2, 0 meaning
// framing.DefaultFECM) and blocks of up to symbols encoding symbols, source
// plus parity.
func NewBuilder(fecID, fecM uint8, symbols int) (*Builder, error) {
	n := framing.PayloadIDLen(fecID)
	if n == 0 {
		return nil, fmt.Errorf("nack: unknown FEC encoding id %d", fecID)
	}
	if fecM == 0 {
		fecM = framing.DefaultFECM
	}
	b := &Builder{fecID: fecID, fecM: fecM, itemLen: 4 + n, items: make([]framing.SymbolRef, 0, builderItems)}
	switch {
	case fecID == framing.FECRS8 || (fecID == framing.FECRS && fecM == 8):
		b.maxBlock, b.maxSym = 1<<24-1, 1<<8-1
	case fecID == framing.FECSmallBlock:
		b.maxBlock, b.maxSym = 1<<32-1, 1<<16-1
	default:
		b.maxBlock, b.maxSym = 1<<16-1, 1<<16-1
	}
	if symbols < 1 || uint32(symbols-1) > b.maxSym {
		return nil, fmt.Errorf("nack: %d symbols per block do not fit FEC id %d payload ids", symbols, fecID)
	}
	b.want.Resize(symbols)
	return b, nil
}

// Reset starts new content, appended to dst, of at most max bytes of repair
// requests (max <= 0 means no limit). Give dst capacity for max bytes and
// building does not allocate.
func (b *Builder) Reset(dst []byte, max int) {
	b.content, b.base, b.max = dst, len(dst), max
	b.items = b.items[:0]
	b.open, b.run = false, objectRun{}
	b.resume, b.from = false, Position{}
	b.stopped, b.stop, b.err = false, Position{}, nil
}

// ResumeAt makes the content built after this Reset skip everything before
// p, the Position a previous build stopped at, so that a caller adding the
// same objects again continues where the previous NACK ended.
func (b *Builder) ResumeAt(p Position) { b.resume, b.from = true, p }

// Stopped reports whether the content filled up (or an error occurred) and
// the Position of the first thing that was left out.
func (b *Builder) Stopped() (Position, bool) { return b.stop, b.stopped }

// Err returns the error that stopped the build, if any: an object whose
// layout the Builder's FEC id cannot express.
func (b *Builder) Err() error { return b.err }

// Content finishes the requests added so far and returns the content, dst
// followed by the requests. Adding may continue afterwards.
func (b *Builder) Content() []byte {
	b.closeRun()
	b.flush()
	return b.content
}

// AddMissingObject requests object id as a whole (OBJECT level): the
// receiver knows the sender sent it but holds no state for it. It returns
// false once the content is full; nothing more is added then.
func (b *Builder) AddMissingObject(id uint16) bool {
	return b.addRun(id, framing.RepairObject)
}

// AddMissingInfo requests the NORM_INFO of object id, which the receiver
// never heard of (INFO level). A sender answers with the object's NORM_INFO,
// which announces the object and its size; a Shoal sender answers for an
// object without one with the object itself.
func (b *Builder) AddMissingInfo(id uint16) bool {
	return b.addRun(id, framing.RepairInfo)
}

// AddObject requests what o is missing (RFC 5740 §5.3). With flush, that is
// every incomplete block: the sender has moved past the object or asked
// for NACKs with CMD(FLUSH); an object nothing has arrived for is requested
// whole, like a missing one. Without flush, only blocks up to the newest
// one a symbol arrived for and, of that block, source symbols before the
// newest one, since the sender may simply not have sent the rest yet. It
// returns false once the content is full or o's layout does not fit the
// Builder's FEC id; nothing more is added then.
func (b *Builder) AddObject(o *Object, flush bool) bool {
	return b.addObject(o, o.needs(flush), flush)
}

// AddObjectUpTo is AddObject limited to what o was missing at Mark m, taken
// when the NACK back-off started (see Mark). Blocks past m are left for a
// later repair cycle.
func (b *Builder) AddObjectUpTo(o *Object, m Mark) bool {
	return b.addObject(o, o.needsTo(m), false)
}

// addObject adds what it walks of o; whole says the walk covers the whole
// object, so that an object nothing arrived for can be asked for at once.
func (b *Builder) addObject(o *Object, it needIter, whole bool) bool {
	if b.stopped {
		return false
	}
	id := o.id
	if b.resume && (Position{Object: id}).before(Position{Object: b.from.Object}) {
		return true
	}
	if l := o.layout; l.Blocks > 0 && (l.Blocks-1 > b.maxBlock || uint32(l.MaxBlockLen+l.Parity-1) > b.maxSym) {
		b.err = fmt.Errorf("%w: object %d has %d blocks of %d+%d symbols, beyond FEC id %d payload ids",
			ErrLayout, id, l.Blocks, l.MaxBlockLen, l.Parity, b.fecID)
		b.stopAt(Position{Object: id})
		return false
	}
	inResume := b.resume && id == b.from.Object
	if whole && o.layout.Blocks > 0 && o.ndone == 0 && len(o.active) == 0 &&
		(!inResume || b.from == (Position{Object: id})) {
		// Nothing has arrived: one OBJECT-level item says it best, and a
		// sender resends the NORM_INFO with the object.
		return b.addRun(id, framing.RepairObject)
	}
	var infoFlag framing.RepairFlags
	if o.info {
		infoFlag = framing.RepairInfo
	}
	added := false
	for n, ok := it.nextNeed(); ok; n, ok = it.nextNeed() {
		first := n.first
		if inResume && first < b.from.Block {
			if n.last < b.from.Block {
				continue
			}
			first = b.from.Block
		}
		if n.kind == needBlocks {
			r0, r1 := b.blockRef(o, first), b.blockRef(o, n.last)
			if !b.putRun(framing.RepairBlock|infoFlag, int(n.last-first)+1, r0, r1, Position{Object: id, Block: first}) {
				return false
			}
			added = true
			continue
		}
		from := 0
		if inResume && first == b.from.Block {
			from = int(b.from.Symbol)
		}
		needed, parityOnly := o.wanted(n, &b.want)
		if b.Erasures && parityOnly && from == 0 {
			r := b.symbolRef(o, n.s, needed)
			if !b.put(framing.FormErasures, framing.RepairSegment|infoFlag, 1, r, r, Position{Object: id, Block: first}) {
				return false
			}
			added = true
			continue
		}
		for s, e := b.want.NextRun(from); s >= 0; s, e = b.want.NextRun(e) {
			r0, r1 := b.symbolRef(o, n.s, s), b.symbolRef(o, n.s, e-1)
			if !b.putRun(framing.RepairSegment|infoFlag, e-s, r0, r1, Position{Object: id, Block: first, Symbol: uint16(s)}) {
				return false
			}
			added = true
		}
	}
	if o.info && !added && (!inResume || b.from == (Position{Object: id})) {
		return b.addRun(id, framing.RepairInfo)
	}
	return true
}

// blockRef names a whole block. Its source block length (on the wire for
// FEC id 129 only) is the object's largest, since nothing has arrived to
// give the block's own; reference senders take lengths from their own
// partition, not from NACKs.
func (b *Builder) blockRef(o *Object, block uint32) framing.SymbolRef {
	return framing.SymbolRef{FECID: b.fecID, ObjectID: o.id,
		PayloadID: framing.PayloadID{Block: block, BlockLen: uint16(o.layout.MaxBlockLen)}}
}

func (b *Builder) symbolRef(o *Object, s *slot, sym int) framing.SymbolRef {
	return framing.SymbolRef{FECID: b.fecID, ObjectID: o.id,
		PayloadID: framing.PayloadID{Block: s.block, Symbol: uint16(sym), BlockLen: uint16(s.k)}}
}

func (b *Builder) objectRef(id uint16) framing.SymbolRef {
	return framing.SymbolRef{FECID: b.fecID, ObjectID: id}
}

// runShape is the compact form of a run of count consecutive things: one
// or two items, or a range.
func runShape(count int) (framing.RepairForm, int) {
	if count <= 2 {
		return framing.FormItems, count
	}
	return framing.FormRanges, 2
}

// putRun adds a run of count consecutive things from r0 to r1 (r0 the
// first, r1 the last); for a run of two, r1 is the second.
func (b *Builder) putRun(flags framing.RepairFlags, count int, r0, r1 framing.SymbolRef, pos Position) bool {
	form, n := runShape(count)
	return b.put(form, flags, n, r0, r1, pos)
}

// put adds n (1 or 2) items to the content if they fit, and otherwise stops
// the build at pos.
func (b *Builder) put(form framing.RepairForm, flags framing.RepairFlags, n int, r0, r1 framing.SymbolRef, pos Position) bool {
	if b.stopped {
		return false
	}
	b.closeRun()
	if !b.fits(b.cost(form, flags, n)) {
		b.stopAt(pos)
		return false
	}
	b.emit(form, flags, n, r0, r1)
	return true
}

// addRun adds object id to the pending run of whole objects (or NORM_INFO
// requests), or starts a new run.
func (b *Builder) addRun(id uint16, flags framing.RepairFlags) bool {
	if b.stopped {
		return false
	}
	pos := Position{Object: id}
	if b.resume && pos.before(Position{Object: b.from.Object}) {
		return true
	}
	r := b.run
	if r.active && r.flags == flags && id == r.first+uint16(r.count) && r.count < 1<<16-1 {
		r.count++
	} else {
		b.closeRun()
		r = objectRun{active: true, flags: flags, first: id, count: 1}
	}
	form, n := runShape(r.count)
	if !b.fits(b.cost(form, flags, n)) {
		b.stopAt(pos)
		return false
	}
	b.run = r
	return true
}

// closeRun writes the pending object run; its size was checked as it grew.
func (b *Builder) closeRun() {
	r := b.run
	if !r.active {
		return
	}
	b.run.active = false
	form, n := runShape(r.count)
	last := r.first + uint16(r.count-1)
	b.emit(form, r.flags, n, b.objectRef(r.first), b.objectRef(last))
}

// joins reports whether n items of form and flags can go into the open
// request rather than a new one.
func (b *Builder) joins(form framing.RepairForm, flags framing.RepairFlags, n int) bool {
	return b.open && b.form == form && b.flags == flags && len(b.items)+n <= cap(b.items)
}

// cost is what adding n items of form and flags adds to the content.
func (b *Builder) cost(form framing.RepairForm, flags framing.RepairFlags, n int) int {
	c := n * b.itemLen
	if !b.joins(form, flags, n) {
		c += 4
	}
	return c
}

// fits reports whether c more bytes fit, counting the open request.
func (b *Builder) fits(c int) bool {
	if b.max <= 0 {
		return true
	}
	used := len(b.content) - b.base
	if b.open {
		used += 4 + len(b.items)*b.itemLen
	}
	return used+c <= b.max
}

func (b *Builder) emit(form framing.RepairForm, flags framing.RepairFlags, n int, r0, r1 framing.SymbolRef) {
	if !b.joins(form, flags, n) {
		b.flush()
		b.open, b.form, b.flags = true, form, flags
	}
	b.items = append(b.items, r0)
	if n == 2 {
		b.items = append(b.items, r1)
	}
}

// flush writes the open request.
func (b *Builder) flush() {
	if !b.open {
		return
	}
	c, err := framing.AppendRepairRequest(b.content, b.form, b.flags, b.fecM, b.items)
	if err != nil && b.err == nil {
		// Cannot happen for objects AddObject accepted; kept so that a
		// bug shows as an error rather than as silently missing content.
		b.err = err
		b.stopAt(Position{Object: b.items[0].ObjectID, Block: b.items[0].PayloadID.Block, Symbol: b.items[0].PayloadID.Symbol})
	}
	b.content = c
	b.open = false
	b.items = b.items[:0]
}

func (b *Builder) stopAt(p Position) {
	if !b.stopped {
		b.stopped, b.stop = true, p
	}
}
