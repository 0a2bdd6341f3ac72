package nack

import (
	"bytes"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

// FuzzRepairContent feeds arbitrary bytes, as overheard NACK or REPAIR_ADV
// content, to a Suppressor and an Aggregator. Neither may panic; both must
// refuse what framing refuses; every well-formed request must be in the
// Aggregator's state (it widens, never drops) and, unless its tables
// filled, in the Suppressor's; the plan must come in strict object and
// block order; and adding the same content again must not change it.
func FuzzRepairContent(f *testing.F) {
	for _, name := range []string{"normcast-sample.pcap", "normcast-sample-fec-ack.pcap"} {
		if fh, err := os.Open(filepath.Join("..", "framing", "testdata", name)); err == nil {
			capture.ReadUDP(fh, func(d capture.Datagram) error {
				var n framing.Nack
				if n.Unmarshal(d.Payload) == nil {
					f.Add(bytes.Clone(n.Content), false, uint16(0))
				}
				return nil
			})
			fh.Close()
		}
	}
	f.Add(content(f,
		req{items, seg | info, [][3]int{{1, 0, 2}, {1, 0, 5}}},
		req{ranges, seg, [][3]int{{1, 1, 4}, {1, 1, 60}}},
		req{erasures, seg, [][3]int{{2, 3, 7}}},
		req{ranges, blk, [][3]int{{3, 1, 0}, {3, 9, 0}}},
		req{ranges, obj, [][3]int{{65533, 0, 0}, {2, 0, 0}}},
		req{items, info, [][3]int{{8, 0, 0}}}), true, uint16(65500))
	f.Add([]byte{2, 1, 0, 8, 5, 0, 0, 1, 0, 0, 0, 3}, false, uint16(0)) // odd range
	f.Add([]byte{1, 2, 0, 12, 129, 0, 0, 1, 0, 0, 0, 1, 0, 9, 0, 0}, false, uint16(0))
	f.Add([]byte{1, 1, 0, 4, 2, 0, 0, 7, 1, 2, 3, 4}, true, uint16(3))

	// Reused across inputs, which also checks that Reset forgets.
	s, a := NewSuppressor(6, 64), NewAggregator(6, 64)
	pool := NewPool(4, 64)
	var o Object
	f.Fuzz(func(t *testing.T, c []byte, m8 bool, base uint16) {
		fecM := uint8(16)
		if m8 {
			fecM = 8
		}
		s.Reset()
		a.Reset(base)
		errS, errA := s.Add(c, fecM), a.Add(c, fecM)
		if (errS == nil) != (errA == nil) {
			t.Fatalf("Suppressor says %v, Aggregator %v", errS, errA)
		}
		if _, err := (&framing.Nack{Content: c, FECM: fecM}).Append(nil); err != nil && errA == nil {
			t.Fatalf("framing refuses the content (%v), nack accepts it", err)
		}
		sFull := s.t.used == len(s.t.entries) || len(s.t.spans) == cap(s.t.spans)
		for r, off, ok := framing.NextRepairRequest(c, 0); ok; r, off, ok = framing.NextRepairRequest(c, off) {
			checkRequest(t, &a.t, r, fecM, true)
			if !sFull {
				checkRequest(t, &s.t, r, fecM, false)
			}
		}
		// A receiver's question never fails on what it heard.
		o.Init(pool, base, Layout{Blocks: 3, MaxBlockLen: 8, Parity: 2})
		o.Receive(1, 3, 8)
		o.SetInfoPending(m8)
		s.Covers(&o, m8)
		d1 := planDigest(t, a)
		a.Add(c, fecM)
		s.Add(c, fecM)
		if d2 := planDigest(t, a); d1 != d2 {
			t.Fatal("adding the same content again changed the plan")
		}
	})
}

// checkRequest checks that every well-formed item of r is in t.
func checkRequest(t *testing.T, tb *table, r framing.RepairRequest, fecM uint8, widens bool) {
	if r.Form < framing.FormItems || r.Form > framing.FormErasures || r.Flags&(seg|blk|obj|info) == 0 {
		return
	}
	objectHas := func(id uint16) bool { return tb.objects.Test(int(tb.off(id))) }
	blockHas := func(id uint16, b uint32) bool {
		return objectHas(id) || tb.spanCovering(tb.off(id), b) >= 0
	}
	for i := 0; i < len(r.Items); {
		a, j, ok := r.Item(i, fecM)
		if !ok {
			return
		}
		b := a
		if r.Form == framing.FormRanges {
			if b, j, ok = r.Item(j, fecM); !ok {
				return
			}
		}
		i = j
		id := a.ObjectID
		switch {
		case r.Flags&seg != 0:
			if b.ObjectID != id || b.PayloadID.Block != a.PayloadID.Block || blockHas(id, a.PayloadID.Block) {
				continue
			}
			e := tb.find(tb.off(id), a.PayloadID.Block)
			if r.Form == framing.FormErasures {
				if e == nil || e.erasures < int(a.PayloadID.Symbol) {
					t.Fatalf("erasure count %+v lost", a)
				}
				continue
			}
			s0, s1 := int(a.PayloadID.Symbol), int(b.PayloadID.Symbol)
			if s1 < s0 || s0 >= tb.symbols {
				continue
			}
			for sym := s0; sym <= min(s1, tb.symbols-1); sym++ {
				if e == nil || !e.syms.Test(sym) {
					t.Fatalf("symbol %d of %+v lost", sym, a)
				}
			}
			if e.counted < min(s1, tb.symbols-1)-s0+1 {
				t.Fatalf("erasure count %d below the %d ids of one request", e.counted, s1-s0+1)
			}
		case r.Flags&blk != 0:
			if b.ObjectID != id || b.PayloadID.Block < a.PayloadID.Block {
				continue
			}
			if !blockHas(id, a.PayloadID.Block) || !blockHas(id, b.PayloadID.Block) {
				t.Fatalf("blocks %+v-%+v lost", a, b)
			}
		case r.Flags&obj != 0:
			if !objectHas(id) || !objectHas(b.ObjectID) {
				t.Fatalf("objects %d-%d lost", id, b.ObjectID)
			}
		}
		if r.Flags&info != 0 && !tb.info.Test(int(tb.off(id))) {
			t.Fatalf("NORM_INFO of %d lost", id)
		}
	}
}

// planDigest hashes an Aggregator's plan, checking its order on the way.
func planDigest(t *testing.T, a *Aggregator) uint64 {
	h := fnv.New64a()
	var prevOff, prevBlock int64 = -1, -1
	prevInfo := false
	n := 0
	for p := a.Plan(); p.Next(); n++ {
		if n > 3*objectIDs+2*len(a.t.entries)+10 {
			t.Fatal("plan does not end")
		}
		r := p.Repair()
		off := int64(r.Object - a.t.base)
		block := int64(r.Block)
		if r.Level == framing.RepairObject || r.Level == framing.RepairInfo {
			block = -1
		}
		switch {
		case off < prevOff:
		case off > prevOff:
			prevBlock, prevInfo = -1, false
		case r.Level == framing.RepairObject:
			t.Fatalf("whole object %d listed after other repairs of it", r.Object)
		case r.Level == framing.RepairInfo && (prevInfo || prevBlock >= 0):
			t.Fatalf("NORM_INFO of %d listed twice or after blocks", r.Object)
		case r.Level != framing.RepairInfo && block <= prevBlock:
			t.Fatalf("block %d of %d listed after block %d", block, r.Object, prevBlock)
		}
		if off < prevOff {
			t.Fatalf("object %d listed after a later one", r.Object)
		}
		prevOff = off
		switch r.Level {
		case framing.RepairInfo:
			prevInfo = true
		case framing.RepairBlock:
			if r.LastBlock < r.Block {
				t.Fatalf("block range %d-%d", r.Block, r.LastBlock)
			}
			prevBlock = int64(r.LastBlock)
		case framing.RepairSegment:
			prevBlock = block
		case framing.RepairObject:
			prevBlock = 1 << 40 // nothing else of the object may follow
		}
		var w [32]byte
		w[0] = byte(r.Level)
		w[1], w[2] = byte(r.Object>>8), byte(r.Object)
		for i := range 4 {
			w[3+i] = byte(r.Block >> (8 * i))
			w[7+i] = byte(r.LastBlock >> (8 * i))
		}
		w[11] = byte(r.Erasures)
		h.Write(w[:12])
		if r.Symbols != nil {
			for s := r.Symbols.FirstSet(); s >= 0; s = r.Symbols.NextSet(s + 1) {
				h.Write([]byte{byte(s)})
			}
		}
	}
	return h.Sum64()
}
