package nack

import "math/bits"

// Bitmask is a set of the integers 0 to Len()-1, kept as one bit each. The
// receiver uses it for the symbols of a block it holds and the blocks of an
// object it has finished; suppression and aggregation use it for the symbols
// other receivers asked for.
//
// Its storage is fixed when it is made, so no method but Resize (and only
// beyond the capacity) allocates. Indices come from the network, so methods
// never panic on them: Set and Clear ignore an index outside [0, Len()) and
// Test reports false for it.
//
// The zero value is an empty set of length 0. A Bitmask must not be copied
// after first use: copies share storage.
type Bitmask struct {
	w []uint64
	n int
}

// NewBitmask returns an empty set of length and capacity n.
func NewBitmask(n int) *Bitmask {
	m := &Bitmask{}
	m.Resize(n)
	return m
}

// newBitmaskIn makes a set over caller-provided storage, so a pool can carve
// many sets out of one allocation.
func newBitmaskIn(w []uint64) Bitmask {
	return Bitmask{w: w, n: 0}
}

// Len returns the number of integers the set can hold, 0 to Len()-1.
func (m *Bitmask) Len() int { return m.n }

// Cap returns the largest length Resize can set without allocating.
func (m *Bitmask) Cap() int { return len(m.w) * 64 }

// Resize empties the set and sets its length to n (negative means 0). It
// allocates only if n is larger than Cap.
func (m *Bitmask) Resize(n int) {
	n = max(n, 0)
	words := (n + 63) / 64
	if words > len(m.w) {
		m.w = make([]uint64, words)
	} else {
		clear(m.w[:(m.n+63)/64])
	}
	m.n = n
}

// Reset empties the set and keeps its length.
func (m *Bitmask) Reset() { clear(m.w[:(m.n+63)/64]) }

// Set adds i to the set.
func (m *Bitmask) Set(i int) {
	if uint(i) < uint(m.n) {
		m.w[i>>6] |= 1 << (uint(i) & 63)
	}
}

// Clear removes i from the set.
func (m *Bitmask) Clear(i int) {
	if uint(i) < uint(m.n) {
		m.w[i>>6] &^= 1 << (uint(i) & 63)
	}
}

// Test reports whether i is in the set.
func (m *Bitmask) Test(i int) bool {
	return uint(i) < uint(m.n) && m.w[i>>6]&(1<<(uint(i)&63)) != 0
}

// SetRange adds start to end-1 to the set, clipped to [0, Len()).
func (m *Bitmask) SetRange(start, end int) {
	start, end = max(start, 0), min(end, m.n)
	if start >= end {
		return
	}
	first, last := start>>6, (end-1)>>6
	lo := ^uint64(0) << (uint(start) & 63)
	hi := ^uint64(0) >> (63 - (uint(end-1) & 63))
	if first == last {
		m.w[first] |= lo & hi
		return
	}
	m.w[first] |= lo
	for i := first + 1; i < last; i++ {
		m.w[i] = ^uint64(0)
	}
	m.w[last] |= hi
}

// setRangeCount adds start to end-1, clipped to [0, Len()), and returns how
// many of them were not in the set before and how many words it touched.
func (m *Bitmask) setRangeCount(start, end int) (added, words int) {
	start, end = max(start, 0), min(end, m.n)
	if start >= end {
		return 0, 0
	}
	first, last := start>>6, (end-1)>>6
	for i := first; i <= last; i++ {
		mask := ^uint64(0)
		if i == first {
			mask &= ^uint64(0) << (uint(start) & 63)
		}
		if i == last {
			mask &= ^uint64(0) >> (63 - (uint(end-1) & 63))
		}
		added += bits.OnesCount64(mask &^ m.w[i])
		m.w[i] |= mask
	}
	return added, last - first + 1
}

// Count returns the number of integers in the set.
func (m *Bitmask) Count() int {
	c := 0
	for _, w := range m.w[:(m.n+63)/64] {
		c += bits.OnesCount64(w)
	}
	return c
}

// FirstSet returns the smallest integer in the set, or -1 if it is empty.
func (m *Bitmask) FirstSet() int { return m.NextSet(0) }

// NextSet returns the smallest integer in the set that is at least i, or -1
// if there is none.
func (m *Bitmask) NextSet(i int) int {
	i = max(i, 0)
	if i >= m.n {
		return -1
	}
	wi := i >> 6
	w := m.w[wi] & (^uint64(0) << (uint(i) & 63))
	words := (m.n + 63) / 64
	for w == 0 {
		wi++
		if wi >= words {
			return -1
		}
		w = m.w[wi]
	}
	// Bits at or beyond n are always zero, so a hit is below n.
	return wi<<6 + bits.TrailingZeros64(w)
}

// NextClear returns the smallest integer below Len() that is at least i and
// not in the set, or -1 if there is none.
func (m *Bitmask) NextClear(i int) int {
	i = max(i, 0)
	if i >= m.n {
		return -1
	}
	wi := i >> 6
	w := ^m.w[wi] & (^uint64(0) << (uint(i) & 63))
	words := (m.n + 63) / 64
	for w == 0 {
		wi++
		if wi >= words {
			return -1
		}
		w = ^m.w[wi]
	}
	if j := wi<<6 + bits.TrailingZeros64(w); j < m.n {
		return j
	}
	return -1
}

// NextRun returns the first run of consecutive integers in the set at or
// after i, as the half-open range [start, end); start is -1 if there is
// none. A run that began before i is reported from i.
//
//	for s, e := m.NextRun(0); s >= 0; s, e = m.NextRun(e) { ... }
func (m *Bitmask) NextRun(i int) (start, end int) {
	start = m.NextSet(i)
	if start < 0 {
		return -1, -1
	}
	if end = m.NextClear(start); end < 0 {
		end = m.n
	}
	return start, end
}

// subsetOf reports whether every member of m is a member of o.
func (m *Bitmask) subsetOf(o *Bitmask) bool {
	words := (m.n + 63) / 64
	for i, w := range m.w[:words] {
		var ow uint64
		if i < (o.n+63)/64 {
			ow = o.w[i]
		}
		if w&^ow != 0 {
			return false
		}
	}
	return true
}
