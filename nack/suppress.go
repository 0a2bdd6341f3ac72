package nack

// Suppressor is a receiver's record of the repairs already asked for in one
// repair cycle: the NACKs of other receivers it overhears and the sender's
// CMD(REPAIR_ADV) advertisements. When its back-off timer fires, a receiver
// whose every need is covered sends no NACK (RFC 5740 §5.3): the sender
// will repair it anyway.
//
// A need is covered when the repair asked for will satisfy it:
//
//   - a whole object, by an OBJECT-level request for it;
//   - an object's NORM_INFO, by an INFO (or OBJECT-level) request for it;
//   - a whole block, by a BLOCK-level request for it (or its object);
//   - symbols of a partially received block, by requests for every symbol
//     this receiver would ask for, or, when the sender has parity enough,
//     by an ERASURES item for the block with a count at least this
//     receiver's: the sender answers it with that many fresh parity
//     symbols, and any of them fill any receiver's erasures.
//
// Memory is bounded by the sizes given to NewSuppressor. Requests that do
// not fit are forgotten, which only means less suppression. Not safe for
// concurrent use.
type Suppressor struct {
	t    table
	want Bitmask
}

// NewSuppressor returns a Suppressor that remembers symbol-level requests
// for up to blocks distinct blocks, and as many ranges of whole blocks, of
// up to symbols encoding symbol ids each (256 covers FEC id 5). Requests
// for ids from symbols on belong to no block and are reported as malformed.
func NewSuppressor(blocks, symbols int) *Suppressor {
	s := &Suppressor{t: newTable(blocks, symbols, false)}
	s.want.Resize(symbols)
	return s
}

// Reset forgets every request; call it when a new back-off period starts,
// as the reference implementation does.
func (s *Suppressor) Reset() { s.t.reset(0) }

// Add merges the repair requests of an overheard NORM_NACK's Content (for
// the same sender) or a CMD(REPAIR_ADV)'s Content. fecM is the field size
// for FEC id 2 payload ids (the message's FECM). Malformed requests are
// skipped and reported with an error wrapping framing.ErrContent; the well
// formed ones are merged all the same.
func (s *Suppressor) Add(content []byte, fecM uint8) error { return s.t.add(content, fecM) }

// CoversObject reports whether object id has been requested whole.
func (s *Suppressor) CoversObject(id uint16) bool { return s.t.objects.Test(int(s.t.off(id))) }

// CoversInfo reports whether object id's NORM_INFO, or the whole object,
// has been requested.
func (s *Suppressor) CoversInfo(id uint16) bool {
	off := int(s.t.off(id))
	return s.t.info.Test(off) || s.t.objects.Test(off)
}

// Covers reports whether everything o would NACK for (see
// Builder.AddObject; flush as there) has been asked for already.
func (s *Suppressor) Covers(o *Object, flush bool) bool {
	return s.covers(o, o.needs(flush))
}

// CoversUpTo is Covers for what o was missing at Mark m (see
// Builder.AddObjectUpTo).
func (s *Suppressor) CoversUpTo(o *Object, m Mark) bool {
	return s.covers(o, o.needsTo(m))
}

func (s *Suppressor) covers(o *Object, it needIter) bool {
	return s.uncovered(o, it, false) == 0
}

// Uncovered returns the most symbols that one block of o, among those
// Covers(o, flush) looks at, still needs and the requests heard do not
// cover: 0 when they cover everything. A block nothing has arrived for
// counts as its length, and a missing NORM_INFO as the object's longest
// block. It is what a receiver's NACK back-off is timed by (see
// BackoffGroup): the receivers that miss the most of some block are the
// few whose NACK no other can stand in for.
func (s *Suppressor) Uncovered(o *Object, flush bool) int {
	return s.uncovered(o, o.needs(flush), true)
}

// UncoveredUpTo is Uncovered for what o was missing at Mark m (see
// CoversUpTo).
func (s *Suppressor) UncoveredUpTo(o *Object, m Mark) int {
	return s.uncovered(o, o.needsTo(m), true)
}

// uncovered returns the most symbols a block of it needs that the table
// does not cover, 0 if none; without all it stops at the first such block
// (and returns at least 1).
func (s *Suppressor) uncovered(o *Object, it needIter, all bool) int {
	t := &s.t
	off := t.off(o.id)
	if t.objects.Test(int(off)) {
		return 0
	}
	most := 0
	if o.info && !t.info.Test(int(off)) {
		if !all {
			return 1
		}
		most = max(o.layout.MaxBlockLen, 1)
	}
	for n, ok := it.nextNeed(); ok; n, ok = it.nextNeed() {
		if i := t.spanCovering(off, n.first); i >= 0 && t.spans[i].last >= n.last {
			continue
		}
		if n.kind == needBlocks {
			if !all {
				return 1
			}
			most = max(most, o.layout.MaxBlockLen, 1)
			continue
		}
		needed, parityOnly := o.wanted(n, &s.want)
		if s.want.FirstSet() < 0 || needed <= most {
			continue
		}
		if e := t.find(off, n.first); e != nil {
			if parityOnly && needed <= freshParity(n.s, o.layout.Parity) && max(e.erasures, e.counted) >= needed {
				continue
			}
			if s.want.subsetOf(&e.syms) {
				continue
			}
		}
		if !all {
			return 1
		}
		most = needed
	}
	return most
}

// freshParity returns how many of a block's p parity symbols the sender can
// still have unsent, as far as this receiver can tell: those above the
// highest parity id that reached it. A sender answers a request for n
// symbols of a block with n parity symbols it has not sent before, while it
// has them, and any of those fill any receiver's erasures; so a receiver
// that needs at most n, and at most what is fresh, is covered by that
// request whichever ids it names. Receivers name the parity ids they lack,
// which differ from receiver to receiver once repairs have been lost, so
// comparing ids would cover almost no one after the first repair round.
func freshParity(s *slot, p int) int {
	hi := -1
	k := int(s.k)
	mask := s.mask(k + p)
	for i := mask.NextSet(k); i >= 0 && i < k+p; i = mask.NextSet(i + 1) {
		hi = i
	}
	if hi < 0 {
		return p
	}
	return k + p - 1 - hi
}
