package sender

import (
	"time"

	"github.com/shoalnet/shoal/framing"
)

// SetStreamBlockTime bounds how long a FEC block of stream id stays open:
// once d has passed since its first segment was sealed, the segment being
// filled is sealed and the rest of the block is filled with padding
// segments (framing.StreamPadding: a header and no data), so the block is
// complete and its proactive parity (Config.AutoParity) goes out at once.
// A block thus closes after k segments or d, whichever comes first, and
// FEC can repair a loss within d plus the parity's send time rather than
// the time the block takes to fill. Receivers older than this feature
// (and libnorm) do not know padding segments. 0 turns it off.
func (s *Sender) SetStreamBlockTime(id uint16, d time.Duration) error {
	_, st, err := s.stream(id)
	if err != nil {
		return err
	}
	st.blockTime = max(d, 0)
	return nil
}

// closeTimedBlocks closes the stream blocks that have been open for their
// block time.
func (s *Sender) closeTimedBlocks(now time.Time) {
	for _, o := range s.objs {
		st := o.stream
		if st == nil || st.blockTime <= 0 || st.closing || st.sealed%uint64(st.k) == 0 || now.Sub(st.blockOpen) < st.blockTime {
			continue
		}
		if !s.seal(o) {
			continue
		}
		for st.sealed%uint64(st.k) != 0 && s.canSeal(st) {
			st.msgStart = framing.StreamPadding
			s.sealMarker(o)
			s.stats.PaddingSegments++
		}
		s.stats.TimedBlocks++
	}
}

// blockDeadline returns when the next stream block is due to close on
// time (zero if none).
func (s *Sender) blockDeadline() time.Time {
	var t time.Time
	for _, o := range s.objs {
		st := o.stream
		if st == nil || st.blockTime <= 0 || st.closing || st.sealed%uint64(st.k) == 0 {
			continue
		}
		if d := st.blockOpen.Add(st.blockTime); t.IsZero() || d.Before(t) {
			t = d
		}
	}
	return t
}
