package sender

import (
	"time"

	"github.com/shoalnet/shoal/framing"
)

// Per-node repair budget. Any host on the group can send NACKs under any
// node id, and one block-range NACK can ask for every block of an object:
// answered each time, a single node asking 50 times a second keeps the
// repair queue full, and (see yieldToData) takes half the rate from new
// data for as long as it goes on. So while new data waits, what a node asks
// for is charged, in source symbols cut to what has been sent, to a bucket
// of its own that refills at 1/repairShare of the rate. A NACK asking for
// more than the bucket holds is acted on only up to it (Stats.NacksCut): a
// block range, or an object asked whole, is cut to its first blocks, and
// the rest of the NACK is left out; with the bucket empty, the NACK is not
// acted on at all (Stats.NacksDeferred). A real receiver asks again, after
// its repair timer, for what it still lacks, so a late joiner or a
// receiver with heavy loss gets its repairs part by part at its share of
// the rate while new data goes out, and at the full rate after. Nodes that
// share an aggregation window are each charged for what they asked, so a
// forged node cannot ride on another's budget.
//
// With no new data waiting, repairs take nothing from new data and every
// NACK is acted on whole, but not all in arrival order: a NACK asking for
// more than its node's bucket holds goes to the bulk queue (Stats.NacksBulk),
// whose repairs are sent only when nothing else is to send, not even a
// flush (Stats.RepairsBulk). Once the data is out, one forged node asking
// for every block of every object 50 times a second would otherwise keep
// a pass over the objects going ahead of every real receiver's request
// (the tail of the simulated nack-range attack: over a second, as long as
// the data took). A late joiner asking for whole objects on an otherwise
// idle link still gets them at the full rate, from the bulk queue, and
// whatever a node asks within its bucket goes ahead of it. A bulk pass over
// blocks sends half of each block's parity first (see parityPass), and a
// closing sender's end of transmission waits until the bulk queue is empty.
//
// This bounds what one node id can cost. Many forged ids at once get a
// bucket each (up to budgetNodes are remembered); the repair queue's bound
// and its alternation with new data (yieldToData) cover that case.

// repairShare is the share of the rate one node's repairs may take from
// new data, over time: a receiver losing up to a fifth of the packets
// (asking for a quarter of the rate once repairs are lost too) is not held
// back, and one node can stretch a transfer by a third at most.
const repairShare = 4 // 1/4

// budgetNodes bounds the nodes with a bucket of their own. A node without
// one has a full bucket; when all are taken, the fullest is reused, so
// nodes in debt are forgotten last.
const budgetNodes = 64

type nodeBudget struct {
	node   uint32
	tokens float64 // source symbols; negative: owed
	at     time.Time
}

// budgetCap is how many symbols a node that has asked for nothing lately
// may have repaired at once: a few blocks, or eight GRTTs of its share
// (a repair cycle or so), whichever is more.
func (s *Sender) budgetCap() float64 {
	return max(float64(4*s.cfg.BlockLen), s.symbolRate()/repairShare*s.grtt.Seconds()*8)
}

// symbolRate is the sender's rate in packets a second.
func (s *Sender) symbolRate() float64 {
	return s.pacer.Rate() / float64(s.cfg.SegmentSize+48+s.cfg.PacketOverhead)
}

// budgetNACK returns the part of a NACK from node that is acted on, and
// charges node for it, and whether its repairs go to the bulk queue. With
// no new data waiting that is all of content, to the bulk queue if it
// costs more than the node's bucket holds. Else it is as much as the
// bucket holds (at least one block or symbol), in the NACK's order, a
// block range or an object asked whole being cut to its first blocks;
// nothing if the bucket is empty. The result may be in scratch space of
// s, valid until the next call.
func (s *Sender) budgetNACK(now time.Time, node uint32, content []byte, fecM uint8) (acted []byte, bulk bool) {
	b := s.nodeBudget(now, node)
	if s.current() == nil {
		_, cost, _ := s.trimNACK(content, fecM, wholeNACK)
		bulk = float64(cost) > b.tokens
		// Debt is bounded, so that a receiver that asked for much once
		// (a late joiner) soon has its share again.
		b.tokens = max(b.tokens-float64(cost), -s.budgetCap())
		if bulk {
			s.stats.NacksBulk++
		}
		return content, bulk
	}
	if b.tokens <= 0 {
		s.stats.NacksDeferred++
		return nil, false
	}
	out, cost, cut := s.trimNACK(content, fecM, b.tokens)
	b.tokens -= float64(cost)
	if cut {
		s.stats.NacksCut++
	}
	return out, false
}

// wholeNACK is a budget no NACK reaches: a NACK's cost is bounded by the
// blocks the sender holds (itemCost), far below it.
const wholeNACK = 1 << 40

// nodeBudget returns node's bucket, refilled to now.
func (s *Sender) nodeBudget(now time.Time, node uint32) *nodeBudget {
	c := s.budgetCap()
	fill := s.symbolRate() / repairShare
	var b *nodeBudget
	fullest := -1
	for i := range s.budget {
		e := &s.budget[i]
		e.tokens = min(c, e.tokens+now.Sub(e.at).Seconds()*fill)
		e.at = now
		if e.node == node {
			b = e
		}
		if fullest < 0 || e.tokens > s.budget[fullest].tokens {
			fullest = i
		}
	}
	if b == nil {
		if len(s.budget) < cap(s.budget) {
			s.budget = append(s.budget, nodeBudget{})
			fullest = len(s.budget) - 1
		}
		b = &s.budget[fullest]
		*b = nodeBudget{node: node, tokens: c, at: now}
	}
	return b
}

// trimNACK returns the first part of content that costs about allow
// symbols (cut to what has been sent), its cost, and whether anything was
// left out. Its work is bounded by the content's size, and so is the
// result's.
func (s *Sender) trimNACK(content []byte, fecM uint8, allow float64) (out []byte, cost int, cut bool) {
	left := allow
	out = s.trimBuf[:0]
	full := true // everything so far went in as it was
	for off := 0; off < len(content) && left > 0; {
		r, next, ok := framing.NextRepairRequest(content, off)
		if !ok {
			break
		}
		off = next
		refs := s.trimRefs[:0]
		var extra [2]framing.SymbolRef // an object asked whole, cut to blocks
		extraN := false
		for i := 0; i < len(r.Items) && left > 0; {
			first, j, ok := r.Item(i, fecM)
			if !ok {
				break
			}
			last := first
			if r.Form == framing.FormRanges {
				if last, j, ok = r.Item(j, fecM); !ok {
					break
				}
			}
			i = j
			c, blocks := s.itemCost(r, first, last)
			switch {
			case c > int(left) && blocks > 0:
				// Cut to the first blocks that fit (at least one).
				n := min(blocks, max(1, int(left)/s.cfg.BlockLen))
				if r.Flags&(framing.RepairSegment|framing.RepairBlock) == 0 {
					// Objects asked whole: the first one's first blocks.
					first.PayloadID.Block, first.PayloadID.Symbol = 0, 0
					end := first
					end.PayloadID.Block = uint32(n - 1)
					extra, extraN = [2]framing.SymbolRef{first, end}, true
				} else {
					end := first
					end.PayloadID.Block += uint32(n - 1)
					refs = append(refs, first, end)
				}
				c, full, left = n*s.cfg.BlockLen, false, 0
			case c > int(left) && r.Flags&framing.RepairSegment == 0:
				full = false // left out: asked again later
				continue
			case r.Form == framing.FormRanges:
				refs = append(refs, first, last)
			default:
				refs = append(refs, first)
			}
			cost += c
			left -= float64(c)
			if left <= 0 && (i < len(r.Items) || off < len(content)) {
				full = false
			}
		}
		s.trimRefs = refs
		if len(refs) > 0 {
			out, _ = framing.AppendRepairRequest(out, r.Form, r.Flags, fecM, refs)
		}
		if extraN {
			out, _ = framing.AppendRepairRequest(out, framing.FormRanges,
				framing.RepairBlock|r.Flags&framing.RepairInfo, fecM, extra[:])
		}
	}
	s.trimBuf = out
	if full {
		return content, cost, false
	}
	return out, cost, true
}

// itemCost returns how many symbols one repair item (or range) of r asks
// for, cut to what has been sent, and, for a block range or a single object
// asked whole, how many blocks of the (first) object it covers (0 for
// anything that cannot be cut).
func (s *Sender) itemCost(r framing.RepairRequest, first, last framing.SymbolRef) (cost, blocks int) {
	k := s.cfg.BlockLen
	switch {
	case r.Flags&framing.RepairSegment != 0:
		n := 1
		switch r.Form {
		case framing.FormRanges:
			n = int(last.PayloadID.Symbol) - int(first.PayloadID.Symbol) + 1
		case framing.FormErasures:
			n = int(first.PayloadID.Symbol)
		}
		return max(1, min(n, k+s.cfg.Parity)), 0
	case r.Flags&framing.RepairBlock != 0:
		o := s.object(first.ObjectID)
		if o == nil || last.ObjectID != first.ObjectID || last.PayloadID.Block < first.PayloadID.Block {
			return 0, 0
		}
		end := min(int64(last.PayloadID.Block), lastSentBlock(o))
		if end < int64(first.PayloadID.Block) {
			return 0, 0
		}
		n := int(end - int64(first.PayloadID.Block) + 1)
		return n * k, n
	case r.Flags&framing.RepairObject != 0:
		if last.ObjectID != first.ObjectID {
			// A range of objects: the first few are counted; one that
			// does not fit is cut to the first object's first blocks.
			n, blocks := 0, 0
			for i := range min(int(last.ObjectID-first.ObjectID)+1, 8) {
				if o := s.object(first.ObjectID + uint16(i)); o != nil && o.stream == nil {
					n += int(lastSentBlock(o)+1) * k
					if i == 0 {
						blocks = int(lastSentBlock(o) + 1)
					}
				}
			}
			return max(n, 1), blocks
		}
		o := s.object(first.ObjectID)
		if o == nil {
			return 1, 0
		}
		if o.stream != nil {
			// Answered with the blocks in the ring (see repairFor); not
			// cut, as the cut starts at block 0, which a stream may have
			// overwritten.
			fb, lb := s.streamRepairSpan(o)
			return int(max(lb-fb+1, 0))*k + 1, 0
		}
		n := int(lastSentBlock(o) + 1)
		return max(n*k, 1), n
	}
	return 1, 0 // NORM_INFO
}
