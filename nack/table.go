package nack

import (
	"fmt"

	"github.com/shoalnet/shoal/framing"
)

// table is the merged content of many repair requests (NACKs or
// CMD(REPAIR_ADV)s) in bounded memory: objects requested whole, objects
// whose NORM_INFO was requested, ranges of blocks requested whole, and per
// (object, block) the symbols requested and the erasure counts reported.
// Suppressor and Aggregator are views of it.
//
// Objects are kept by their offset from a base id, so that ordering follows
// NORM's serial-number arithmetic and is a total order whatever arrives.
type table struct {
	base    uint16
	objects Bitmask // object offsets requested whole
	info    Bitmask // object offsets whose NORM_INFO was requested
	objSet  bool    // objects or info may have bits set (both are sized on first use)
	entries []entry // storage, made in chunks as needed; the first used are in use
	limit   int     // entries the table may make
	used    int
	index   []int32  // used entries, by key
	keys    []uint64 // the keys of index's entries, searched instead of them: side by side, not one per cache line
	spans   []span   // blocks requested whole, by (object, first); disjoint, not adjacent
	symbols int      // symbol ids tracked per block
	widen   bool     // on overflow widen a request rather than drop it
	widened int
	gen     uint32 // counts contents added, to count symbols per content
	last    int32  // entry found last, tried first
}

type entry struct {
	key      uint64 // object offset << 32 | block
	syms     Bitmask
	erasures int    // largest erasure count of an ERASURES item
	counted  int    // most symbols one content requested in the block
	cur      int    // symbols the current content requested in the block
	gen      uint32 // content cur counts for
}

type span struct {
	obj         uint16 // object offset
	first, last uint32
}

const objectIDs = 1 << 16

func newTable(blocks, symbols int, widen bool) table {
	blocks, symbols = max(blocks, 1), max(symbols, 1)
	return table{
		limit:   blocks,
		symbols: symbols,
		widen:   widen,
		last:    -1,
	}
}

// tableChunk is how many entries a table makes at a time: a receiver's
// suppressor mostly holds a few blocks, and thousands of simulated
// receivers should not each carry room for hundreds.
const tableChunk = 16

// grow makes room for more entries, if the table may have more.
func (t *table) grow() bool {
	n := len(t.entries)
	if n == t.limit {
		return false
	}
	c := min(tableChunk, t.limit-n)
	words := (t.symbols + 63) / 64
	store := make([]uint64, c*words)
	entries := make([]entry, n+c)
	copy(entries, t.entries) // their bitmasks keep their own storage
	for i := range c {
		entries[n+i].syms = newBitmaskIn(store[i*words : (i+1)*words : (i+1)*words])
	}
	t.entries = entries
	return true
}

// objMasks makes the object-level bitmasks ready to set: 16 KiB that most
// receivers' suppressors never need (only whole objects and NORM_INFO are
// asked for at that level), made on first use and cleared only when used.
func (t *table) objMasks() {
	if t.objects.Len() == 0 {
		t.objects.Resize(objectIDs)
		t.info.Resize(objectIDs)
	}
	t.objSet = true
}

func (t *table) reset(base uint16) {
	t.base = base
	if t.objSet {
		t.objects.Reset()
		t.info.Reset()
		t.objSet = false
	}
	t.used = 0
	t.index = t.index[:0]
	t.keys = t.keys[:0]
	t.spans = t.spans[:0]
	t.widened = 0
	t.last = -1
}

func (t *table) empty() bool {
	return t.used == 0 && len(t.spans) == 0 && t.objects.FirstSet() < 0 && t.info.FirstSet() < 0
}

func (t *table) off(id uint16) uint16 { return id - t.base }

func key(off uint16, block uint32) uint64 { return uint64(off)<<32 | uint64(block) }

// add merges the repair requests of one NACK or REPAIR_ADV content area.
// fecM is the field size for FEC id 2 payload ids (0 means
// framing.DefaultFECM). Malformed parts are skipped and reported; what is
// well formed is merged.
func (t *table) add(content []byte, fecM uint8) error {
	t.gen++
	bad, badAt := false, 0
	note := func(off int) {
		if !bad {
			bad, badAt = true, off
		}
	}
	off := 0
	for off < len(content) {
		r, next, ok := framing.NextRepairRequest(content, off)
		if !ok {
			note(off)
			break
		}
		if !t.addRequest(r, fecM) {
			note(off)
		}
		off = next
	}
	if bad {
		return fmt.Errorf("nack: %w: repair request at content offset %d", framing.ErrContent, badAt)
	}
	return nil
}

// addRequest merges one repair request and reports whether it was well
// formed. The level is the lowest flag set, as the reference implementation
// reads it (SEGMENT, then BLOCK, then OBJECT, then INFO alone); the INFO
// flag on a SEGMENT, BLOCK or OBJECT request also asks for the NORM_INFO
// of the objects it names.
func (t *table) addRequest(r framing.RepairRequest, fecM uint8) bool {
	if r.Form < framing.FormItems || r.Form > framing.FormErasures {
		return false
	}
	var level framing.RepairFlags
	switch {
	case r.Flags&framing.RepairSegment != 0:
		level = framing.RepairSegment
	case r.Flags&framing.RepairBlock != 0:
		level = framing.RepairBlock
	case r.Flags&framing.RepairObject != 0:
		level = framing.RepairObject
	case r.Flags&framing.RepairInfo != 0:
		level = framing.RepairInfo
	default:
		return false
	}
	info := r.Flags&framing.RepairInfo != 0
	good := true
	i := 0
	for i < len(r.Items) {
		first, j, ok := r.Item(i, fecM)
		if !ok {
			return false
		}
		last := first
		if r.Form == framing.FormRanges {
			if last, j, ok = r.Item(j, fecM); !ok {
				return false
			}
		}
		i = j
		if !t.addItem(level, r.Form, info, first, last) {
			good = false
		}
	}
	return good
}

// addItem merges one item (or range) and reports whether it made sense.
func (t *table) addItem(level framing.RepairFlags, form framing.RepairForm, info bool, first, last framing.SymbolRef) bool {
	fo := t.off(first.ObjectID)
	switch level {
	case framing.RepairObject, framing.RepairInfo:
		// A range of objects is taken as written, wrapping if last comes
		// before first, as the reference implementation does.
		t.objMasks()
		n := int(last.ObjectID-first.ObjectID) + 1
		if level == framing.RepairObject {
			t.setObjects(&t.objects, fo, n)
		}
		if info {
			t.setObjects(&t.info, fo, n)
		}
		return true
	}
	if info {
		t.objMasks()
		t.info.Set(int(fo))
	}
	if last.ObjectID != first.ObjectID {
		return false
	}
	if level == framing.RepairBlock {
		if last.PayloadID.Block < first.PayloadID.Block {
			return false
		}
		t.addSpan(fo, first.PayloadID.Block, last.PayloadID.Block)
		return true
	}
	if last.PayloadID.Block != first.PayloadID.Block {
		return false
	}
	block := first.PayloadID.Block
	if form == framing.FormErasures {
		e := t.entry(fo, block)
		if e != nil {
			e.erasures = max(e.erasures, int(first.PayloadID.Symbol))
		}
		return true
	}
	s0, s1 := int(first.PayloadID.Symbol), int(last.PayloadID.Symbol)
	if s1 < s0 || s0 >= t.symbols {
		return false
	}
	// Ids from t.symbols on belong to no block the table was sized for.
	inRange := s1 < t.symbols
	s1 = min(s1, t.symbols-1)
	e := t.entry(fo, block)
	if e == nil {
		return inRange
	}
	e.syms.SetRange(s0, s1+1)
	if e.gen != t.gen {
		e.gen, e.cur = t.gen, 0
	}
	e.cur += s1 - s0 + 1
	e.counted = max(e.counted, e.cur)
	return inRange
}

// setObjects sets n consecutive object offsets from off, wrapping.
func (t *table) setObjects(m *Bitmask, off uint16, n int) {
	end := int(off) + n
	m.SetRange(int(off), min(end, objectIDs))
	if end > objectIDs {
		m.SetRange(0, end-objectIDs)
	}
}

// entry returns the state of block of object offset off, making it if
// needed; nil if the table is full, after widening the request to the
// whole block if the table widens.
func (t *table) entry(off uint16, block uint32) *entry {
	k := key(off, block)
	if t.last >= 0 && t.entries[t.last].key == k {
		return &t.entries[t.last]
	}
	lo, found := t.search(k)
	if found {
		t.last = t.index[lo]
		return &t.entries[t.last]
	}
	if t.used == len(t.entries) && !t.grow() {
		if t.widen {
			t.widened++
			t.addSpan(off, block, block)
		}
		return nil
	}
	e := &t.entries[t.used]
	e.key, e.erasures, e.counted, e.cur, e.gen = k, 0, 0, 0, 0
	e.syms.Resize(t.symbols)
	t.index = append(t.index, 0)
	copy(t.index[lo+1:], t.index[lo:])
	t.index[lo] = int32(t.used)
	t.keys = append(t.keys, 0)
	copy(t.keys[lo+1:], t.keys[lo:])
	t.keys[lo] = k
	t.last = int32(t.used)
	t.used++
	return e
}

// addSpan records blocks first..last of object offset off as requested
// whole, merging with overlapping or adjacent spans. When the span list is
// full the request is widened to the whole object or dropped.
func (t *table) addSpan(off uint16, first, last uint32) {
	s := t.spans
	// i: the first span of this object that ends at or after first-1.
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].obj < off || (s[m].obj == off && uint64(s[m].last)+1 < uint64(first)) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	j := i // spans i..j-1 overlap or touch [first, last] and merge into it
	for j < len(s) && s[j].obj == off && uint64(s[j].first) <= uint64(last)+1 {
		first, last = min(first, s[j].first), max(last, s[j].last)
		j++
	}
	if j > i {
		s[i] = span{obj: off, first: first, last: last}
		t.spans = append(s[:i+1], s[j:]...)
		return
	}
	if len(s) == t.limit {
		if t.widen {
			t.widened++
			t.objMasks()
			t.objects.Set(int(off))
		}
		return
	}
	s = append(s, span{})
	copy(s[i+1:], s[i:])
	s[i] = span{obj: off, first: first, last: last}
	t.spans = s
}

// spanCovering returns the index of the span of object offset off that
// holds block, or -1.
func (t *table) spanCovering(off uint16, block uint32) int {
	s := t.spans
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].obj < off || (s[m].obj == off && s[m].last < block) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s) && s[lo].obj == off && s[lo].first <= block {
		return lo
	}
	return -1
}

// search returns the position in t.index of the entry with key k, or where
// it would go, and whether it is there (t.index is sorted by key).
func (t *table) search(k uint64) (int, bool) {
	keys := t.keys
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keys[m] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(keys) && keys[lo] == k
}

// find returns the entry of block of object offset off, or nil.
func (t *table) find(off uint16, block uint32) *entry {
	if i, found := t.search(key(off, block)); found {
		return &t.entries[t.index[i]]
	}
	return nil
}
