package sender

import (
	"time"

	"github.com/shoalnet/shoal/framing"
)

// Object flow control. With acking nodes (Config.AckingNodes, or
// TrackReceivers and the receivers heard), an object leaves the transmit
// cache only once every one of them has confirmed holding it and all
// before it: a receiver behind (its application slow to take what it
// completed, or its CPU short) would otherwise NACK for an object the
// sender no longer has and lose it to a squelch, though the sender's
// final watermark would then rightly fail. Until then queueing a new
// object returns ErrCacheFull and the application waits, as for a cache
// full of unsent objects. Confirmations are NORM watermark acknowledgements:
// the sender asks (NORM_CMD(FLUSH) halfway through the objects whose data
// is all sent, listing the nodes that have not confirmed it) once the cache is
// half full, and whenever queueing waits. A Shoal receiver confirms only
// what its application holds (receiver.Config.ConfirmHeld). A node that
// confirms nothing new for Config.StreamTimeout while the sender waits for
// it is dropped from object flow control with an EventSlowReceiver; it
// counts again once it confirms an object still cached. While no acking
// node is known (TrackReceivers hears of them only from their feedback) an
// object stays cached for the repair window after it last went out.

// objNeeds reports whether node n has not confirmed holding object id.
func objNeeds(n *flowNode, id uint16) bool {
	return !n.objDropped && (!n.heldSet || int16(n.held-id) < 0)
}

// objWaiters calls f for each acking node that object flow control
// waits for; f returns false to stop.
func (s *Sender) objWaiters(f func(n *flowNode) bool) {
	for _, id := range s.nodes {
		i, ok := s.flowIndex[id]
		if !ok {
			continue // past MaxNodes in the flow table: not waited for
		}
		if !f(&s.flow[i]) {
			return
		}
	}
}

// objConfirmed reports whether object o may leave the cache as far as
// the acking nodes are concerned.
func (s *Sender) objConfirmed(o *txObject) bool {
	if o.stream != nil || o.failed != nil || s.cfg.ObjectPartial || !(s.cfg.TrackReceivers || len(s.cfg.AckingNodes) > 0) {
		return true // a stream has its own flow control; a failed object nothing to repair
	}
	ok, known := true, false
	s.objWaiters(func(n *flowNode) bool {
		known = known || !n.objDropped
		if objNeeds(n, o.id) {
			ok = false
			s.stats.FlowLimiter = n.id
		}
		return ok
	})
	if known {
		return ok
	}
	// Nobody to ask yet (tracked receivers are known only once heard, and
	// a receiver short of CPU may answer late): keep the object repairable
	// for the repair window after it last went out, and while NACKs are
	// gathered or repairs queued.
	return s.now.Sub(o.lastTx) >= s.flowHold() && s.aggEnd.IsZero() && s.rq.len() == 0
}

// objHoldBack notes that queueing waits for confirmations.
func (s *Sender) objHoldBack() {
	if s.objBlocked.IsZero() {
		s.objBlocked = s.now
	}
}

// objGoOn notes that queueing goes on.
func (s *Sender) objGoOn() {
	if !s.objBlocked.IsZero() {
		s.stats.FlowBlocked += s.now.Sub(s.objBlocked)
		s.objBlocked = time.Time{}
	}
}

// objAck applies node's acknowledgement of a watermark at ref: it holds
// every object through ref's when ref is that object's last symbol.
func (s *Sender) objAck(node uint32, ref framing.SymbolRef) {
	i, ok := s.flowIndex[node]
	o := s.object(ref.ObjectID)
	if !ok || o == nil || o.stream != nil {
		return
	}
	if b, k := lastSymbol(o); ref.PayloadID != (framing.PayloadID{Block: uint32(b), Symbol: uint16(k)}) {
		return
	}
	n := &s.flow[i]
	if !n.heldSet || int16(o.id-n.held) > 0 {
		n.held, n.heldSet, n.objAdvanced = o.id, true, s.now
		n.objDropped = false // confirmed an object still cached: it counts again
	}
}

// objTarget returns the object to ask confirmation of: halfway through
// those whose new data is all sent, with every object before them (nil
// if none, or if it is a stream). Not the newest sent: under loss its
// repairs are usually still under way, and receivers, who answer only
// once they hold everything through it, would chase a target that moves
// with every request. A confirmation halfway frees half the sent objects
// while the rest are repaired.
func (s *Sender) objTarget() *txObject {
	s.advanceUnsent()
	if s.unsentFrom == 0 {
		return nil
	}
	if o := s.objs[(s.unsentFrom-1)/2]; o.stream == nil {
		return o
	}
	return nil
}

// objFlowPoll runs object flow control at now: drops the nodes that held
// queueing back too long and says whether a watermark request is due.
func (s *Sender) objFlowPoll(now time.Time) bool {
	if len(s.nodes) == 0 || len(s.objs) == 0 || s.cfg.ObjectPartial {
		return false
	}
	o := s.objTarget()
	if o == nil {
		return false
	}
	pending := false
	s.objWaiters(func(n *flowNode) bool {
		if n.objAdvanced.IsZero() || !objNeeds(n, o.id) {
			// Holding everything sent, it owes nothing: its timeout
			// runs from when it next lacks an object.
			n.objAdvanced = now
		} else {
			pending = true
		}
		return true
	})
	if !s.objBlocked.IsZero() && s.cfg.StreamTimeout > 0 && now.Sub(s.objBlocked) >= s.cfg.StreamTimeout {
		oldest := s.objs[0]
		s.objWaiters(func(n *flowNode) bool {
			if objNeeds(n, oldest.id) && now.Sub(n.objAdvanced) >= s.cfg.StreamTimeout {
				n.objDropped = true
				s.emit(Event{Kind: EventSlowReceiver, Object: oldest.id, Node: n.id})
			}
			return true
		})
	}
	if !pending || s.wm != nil || now.Before(s.objNext()) {
		// The application's own watermark asks the same nodes about the
		// newest object, and its answers count here too: a second
		// request would only displace it at the receivers.
		return false
	}
	half := len(s.objs)*2 >= s.cfg.CacheObjects || s.cacheSz*2 >= s.cfg.CacheBytes
	return half || !s.objBlocked.IsZero()
}

// objNext is when the next object flow-control request may go: after the
// answers to the last had time to come back.
func (s *Sender) objNext() time.Time {
	if s.objAsked.IsZero() {
		return s.objAsked
	}
	return s.objAsked.Add(2*s.grtt + s.rxDelay + time.Millisecond)
}

// sendObjWatermark asks the acking nodes that have not confirmed the
// newest fully sent object to acknowledge it.
func (s *Sender) sendObjWatermark(now time.Time, out *framing.Outbox) {
	o := s.objTarget()
	if o == nil {
		return
	}
	b, k := lastSymbol(o)
	ref := framing.SymbolRef{FECID: framing.FECRS8, ObjectID: o.id,
		PayloadID: framing.PayloadID{Block: uint32(b), Symbol: uint16(k)}}
	c := &s.cmd
	content := c.Content[:0]
	s.objWaiters(func(n *flowNode) bool {
		if objNeeds(n, o.id) && len(content)+4 <= s.cfg.SegmentSize {
			content = framing.AppendNodeID(content, n.id)
		}
		return true
	})
	*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(),
		Flavor: framing.FlavorFlush, Ref: ref, Content: content}
	s.commit(out, c)
	s.objAsked = now
	s.stats.FlowRequests++
}

// advanceUnsent moves the unsentFrom cursor past objects whose new data
// is all sent, so that finding the next object to send does not scan
// the whole cache on every packet.
func (s *Sender) advanceUnsent() {
	for s.unsentFrom < len(s.objs) && s.objs[s.unsentFrom].sent {
		s.unsentFrom++
	}
}
