package sender

import (
	"time"

	"github.com/shoalnet/shoal/framing"
)

// Stream flow control. A stream's ring slot may be overwritten only once
// the data in it is released: every receiver the sender knows of has
// acknowledged holding it (NORM watermark flushes with the stream position,
// which libnorm receivers answer too), or, while no receiver is known, it
// has gone unrepaired for the repair window. Until then WriteStream takes
// no more than the ring holds, and the writer waits: back-pressure, not
// an overwritten ring and a squelch. A receiver that holds the writer back
// for Config.StreamTimeout is dropped from flow control with an
// EventSlowReceiver; it catches up (and counts again) or reports the gap.

// flowNode is a receiver as stream flow control sees it.
type flowNode struct {
	id       uint32
	acked    uint64    // stream segments it confirmed holding, for flowObj
	advanced time.Time // when acked last grew (or the node was first heard)
	dropped  bool      // given up on by StreamTimeout
	heard    time.Time // its last NACK or ACK

	// Object flow control (see objflow.go).
	held        uint16    // the newest object it confirmed holding, with all before it
	heldSet     bool      // held is set
	objAdvanced time.Time // when held last grew, or it last held everything sent
	objDropped  bool      // given up on by StreamTimeout
}

// flowHeard notes a receiver heard from.
func (s *Sender) flowHeard(node uint32) {
	if s.flowIndex == nil {
		s.flowIndex = map[uint32]int{}
	}
	if i, ok := s.flowIndex[node]; ok {
		s.flow[i].heard = s.now
		return
	}
	if len(s.flow) >= s.cfg.MaxNodes && !s.evictFlow() {
		// Past Config.MaxNodes new receivers are not waited for: the bound
		// keeps a storm of fake node ids from costing memory or time.
		s.stats.FlowNodesRefused++
		return
	}
	n := flowNode{id: node, advanced: s.now, heard: s.now}
	if o := s.flowStream(); o != nil {
		// A receiver that joins mid-stream is waited for from where the
		// stream is now released: what went before is not its to hold.
		n.acked = o.stream.released
	}
	s.flowIndex[node] = len(s.flow)
	s.flow = append(s.flow, n)
}

// flowStream returns the stream flow control runs for: the oldest one in
// the cache still being written, sent, or waiting for its receivers.
func (s *Sender) flowStream() *txObject {
	if s.streams == 0 {
		return nil // a cache of thousands of files is not scanned every poll
	}
	for _, o := range s.objs {
		if st := o.stream; st != nil && o.failed == nil && (!st.closing || st.next > st.released || st.sealed > st.next) {
			return o
		}
	}
	return nil
}

// flowAck applies a receiver's acknowledgement of a stream watermark.
func (s *Sender) flowAck(node uint32, ref framing.SymbolRef) {
	i, ok := s.flowIndex[node]
	o := s.flowStream()
	if !ok || o == nil || ref.ObjectID != o.id {
		return
	}
	st := o.stream
	pos := uint64(ref.PayloadID.Block)*uint64(st.k) + uint64(ref.PayloadID.Symbol) + 1
	if pos > st.next {
		return // more than was sent: not an answer to us
	}
	n := &s.flow[i]
	if pos > n.acked {
		n.acked, n.advanced = pos, s.now
	}
	if n.dropped && n.acked >= st.released {
		n.dropped = false // caught up: it counts again
	}
}

// active reports whether n holds the writer back.
func (n *flowNode) active() bool { return !n.dropped }

// flowHold is how long a sent block stays repairable while no receiver is
// known: long enough for a receiver that lost it to notice (by later data
// or a flush), back off, and have its NACK aggregated.
func (s *Sender) flowHold() time.Duration {
	return time.Duration(2*s.cfg.Backoff+4)*s.grtt + s.rxDelay + 2*s.flushInterval()
}

// release moves stream o's release point as far as its receivers allow.
func (s *Sender) release(now time.Time, o *txObject) {
	st := o.stream
	if st.age != nil {
		// Push mode: the writer never waits for receivers; what they
		// lack stays repairable until it is overwritten or too old.
		s.ageStream(o)
		st.released = max(st.released, st.next)
		return
	}
	if s.cfg.StreamPartial {
		st.released = st.next
		return
	}
	known := false
	target := st.next
	s.stats.FlowLimiter = 0
	for i := range s.flow {
		n := &s.flow[i]
		if !n.active() {
			continue
		}
		known = true
		if n.acked < target {
			target, s.stats.FlowLimiter = n.acked, n.id
		}
	}
	if known {
		st.released = max(st.released, target)
		s.stats.FlowWindow = st.next - st.released
		return
	}
	// Nobody known: the time floor, whole blocks at a time, and none while
	// NACKs are being gathered or repairs are queued.
	if !s.aggEnd.IsZero() || s.rq.len() > 0 {
		return
	}
	hold := s.flowHold()
	for st.released+uint64(st.k) <= st.next {
		b := st.released / uint64(st.k)
		if now.Sub(st.lastTx[b%uint64(st.ringBlocks)]) < hold {
			return
		}
		st.released += uint64(st.k)
	}
}

// flowPoll runs stream flow control at now: releases, drops a receiver
// that has held the writer back too long, and says whether a watermark
// request is due.
func (s *Sender) flowPoll(now time.Time) bool {
	o := s.flowStream()
	if o == nil {
		return false
	}
	if !s.flowSet || s.flowObj != o.id {
		// A new stream: what receivers confirmed of the last one says
		// nothing of this one.
		s.flowSet, s.flowObj = true, o.id
		for i := range s.flow {
			s.flow[i].acked, s.flow[i].dropped, s.flow[i].advanced = 0, false, now
		}
	}
	st := o.stream
	for i := range s.flow {
		// A receiver that holds everything sent owes nothing: its
		// StreamTimeout counts from when it next lacks data, not from its
		// last confirmation, which may be long ago if the writer was held
		// back by another receiver meanwhile.
		if n := &s.flow[i]; n.acked >= st.next {
			n.advanced = now
		}
	}
	s.release(now, o)
	if s.cfg.StreamTimeout > 0 && (st.blocked.IsZero() || now.Sub(st.blocked) >= s.cfg.StreamTimeout) {
		// Give up on the receivers that confirmed nothing new for
		// StreamTimeout while data they lack was out, and say so: the
		// writer has waited its limit for them, or, idle, would be asking
		// them for ever. Receivers that make progress, however slowly, are
		// waited for.
		dropped := false
		for i := range s.flow {
			n := &s.flow[i]
			if n.active() && n.acked < st.next && now.Sub(n.advanced) >= s.cfg.StreamTimeout {
				n.dropped, dropped = true, true
				s.emit(Event{Kind: EventSlowReceiver, Object: o.id, Node: n.id})
			}
		}
		if dropped {
			s.release(now, o)
		}
	}
	return s.flowWMDue(now, o)
}

// flowWMDue reports whether to ask the receivers to acknowledge the
// stream's sent data now: when what they have not confirmed fills an
// eighth of the ring, or the writer waits, or the stream has gone idle
// unconfirmed; no more often than a receiver can answer.
func (s *Sender) flowWMDue(now time.Time, o *txObject) bool {
	st := o.stream
	if s.cfg.StreamPartial || st.age != nil || st.next == 0 || now.Before(s.flowWMNext(st)) {
		return false
	}
	pending := false
	for i := range s.flow {
		if n := &s.flow[i]; n.active() && n.acked < st.next {
			pending = true
			break
		}
	}
	if !pending {
		return false
	}
	return st.next-st.released >= uint64(st.ringSegs/8) || !st.blocked.IsZero() || st.next == st.sealed
}

// sendFlowWatermark asks the receivers that have not confirmed the
// stream's sent data to acknowledge it: NORM_CMD(FLUSH) at the last sent
// segment, listing them (as many as fit one segment, laggards first in
// the order heard).
func (s *Sender) sendFlowWatermark(now time.Time, out *framing.Outbox) {
	o := s.flowStream()
	st := o.stream
	last := st.next - 1
	ref := framing.SymbolRef{FECID: framing.FECRS8, ObjectID: o.id,
		PayloadID: framing.PayloadID{Block: uint32(last / uint64(st.k)), Symbol: uint16(last % uint64(st.k))}}
	c := &s.cmd
	content := c.Content[:0]
	for i := range s.flow {
		if n := &s.flow[i]; n.active() && n.acked < st.next && len(content)+4 <= s.cfg.SegmentSize {
			content = framing.AppendNodeID(content, n.id)
		}
	}
	*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(),
		Flavor: framing.FlavorFlush, Ref: ref, Content: content}
	s.commit(out, c)
	st.wmAsked = now
	s.stats.FlowRequests++
}

// flowWMNext is when the next watermark request of st may go: the answers
// to the last come back within a round trip and the receivers' own
// backlog; ask again after that if they did not. It follows the GRTT as
// it is now, not as it was at the request: a new session's first requests
// go out under the initial guess (500 ms by default), and a wait fixed
// then would idle a writer for a second after the first measurement has
// cut the GRTT to a LAN's millisecond.
func (s *Sender) flowWMNext(st *txStream) time.Time {
	if st.wmAsked.IsZero() {
		return st.wmAsked
	}
	return st.wmAsked.Add(2*s.grtt + s.rxDelay + time.Millisecond)
}
