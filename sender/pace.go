package sender

import (
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
)

// Pace: a sender at a fixed rate, or one whose congestion controller sees
// a clean network, can still outrun a receiver's CPU. The receiver's
// socket then fills, every packet waits behind the backlog, and what the
// sender learns from that receiver (its NACKs, its acknowledgements) comes
// late. Shoal receivers report, in EXT_PACE, how long packets wait in
// their socket and how fast they handle them; a report of a wait past
// congestion.PaceTarget holds the sender to that receiver's pace until the
// reports stop, after which the limit grows back to the configured rate.

// paceStep is how often the pace limit may grow: two of a receiver's
// report intervals, so that a growth step follows only a silence that
// means the backlog is gone.
func (s *Sender) paceStep() time.Duration { return max(2*s.grtt, 20*time.Millisecond) }

// paceGrowth is the factor the limit grows by per step: it doubles in
// about seven steps, fast enough to find a receiver's pace again in a
// fraction of a second, slowly enough not to rebuild the backlog at once.
const paceGrowth = 1.1

// paceFeedback applies a receiver's EXT_PACE, if any.
func (s *Sender) paceFeedback(now time.Time, node uint32, ext framing.Extensions) {
	p, ok := ext.Pace()
	if !ok {
		return
	}
	delay, rate := framing.UnquantizeRTT(p.Delay), framing.UnquantizeRate(p.Rate)
	if delay >= s.rxDelay || now.Sub(s.rxDelayAt) > time.Second {
		s.rxDelay, s.rxDelayAt = delay, now
	}
	if delay <= congestion.PaceTarget {
		return
	}
	s.stats.PaceReports++
	s.paceHeard = now
	if now.Before(s.paceHold) {
		return // the last cut has not had time to drain the backlog
	}
	// One report measures one receiver over a few milliseconds, and a
	// receiver descheduled for a moment reports a pace far below its own:
	// halve at most per cut, and let the backlog drain before judging
	// again.
	cur := s.pacer.Rate()
	floor := float64(10 * s.cfg.SegmentSize)
	limit := max(cur/2, floor) // a receiver that cannot tell its pace yet
	if rate > 0 {
		limit = max(congestion.PaceRate(rate, delay, floor), limit)
	}
	if limit >= cur {
		return
	}
	s.stats.PaceCuts++
	s.paceLimit, s.paceNode = limit, node
	s.paceGrowAt = now.Add(s.paceStep())
	s.paceHold = now.Add(min(delay, time.Second) + s.paceStep())
	s.applyRate()
}

// paceGrow raises the pace limit one step once no receiver has reported
// falling behind for a step, and lifts it when it reaches the base rate.
func (s *Sender) paceGrow(now time.Time) {
	if s.paceLimit == 0 || now.Before(s.paceGrowAt) {
		return
	}
	step := s.paceStep()
	s.paceGrowAt = now.Add(step)
	if now.Sub(s.paceHeard) < step {
		return
	}
	s.paceLimit *= paceGrowth
	if s.paceLimit >= s.baseRate {
		s.paceLimit, s.paceNode = 0, 0
	}
	s.applyRate()
}
