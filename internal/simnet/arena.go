package simnet

import (
	"slices"
	"unsafe"
)

// Arena is the memory a Network with Config.KeepPayloads carves payloads
// from, with every byte at a 32-bit position. An endpoint that keeps many
// payloads (thousands of simulated receivers holding the blocks that wait
// for repair) can keep a position, 4 bytes the garbage collector never
// scans, instead of a 24-byte slice it must.
//
// The arena keeps the slabs it covers for the network's lifetime, so a
// simulation holds what it has sent, not only what its endpoints keep. It
// covers the first ArenaBytes of payloads (a 16 MiB transfer with its
// repairs and feedback is about 20 MB); later payloads are not found, and
// are freed when no endpoint keeps them, as without an arena.
type Arena struct {
	slabs  []slab  // in position order
	byAddr []int32 // indexes into slabs, in address order
	hint   int     // the slab found last: payloads are looked up in runs
	next   uint64  // position of the next slab
}

type slab struct {
	data []byte
	// addr is where data lies in memory, compared with a payload's address
	// by Find. Go's heap does not move objects, and the arena keeps every
	// slab reachable, so no other object can come to lie at this address.
	addr uintptr
	pos  uint32
}

// Arena returns the network's payload arena, or nil without
// Config.KeepPayloads.
func (n *Network) Arena() *Arena {
	if !n.keep {
		return nil
	}
	return &n.arena
}

// ArenaBytes bounds the payload bytes an Arena covers and keeps.
const ArenaBytes = 256 << 20

// add registers a slab, if the arena has room for it.
func (a *Arena) add(data []byte) {
	if len(data) == 0 || a.next+uint64(len(data)) > ArenaBytes {
		return
	}
	i := int32(len(a.slabs))
	a.slabs = append(a.slabs, slab{data: data, addr: addrOf(data), pos: uint32(a.next)})
	a.next += uint64(len(data))
	s := &a.slabs[i]
	j, _ := slices.BinarySearchFunc(a.byAddr, s.addr, func(k int32, addr uintptr) int {
		return cmpAddr(a.slabs[k].addr, addr)
	})
	a.byAddr = slices.Insert(a.byAddr, j, i)
}

func addrOf(p []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(p))) }

func cmpAddr(x, y uintptr) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Find returns the position of p's first byte if all of p lies in the
// arena: p is (part of) a payload the network delivered.
func (a *Arena) Find(p []byte) (pos uint32, ok bool) {
	if a == nil || len(p) == 0 || len(a.slabs) == 0 {
		return 0, false
	}
	addr := addrOf(p)
	if s := &a.slabs[a.hint]; addr-s.addr < uintptr(len(s.data)) {
		return a.within(s, addr, len(p))
	}
	// The last slab starting at or below addr.
	j, _ := slices.BinarySearchFunc(a.byAddr, addr, func(k int32, addr uintptr) int {
		if a.slabs[k].addr <= addr {
			return -1
		}
		return 1
	})
	if j == 0 {
		return 0, false
	}
	a.hint = int(a.byAddr[j-1])
	return a.within(&a.slabs[a.hint], addr, len(p))
}

func (a *Arena) within(s *slab, addr uintptr, n int) (uint32, bool) {
	off := addr - s.addr
	if off >= uintptr(len(s.data)) || uintptr(len(s.data))-off < uintptr(n) {
		return 0, false
	}
	return s.pos + uint32(off), true
}

// At returns the n bytes at position pos, which Find returned for a payload
// at least n bytes long. The bytes are shared and must not be modified.
func (a *Arena) At(pos uint32, n int) []byte {
	i := a.hint
	if s := &a.slabs[i]; pos < s.pos || pos-s.pos >= uint32(len(s.data)) {
		i, _ = slices.BinarySearchFunc(a.slabs, pos, func(s slab, pos uint32) int {
			if s.pos <= pos {
				return -1
			}
			return 1
		})
		i--
	}
	s := &a.slabs[i]
	off := int(pos - s.pos)
	return s.data[off : off+n : off+n]
}
