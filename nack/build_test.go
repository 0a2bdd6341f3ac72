package nack

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// recv delivers to o every symbol of block b (k source, parity ids up to
// k+parity-1) except those in lost.
func recv(t testing.TB, o *Object, b uint32, k, upTo int, lost ...int) {
	t.Helper()
	skip := map[int]bool{}
	for _, s := range lost {
		skip[s] = true
	}
	for s := 0; s < upTo; s++ {
		if !skip[s] {
			if st := o.Receive(b, uint16(s), k); st == Invalid || st == NoRoom {
				t.Fatalf("Receive(%d, %d, %d) = %v", b, s, k, st)
			}
		}
	}
}

type buildCase struct {
	name     string
	fecID    uint8
	erasures bool
	flush    bool
	setup    func(t testing.TB, p *Pool, b *Builder) // adds to b
	want     string
}

func TestBuilderForms(t *testing.T) {
	plain := Layout{Blocks: 1, MaxBlockLen: 10}
	cases := []buildCase{
		{name: "one symbol", flush: true, want: "ITEMS SEGMENT 0/0/4",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, plain)
				recv(t, o, 0, 10, 10, 4)
				b.AddObject(o, true)
			}},
		{name: "two consecutive symbols are two items", flush: true, want: "ITEMS SEGMENT 0/0/4 0/0/5",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, plain)
				recv(t, o, 0, 10, 10, 4, 5)
				b.AddObject(o, true)
			}},
		{name: "three consecutive symbols are a range", want: "RANGES SEGMENT 0/0/4-0/0/6",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, plain)
				recv(t, o, 0, 10, 10, 4, 5, 6)
				b.AddObject(o, true)
			}},
		{name: "item runs share a request", want: "ITEMS SEGMENT 0/0/1 0/0/3 0/0/4; RANGES SEGMENT 0/0/6-0/0/9",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 12})
				recv(t, o, 0, 12, 12, 1, 3, 4, 6, 7, 8, 9)
				b.AddObject(o, true)
			}},
		{name: "ascending order kept across forms", want: "ITEMS SEGMENT 0/0/1; RANGES SEGMENT 0/0/3-0/0/5; ITEMS SEGMENT 0/0/7",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, plain)
				recv(t, o, 0, 10, 10, 1, 3, 4, 5, 7)
				b.AddObject(o, true)
			}},
		{name: "runs of blocks", want: "ITEMS BLOCK 0/1/0 0/2/0; ITEMS SEGMENT 0/3/2; RANGES BLOCK 0/4/0-0/6/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 7, MaxBlockLen: 4})
				recv(t, o, 0, 4, 4)
				recv(t, o, 3, 4, 4, 2)
				b.AddObject(o, true)
			}},
		{name: "one request spans blocks", want: "ITEMS SEGMENT 0/0/3 0/1/7",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 2, MaxBlockLen: 10})
				recv(t, o, 0, 10, 10, 3)
				recv(t, o, 1, 10, 10, 7)
				b.AddObject(o, true)
			}},
		{name: "INFO flag while NORM_INFO is missing", want: "ITEMS SEGMENT|INFO 5/0/4; ITEMS BLOCK|INFO 5/1/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 5, Layout{Blocks: 2, MaxBlockLen: 10})
				o.SetInfoPending(true)
				recv(t, o, 0, 10, 10, 4)
				b.AddObject(o, true)
			}},
		{name: "NORM_INFO alone", want: "ITEMS INFO 5/0/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 5, plain)
				recv(t, o, 0, 10, 10)
				o.SetInfoPending(true)
				b.AddObject(o, false)
			}},
		{name: "NORM_INFO alone for consecutive objects is a range", want: "RANGES INFO 1/0/0-3/0/0; ITEMS OBJECT 4/0/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				for id := uint16(1); id <= 3; id++ {
					o := newObject(t, p, id, Layout{})
					o.SetInfoPending(true)
					b.AddObject(o, true)
				}
				b.AddMissingObject(4)
			}},
		{name: "missing objects wrap", want: "RANGES OBJECT 65529/0/0-65535/0/0; ITEMS SEGMENT 0/0/51",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				for id := uint16(65529); id != 0; id++ {
					b.AddMissingObject(id)
				}
				o := newObject(t, p, 0, Layout{Blocks: 3, MaxBlockLen: 49, Parity: 8})
				recv(t, o, 0, 49, 51, 5, 17, 30)
				b.AddObject(o, false)
			}},
		{name: "missing objects, one and two", want: "ITEMS OBJECT 3/0/0 5/0/0 6/0/0; ITEMS SEGMENT 7/0/1",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				b.AddMissingObject(3)
				b.AddMissingObject(5)
				b.AddMissingObject(6)
				o := newObject(t, p, 7, plain)
				recv(t, o, 0, 10, 10, 1)
				b.AddObject(o, true)
			}},
		{name: "parity enough: first needed parity ids", want: "ITEMS SEGMENT 0/0/51 0/0/52",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 49, Parity: 8})
				recv(t, o, 0, 49, 51, 1, 2, 3, 4) // 4 lost, parity 49 and 50 arrived
				b.AddObject(o, true)
			}},
		{name: "parity enough, parity lost too", want: "RANGES SEGMENT 0/0/50-0/0/53",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 49, Parity: 8})
				recv(t, o, 0, 49, 51, 1, 2, 3, 4, 5, 50)
				b.AddObject(o, true)
			}},
		{name: "parity short: source beyond the first Parity losses, and all parity", want: "RANGES SEGMENT 0/0/3-0/0/5; ITEMS SEGMENT 0/0/10 0/0/11",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 10, Parity: 2})
				recv(t, o, 0, 10, 10, 1, 2, 3, 4, 5)
				b.AddObject(o, true)
			}},
		{name: "erasures form", erasures: true, want: "ERASURES SEGMENT 0/0/4; ERASURES SEGMENT|INFO 1/2/1",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 49, Parity: 8})
				recv(t, o, 0, 49, 51, 1, 2, 3, 4, 5, 6) // 6 lost, 2 parity arrived: 4 needed
				b.AddObject(o, true)
				o2 := newObject(t, p, 1, Layout{Blocks: 3, MaxBlockLen: 10, Parity: 2})
				o2.SetInfoPending(true)
				recv(t, o2, 0, 10, 10)
				recv(t, o2, 1, 10, 10)
				recv(t, o2, 2, 10, 10, 7)
				b.AddObject(o2, true)
			}},
		{name: "erasures form falls back when parity is short", erasures: true,
			want: "RANGES SEGMENT 0/0/3-0/0/5; ITEMS SEGMENT 0/0/10 0/0/11",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 10, Parity: 2})
				recv(t, o, 0, 10, 10, 1, 2, 3, 4, 5)
				b.AddObject(o, true)
			}},
		{name: "erasures form merges consecutive blocks", erasures: true, want: "ERASURES SEGMENT 0/0/1 0/1/2",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 2, MaxBlockLen: 10, Parity: 4})
				recv(t, o, 0, 10, 10, 3)
				recv(t, o, 1, 10, 10, 3, 4)
				b.AddObject(o, true)
			}},
		{name: "without flush: up to the newest symbol only", want: "ITEMS SEGMENT 0/0/2 0/1/3",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 3, MaxBlockLen: 10})
				recv(t, o, 0, 10, 10, 2)
				recv(t, o, 1, 10, 6, 3) // sender is at block 1, symbol 5
				b.AddObject(o, false)
			}},
		{name: "with flush: everything", want: "ITEMS SEGMENT 0/0/2 0/1/3; RANGES SEGMENT 0/1/6-0/1/9; ITEMS BLOCK 0/2/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 3, MaxBlockLen: 10})
				recv(t, o, 0, 10, 10, 2)
				recv(t, o, 1, 10, 6, 3)
				b.AddObject(o, true)
			}},
		{name: "without flush, sender into parity: whole block", want: "ITEMS SEGMENT 0/1/11",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 3, MaxBlockLen: 10, Parity: 4})
				recv(t, o, 0, 10, 10)
				recv(t, o, 1, 10, 11, 3, 4) // symbol 10 arrived: the sender sent all source
				b.AddObject(o, false)
			}},
		{name: "without flush, nothing received: nothing", want: "",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, Layout{Blocks: 3, MaxBlockLen: 10})
				b.AddObject(o, false)
			}},
		{name: "with flush, nothing received: the object, in the run of missing ones", want: "RANGES OBJECT 65535/0/0-1/0/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				b.AddMissingObject(65535)
				b.AddMissingObject(0)
				o := newObject(t, p, 1, Layout{Blocks: 3, MaxBlockLen: 10})
				o.SetInfoPending(true)
				b.AddObject(o, true)
			}},
		{name: "with flush, only NORM_INFO received: the object", want: "ITEMS OBJECT 1/0/0",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 1, Layout{Blocks: 3, MaxBlockLen: 10})
				b.AddObject(o, true)
			}},
		{name: "complete object: nothing", want: "",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 0, plain)
				recv(t, o, 0, 10, 10)
				b.AddObject(o, true)
			}},
		{name: "FEC id 129", fecID: framing.FECSmallBlock, want: "RANGES BLOCK 9/0/0(400)-9/69999/0(400); ITEMS SEGMENT 9/70000/300(399)",
			setup: func(t testing.TB, p *Pool, b *Builder) {
				o := newObject(t, p, 9, Layout{Blocks: 70001, MaxBlockLen: 400})
				recv(t, o, 70000, 399, 399, 300) // a shorter last block
				b.AddObject(o, false)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fec := tc.fecID
			if fec == 0 {
				fec = framing.FECRS8
			}
			syms := 256
			if fec == framing.FECSmallBlock {
				syms = 1024
			}
			b, err := NewBuilder(fec, 0, syms)
			if err != nil {
				t.Fatal(err)
			}
			b.Erasures = tc.erasures
			b.Reset(nil, 1400)
			tc.setup(t, NewPool(16, syms), b)
			c := b.Content()
			if got := describe(t, c, 0); got != tc.want {
				t.Errorf("content\n got %s\nwant %s", got, tc.want)
			}
			if _, stopped := b.Stopped(); stopped || b.Err() != nil {
				t.Errorf("stopped %v, err %v", stopped, b.Err())
			}
			// The content is what a NORM_NACK can carry and parses back.
			n := framing.Nack{Content: c}
			pkt, err := n.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			var back framing.Nack
			if err := back.Unmarshal(pkt); err != nil || !bytes.Equal(back.Content, c) {
				t.Fatalf("NACK round trip: %v", err)
			}
		})
	}
}

// TestBuilderBytes checks the wire bytes of one content against a hand
// assembly with framing's encoder.
func TestBuilderBytes(t *testing.T) {
	p := NewPool(4, 256)
	o := newObject(t, p, 0x1234, Layout{Blocks: 2, MaxBlockLen: 20, Parity: 0})
	recv(t, o, 0, 20, 20, 3, 10, 11, 12, 13)
	o.SetInfoPending(true)
	b, _ := NewBuilder(framing.FECRS8, 0, 256)
	b.Reset([]byte{0xee}, 0) // appended after what dst holds
	b.AddMissingObject(0x1232)
	b.AddObject(o, true)
	got := b.Content()

	ref := func(obj uint16, blk uint32, sym uint16) framing.SymbolRef {
		return framing.SymbolRef{FECID: 5, ObjectID: obj, PayloadID: framing.PayloadID{Block: blk, Symbol: sym}}
	}
	want := []byte{0xee}
	want, _ = framing.AppendRepairRequest(want, framing.FormItems, framing.RepairObject, 0, []framing.SymbolRef{ref(0x1232, 0, 0)})
	want, _ = framing.AppendRepairRequest(want, framing.FormItems, framing.RepairSegment|framing.RepairInfo, 0, []framing.SymbolRef{ref(0x1234, 0, 3)})
	want, _ = framing.AppendRepairRequest(want, framing.FormRanges, framing.RepairSegment|framing.RepairInfo, 0, []framing.SymbolRef{ref(0x1234, 0, 10), ref(0x1234, 0, 13)})
	want, _ = framing.AppendRepairRequest(want, framing.FormItems, framing.RepairBlock|framing.RepairInfo, 0, []framing.SymbolRef{ref(0x1234, 1, 0)})
	if !bytes.Equal(got, want) {
		t.Fatalf("content\n got % x\nwant % x", got, want)
	}
	// And spelled out, the first request: ITEMS, OBJECT, 8 bytes of one item:
	// fec_id 5, reserved, object 0x1232, 24-bit block 0, 8-bit symbol 0.
	if !bytes.Equal(got[1:13], []byte{1, 8, 0, 8, 5, 0, 0x12, 0x32, 0, 0, 0, 0}) {
		t.Fatalf("first request % x", got[1:13])
	}
}

func TestBuilderErrors(t *testing.T) {
	if _, err := NewBuilder(7, 0, 256); err == nil {
		t.Error("unknown FEC id accepted")
	}
	if _, err := NewBuilder(framing.FECRS8, 0, 257); err == nil {
		t.Error("257 symbols accepted for 8-bit symbol ids")
	}
	if _, err := NewBuilder(framing.FECRS, 8, 257); err == nil {
		t.Error("257 symbols accepted for FEC id 2 with m=8")
	}
	if _, err := NewBuilder(framing.FECRS, 0, 4096); err != nil {
		t.Error("FEC id 2 with m=16 refused 4096 symbols")
	}
	// An object with more blocks than FEC id 0's 16-bit block numbers.
	b, _ := NewBuilder(framing.FECNoCode, 0, 256)
	b.Reset(nil, 0)
	o := newObject(t, NewPool(1, 256), 3, Layout{Blocks: 70000, MaxBlockLen: 4})
	if b.AddObject(o, true) || !errors.Is(b.Err(), ErrLayout) {
		t.Fatalf("oversized object accepted: %v", b.Err())
	}
	if pos, stopped := b.Stopped(); !stopped || pos != (Position{Object: 3}) {
		t.Fatalf("Stopped = %v %v", pos, stopped)
	}
	if b.AddMissingObject(4) || len(b.Content()) != 0 {
		t.Fatal("builder continued after an error")
	}
}

// TestBuilderLimit fills a NACK to its limit and checks where it stops.
func TestBuilderLimit(t *testing.T) {
	p := NewPool(8, 256)
	o := newObject(t, p, 0, Layout{Blocks: 1, MaxBlockLen: 100})
	var lost []int
	for s := 0; s < 100; s += 2 {
		lost = append(lost, s) // 50 isolated losses: one ITEMS request
	}
	recv(t, o, 0, 100, 100, lost...)
	b, _ := NewBuilder(framing.FECRS8, 0, 256)
	// 4 bytes of header and 8 per item: 100 bytes hold 12 items.
	b.Reset(nil, 100)
	if b.AddObject(o, true) {
		t.Fatal("AddObject reported no stop")
	}
	c := b.Content()
	if len(c) != 4+12*8 {
		t.Fatalf("content %d bytes, want %d", len(c), 4+12*8)
	}
	pos, stopped := b.Stopped()
	if !stopped || pos != (Position{Object: 0, Block: 0, Symbol: 24}) {
		t.Fatalf("Stopped = %+v %v, want object 0 block 0 symbol 24", pos, stopped)
	}
	if b.AddMissingObject(9) {
		t.Fatal("adding after the stop")
	}
	// A run is never split: a 3-run needs 16 bytes of range.
	o2 := newObject(t, p, 1, Layout{Blocks: 1, MaxBlockLen: 10})
	recv(t, o2, 0, 10, 10, 4, 5, 6)
	b.Reset(nil, 4+8)
	if b.AddObject(o2, true) || len(b.Content()) != 0 {
		t.Fatal("a range was split or overflowed")
	}
	// Exactly enough.
	b.Reset(nil, 4+16)
	if !b.AddObject(o2, true) || len(b.Content()) != 20 {
		t.Fatal("a range that fits exactly was refused")
	}
	// A pending run of missing objects counts against the limit as it grows.
	b.Reset(nil, 4+16+4+8)
	for id := uint16(10); id < 20; id++ {
		if !b.AddMissingObject(id) {
			t.Fatalf("object %d refused", id)
		}
	}
	if b.AddObject(o2, true) {
		t.Fatal("range after the object run fit in 12 bytes")
	}
	if pos, _ := b.Stopped(); pos != (Position{Object: 1, Block: 0, Symbol: 4}) {
		t.Fatalf("stopped at %+v", pos)
	}
	if got := describe(t, b.Content(), 0); got != "RANGES OBJECT 10/0/0-19/0/0" {
		t.Fatalf("content %s", got)
	}
	// A run that outgrows the limit stops at the object that did not fit:
	// one item fits in 12 bytes, two do not.
	b.Reset(nil, 12)
	if !b.AddMissingObject(10) || b.AddMissingObject(11) {
		t.Fatal("second object of a run fit in 12 bytes")
	}
	if pos, _ := b.Stopped(); pos != (Position{Object: 11}) {
		t.Fatalf("stopped at %+v", pos)
	}
	if got := describe(t, b.Content(), 0); got != "ITEMS OBJECT 10/0/0" {
		t.Fatalf("content %s", got)
	}
}

// TestBuilderResume builds random receiver states into NACKs of random
// sizes, resuming where each stopped, and checks that together they ask
// for exactly what one unlimited NACK asks for, each thing once, each
// within its limit.
func TestBuilderResume(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for round := 0; round < 300; round++ {
		p := NewPool(64, 256)
		var objs []*Object
		var missing []uint16
		id := uint16(65530 + rng.IntN(10)) // wraps in some rounds
		for i := 0; i < 1+rng.IntN(5); i++ {
			id += uint16(1 + rng.IntN(2))
			if rng.IntN(4) == 0 {
				missing = append(missing, id)
				continue
			}
			l := Layout{Blocks: uint32(1 + rng.IntN(6)), MaxBlockLen: 1 + rng.IntN(60), Parity: rng.IntN(8)}
			o := newObject(t, p, id, l)
			o.SetInfoPending(rng.IntN(5) == 0)
			for blk := uint32(0); blk < l.Blocks; blk++ {
				if rng.IntN(4) == 0 {
					continue // nothing of this block
				}
				for s := 0; s < l.MaxBlockLen+l.Parity; s++ {
					if rng.IntN(5) != 0 {
						o.Receive(blk, uint16(s), l.MaxBlockLen)
					}
				}
			}
			objs = append(objs, o)
		}
		flush, erasures := rng.IntN(2) == 0, rng.IntN(3) == 0
		add := func(b *Builder) {
			mi, oi := 0, 0
			for mi < len(missing) || oi < len(objs) {
				if oi == len(objs) || (mi < len(missing) && int16(missing[mi]-objs[oi].id) < 0) {
					if !b.AddMissingObject(missing[mi]) {
						return
					}
					mi++
					continue
				}
				if !b.AddObject(objs[oi], flush) {
					return
				}
				oi++
			}
		}
		b, _ := NewBuilder(framing.FECRS8, 0, 256)
		b.Erasures = erasures
		b.Reset(nil, 0)
		add(b)
		all := wishes(t, b.Content(), 0)

		limit := 20 + rng.IntN(200)
		got := map[wish]int{}
		var pos Position
		for n := 0; ; n++ {
			if n > 1000 {
				t.Fatal("no progress")
			}
			b.Reset(make([]byte, 0, limit), limit)
			if n > 0 {
				b.ResumeAt(pos)
			}
			add(b)
			c := b.Content()
			if len(c) > limit {
				t.Fatalf("content %d bytes over the limit %d", len(c), limit)
			}
			for w, k := range wishes(t, c, 0) {
				if w.level != framing.RepairInfo {
					got[w] += k
				} else {
					got[w] = 1 // the INFO flag repeats on every part of the object
				}
			}
			var stopped bool
			if pos, stopped = b.Stopped(); !stopped {
				break
			}
			if len(c) == 0 {
				t.Fatalf("limit %d holds nothing at %+v", limit, pos)
			}
		}
		for w, k := range all {
			if w.level == framing.RepairInfo {
				k = 1
			}
			if got[w] != k {
				t.Fatalf("round %d: %+v asked %d times in parts, %d in one", round, w, got[w], k)
			}
		}
		if len(got) != len(all) {
			t.Fatalf("round %d: parts ask for %d things, one NACK for %d", round, len(got), len(all))
		}
	}
}
