package sender

import (
	"math"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// planRepairs turns the aggregation window's NACKs into repair jobs, queued
// ahead of new data (RFC 5740 §5.4). Its work is bounded by the plan, whose
// size the aggregator bounds, and never by a number in a NACK: block ranges
// are cut to the blocks the object has, and requests for objects past the
// cache end the plan.
func (s *Sender) planRepairs(now time.Time) {
	s.aggEnd = time.Time{}
	s.cycleStart = now
	s.stats.AggregateWiden += uint64(s.agg.Widened())
	// The plan lists objects in serial order from the window's base (the
	// oldest object then cached). Offsets from end on are ids not yet
	// used, or ids older than the base (they wrap to the top).
	queued := s.plan(s.agg, queueRepairs)
	bulk := false
	if s.bulkUsed {
		s.bulkUsed = false
		bulk = s.plan(s.bulkAgg, queueBulk)
	}
	if queued || bulk && s.flushCount <= s.cfg.RobustFactor {
		// Flush again once the repairs are out, bulk ones too (a late
		// joiner's, say): whoever lost some of them asks again. Once the
		// end of transmission has begun, though (see flushDue: a closing
		// sender whose acking nodes confirmed all), bulk repairs are owed
		// to nobody it answers for, and do not start it over.
		s.flushCount = 0
	}
}

// The queues of repair jobs: see queueRepair.
const (
	queueRepairs = iota // s.rq
	queueBulk           // s.bq
)

// plan queues the repairs agg asks for in queue q and reports whether it
// queued any.
func (s *Sender) plan(agg *nack.Aggregator, q int) bool {
	end := uint16(s.nextID - s.aggBase)
	queued := false
	for p := agg.Plan(); p.Next(); {
		s.work++
		r := p.Repair()
		if uint16(r.Object-s.aggBase) >= end {
			// Every request from here on is for an object the sender no
			// longer or not yet holds: the squelch's position answers them
			// all, and none is worth a listing (old ids are before the
			// position; listing ids still to come would invalidate them).
			s.squelch = true
			break
		}
		o := s.object(r.Object)
		if o == nil || o.failed != nil {
			s.addSquelch(r.Object)
			continue
		}
		if o.stream != nil && r.Level == framing.RepairObject && len(o.info) > 0 {
			// The stream asked for whole: its NORM_INFO first, which the
			// receiver lost with the rest.
			info := repairJob{obj: r.Object, level: framing.RepairInfo}
			if s.queueRepair(o, info, q) {
				queued = true
			}
		}
		if j, ok := s.repairFor(o, r, q == queueRepairs); ok && s.queueRepair(o, j, q) {
			queued = true
		}
	}
	return queued
}

// repairFor makes the repair job that answers r for o, if any is due. With
// margin, fresh parity answering a count gets a margin (see repairMargin);
// bulk repairs, which answer nodes past their budget, get none.
func (s *Sender) repairFor(o *txObject, r nack.Repair, margin bool) (repairJob, bool) {
	j := repairJob{obj: r.Object, level: r.Level, block: r.Block, lastBlock: r.LastBlock}
	if st := o.stream; st != nil {
		// A stream is repairable only within its ring; older requests
		// get the squelch that moves receivers past the gap.
		switch {
		case r.Level == framing.RepairObject:
			// A receiver that lost all it was sent of the stream knows
			// only its id and asks for it whole (libnorm does). A squelch
			// would name the oldest cached object, which tells it
			// nothing, and it would ask forever: it gets the blocks still
			// in the ring instead (and the NORM_INFO, see plan).
			first, last := s.streamRepairSpan(o)
			if last < first {
				return j, false
			}
			j.block, j.lastBlock = uint32(first), uint32(last)
			return j, true
		case r.Level == framing.RepairInfo:
		case o.blockLen(int(r.Block)) == 0 && uint64(r.Block)*uint64(st.k) < st.sealed:
			s.squelch = true
			return j, false
		case st.age != nil && uint64(r.Block) < s.agedFloorBlock(o):
			// Past the stream's maximum age: not repaired, and the
			// receivers are moved past it.
			s.squelch = true
			s.stats.StaleRefused++
			return j, false
		case uint64(r.Block)*uint64(st.k) >= st.next:
			return j, false // not sent yet
		}
	}
	last := lastSentBlock(o)
	switch r.Level {
	case framing.RepairInfo:
		if len(o.info) > 0 {
			return j, true
		}
		if o.stream != nil {
			return j, false
		}
		// Receivers ask for the NORM_INFO of objects they never heard of
		// (see receiver). Without one, the object's first symbol answers:
		// its header announces the object as NORM_INFO would, and the
		// receiver then asks for the blocks it lacks. (The whole object
		// once answered, which let one small forged NACK, from any node
		// id, cost a pass over the object.)
		j.block, j.lastBlock = 0, 0
	case framing.RepairObject:
		j.block, j.lastBlock = 0, uint32(max(last, 0))
	case framing.RepairBlock:
		if int64(j.lastBlock) > last {
			// A range past the blocks sent: blocks not sent yet go out as
			// new data, and blocks past the object do not exist. Cut here,
			// in one step, whatever number the request holds.
			s.stats.RepairsClamped++
			if last < int64(j.block) {
				return j, false
			}
			j.lastBlock = uint32(last)
		}
		if o.blockLen(int(j.block)) == 0 {
			return j, false
		}
	case framing.RepairSegment:
		k := o.blockLen(int(r.Block))
		if k == 0 {
			return j, false
		}
		n := k + s.cfg.Parity
		for i := r.Symbols.FirstSet(); i >= 0 && i < n; i = r.Symbols.NextSet(i + 1) {
			j.setWant(i)
		}
		// Parity exists only for whole blocks (a stream's last block
		// may still be filling).
		if s.codec != nil && (o.stream == nil || k == o.stream.k) {
			j.fec = true
			j.parity = r.Erasures
			// NACKs that reached us less than a GRTT after the last
			// repair of this block were sent before their senders could
			// see it: that repair already counts against their erasures.
			b := o.slot(int(r.Block))
			first := o.repairAt == nil || o.repairAt[b].IsZero()
			if !first && s.aggStart.Before(o.repairAt[b].Add(s.grtt)) {
				j.parity -= int(o.repairN[b])
			}
			if j.parity <= 0 {
				return j, false
			}
			if margin {
				j.parity += s.repairMargin(o, b, k, j.parity, first)
			}
		}
	}
	// Requests past what has been sent (a receiver that misjudged the
	// sender's position) are served when the data goes out anyway.
	if o.stream == nil && !o.sent && int(j.block) >= o.nextBlock {
		return j, false
	}
	return j, true
}

// streamRepairSpan returns the blocks of stream o that a request for it
// whole is answered with: from the oldest block whole in the ring (and not
// past the stream's maximum age) through the last one sent (last < first
// if none).
func (s *Sender) streamRepairSpan(o *txObject) (first, last int64) {
	st := o.stream
	f := (ringFloor(st) + uint64(st.k) - 1) / uint64(st.k)
	if st.age != nil {
		f = max(f, s.agedFloorBlock(o))
	}
	return int64(f), lastSentBlock(o)
}

// lastSentBlock returns the last block of o whose data has been sent (in
// part, for a stream's last block), or -1 if none.
func lastSentBlock(o *txObject) int64 {
	if st := o.stream; st != nil {
		if st.next == 0 {
			return -1
		}
		return int64((st.next - 1) / uint64(st.k))
	}
	if o.sent {
		return int64(o.blocks) - 1
	}
	return int64(o.nextBlock) - 1
}

// maxRepairJobs bounds the repair queue. One aggregation window plans at
// most one job per block entry and block range of the aggregator (1024
// each) plus the objects requested whole, and requests for what is already
// queued merge into it, so a full queue means a storm of distinct requests:
// those that do not fit are dropped (Stats.RepairsDropped), and their
// receivers ask again.
const maxRepairJobs = 4096

// repairQueue is a FIFO of repair jobs in a ring that grows, by doubling,
// up to maxRepairJobs. Jobs are numbered in queueing order; a txObject
// remembers the number of its jobs still waiting, so that a later request
// for the same repair merges into the waiting job instead of queueing a
// duplicate.
type repairQueue struct {
	jobs       []repairJob
	head, tail uint64 // numbers of the first job and of the next to queue
}

func (q *repairQueue) len() int { return int(q.tail - q.head) }

func (q *repairQueue) front() *repairJob { return &q.jobs[q.head%uint64(len(q.jobs))] }

func (q *repairQueue) pop() { q.head++ }

// next returns the job after the first; the queue holds two or more.
func (q *repairQueue) next() *repairJob { return &q.jobs[(q.head+1)%uint64(len(q.jobs))] }

// push queues j and returns its mark (number + 1), or 0 if the queue is
// full.
func (q *repairQueue) push(j repairJob) uint64 {
	if q.len() == len(q.jobs) {
		if len(q.jobs) == maxRepairJobs {
			return 0
		}
		// Numbers head..tail-1 are consecutive and fewer than the new
		// size: each keeps a slot of its own at number modulo size.
		jobs := make([]repairJob, min(max(2*len(q.jobs), 64), maxRepairJobs))
		for n := q.head; n < q.tail; n++ {
			jobs[n%uint64(len(jobs))] = q.jobs[n%uint64(len(q.jobs))]
		}
		q.jobs = jobs
	}
	q.jobs[q.tail%uint64(len(q.jobs))] = j
	q.tail++
	return q.tail
}

// waiting returns the job with mark m if it is still queued and not
// started, else nil.
func (q *repairQueue) waiting(m uint64) *repairJob {
	if m == 0 || m-1 < q.head || m-1 >= q.tail {
		return nil
	}
	j := &q.jobs[(m-1)%uint64(len(q.jobs))]
	if j.started || j.done {
		return nil
	}
	return j
}

// queueRepair queues job j for o in queue qi (queueRepairs or queueBulk),
// or merges it into a job waiting there for the same repair, and reports
// whether the repair is now queued.
func (s *Sender) queueRepair(o *txObject, j repairJob, qi int) bool {
	s.work++
	rq, m := &s.rq, &o.marks[qi]
	if qi == queueBulk {
		rq = &s.bq
	}
	if j.level == framing.RepairBlock || j.level == framing.RepairSegment {
		if rq.waiting(m.obj) != nil {
			s.stats.RepairsMerged++ // the whole object is about to go again
			return true
		}
	}
	var mark *uint64
	switch j.level {
	case framing.RepairInfo:
		mark = &m.info
	case framing.RepairObject:
		mark = &m.obj
	case framing.RepairBlock:
		mark = &m.blk
	default:
		if m.seg == nil {
			m.seg = make([]uint64, len(o.parityUsed))
		}
		mark = &m.seg[o.slot(int(j.block))]
	}
	if q := rq.waiting(*mark); q != nil && q.obj == j.obj && q.level == j.level {
		switch j.level {
		case framing.RepairObject, framing.RepairInfo:
			q.lastBlock = max(q.lastBlock, j.lastBlock)
			s.stats.RepairsMerged++
			return true
		case framing.RepairBlock:
			// Overlapping or adjacent ranges become one.
			if uint64(j.block) <= uint64(q.lastBlock)+1 && uint64(q.block) <= uint64(j.lastBlock)+1 {
				q.block, q.lastBlock = min(q.block, j.block), max(q.lastBlock, j.lastBlock)
				q.pblock = q.block
				s.stats.RepairsMerged++
				return true
			}
		case framing.RepairSegment:
			if q.block == j.block {
				for i := range q.want {
					q.want[i] |= j.want[i]
				}
				q.parity = max(q.parity, j.parity)
				s.stats.RepairsMerged++
				return true
			}
		}
	}
	if qi == queueBulk && s.codec != nil && (j.level == framing.RepairObject || j.level == framing.RepairBlock) {
		j.parityFirst, j.pblock = true, j.block
	}
	n := rq.push(j)
	if n == 0 {
		s.stats.RepairsDropped++
		return false
	}
	*mark = n
	return true
}

func (s *Sender) addSquelch(id uint16) {
	s.squelch = true
	for i := range s.squelchN {
		if s.squelchID[i] == id {
			return
		}
	}
	// Ids older than the cache are covered by the squelch position; only
	// newer gaps need listing.
	if len(s.objs) > 0 && int16(id-s.objs[0].id) < 0 {
		return
	}
	if s.squelchN < len(s.squelchID) {
		s.squelchID[s.squelchN] = id
		s.squelchN++
	}
}

// sendSquelch tells receivers which data the sender no longer holds: the
// position of its oldest repairable symbol, and invalidated object ids.
func (s *Sender) sendSquelch(out *framing.Outbox) {
	c := &s.cmd
	ref := framing.SymbolRef{FECID: framing.FECRS8, ObjectID: s.nextID}
	if len(s.objs) > 0 {
		o := s.objs[0]
		ref.ObjectID = o.id
		if st := o.stream; st != nil {
			// The oldest whole block still in the ring.
			ref.PayloadID.Block = uint32((ringFloor(st) + uint64(st.k) - 1) / uint64(st.k))
		}
		if st := o.stream; st != nil && st.age != nil {
			ref.PayloadID.Block = max(ref.PayloadID.Block, uint32(s.agedFloorBlock(o)))
		}
	}
	content := c.Content[:0]
	for i := range s.squelchN {
		content = framing.AppendObjectID(content, s.squelchID[i])
	}
	*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(),
		Flavor: framing.FlavorSquelch, Ref: ref, Content: content}
	s.commit(out, c)
	s.squelch, s.squelchN = false, 0
	s.stats.Squelches++
}

// sendRepair sends the next packet of the first job of q and reports
// whether it sent one.
func (s *Sender) sendRepair(q *repairQueue, out *framing.Outbox) bool {
	for q.len() > 0 {
		s.work++
		j := q.front()
		o := s.object(j.obj)
		if o == nil || o.failed != nil || j.done {
			q.pop()
			continue
		}
		j.started = true // later requests queue anew rather than merge
		if s.repairStep(o, j, out) {
			return true
		}
		if j.turn {
			// A bulk pass sent its parity: when the next job is another
			// object's (a forged NACK asks for every object), this one's
			// source symbols go behind it, so that its parity goes first
			// too. Not behind a later request for the same object (a late
			// joiner asking again): its parity would only delay the source.
			j.turn = false
			if q.len() > 1 && q.next().obj != j.obj {
				c := *j
				q.pop()
				q.push(c) // room: one was just popped
			}
			continue
		}
		q.pop()
	}
	return false
}

// repairStep sends one packet of job j, or reports false when j is done.
func (s *Sender) repairStep(o *txObject, j *repairJob, out *framing.Outbox) bool {
	switch j.level {
	case framing.RepairInfo:
		j.done = true
		if len(o.info) == 0 {
			// See repairFor: the first symbol announces the object.
			if s.sendSymbol(o, 0, 0, out) {
				s.stats.RepairSource++
				return true
			}
			return false
		}
		s.sendInfo(o, out)
		return true
	case framing.RepairObject, framing.RepairBlock:
		if j.parityFirst {
			if s.parityPass(o, j, out) {
				return true
			}
			j.turn = true
			return false
		}
		for int(j.block) <= int(j.lastBlock) && o.blockLen(int(j.block)) > 0 {
			s.work++
			if j.next < o.blockLen(int(j.block)) {
				sym := j.next
				j.next++
				if s.sendSymbol(o, int(j.block), sym, out) {
					s.stats.RepairSource++
					return true
				}
				return false
			}
			if j.block == j.lastBlock {
				break
			}
			j.block++
			j.next = 0
		}
		if j.level == framing.RepairObject && o.blocks == 0 && j.next == 0 {
			j.next = 1
			return s.sendSymbol(o, 0, 0, out)
		}
		return false
	case framing.RepairSegment:
		b := int(j.block)
		k := o.blockLen(b)
		if k == 0 {
			return false // a stream block overwritten meanwhile
		}
		// Fresh parity first: each new parity symbol repairs a different
		// loss at every receiver that lacks one.
		if j.fec && j.parity > 0 && int(o.parityUsed[o.slot(b)]) < s.cfg.Parity {
			sym := k + int(o.parityUsed[o.slot(b)])
			o.parityUsed[o.slot(b)]++
			j.parity--
			s.noteRepair(o, b)
			if s.sendSymbol(o, b, sym, out) {
				s.stats.RepairParity++
				return true
			}
			return false
		}
		if j.fec && j.parity == 0 {
			return false // fresh parity covered every receiver's erasures
		}
		// Without FEC (or parity for this block, such as a stream block
		// still being written), or with the block's parity used up: resend
		// the symbols receivers asked for, source and parity alike.
		if i := j.nextWant(j.next); i >= 0 && i < k+s.cfg.Parity {
			j.next = i + 1
			if s.sendSymbol(o, b, i, out) {
				if i < k {
					s.stats.RepairSource++
				} else {
					s.stats.RepairParity++
				}
				return true
			}
		}
		return false
	}
	return false
}

// parityPass sends the next parity symbol of a bulk pass over blocks, or
// reports false when it has sent all it sends. A bulk pass (see budget.go)
// answers a node that asked for more than its share, such as a forged
// NACK for every block of every object; its NACKs, overheard, suppress
// those of the real receivers, whose own losses are then repaired only by
// that pass. With half of every block's parity first, a receiver that lost
// a few symbols of each block (up to 8 of 64 with 16 parity) is whole after
// the parity, a ninth of the pass, not after all of it. Source follows, for a
// receiver that needs whole blocks (a late joiner); it decodes from either,
// so the parity costs it a little time, not a second pass.
func (s *Sender) parityPass(o *txObject, j *repairJob, out *framing.Outbox) bool {
	for j.parityFirst {
		s.work++
		b := int(j.pblock)
		k := o.blockLen(b)
		if k == 0 || j.pblock > j.lastBlock {
			break
		}
		// Parity exists only for whole blocks (a stream's last block may
		// still be filling).
		// Half the parity: all of it took more time than it saved (the
		// nack-range attack in simrun, over seeds 1-4 and 18).
		if j.pnext < (s.cfg.Parity+1)/2 && (o.stream == nil || k == o.stream.k) {
			sym := k + j.pnext
			j.pnext++
			if s.sendSymbol(o, b, sym, out) {
				s.stats.RepairParity++
				return true
			}
			break
		}
		if j.pblock == j.lastBlock {
			break
		}
		j.pblock++
		j.pnext = 0
	}
	j.parityFirst = false
	return false
}

// repairMargin returns how many fresh parity symbols to add to count, the
// largest number of symbols a receiver asked for to repair block slot b of
// o (k source symbols), so that the loss of the repairs themselves seldom
// leaves a receiver short (nack.RepairMargin). On a block's first repair
// the count is the largest need of the whole group, which grows with the
// group while the margin it takes grows with the receivers that need all
// or nearly all of the repairs, so the sender learns the receivers' loss
// rate from it (nack.RecordLoss, averaged over blocks). A later repair of
// a block answers the few receivers its earlier ones left short.
func (s *Sender) repairMargin(o *txObject, b, k, count int, first bool) int {
	left := s.cfg.Parity - int(o.parityUsed[b]) - count
	if left <= 0 {
		return 0
	}
	group := 1.0
	if first {
		group = s.cfg.GroupSize
		loss := s.recordLoss(k, count)
		switch {
		case s.repairLoss == 0:
			s.repairLoss = loss
		default:
			// One count far above the others (a burst, a receiver that
			// joined late, a forged NACK) moves the estimate by at most
			// a few tens of percent.
			s.repairLoss += (min(loss, 4*s.repairLoss) - s.repairLoss) / 8
		}
	}
	// A block left short costs the group a repair round more: a NACK
	// cycle for the receivers it left short, and the NACKs the round
	// draws, which with exponential back-off grow like λ = ln(group) + 1
	// (RFC 5740 §5.3). The margin keeps the expected receivers left short
	// below 1.25/λ: about 0.16 for 1,000 receivers, 0.12 for 10,000. (A
	// fixed 0.2 left 10,000 receivers 1.28 rounds per lossy block for
	// 1.20 at 1,000; a fixed 0.1 took the repair overhead at 1,000 to 1.11
	// on some seeds. Once receivers started their repair cycles together
	// (see the receiver's answered), 1/λ cost 10,000 receivers a repair
	// overhead of 1.10 on seeds 7 and 9, and 1.25/λ 1.09, with as few
	// rounds; 1,000 receivers take 1.14 rounds for 1.11.)
	short := 1.25 / (math.Log(max(s.cfg.GroupSize, 1)) + 1)
	return nack.RepairMargin(group, k, count, s.repairLoss, short, left)
}

// recordLoss is nack.RecordLoss for the advertised group size and blocks
// of k symbols, from a table made once per group size and block length:
// it is asked for every block a repair plan lists.
func (s *Sender) recordLoss(k, count int) float64 {
	t := &s.lossTable
	if t.group != s.cfg.GroupSize || t.k != k {
		*t = lossTable{group: s.cfg.GroupSize, k: k}
		for c := range t.loss {
			t.loss[c] = nack.RecordLoss(t.group, k, c)
		}
	}
	if count >= len(t.loss) {
		return nack.RecordLoss(t.group, k, count)
	}
	return t.loss[count]
}

// lossTable holds nack.RecordLoss for counts below its length.
type lossTable struct {
	group float64
	k     int
	loss  [32]float64
}

// noteRepair records a fresh parity symbol sent for block b in this repair
// cycle (see planRepairs).
func (s *Sender) noteRepair(o *txObject, b int) {
	b = o.slot(b)
	if o.repairAt == nil {
		o.repairAt = make([]time.Time, o.blocks)
		o.repairN = make([]uint8, o.blocks)
	}
	if o.repairAt[b].Before(s.cycleStart) {
		o.repairN[b] = 0
	}
	o.repairAt[b] = s.cycleStart
	o.repairN[b]++
}

// wmDue reports whether a watermark request should go out now.
func (s *Sender) wmDue(now time.Time) bool {
	w := s.wm
	o := s.object(w.obj)
	if o == nil {
		s.failWatermark(ErrUnknownObject)
		return false
	}
	if !o.sent || now.Before(w.next) {
		return false
	}
	// With TrackReceivers, nobody may have been heard yet when the
	// watermark is set: keep asking (receivers answer probes and are added
	// as they are heard) until someone acknowledges or the requests run out.
	if len(w.pending) == 0 && (w.acked > 0 || !s.cfg.TrackReceivers || w.tries >= s.cfg.RobustFactor) {
		s.emit(Event{Kind: EventWatermark, Object: w.obj})
		if w.acked > 0 {
			s.confirmed(w.obj)
		}
		s.wm = nil
		return false
	}
	if w.tries >= s.cfg.RobustFactor {
		s.failWatermark(ErrNoAck)
		return false
	}
	return true
}

// failWatermark gives up on the nodes that have not acknowledged, in the
// order of s.nodes so that events are deterministic.
func (s *Sender) failWatermark(err error) {
	w := s.wm
	for _, n := range s.nodes {
		if w.pending[n] {
			s.emit(Event{Kind: EventAck, Object: w.obj, Node: n, Err: ErrNoAck})
		}
	}
	s.emit(Event{Kind: EventWatermark, Object: w.obj, Err: err})
	s.wm = nil
}

// sendWatermarkFlush sends NORM_CMD(FLUSH) with the watermark position and
// the nodes that have not acknowledged it yet (as many as fit one segment).
func (s *Sender) sendWatermarkFlush(now time.Time, out *framing.Outbox) {
	w := s.wm
	c := &s.cmd
	content := c.Content[:0]
	// Deterministic order: the configured/heard order of s.nodes.
	for _, n := range s.nodes {
		if w.pending[n] && len(content)+4 <= s.cfg.SegmentSize {
			content = framing.AppendNodeID(content, n)
		}
	}
	*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(),
		Flavor: framing.FlavorFlush, Ref: w.ref, Content: content}
	s.commit(out, c)
	w.tries++
	w.next = now.Add(s.flushInterval())
	s.stats.Flushes++
}

// flushInterval spaces flushes and watermark requests (see
// Config.FlushTime).
func (s *Sender) flushInterval() time.Duration {
	if s.closed && s.allConfirmed() {
		return 2 * s.grtt
	}
	return max(2*s.grtt, s.cfg.FlushTime/time.Duration(s.cfg.RobustFactor))
}

// confirmed records that every node a watermark waited for acknowledged
// object id.
func (s *Sender) confirmed(id uint16) { s.ackedObj, s.acked = id, true }

// allConfirmed reports whether the acking nodes have confirmed everything
// the sender holds: the newest object is acknowledged, all was sent and
// no repair is pending. A closing sender then owes nobody its flushes.
// Receivers outside the acking list are not its responsibility: with
// positive acknowledgement the list says who is.
func (s *Sender) allConfirmed() bool {
	if !s.acked || len(s.objs) == 0 || s.objs[len(s.objs)-1].id != s.ackedObj || s.wm != nil ||
		s.rq.len() > 0 || !s.aggEnd.IsZero() {
		return false
	}
	return s.current() == nil
}

// flushDue reports whether an end-of-transmission flush should go now.
func (s *Sender) flushDue(now time.Time) bool {
	if s.closed && s.flushCount < s.cfg.RobustFactor && s.allConfirmed() {
		// Confirmed: straight to the end.
		s.flushCount, s.nextFlush = s.cfg.RobustFactor, now
	}
	if len(s.objs) == 0 || now.Before(s.nextFlush) || !s.aggEnd.IsZero() {
		return false
	}
	if s.flushCount < s.cfg.RobustFactor {
		return true
	}
	if s.bq.len() > 0 && !(s.closed && s.allConfirmed()) {
		// Flushes go ahead of bulk repairs, and may all be out before
		// them: the end (EventFlushed, a closing sender's EOT) waits,
		// unless every acking node has confirmed all: bulk repairs are
		// then owed to nobody the sender answers for (perhaps a forged
		// node that would keep it from closing).
		return false
	}
	if s.flushCount == s.cfg.RobustFactor {
		s.flushCount++
		s.emit(Event{Kind: EventFlushed})
	}
	return s.closed && s.flushCount < s.cfg.RobustFactor+1+eotRepeats
}

// eotRepeats is how many NORM_CMD(EOT) a closing sender sends, spaced like
// flushes, so that one lost packet does not leave receivers waiting for
// their inactivity timeout.
const eotRepeats = 3

func (s *Sender) sendFlush(now time.Time, out *framing.Outbox) {
	c := &s.cmd
	if s.flushCount > s.cfg.RobustFactor {
		*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(), Flavor: framing.FlavorEOT}
		s.commit(out, c)
		s.flushCount++
		s.nextFlush = now.Add(s.flushInterval())
		if s.flushCount == s.cfg.RobustFactor+1+eotRepeats {
			s.emit(Event{Kind: EventClosed})
		}
		return
	}
	last := s.objs[len(s.objs)-1]
	for i := len(s.objs) - 1; i >= 0 && s.objs[i].failed != nil; i-- {
		last = s.objs[i]
	}
	b, k := lastSymbol(last)
	*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(), Flavor: framing.FlavorFlush,
		Ref: framing.SymbolRef{FECID: framing.FECRS8, ObjectID: last.id, PayloadID: framing.PayloadID{Block: uint32(b), Symbol: uint16(k)}}}
	s.commit(out, c)
	s.flushCount++
	s.nextFlush = now.Add(s.flushInterval())
	s.stats.Flushes++
}

// nextWake returns the earliest time Poll has something to do. Packets that
// go through the pacer are due no earlier than the pacer allows, so an
// empty bucket never turns into a busy loop.
func (s *Sender) nextWake(now time.Time) time.Time {
	next := now.Add(time.Hour)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	// Wake when a quarter of the bucket has refilled, not for every
	// packet: the I/O layer then writes packets in batches (one GSO write
	// or sendmmsg call) and wakes far less often, at the same average rate.
	pacerAt := s.pacer.Next(now, max(s.cfg.SegmentSize+48+s.cfg.PacketOverhead, s.pacer.Burst()/4))
	paced := func(t time.Time) {
		if t.Before(pacerAt) {
			t = pacerAt
		}
		earlier(t)
	}
	earlier(s.aggEnd)
	earlier(s.blockDeadline())
	if s.active() {
		earlier(s.nextProbe)
	}
	if len(s.cmds) > 0 || s.squelch || s.rq.len() > 0 || s.bq.len() > 0 || s.current() != nil {
		paced(now)
		if s.paceLimit > 0 {
			earlier(s.paceGrowAt)
		}
	}
	if s.wm != nil {
		paced(s.wm.next)
	}
	if !s.objBlocked.IsZero() || s.objDue {
		// Object flow control: requests while queueing waits.
		t := s.objNext()
		if s.objDue {
			t = now
		} else if !t.After(now) {
			t = now.Add(max(s.grtt, time.Millisecond))
		}
		paced(t)
	}
	if o := s.flowStream(); o != nil && !s.cfg.StreamPartial {
		// Flow control: watermark requests, and releases that let a
		// waiting writer go on.
		if st := o.stream; !st.blocked.IsZero() || st.next > st.released {
			t := s.flowWMNext(st)
			if !t.After(now) {
				t = now.Add(max(s.grtt, time.Millisecond))
			}
			paced(t)
		}
	}
	// Flushes wait while NACKs are being aggregated (flushDue says so too).
	if len(s.objs) > 0 && s.aggEnd.IsZero() && (s.flushCount <= s.cfg.RobustFactor || (s.closed && s.flushCount < s.cfg.RobustFactor+1+eotRepeats)) {
		paced(s.nextFlush)
	}
	if next.Before(now) {
		next = now
	}
	return next
}
