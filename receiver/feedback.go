package receiver

import (
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

func (r *Receiver) handleCmd(now time.Time, s *remote, c *framing.Cmd) {
	switch c.Flavor {
	case framing.FlavorFlush:
		ref := c.Ref
		r.sync(s, ref.ObjectID)
		if !s.flushed || serialLess(s.flushObj, ref.ObjectID) {
			s.flushObj = ref.ObjectID
		}
		s.flushed = true
		if serialLess(s.maxObj, ref.ObjectID) && !serialLess(ref.ObjectID, s.base) {
			// The sender flushed objects we never heard of: NACK them.
			r.raiseMax(s, ref.ObjectID)
		}
		if o := r.pending(s, ref.ObjectID); o != nil && o.stream != nil {
			o.streamFlush(ref)
		}
		for i := range c.NodeCount() {
			if c.Node(i) == r.cfg.NodeID {
				s.ackRef, s.ackWanted = ref, true
				r.maybeAck(now, s)
				if _, ok := r.streamProgress(s, ref); ok && s.ackAt.IsZero() && !r.cfg.Silent {
					s.ackAt = now.Add(r.uniform(s.grtt))
				}
			}
		}
		r.maybeNack(now, s)
	case framing.FlavorEOT:
		r.abortAll(s, ErrSenderGone)
		s.ended = true
		s.nack, s.ackAt, s.ccAt = nackIdle, time.Time{}, time.Time{}
		r.emit(Event{Kind: EventSenderGone, Sender: s.id})
	case framing.FlavorSquelch:
		// The sender no longer holds anything before Ref, nor the listed
		// objects: end them with an explicit error rather than NACK forever.
		if o := r.pending(s, c.Ref.ObjectID); o != nil && o.stream != nil {
			r.skipStream(s, o, c.Ref.PayloadID.Block)
		}
		for i := 0; i < len(s.objs); {
			r.work++
			o := s.objs[i]
			if serialLess(o.id, c.Ref.ObjectID) || r.squelched(c, o.id) {
				r.finishObject(s, o, ErrSquelched)
				continue
			}
			i++
		}
		for i := range c.SquelchCount() {
			r.work++
			if id := c.SquelchedObject(i); !serialLess(id, s.base) && !serialLess(s.maxObj, id) && !s.isFinished(id) {
				s.setFinished(id, true)
				s.markLost(id)
			}
		}
		if serialLess(s.base, c.Ref.ObjectID) {
			r.advanceBase(s, c.Ref.ObjectID)
			if serialLess(s.maxObj, s.base) {
				s.maxObj = s.base
			}
		}
	case framing.FlavorCC:
		s.probeTS, s.probeRecv, s.probeValid = c.SendTime, r.arrived, true
		var marker framing.Pace
		marker, s.paceAsked = c.Ext.Pace()
		if marker.Flags&framing.PaceTrack != 0 && s.announce < announceProbes {
			// A sender that tracks its receivers hears this one's answer
			// whatever others answered: see framing.PaceTrack.
			s.announce++
			s.announcing = true
		}
		s.ccSeq = c.CCSequence
		if rate, ok := c.Ext.Rate(); ok {
			s.ccRate = framing.UnquantizeRate(rate)
		}
		s.ccFlags = 0
		limited := false // the sender has a limiting receiver
		for i := range c.CCNodeCount() {
			n := c.CCNode(i)
			limited = limited || n.Flags&framing.CCFlagCLR != 0
			if n.NodeID == r.cfg.NodeID {
				s.ccFlags = n.Flags & (framing.CCFlagCLR | framing.CCFlagPLR)
				if n.Flags&framing.CCFlagRTT != 0 {
					// Kept when a later probe leaves us out: the path's
					// RTT has not changed because the list did.
					s.ccRTT = framing.UnquantizeRTT(n.RTT)
				}
			}
		}
		s.ccLimited = limited
		if r.cfg.Silent {
			return
		}
		// RFC 5740 §5.5.2: the limiting receiver answers at once, candidates
		// soon. Everyone else answers after a back-off, and an answer
		// overheard first suppresses theirs (see overheardCC): a probe round
		// costs a few packets however large the group, yet always yields
		// the RTT samples the sender's GRTT estimate and flush timing need.
		var at time.Time
		switch {
		case s.ccFlags&framing.CCFlagCLR != 0:
			at = now
		case s.ccFlags&framing.CCFlagPLR != 0:
			at = now.Add(r.uniform(s.grtt))
		default:
			window := s.grtt * time.Duration(s.backoff)
			if !limited {
				// No receiver limits the sender yet (it just started, lost
				// its CLR, or runs no congestion control and probes only
				// for the GRTT): it goes blind until someone answers, so
				// answer within at most 100 ms (a new session's GRTT is a
				// guess, and a conservative one). Not within one GRTT:
				// answers then reach the other receivers after half the
				// window and suppress almost none, and ten thousand
				// receivers answered every probe, each answer multicast to
				// all of them.
				window = min(window, 100*time.Millisecond)
			}
			if mine, _ := s.calcRate(float64(s.segment())); limited && mine < s.ccRate && s.ccRate > 0 {
				// A receiver that would slow the sender down answers
				// sooner, in proportion, so its report tends to come first
				// and suppress those of faster receivers (TFMCC's biased
				// feedback timers). Only once a receiver limits the
				// sender: before that the advertised rate is not a
				// congestion-controlled one, every lossy receiver's rate
				// is far below it, and all of them answering within a
				// tenth of the window suppressed none.
				window = time.Duration(float64(window) * max(mine/s.ccRate, 0.1))
			}
			at = now.Add(nack.BackoffDelay(r.cfg.Rand.Float64(), window, s.gsize))
		}
		// An answer already scheduled keeps its time (it will echo this
		// newer probe): rescheduling on every probe would postpone it
		// forever whenever probes come faster than the back-off window.
		if s.ccAt.IsZero() || at.Before(s.ccAt) {
			s.ccAt = at
		}
	case framing.FlavorRepairAdv:
		if s.hearing(now) {
			_ = s.supp.Add(c.Content, c.FECM)
		}
	case framing.FlavorAckReq:
		for i := range c.NodeCount() {
			if c.Node(i) == r.cfg.NodeID && !r.cfg.Silent {
				s.appAck, s.appAckType, s.appAckID = true, c.AckType, c.AckID
			}
		}
	case framing.FlavorApplication:
		r.emit(Event{Kind: EventCommand, Sender: s.id, Data: c.Content})
	}
}

func (r *Receiver) squelched(c *framing.Cmd, id uint16) bool {
	for i := range c.SquelchCount() {
		r.work++
		if c.SquelchedObject(i) == id {
			return true
		}
	}
	return false
}

// overheardCC cancels a pending ACK(CC) when another receiver already
// answered the same probe with a rate at least as low, or when this
// receiver's rate does not limit the sender anyway (RFC 5740 §5.5.2).
func (r *Receiver) overheardCC(s *remote, ext framing.Extensions) {
	if s.ccAt.IsZero() || s.ccFlags&framing.CCFlagCLR != 0 || s.announcing {
		return
	}
	cc, ok := ext.CC()
	if !ok || cc.Sequence != s.ccSeq {
		return
	}
	mine, _ := s.calcRate(float64(s.segment()))
	heard := framing.UnquantizeRate(cc.Rate)
	if !s.ccLimited {
		// No receiver limits the sender (it runs no congestion control
		// and probes only for the GRTT, or has no CLR yet): any answer
		// gives it its RTT sample, and a rate within a tenth of the
		// lowest heard would pick much the same CLR. Answering unless
		// strictly lower let every receiver below the answers so far
		// answer too: 15-332 answers from 150 receivers over 5-7 probes,
		// where this gives 3-32 (TFMCC suppresses with the same margin).
		heard *= 0.9
	}
	if heard <= mine || mine >= 0.9*s.ccRate {
		s.ccAt = time.Time{}
	}
}

// segment is the segment size of the sender's current object, for the rate
// equation.
func (s *remote) segment() int {
	if n := len(s.objs); n > 0 {
		return s.objs[n-1].symLen
	}
	return 1400
}

func (r *Receiver) uniform(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(r.cfg.Rand.Float64() * float64(d))
}

// maybeAck schedules the ACK(FLUSH) a watermark request asked for once
// everything up to the watermark is here: a random delay within one GRTT
// spreads the answers of a large group.
func (r *Receiver) maybeAck(now time.Time, s *remote) {
	if s.ackWanted && s.ackAt.IsZero() && !r.cfg.Silent && r.holdsRef(s, s.ackRef) {
		s.ackAt = now.Add(r.uniform(s.grtt))
	}
}

// holdsThrough reports whether every object of s up to id that this
// receiver tracks was delivered intact and, with Config.ConfirmHeld, is
// in the application's hands: "finished" also covers objects aborted (a
// failed disk write, a squelch, no repair), and acknowledging those would
// tell the sender it may forget data this receiver lacks.
func (r *Receiver) holdsThrough(s *remote, id uint16) bool {
	if len(s.objs) > 0 && !serialLess(id, s.objs[0].id) {
		return false
	}
	if s.unheld > 0 && !serialLess(id, s.oldestUnheld()) {
		// An object through id is complete but not yet the
		// application's. Objects after id that are not do not count: a
		// sender's flow control asks about older objects while newer
		// ones are still being taken.
		return false
	}
	if s.lostValid {
		if uint16(s.maxObj-s.lostID) >= 1<<14 {
			// Far enough behind that serial arithmetic would soon read
			// it as ahead: forgotten.
			s.lostValid = false
		} else if !serialLess(id, s.lostID) {
			return false
		}
	}
	for x := s.base; !serialLess(id, x) && !serialLess(s.maxObj, x); x++ {
		r.work++
		if !s.isFinished(x) {
			return false
		}
	}
	return true
}

// passed reports whether the sender has moved past object id or flushed
// it, so that all of it may be NACKed.
func (s *remote) passed(id uint16) bool {
	return serialLess(id, s.maxObj) || (s.flushed && !serialLess(s.flushObj, id))
}

// buildNack writes the repair requests s needs into r.content. With
// suppress (the back-off has ended), it leaves out what overheard NACKs
// already asked for and asks only for what was missing when the back-off
// started (the mark): what the sender sent meanwhile waits for the next
// cycle, so that receivers asking at different times ask for the same
// things and suppress each other (RFC 5740 §5.3).
func (r *Receiver) buildNack(s *remote, suppress bool) []byte {
	return r.buildNackIn(s, suppress, s.segment())
}

// buildNackIn is buildNack with at most max bytes of content.
func (r *Receiver) buildNackIn(s *remote, suppress bool, max int) []byte {
	r.builder.Reset(r.content[:0], max)
	if !s.synced || serialLess(s.maxObj, s.base) {
		return r.builder.Content()
	}
	i := 0
	for id := s.base; ; id++ {
		r.work++
		if suppress && serialLess(s.markObj, id) {
			break
		}
		var o *rxObject
		if i < len(s.objs) && s.objs[i].id == id {
			o = s.objs[i]
			i++
		}
		switch {
		case o != nil && o.stream != nil:
			// A stream never ends for NACK purposes: ask up to what was
			// seen or flushed, never for the blocks still to come.
			m := o.track.Mark().Later(o.stream.flush)
			if suppress && id == s.markObj {
				m = s.mark
			}
			if !(suppress && s.supp.CoversUpTo(&o.track, m)) && !r.builder.AddObjectUpTo(&o.track, m) {
				return r.finishContent()
			}
		case o != nil:
			p := s.passed(id)
			var ok bool
			if suppress && id == s.markObj && !p {
				ok = s.supp.CoversUpTo(&o.track, s.mark) || r.builder.AddObjectUpTo(&o.track, s.mark)
			} else {
				ok = (suppress && s.supp.Covers(&o.track, p)) || r.builder.AddObject(&o.track, p)
			}
			if !ok {
				return r.finishContent()
			}
		case !s.isFinished(id) && s.passed(id):
			// Ask for a never-heard object's NORM_INFO first: libnorm 1.5.9
			// senders crash on an OBJECT-level request for an empty object
			// (one that is all NORM_INFO, easily missed whole), while its
			// NORM_INFO repair brings any object that has one. Only when
			// that does not help, ask for the object itself.
			if s.gapStalls < r.cfg.RepairCycles/2 {
				if !(suppress && s.supp.CoversInfo(id)) && !r.builder.AddMissingInfo(id) {
					return r.finishContent()
				}
			} else if !(suppress && s.supp.CoversObject(id)) && !r.builder.AddMissingObject(id) {
				return r.finishContent()
			}
		}
		if id == s.maxObj {
			break
		}
	}
	return r.finishContent()
}

// finishContent returns the builder's content and keeps its buffer for
// the next NACK.
func (r *Receiver) finishContent() []byte {
	c := r.builder.Content()
	r.content = c[:0]
	return c
}

// wouldNack reports whether buildNack(s, false) would return content. It
// stops at the first repair request instead of building them all: it runs
// for every packet that moves a sender on while no repair cycle is under
// way, and the full content costs a walk of every incomplete block, which
// a forged sender opening a new block with every packet makes long.
func (r *Receiver) wouldNack(s *remote) bool {
	if s.segment() < nackProbeMin {
		// Not even a few requests fit: the whole content is as cheap.
		return len(r.buildNack(s, false)) > 0
	}
	// With room for no request, the first one found stops the build.
	if len(r.buildNackIn(s, false, 1)) > 0 {
		return true
	}
	_, stopped := r.builder.Stopped()
	return stopped && r.builder.Err() == nil
}

// nackProbeMin is more than any one repair request costs (a header and two
// items): from this segment size on, a request that stops a build with no
// room (wouldNack) would have fitted into the content buildNack builds.
const nackProbeMin = 64

// backoffFraction is the share of the back-off window a receiver with
// draw u waits, timed as one of group receivers.
func (r *Receiver) backoffFraction(u, group float64) float64 {
	if r.cfg.UniformBackoff {
		return u
	}
	return nack.BackoffFraction(u, group)
}

// nackGroup returns the group size s's NACK back-off is timed for: about
// how many receivers lack as much of some block as the most this one lacks
// of a block that overheard requests do not cover (nack.BackoffGroup). It
// walks what buildNack(s, true) would ask for.
func (r *Receiver) nackGroup(s *remote) float64 {
	most, symbols := 0, 0
	if !s.synced || serialLess(s.maxObj, s.base) {
		return s.gsize
	}
	i := 0
	for id := s.base; ; id++ {
		r.work++
		if serialLess(s.markObj, id) {
			break
		}
		var o *rxObject
		if i < len(s.objs) && s.objs[i].id == id {
			o = s.objs[i]
			i++
		}
		n := 0
		switch {
		case o != nil && o.stream != nil:
			m := o.track.Mark().Later(o.stream.flush)
			if id == s.markObj {
				m = s.mark
			}
			n = s.supp.UncoveredUpTo(&o.track, m)
		case o != nil:
			if p := s.passed(id); id == s.markObj && !p {
				n = s.supp.UncoveredUpTo(&o.track, s.mark)
			} else {
				n = s.supp.Uncovered(&o.track, p)
			}
		case !s.isFinished(id) && s.passed(id) && !s.supp.CoversInfo(id) && !s.supp.CoversObject(id):
			// A whole object missed is most likely missed by all: timed
			// as one of the whole group.
			return s.gsize
		}
		if n > most {
			most, symbols = n, o.track.Layout().MaxBlockLen
		}
		if id == s.maxObj {
			break
		}
	}
	if most == 0 {
		return s.gsize
	}
	return nack.BackoffGroup(s.gsize, symbols, s.packetLoss(), most)
}

// timeBackoff times s's back-off, started at nackStart with draw
// backoffU, for the group it competes with now (nackGroup). It is timed
// once, when it starts (and again if the GRTT drops, see retime): moving
// a back-off later when overheard NACKs covered the worst of a receiver's
// needs (it has become one of many) made late NACKs miss the sender's
// aggregation and cost repair rounds (bench sim seed 4: 1.53 repair rounds
// per lossy block for 1.16, overhead 1.16 for 1.03), and moving it earlier
// when new losses made it rarer fires every receiver a flush reaches at
// once.
func (r *Receiver) timeBackoff(s *remote) {
	s.backoffFrac = r.backoffFraction(s.backoffU, r.nackGroup(s))
	s.nackAt = s.nackStart.Add(time.Duration(s.backoffFrac * float64(s.grtt*time.Duration(s.backoff))))
}

// maybeNack starts a NACK back-off if s has something to ask for, and marks
// how far the sender had got.
func (r *Receiver) maybeNack(now time.Time, s *remote) {
	if s.nack != nackIdle || r.cfg.Silent || s.ended {
		return
	}
	if !r.wouldNack(s) {
		return
	}
	s.nack = nackBackoff
	s.nackStart, s.backoffU = now, r.cfg.Rand.Float64()
	if !s.listening {
		s.supp.Reset()
	}
	s.listening = false
	s.markObj, s.mark = s.maxObj, nack.Mark{}
	if o := r.pending(s, s.maxObj); o != nil {
		s.mark = o.track.Mark()
		if o.stream != nil {
			s.mark = s.mark.Later(o.stream.flush)
		}
	}
	r.timeBackoff(s)
}

// Poll appends due feedback to out and returns when it wants to be called
// again.
func (r *Receiver) Poll(now time.Time, out *framing.Outbox) time.Time {
	next := now.Add(time.Hour)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	// A receiver falling behind owes pace reports (paceDue) to every sender
	// that asks for them, whatever their timers say.
	behind := !r.cfg.Silent && r.queueDelay(now) > congestion.PaceTarget
	for i := 0; i < len(r.remotes); {
		r.work++
		s := r.remotes[i]
		if now.Sub(s.lastHeard) >= r.cfg.SenderTimeout {
			r.abortAll(s, ErrSenderGone)
			if !s.ended {
				r.emit(Event{Kind: EventSenderGone, Sender: s.id})
			}
			r.remotes = append(r.remotes[:i], r.remotes[i+1:]...)
			continue
		}
		i++
		if !r.pollEvery && !s.due.IsZero() && now.Before(s.due) && !(behind && s.paceAsked && !now.Before(s.paceNext)) {
			earlier(s.due)
			continue
		}
		due := s.lastHeard.Add(r.cfg.SenderTimeout)
		soonest := func(t time.Time) {
			if !t.IsZero() && t.Before(due) {
				due = t
			}
		}
		soonest(r.expireStreams(now, s))
		r.pollRemote(now, s, out)
		if s.nack != nackIdle {
			soonest(s.nackAt)
		}
		soonest(s.ackAt)
		soonest(s.ccAt)
		if s.appAck {
			soonest(now)
		}
		s.due = due
		earlier(due)
	}
	if next.Before(now) {
		next = now
	}
	return next
}

func (r *Receiver) pollRemote(now time.Time, s *remote, out *framing.Outbox) {
	r.retime(now, s)
	if s.nack == nackBackoff && !now.Before(s.nackAt) {
		content := r.buildNack(s, true)
		if len(content) == 0 {
			r.stats.NacksSuppressed++
		} else {
			r.sendNack(now, s, content, out)
		}
		r.countStalls(s)
		s.nack = nackHoldoff
		// The repairs will queue behind what already waits in the socket.
		s.holdExtra = r.queueDelay(now)
		s.nackStart, s.nackAt = now, now.Add(nack.NackHoldoff(s.grtt, float64(s.backoff))+s.holdExtra)
		s.listenFrom, s.listening = s.nackAt.Add(-s.grtt*time.Duration(s.backoff)), false
	}
	if s.nack == nackHoldoff {
		r.answered(s)
	}
	if s.nack == nackHoldoff && !now.Before(s.nackAt) {
		// Repairs still arriving: wait for them before asking again.
		if fill := s.lastFill.Add(s.grtt); now.Before(fill) {
			s.nackAt = fill
		} else {
			s.nack = nackIdle
			r.maybeNack(now, s)
			s.listening = false // nothing to ask for: what was heard goes stale
		}
	}
	if !s.ackAt.IsZero() && !now.Before(s.ackAt) {
		s.ackAt = time.Time{}
		if r.holdsRef(s, s.ackRef) {
			s.ackWanted = false
			r.sendAck(now, s, framing.AckFlush, 0, out)
		} else if ref, ok := r.streamProgress(s, s.ackRef); ok {
			// Not all there yet: say how far, so the sender's writer need
			// not wait for the whole of what it asked about.
			want := s.ackRef
			s.ackRef = ref
			r.sendAck(now, s, framing.AckFlush, 0, out)
			s.ackRef = want
		}
	}
	if !s.ccAt.IsZero() && !now.Before(s.ccAt) {
		s.ccAt, s.announcing = time.Time{}, false
		r.sendAck(now, s, framing.AckCC, 0, out)
	} else if r.paceDue(now, s) {
		r.sendAck(now, s, framing.AckCC, 0, out)
	}
	if s.appAck {
		s.appAck = false
		r.sendAck(now, s, s.appAckType, s.appAckID, out)
	}
}

// answered ends s's hold-off a GRTT after the last repair, once repairs
// the sender sent after this cycle's NACKs reached it have arrived: the
// sender has answered the cycle, and what is still missing is worth a new
// one. The hold-off timer is each receiver's own, from the end of its
// back-off, so the group's next cycles started spread over a back-off
// window, their NACKs over two, and the sender's aggregation window (one
// back-off window and a GRTT from the first) closed before the last ones
// came: each block one of those asked more for took a repair round more.
// The repairs reach every receiver that needs them at about the same time,
// so cycles started from them start together. (bench sim, 1,000
// receivers, seeds 1-10, the sender's margin unchanged: 1.16 repair rounds
// per lossy block for 1.11, and 0.71-0.98 s of virtual time to the end
// for 0.49-0.75.)
//
// Repairs that came within a GRTT of the NACK answer an earlier window's
// requests, and NACKs heard before the answer began asked for what it
// brings: they cover nothing of the next cycle.
func (r *Receiver) answered(s *remote) {
	if !s.lastFill.After(s.nackStart.Add(s.grtt)) {
		return
	}
	if end := s.lastFill.Add(s.grtt); end.Before(s.nackAt) {
		s.nackAt = end
		if s.listenFrom.Before(s.lastFill) {
			s.listenFrom, s.listening = s.lastFill, false
		}
	}
}

// hearing reports whether overheard NACKs and REPAIR_ADVs count for
// suppression now: during the back-off, and in the last back-off window of
// the hold-off before it. Receivers end their hold-offs at different times
// (each from its own NACK), and a receiver that began listening only when
// its own back-off started would miss the NACKs of those that started
// theirs a little earlier; each such miss is a NACK that need not have been
// sent. What is heard then asks for repairs that cannot have arrived yet
// (the sender aggregates for a back-off window and a GRTT), so it still
// covers this receiver's next cycle.
func (s *remote) hearing(now time.Time) bool {
	switch {
	case s.nack == nackBackoff:
		return true
	case s.nack == nackHoldoff && !now.Before(s.listenFrom):
		if !s.listening {
			s.supp.Reset()
			s.listening = true
		}
		return true
	}
	return false
}

// retime shortens a running back-off or hold-off when the sender's GRTT
// estimate has dropped since it started: a new session starts with a
// conservative GRTT that the first probes cut by orders of magnitude, and a
// timer sized with the old value would outlast the sender's whole flush.
// The back-off keeps its random fraction of the window, so suppression
// works as before, with one exception: a back-off whose fraction of the new
// window has already passed draws its delay again, from now. Without that,
// a drop from the initial 500 ms guess to a LAN's few milliseconds would
// end every back-off of the group at the same instant (the probe that
// carries the new GRTT reaches everyone together) and each receiver would
// NACK, suppressed by nobody: a thousand NACKs where a handful do.
func (r *Receiver) retime(now time.Time, s *remote) {
	var end time.Time
	switch s.nack {
	case nackBackoff:
		window := s.grtt * time.Duration(s.backoff)
		end = s.nackStart.Add(time.Duration(s.backoffFrac * float64(window)))
		if end.Before(s.nackAt) && !end.After(now) && now.Before(s.nackAt) && window > 0 {
			s.nackStart, s.backoffU = now, r.cfg.Rand.Float64()
			r.timeBackoff(s)
			return
		}
	case nackHoldoff:
		end = s.nackStart.Add(nack.NackHoldoff(s.grtt, float64(s.backoff)) + s.holdExtra)
	default:
		return
	}
	if end.Before(s.nackAt) {
		s.nackAt = end
	}
}

// countStalls ends objects that the sender has moved past and that made no
// progress for RepairCycles NACK cycles.
func (r *Receiver) countStalls(s *remote) {
	for i := 0; i < len(s.objs); {
		r.work++
		o := s.objs[i]
		if o.stream != nil {
			i++ // streams end by EOT, squelch or silence, not by stalls
			continue
		}
		if o.waiting {
			// It lacks room, not repairs: the application holds memory it
			// will give back. No cycle counts against it meanwhile.
			o.waiting, o.moved = false, true
		}
		if s.passed(o.id) && !o.moved {
			o.stalled++
		} else {
			o.stalled = 0
		}
		o.moved = false
		if o.stalled >= r.cfg.RepairCycles {
			r.finishObject(s, o, ErrRepairTimeout)
			continue
		}
		i++
	}
	if s.gapStalls++; s.gapStalls >= r.cfg.RepairCycles {
		// Objects never heard of that no repair brought: give them up.
		i := 0
		for x := s.base; serialLess(x, s.maxObj); x++ {
			r.work++
			for i < len(s.objs) && serialLess(s.objs[i].id, x) {
				i++
			}
			if (i == len(s.objs) || s.objs[i].id != x) && !s.isFinished(x) {
				s.setFinished(x, true)
				s.markLost(x)
			}
		}
		s.gapStalls = 0
	}
}

func (r *Receiver) pending(s *remote, id uint16) *rxObject {
	for _, o := range s.objs {
		r.work++
		if o.id == id {
			return o
		}
	}
	return nil
}

// grttResponse echoes the latest probe's send time advanced by how long the
// receiver held it, so the sender's clock alone measures the round trip.
func (s *remote) grttResponse(now time.Time) framing.Timestamp {
	if !s.probeValid {
		return framing.Timestamp{}
	}
	us := int64(s.probeTS.Usec) + now.Sub(s.probeRecv).Microseconds()
	return framing.Timestamp{Sec: s.probeTS.Sec + uint32(us/1e6), Usec: uint32(us % 1e6)}
}

func (r *Receiver) ccExt(s *remote) framing.Extensions {
	if !s.probeValid {
		return r.ext[:0]
	}
	rate, start := s.calcRate(float64(s.segment()))
	flags := s.ccFlags
	if start {
		flags |= framing.CCFlagStart
	}
	if s.ccRTT > 0 {
		flags |= framing.CCFlagRTT
	}
	loss := framing.QuantizeLoss32(s.lossFraction())
	r.ext = framing.AppendCC(r.ext[:0], framing.CCFeedback{
		Sequence: s.ccSeq, Flags: flags, RTT: framing.QuantizeRTT(s.rtt()),
		Loss: uint16(loss >> 16), LossExt: uint16(loss), Rate: framing.QuantizeRate(rate),
	})
	return r.ext
}

func (r *Receiver) dst(s *remote) netip.AddrPort {
	if r.cfg.UnicastFeedback {
		return s.addr
	}
	return netip.AddrPort{}
}

func (r *Receiver) sendNack(now time.Time, s *remote, content []byte, out *framing.Outbox) {
	m := &r.nackMsg
	*m = framing.Nack{
		Header:   framing.Header{Type: framing.TypeNack, Sequence: r.nextSeq(), SourceID: r.cfg.NodeID},
		ServerID: s.id, InstanceID: s.inst, GRTTResponse: s.grttResponse(now),
		Ext: r.feedbackExt(now, s), Content: content,
	}
	if b, err := m.Append(out.Buf()); err == nil {
		out.Commit(b, r.dst(s))
		r.stats.NacksSent++
	}
}

func (r *Receiver) sendAck(now time.Time, s *remote, t framing.AckType, id uint8, out *framing.Outbox) {
	m := &r.ackMsg
	*m = framing.Ack{
		Header:   framing.Header{Type: framing.TypeAck, Sequence: r.nextSeq(), SourceID: r.cfg.NodeID},
		ServerID: s.id, InstanceID: s.inst, AckType: t, AckID: id, GRTTResponse: s.grttResponse(now),
		Ext: r.feedbackExt(now, s),
	}
	if t == framing.AckFlush {
		p, err := framing.AppendSymbolRef(m.Payload[:0], s.ackRef, 0)
		if err != nil {
			return
		}
		m.Payload = p
	}
	if b, err := m.Append(out.Buf()); err == nil {
		out.Commit(b, r.dst(s))
		r.stats.AcksSent++
	}
}

func (r *Receiver) nextSeq() uint16 {
	r.seq++
	return r.seq - 1
}
