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
// of its own that refills at repairShare of the rate; a NACK from a node
// whose bucket is empty is not acted on (Stats.NacksDeferred). The node's
// receiver, if real, asks again after its repair timer, and is answered
// once its bucket has refilled. One ask is answered whole while the bucket
// holds anything, so a late joiner asking for a whole object gets it in one
// go, then waits its turn. Nodes that share an aggregation window are each
// charged in full, so a forged node cannot ride on another's budget. With
// no new data waiting, repairs take nothing from anyone and every NACK is
// acted on.

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

// nackAllowed reports whether a NACK from node with the given content is
// acted on, and charges node for it if so.
func (s *Sender) nackAllowed(now time.Time, node uint32, content []byte, fecM uint8) bool {
	if s.current() == nil {
		return true
	}
	c := s.budgetCap()
	var b *nodeBudget
	fullest := -1
	for i := range s.budget {
		e := &s.budget[i]
		e.tokens = min(c, e.tokens+now.Sub(e.at).Seconds()*s.symbolRate()/repairShare)
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
	if b.tokens <= 0 {
		s.stats.NacksDeferred++
		return false
	}
	b.tokens -= float64(s.nackAsk(content, fecM))
	return true
}

// nackAsk returns how many symbols content asks for, cut to what has been
// sent: an upper bound of the repair it can cause. Its work is bounded by
// the content's size.
func (s *Sender) nackAsk(content []byte, fecM uint8) int {
	sentSyms := func(id uint16) int {
		o := s.object(id)
		if o == nil {
			return 0
		}
		return int(lastSentBlock(o)+1) * s.cfg.BlockLen
	}
	n := 0
	for off := 0; off < len(content); {
		r, next, ok := framing.NextRepairRequest(content, off)
		if !ok {
			break
		}
		off = next
		for i := 0; i < len(r.Items); {
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
			switch {
			case r.Flags&framing.RepairSegment != 0:
				syms := 1
				if r.Form == framing.FormRanges {
					syms = int(last.PayloadID.Symbol) - int(first.PayloadID.Symbol) + 1
				}
				n += max(1, min(syms, s.cfg.BlockLen+s.cfg.Parity))
			case r.Flags&framing.RepairBlock != 0:
				o := s.object(first.ObjectID)
				if o == nil || last.PayloadID.Block < first.PayloadID.Block {
					continue
				}
				lastB := min(int64(last.PayloadID.Block), lastSentBlock(o))
				if lastB >= int64(first.PayloadID.Block) {
					n += int(lastB-int64(first.PayloadID.Block)+1) * s.cfg.BlockLen
				}
			case r.Flags&framing.RepairObject != 0:
				// A range of objects: the first few are counted one by one,
				// the rest as the whole cache would be too much work.
				for k := range min(int(last.ObjectID-first.ObjectID)+1, 8) {
					n += sentSyms(first.ObjectID + uint16(k))
				}
			default:
				n++ // NORM_INFO
			}
		}
	}
	return n
}
