package receiver

import (
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
)

// paceMinInterval bounds how often one receiver sends unsolicited pace
// reports: often enough that a sender reacts before a socket buffer of a
// few megabytes fills at a gigabit, rarely enough to cost nothing.
const paceMinInterval = 5 * time.Millisecond

// announceProbes is how many probes of a sender that tracks its receivers
// a receiver answers without suppression: one answer may be lost, three
// rarely are, and a large group pays three answers per receiver once.
const announceProbes = 3

// paceWindow is the window over which a receiver measures how fast it
// handles a sender's packets.
const paceWindow = 50 * time.Millisecond

// pace is this receiver's report to s: how long packets wait in its socket
// and how fast it handles s's packets.
func (r *Receiver) pace(now time.Time, s *remote) framing.Pace {
	return framing.Pace{Delay: framing.QuantizeRTT(r.queueDelay(now)), Rate: framing.QuantizeRate(r.handledRate(s))}
}

// handledRate is how fast this receiver handles s's packets, in bytes per
// second, over the last whole window or, before there is one, the part
// there is.
func (r *Receiver) handledRate(s *remote) float64 {
	if s.paceRate == 0 && !s.paceStart.IsZero() && r.handled.Sub(s.paceStart) >= paceWindow/10 {
		return float64(s.paceBytes) / r.handled.Sub(s.paceStart).Seconds()
	}
	return s.paceRate
}

// feedbackExt is the header extension area of feedback to s: EXT_CC, and
// EXT_PACE when s asks for it.
func (r *Receiver) feedbackExt(now time.Time, s *remote) framing.Extensions {
	e := r.ccExt(s)
	if s.paceAsked {
		e = framing.AppendPace(e, r.pace(now, s))
		r.ext = e
	}
	return e
}

// paceDue reports whether to send s an unsolicited pace report now: this
// receiver is falling behind, and no receiver at least as slow has said so
// lately. A group that falls behind together thus sends a few reports per
// interval, not one per receiver.
func (r *Receiver) paceDue(now time.Time, s *remote) bool {
	if !s.paceAsked || r.cfg.Silent || s.ended || now.Before(s.paceNext) || r.queueDelay(now) <= congestion.PaceTarget {
		return false
	}
	iv := max(s.grtt, paceMinInterval)
	s.paceNext = now.Add(iv)
	if now.Sub(s.paceHeardAt) < iv && s.paceHeardRate <= r.handledRate(s) {
		return false
	}
	r.stats.PaceReports++
	return true
}

// overheardPace notes another receiver's report that it is falling behind.
func (s *remote) overheardPace(now time.Time, ext framing.Extensions) {
	p, ok := ext.Pace()
	if !ok || framing.UnquantizeRTT(p.Delay) <= congestion.PaceTarget {
		return
	}
	s.paceHeardAt, s.paceHeardRate = now, framing.UnquantizeRate(p.Rate)
}
