package congestion

import "time"

// LossHistory is a NORM-CC receiver's loss event estimate for one sender:
// TFRC's average loss interval (RFC 5348 §5), fed with the sender's packet
// sequence numbers (RFC 5740 §5.5.2). Losses less than one round-trip time
// after the start of a loss event belong to that event, so a burst dropped by
// one queue overflow counts once.
//
// A gap in the sequence is a loss at once; a packet arriving after a later
// one is ignored. Networks that reorder therefore overstate loss a little,
// which errs on the side of the network.
//
// The zero LossHistory is ready to use. It does not allocate.
type LossHistory struct {
	// Tolerant treats a single lost packet as random, non-congestion loss:
	// it starts a loss event only if another packet is lost within one
	// round-trip time of it. Use it on paths, such as radio links, that
	// drop packets without being congested; a queue overflowing drops
	// several packets in a row and is still seen.
	Tolerant bool

	haveSeq bool
	lastSeq uint16
	// intervals[0] counts packets since the current loss event began (the
	// open interval); intervals[1..n] are the closed ones, newest first.
	intervals [9]float64
	n         int
	eventAt   time.Time // start of the newest loss event
	// Tolerant mode: a single loss seen at pendAt, not yet an event.
	pending bool
	pendAt  time.Time
	events  int
}

// weights are RFC 5348 §5.4's, newest interval first.
var weights = [8]float64{1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2}

// Packet records the arrival at now of the packet with sequence number seq.
// rtt is the current round-trip time estimate, which sizes loss events.
// seed is called on the first loss event for the loss event rate the
// history should start from (see LossForRate); nil starts it from the
// packets counted so far. Packet reports whether a new loss event began.
func (h *LossHistory) Packet(now time.Time, seq uint16, rtt time.Duration, seed func() float64) bool {
	if !h.haveSeq {
		h.haveSeq, h.lastSeq = true, seq
		h.intervals[0]++
		return false
	}
	gap := int(int16(seq - h.lastSeq))
	if gap <= 0 {
		return false // a duplicate, or a late packet already counted lost
	}
	if gap > 1<<14 {
		// Far too large to be loss: the sender restarted its numbering or
		// we were away a long time. Start counting afresh from here.
		h.lastSeq = seq
		h.intervals[0]++
		return false
	}
	h.lastSeq = seq
	missing := gap - 1
	h.intervals[0] += float64(gap)
	if missing == 0 {
		return false
	}
	window := rtt
	if h.events == 1 {
		// The first loss ends slow start, in which the sender went up to
		// twice the bottleneck rate: what it sent within one round trip
		// drains from the queue over up to two, and its reaction takes a
		// round trip more to arrive.
		window = 2 * rtt
	}
	if h.events > 0 && now.Sub(h.eventAt) < window {
		return false // part of the current loss event
	}
	if h.Tolerant && missing == 1 {
		if !h.pending || now.Sub(h.pendAt) >= rtt {
			h.pending, h.pendAt = true, now
			return false
		}
	}
	h.pending = false
	h.newEvent(now, gap, seed)
	return true
}

func (h *LossHistory) newEvent(now time.Time, gap int, seed func() float64) {
	if h.events == 0 && seed != nil {
		// The packets before the first loss say little about the loss
		// rate (slow start ramped through them); a synthetic interval
		// keeps the rate where the receiver measured it.
		if p := seed(); p > 0 && p <= 1 {
			h.intervals[0] = 1 / p
		}
	}
	// The lost packets open the new interval; the rest close the old one.
	closed := h.intervals[0] - float64(gap-1)
	copy(h.intervals[2:], h.intervals[1:8])
	h.intervals[1] = max(closed, 1)
	h.intervals[0] = float64(gap - 1)
	h.n = min(h.n+1, 8)
	h.events++
	h.eventAt = now
}

// Rate returns the loss event rate p: 0 before the first loss event, else
// the inverse of the weighted average loss interval, counting the open
// interval only when it is long enough to lower p (RFC 5348 §5.4).
func (h *LossHistory) Rate() float64 {
	if h.n == 0 {
		return 0
	}
	var with, without, wsum, wsumOld float64
	for i := 0; i < h.n; i++ {
		with += h.intervals[i] * weights[i]
		wsum += weights[i]
		without += h.intervals[i+1] * weights[i]
		wsumOld += weights[i]
	}
	avg := max(with/wsum, without/wsumOld)
	if avg <= 0 {
		return 1
	}
	return min(1/avg, 1)
}

// Events returns the number of loss events seen.
func (h *LossHistory) Events() int { return h.events }
