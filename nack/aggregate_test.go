package nack

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

func TestAggregatePlan(t *testing.T) {
	tests := []struct {
		name  string
		base  uint16
		nacks [][]byte
		want  string
	}{
		{name: "empty", want: ""},
		{name: "union of symbols, most symbols one NACK asked for", nacks: [][]byte{
			content(t, req{items, seg, [][3]int{{1, 0, 2}, {1, 0, 5}}}),
			content(t, req{ranges, seg, [][3]int{{1, 0, 4}, {1, 0, 6}}}),
			content(t, req{items, seg, [][3]int{{1, 0, 9}}}),
		}, want: "SEGMENT 1/0 {2 4 5 6 9} erasures 3"},
		{name: "ids counted per NACK across requests", nacks: [][]byte{
			content(t, req{items, seg, [][3]int{{1, 0, 1}}}, req{ranges, seg, [][3]int{{1, 0, 3}, {1, 0, 5}}}, req{items, seg, [][3]int{{1, 1, 0}}}),
			content(t, req{items, seg, [][3]int{{1, 0, 1}, {1, 0, 2}}}),
		}, want: "SEGMENT 1/0 {1 2 3 4 5} erasures 4; SEGMENT 1/1 {0} erasures 1"},
		{name: "largest erasure count", nacks: [][]byte{
			content(t, req{erasures, seg, [][3]int{{1, 0, 3}, {1, 1, 1}}}),
			content(t, req{erasures, seg, [][3]int{{1, 0, 5}}}),
			content(t, req{items, seg, [][3]int{{1, 1, 60}, {1, 1, 61}}}),
		}, want: "SEGMENT 1/0 {} erasures 5; SEGMENT 1/1 {60 61} erasures 2"},
		{name: "levels in object and block order", nacks: [][]byte{
			content(t, req{items, seg | info, [][3]int{{2, 5, 1}}}, req{ranges, blk, [][3]int{{2, 1, 0}, {2, 3, 0}}}),
			content(t, req{items, obj, [][3]int{{4, 0, 0}}}, req{items, blk, [][3]int{{2, 0, 0}, {2, 7, 0}}}),
			content(t, req{items, info, [][3]int{{3, 0, 0}}}),
		}, want: "INFO 2; BLOCK 2/0-3; SEGMENT 2/5 {1} erasures 1; BLOCK 2/7-7; INFO 3; OBJECT 4"},
		{name: "what a request includes is left out", nacks: [][]byte{
			content(t, req{items, seg, [][3]int{{2, 2, 1}, {2, 4, 1}, {5, 0, 0}}}),
			content(t, req{ranges, blk, [][3]int{{2, 1, 0}, {2, 3, 0}}}, req{items, obj | info, [][3]int{{5, 0, 0}}}),
		}, want: "BLOCK 2/1-3; SEGMENT 2/4 {1} erasures 1; OBJECT 5"},
		{name: "serial order from the base", base: 65530, nacks: [][]byte{
			content(t, req{items, obj, [][3]int{{2, 0, 0}}}),
			content(t, req{items, seg, [][3]int{{65534, 0, 0}}}),
			content(t, req{ranges, obj, [][3]int{{65535, 0, 0}, {0, 0, 0}}}),
		}, want: "SEGMENT 65534/0 {0} erasures 1; OBJECT 65535; OBJECT 0; OBJECT 2"},
	}
	a := NewAggregator(8, 64)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset(tc.base)
			for _, c := range tc.nacks {
				if err := a.Add(c, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := planString(a); got != tc.want {
				t.Errorf("plan\n got %s\nwant %s", got, tc.want)
			}
			if a.Empty() != (len(tc.nacks) == 0) || a.Widened() != 0 {
				t.Errorf("Empty %v Widened %d", a.Empty(), a.Widened())
			}
		})
	}
}

// TestAggregateReceivers aggregates the NACKs of many simulated receivers,
// built by Builder from random losses, and checks the plan against what
// they need: every symbol any of them asked for, and for each block the
// most symbols any one of them still needs.
func TestAggregateReceivers(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	wholeRounds := 0
	for round := 0; round < 60; round++ {
		l := Layout{Blocks: uint32(1 + rng.IntN(8)), MaxBlockLen: 1 + rng.IntN(64), Parity: rng.IntN(10)}
		erasuresMode := round%3 == 0
		receivers := 2 + rng.IntN(30)
		loss := 0.02 + 0.2*rng.Float64()

		a := NewAggregator(64, 256)
		a.Reset(0)
		wantSyms := map[uint32]map[int]bool{}
		wantErasures := map[uint32]int{}
		wholeBlocks := map[uint32]bool{}
		wholeObject := false
		p := NewPool(16, 256)
		b, _ := NewBuilder(framing.FECRS8, 0, 256)
		b.Erasures = erasuresMode
		for range receivers {
			o := newObject(t, p, 6, l)
			lostAll := rng.IntN(150) == 0
			for blk := range l.Blocks {
				if lostAll || rng.Float64() < loss/2 {
					continue // lost entirely
				}
				for s := range l.MaxBlockLen + l.Parity {
					if rng.Float64() >= loss {
						o.Receive(blk, uint16(s), l.MaxBlockLen)
					}
				}
			}
			b.Reset(nil, 0)
			b.AddObject(o, true)
			c := b.Content()
			for w := range wishes(t, c, 0) {
				switch w.level {
				case framing.RepairSegment:
					if wantSyms[w.block] == nil {
						wantSyms[w.block] = map[int]bool{}
					}
					wantSyms[w.block][int(w.symbol)] = true
				case framing.RepairBlock:
					wholeBlocks[w.block] = true
				case framing.RepairObject:
					wholeObject = true
				}
			}
			for blk := range l.Blocks {
				if _, s := o.find(blk); s != nil {
					wantErasures[blk] = max(wantErasures[blk], o.Needed(blk, l.MaxBlockLen))
				}
			}
			if err := a.Add(c, 0); err != nil {
				t.Fatal(err)
			}
			o.Release()
		}
		if wholeObject {
			// A receiver that got nothing asks for the object, which
			// includes everything the others asked for.
			if got := planString(a); got != "OBJECT 6" {
				t.Fatalf("round %d: plan %s", round, got)
			}
			wholeRounds++
			continue
		}
		seen := map[uint32]bool{}
		for pl := a.Plan(); pl.Next(); {
			r := pl.Repair()
			if r.Object != 6 {
				t.Fatalf("repair for object %d", r.Object)
			}
			switch r.Level {
			case framing.RepairBlock:
				for blk := r.Block; blk <= r.LastBlock; blk++ {
					if !wholeBlocks[blk] {
						t.Fatalf("block %d repaired whole, asked for by no one", blk)
					}
					seen[blk] = true
				}
			case framing.RepairSegment:
				if wholeBlocks[r.Block] {
					t.Fatalf("symbols of block %d listed besides the whole block", r.Block)
				}
				seen[r.Block] = true
				for s := range 256 {
					if r.Symbols.Test(s) != wantSyms[r.Block][s] {
						t.Fatalf("block %d symbol %d: planned %v, asked %v", r.Block, s, r.Symbols.Test(s), wantSyms[r.Block][s])
					}
				}
				if r.Erasures != wantErasures[r.Block] {
					t.Fatalf("round %d block %d: erasures %d, the neediest receiver needs %d", round, r.Block, r.Erasures, wantErasures[r.Block])
				}
			default:
				t.Fatalf("unexpected level %v", r.Level)
			}
		}
		for blk := range wholeBlocks {
			if !seen[blk] {
				t.Fatalf("block %d asked for whole, not planned", blk)
			}
		}
		for blk := range wantSyms {
			if !seen[blk] {
				t.Fatalf("symbols of block %d asked for, not planned", blk)
			}
		}
	}
	if wholeRounds == 0 || wholeRounds > 20 {
		t.Fatalf("%d of 60 rounds had a receiver that got nothing", wholeRounds)
	}
}

func TestAggregateOverflow(t *testing.T) {
	// Room for two blocks of symbols and two block ranges.
	a := NewAggregator(2, 64)
	a.Reset(0)
	a.Add(content(t, req{items, seg, [][3]int{{1, 0, 1}, {1, 1, 1}, {1, 2, 1}}}), 0)
	if got, want := planString(a), "SEGMENT 1/0 {1} erasures 1; SEGMENT 1/1 {1} erasures 1; BLOCK 1/2-2"; got != want {
		t.Fatalf("plan %s, want %s", got, want)
	}
	a.Add(content(t, req{items, blk, [][3]int{{1, 5, 0}, {1, 9, 0}}}), 0)
	if got, want := planString(a), "OBJECT 1"; got != want {
		t.Fatalf("plan %s, want %s", got, want)
	}
	if a.Widened() != 2 {
		t.Fatalf("Widened %d", a.Widened())
	}
	// Adjacent and overlapping block ranges merge and take no more room.
	a.Reset(0)
	a.Add(content(t, req{ranges, blk, [][3]int{{2, 3, 0}, {2, 5, 0}, {2, 8, 0}, {2, 9, 0}}}), 0)
	a.Add(content(t, req{items, blk, [][3]int{{2, 6, 0}, {2, 7, 0}, {2, 1, 0}}}), 0)
	a.Add(content(t, req{ranges, blk, [][3]int{{2, 0, 0}, {2, 4, 0}}}), 0)
	if got, want := planString(a), "BLOCK 2/0-9"; got != want || a.Widened() != 0 {
		t.Fatalf("plan %s, want %s (widened %d)", got, want, a.Widened())
	}
}

func TestAggregateMalformed(t *testing.T) {
	a := NewAggregator(4, 64)
	a.Reset(0)
	bad := append(content(t, req{items, seg, [][3]int{{1, 0, 1}}}), 3, 1, 0, 9)
	if err := a.Add(bad, 0); !errors.Is(err, framing.ErrContent) {
		t.Fatalf("error %v", err)
	}
	if got := planString(a); got != "SEGMENT 1/0 {1} erasures 1" {
		t.Fatalf("plan %s", got)
	}
	var zero Plan
	if zero.Next() {
		t.Fatal("zero Plan iterates")
	}
}
