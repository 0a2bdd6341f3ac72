package receiver

import (
	"errors"
	"time"
)

// Deadline-bounded streams. Live media has a latency budget: data that
// cannot be repaired within it is worth nothing, and waiting for it holds
// back everything after it. A stream with a maximum age gives up a missing
// segment once data after it has been held for that long: it stops asking
// for it, moves delivery on to the next segment it holds (at the next
// message start, as after any gap) and reports the gap with ErrExpired.

// ErrExpired is the Err of an EventStreamGap for stream data given up
// because it was still missing after the stream's maximum age.
var ErrExpired = errors.New("receiver: stream data still missing at its deadline")

// SetStreamMaxAge sets how long missing data of stream id of sender is
// waited for, from when data after it arrived (0: for as long as the
// sender holds it). Config.StreamMaxAge sets it for every stream.
func (r *Receiver) SetStreamMaxAge(now time.Time, sender uint32, id uint16, maxAge time.Duration) {
	s := r.remote(sender)
	if s == nil {
		return
	}
	o := r.pending(s, id)
	if o == nil || o.stream == nil {
		return
	}
	o.stream.maxAge = max(maxAge, 0)
	s.touch()
	if maxAge <= 0 {
		o.stream.holeAt = time.Time{}
	}
}

// noteHole starts the clock on a deadline-bounded stream's missing segment
// when a symbol of block b past it arrives.
func (r *Receiver) noteHole(now time.Time, o *rxObject, b uint32, sym int) {
	st := o.stream
	if st == nil || st.maxAge <= 0 || !st.holeAt.IsZero() {
		return
	}
	if uint64(b)*uint64(st.k)+uint64(min(sym, st.k-1)) > st.next {
		st.holeAt = now
	}
}

// expireStreams gives up what sender s's deadline-bounded streams have
// missed past their maximum age, and returns when the next one is due
// (zero if none).
func (r *Receiver) expireStreams(now time.Time, s *remote) time.Time {
	var next time.Time
	for i := 0; i < len(s.objs); i++ {
		r.work++
		o := s.objs[i]
		st := o.stream
		if st == nil || st.maxAge <= 0 || st.holeAt.IsZero() {
			continue
		}
		if due := st.holeAt.Add(st.maxAge); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		pos, _, ok := r.nextHeld(o)
		if !ok {
			st.holeAt = time.Time{}
			continue
		}
		r.expireTo(s, o, pos)
		if r.pending(s, o.id) != o {
			i-- // completed: the list moved
			continue
		}
		if _, since, ok := r.nextHeld(o); ok && st.holeAt.IsZero() {
			// Another hole with data after it: known since the first of
			// that data arrived.
			st.holeAt = since
			i-- // look at it again: it may be due already
		}
	}
	return next
}

// nextHeld returns the first stream segment after the next one to deliver
// that the receiver holds, and the earliest arrival of any symbol it holds
// past the next one: since when the gap before them has been known.
func (r *Receiver) nextHeld(o *rxObject) (pos uint64, since time.Time, ok bool) {
	st := o.stream
	for _, bb := range o.blocks {
		first := uint64(bb.block) * uint64(st.k)
		if first+uint64(st.k) <= st.next {
			continue
		}
		for i := range bb.syms {
			r.work++
			p := first + uint64(min(i, st.k-1))
			if p <= st.next || len(bb.syms[i]) == 0 {
				continue
			}
			if i < len(bb.ats) && !bb.ats[i].IsZero() && (since.IsZero() || bb.ats[i].Before(since)) {
				since = bb.ats[i]
			}
			if i < st.k && (!ok || p < pos) {
				pos, ok = p, true
			}
		}
	}
	return pos, since, ok
}

// expireTo gives up a stream's data before segment pos: delivery goes on
// at pos (at its next message start), with the gap reported.
func (r *Receiver) expireTo(s *remote, o *rxObject, pos uint64) {
	st := o.stream
	b := uint32(pos / uint64(st.k))
	r.dropBlocksBefore(s, o, b)
	r.stats.StreamExpired += pos - st.next
	s.markLost(o.id)
	o.track.SkipTo(b)
	// Nor are the symbols given up before pos in its block asked for.
	o.track.GiveUp(b, int(pos%uint64(st.k)))
	st.next, st.started, st.holeAt = pos, false, time.Time{}
	st.gap, st.gapErr = true, ErrExpired
	r.deliverStream(s, o)
}
