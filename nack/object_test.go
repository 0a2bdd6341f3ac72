package nack

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func newObject(t testing.TB, p *Pool, id uint16, l Layout) *Object {
	t.Helper()
	o := &Object{}
	if err := o.Init(p, id, l); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestReceive(t *testing.T) {
	p := NewPool(4, 256)
	o := newObject(t, p, 7, Layout{Blocks: 3, MaxBlockLen: 10, Parity: 4})
	type step struct {
		block  uint32
		sym    uint16
		k      int
		want   Status
		needed int // Needed(block, k) afterwards
	}
	steps := []step{
		{0, 0, 10, Stored, 9},
		{0, 0, 10, Duplicate, 9},
		{0, 14, 10, Invalid, 9}, // beyond k+Parity
		{0, 1, 11, Invalid, 9},  // k beyond MaxBlockLen
		{0, 1, 9, Invalid, 9},   // k disagrees with the block's
		{3, 0, 10, Invalid, 0},  // no block 3
		{0, 1, 0, Invalid, 9},   // k zero
		{1, 0, 9, Stored, 8},    // shorter block
		{0, 10, 10, Stored, 8},  // parity counts
		{0, 13, 10, Stored, 7},  // last parity id
		{2, 0, 9, Stored, 8},    // third block
		{1, 1, 9, Stored, 7},    // out of order
		{1, 9, 9, Stored, 6},    // parity of a 9-symbol block is 9..12
		{1, 12, 9, Stored, 5},
		{1, 13, 9, Invalid, 5}, // 13 is beyond 9+4
		{2, 9, 9, Stored, 7},
		{2, 10, 9, Stored, 6},
		{2, 11, 9, Stored, 5},
		{2, 12, 9, Stored, 4},
		{2, 1, 9, Stored, 3},
		{2, 2, 9, Stored, 2},
		{2, 3, 9, Stored, 1},
		{2, 4, 9, BlockComplete, 0}, // any 9 symbols complete it: 5 source + 4 parity
		{2, 5, 9, Duplicate, 0},     // the block is done
		{1, 2, 9, Stored, 4},
		{1, 3, 9, Stored, 3},
		{1, 4, 9, Stored, 2},
		{1, 5, 9, Stored, 1},
		{1, 6, 9, BlockComplete, 0}, // no decoding needed to count
		{0, 2, 10, Stored, 6},
		{0, 3, 10, Stored, 5},
		{0, 4, 10, Stored, 4},
		{0, 5, 10, Stored, 3},
		{0, 6, 10, Stored, 2},
		{0, 7, 10, Stored, 1},
		{0, 11, 10, ObjectComplete, 0},
		{0, 8, 10, Duplicate, 0},
	}
	for i, s := range steps {
		if got := o.Receive(s.block, s.sym, s.k); got != s.want {
			t.Fatalf("step %d: Receive(%d, %d, %d) = %v, want %v", i, s.block, s.sym, s.k, got, s.want)
		}
		if got := o.Needed(s.block, s.k); got != s.needed {
			t.Fatalf("step %d: Needed(%d) = %d, want %d", i, s.block, got, s.needed)
		}
	}
	if !o.Complete() || o.Pending() {
		t.Fatal("object not complete")
	}
	if p.Free() != 4 {
		t.Fatalf("%d slots free after completion, want all 4", p.Free())
	}
	if !o.Received(1, 200) || o.Received(3, 0) {
		t.Fatal("Received wrong for a complete block or a block out of range")
	}
}

func TestReceiveNoRoom(t *testing.T) {
	p := NewPool(2, 64)
	a := newObject(t, p, 1, Layout{Blocks: 5, MaxBlockLen: 8})
	b := newObject(t, p, 2, Layout{Blocks: 5, MaxBlockLen: 8})
	if a.Receive(0, 0, 8) != Stored || b.Receive(3, 0, 8) != Stored {
		t.Fatal("setup")
	}
	if got := a.Receive(1, 0, 8); got != NoRoom {
		t.Fatalf("third block with two slots: %v", got)
	}
	if a.Needed(1, 8) != 8 || a.Received(1, 0) {
		t.Fatal("a symbol that found no room was recorded")
	}
	b.Release() // returns b's slot
	if p.Free() != 1 || a.Receive(1, 0, 8) != Stored {
		t.Fatal("released slot not reusable")
	}
	if b.Receive(3, 1, 8) != Invalid {
		t.Fatal("released object still accepts symbols")
	}
}

func TestObjectInit(t *testing.T) {
	p := NewPool(1, 256)
	var o Object
	bad := []Layout{
		{Blocks: MaxBlocks + 1, MaxBlockLen: 1},
		{Blocks: 1, MaxBlockLen: 0},
		{Blocks: 1, MaxBlockLen: 250, Parity: 7}, // 257 symbols > 256
		{Blocks: 1, MaxBlockLen: 4, Parity: -1},
	}
	for _, l := range bad {
		if err := o.Init(p, 1, l); !errors.Is(err, ErrLayout) {
			t.Errorf("Init(%+v) = %v, want ErrLayout", l, err)
		}
	}
	if err := o.Init(nil, 1, Layout{}); !errors.Is(err, ErrLayout) {
		t.Errorf("Init without pool = %v", err)
	}
	// An empty object is complete at once.
	if err := o.Init(p, 1, Layout{}); err != nil || !o.Complete() || o.Pending() {
		t.Fatalf("empty object: %v complete=%v", err, o.Complete())
	}
	o.SetInfoPending(true)
	if !o.Pending() || !o.InfoPending() {
		t.Fatal("pending NORM_INFO not pending")
	}
	// Re-Init releases the old state and reuses storage.
	if err := o.Init(p, 2, Layout{Blocks: 100, MaxBlockLen: 4}); err != nil {
		t.Fatal(err)
	}
	o.Receive(5, 0, 4)
	if p.Free() != 0 {
		t.Fatal("slot not taken")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if o.Init(p, 3, Layout{Blocks: 90, MaxBlockLen: 4}) != nil || o.Receive(3, 1, 4) != Stored {
			t.Fatal("reinit")
		}
	})
	if allocs != 0 && !raceEnabled {
		t.Fatalf("re-Init allocates %v times", allocs)
	}
	if o.ID() != 3 || o.Layout().Blocks != 90 || o.InfoPending() || p.Free() != 0 {
		t.Fatal("re-Init kept old state")
	}
}

// TestReceiveRandom receives random symbol orders with losses and checks
// the bookkeeping against a count kept here: a block completes exactly
// when k distinct symbols have arrived.
func TestReceiveRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewPool(64, 256)
	var o Object
	for round := 0; round < 50; round++ {
		l := Layout{Blocks: uint32(1 + rng.IntN(40)), MaxBlockLen: 1 + rng.IntN(200), Parity: rng.IntN(56)}
		if err := o.Init(p, uint16(round), l); err != nil {
			t.Fatal(err)
		}
		kOf := func(b uint32) int { return l.MaxBlockLen - int(b)%2*min(1, l.MaxBlockLen-1) }
		got := map[[2]uint32]bool{}
		doneBlocks := 0
		for step := 0; step < 5000 && !o.Complete(); step++ {
			b := uint32(rng.IntN(int(l.Blocks)))
			k := kOf(b)
			s := uint16(rng.IntN(k + l.Parity))
			cnt := 0
			for x := range k + l.Parity {
				if got[[2]uint32{b, uint32(x)}] {
					cnt++
				}
			}
			before := o.Needed(b, k)
			st := o.Receive(b, s, k)
			switch {
			case cnt >= k:
				if st != Duplicate || before != 0 {
					t.Fatalf("symbol of a complete block: %v", st)
				}
			case got[[2]uint32{b, uint32(s)}]:
				if st != Duplicate || o.Needed(b, k) != before {
					t.Fatalf("duplicate: %v", st)
				}
			default:
				got[[2]uint32{b, uint32(s)}] = true
				cnt++
				want := Stored
				if cnt == k {
					doneBlocks++
					want = BlockComplete
					if doneBlocks == int(l.Blocks) {
						want = ObjectComplete
					}
				}
				if st != want || o.Needed(b, k) != k-cnt {
					t.Fatalf("block %d: %v needed %d after %d of %d, want %v", b, st, o.Needed(b, k), cnt, k, want)
				}
			}
		}
		if o.Complete() != (doneBlocks == int(l.Blocks)) {
			t.Fatal("Complete disagrees")
		}
		if len(o.active)+p.Free() != 64 {
			t.Fatal("slots leaked")
		}
	}
	o.Release()
	if p.Free() != 64 {
		t.Fatal("Release leaked slots")
	}
}

func TestStatusString(t *testing.T) {
	if ObjectComplete.String() != "ObjectComplete" || Status(99).String() != "Status(99)" {
		t.Fatal(ObjectComplete.String(), Status(99).String())
	}
}

func TestSkipTo(t *testing.T) {
	p := NewPool(4, 16)
	var o Object
	if err := o.Init(p, 1, Layout{Blocks: 100, MaxBlockLen: 8, Parity: 2}); err != nil {
		t.Fatal(err)
	}
	o.Receive(3, 0, 8)
	o.Receive(50, 1, 8)
	o.SkipTo(40)
	if p.Free() != 3 {
		t.Fatalf("slot of skipped block 3 not released: %d free", p.Free())
	}
	if !o.Received(10, 0) || o.Needed(39, 8) != 0 || o.Needed(40, 8) != 8 || o.Needed(50, 8) != 7 {
		t.Fatal("SkipTo did not complete exactly the blocks before 40")
	}
	o.SkipTo(100)
	if !o.Complete() || p.Free() != 4 {
		t.Fatalf("complete %v, free %d", o.Complete(), p.Free())
	}
}

// TestSkipToWordAtATime: a stream that starts near the top of NORM's 24-bit
// block space (or is squelched there) is skipped to in a word-sized step
// per 64 blocks, not a bit at a time; blocks completed before are not
// counted twice.
func TestSkipToWordAtATime(t *testing.T) {
	p := NewPool(4, 16)
	var o Object
	if err := o.Init(p, 1, Layout{Blocks: MaxBlocks - 1, MaxBlockLen: 1, Parity: 0}); err != nil {
		t.Fatal(err)
	}
	if o.Receive(100, 0, 1) != BlockComplete {
		t.Fatal("one-symbol block not complete")
	}
	const at = MaxBlocks - 10
	o.SkipTo(at)
	if o.ndone != at {
		t.Fatalf("%d blocks done after SkipTo(%d), want %d", o.ndone, at, at)
	}
	if o.Needed(at-1, 1) != 0 || o.Needed(at, 1) != 1 {
		t.Fatal("SkipTo did not stop at its block")
	}
	if max := uint64(at/64 + 2); o.steps > max {
		t.Fatalf("SkipTo took %d steps, want at most %d (one per word)", o.steps, max)
	}
	for b := uint32(at); b < MaxBlocks-1; b++ {
		o.Receive(b, 0, 1)
	}
	if !o.Complete() {
		t.Fatal("object not complete after its last blocks")
	}
}

func TestSetRangeCount(t *testing.T) {
	m := NewBitmask(300)
	m.Set(5)
	m.Set(70)
	m.Set(299)
	for _, c := range []struct{ s, e, added int }{{0, 0, 0}, {3, 8, 4}, {0, 300, 300 - 3 - 4}, {-5, 400, 0}} {
		if got, _ := m.setRangeCount(c.s, c.e); got != c.added {
			t.Fatalf("setRangeCount(%d, %d) added %d, want %d", c.s, c.e, got, c.added)
		}
	}
	if m.Count() != 300 {
		t.Fatalf("count %d", m.Count())
	}
}

// TestWindowedObject: a stream's tracker keeps a bitmap of Layout.Window
// blocks that slides on as blocks complete, instead of one bit for each of
// 2^24 block numbers; beyond the window symbols are refused, and skipping
// far ahead costs the window, not the distance.
func TestWindowedObject(t *testing.T) {
	p := NewPool(8, 16)
	var o Object
	const blocks = MaxBlocks - 1
	if err := o.Init(p, 1, Layout{Blocks: blocks, MaxBlockLen: 1, Window: 4000}); err != nil {
		t.Fatal(err)
	}
	if o.done.Len() != 4032 || o.done.Cap() > 4096 {
		t.Fatalf("window bitmap of %d bits (capacity %d), want 4032", o.done.Len(), o.done.Cap())
	}
	for b := range uint32(4032) {
		if b == 50 {
			continue
		}
		if st := o.Receive(b, 0, 1); st != BlockComplete {
			t.Fatalf("block %d: %v", b, st)
		}
	}
	if o.base != 0 {
		t.Fatalf("window moved to %d past the incomplete block 50", o.base)
	}
	if st := o.Receive(5000, 0, 1); st != Ahead || o.Needed(5000, 1) != 1 {
		t.Fatalf("block beyond the window: %v, want Ahead", st)
	}
	it := o.needsTo(MarkAt(3000, 1))
	if n, ok := it.nextNeed(); !ok || n.kind != needBlocks || n.first != 50 || n.last != 50 {
		t.Fatalf("first need %+v %v, want block 50", n, ok)
	}
	if n, ok := it.nextNeed(); ok {
		t.Fatalf("second need %+v, want none", n)
	}
	if o.Receive(50, 0, 1) != BlockComplete || o.base != 4032 || o.ndone != 4032 {
		t.Fatalf("after block 50: base %d, %d done", o.base, o.ndone)
	}
	for b := uint32(4032); b < 10_000; b++ {
		if st := o.Receive(b, 0, 1); st != BlockComplete {
			t.Fatalf("block %d: %v", b, st)
		}
	}
	if o.ndone != 10_000 || !o.Received(9_999, 0) || o.Needed(10_000, 1) != 1 || o.Needed(1, 1) != 0 {
		t.Fatalf("%d done at base %d", o.ndone, o.base)
	}
	o.steps = 0
	o.SkipTo(blocks - 9)
	if o.ndone != blocks-9 || o.steps > 4096/64+2 {
		t.Fatalf("SkipTo far ahead: %d done, %d steps", o.ndone, o.steps)
	}
	for b := uint32(blocks - 9); b < blocks-1; b++ {
		if st := o.Receive(b, 0, 1); st != BlockComplete {
			t.Fatalf("block %d: %v", b, st)
		}
	}
	if st := o.Receive(blocks-1, 0, 1); st != ObjectComplete {
		t.Fatalf("last block: %v", st)
	}
}
