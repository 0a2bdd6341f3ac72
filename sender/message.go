package sender

import (
	"errors"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// ErrMessageTooLarge is returned by WriteMessage for a message that could
// never fit the stream's ring buffer.
var ErrMessageTooLarge = errors.New("sender: message larger than the stream buffer can hold")

// WriteMessage writes msg to stream id as one whole message in message
// mode (see framing.MsgHeader): the next message number, the length, and
// the data, marked as a message start and ended with the stream's flush
// mode. It is all or nothing: ErrCacheFull when the ring has no room for
// all of it now (write it after later polls), ErrMessageTooLarge if it
// never will. A stream written with WriteMessage should not also be
// written with WriteStream, whose bytes message-mode receivers would take
// for framing.
func (s *Sender) WriteMessage(id uint16, msg []byte) error {
	o, st, err := s.stream(id)
	if err != nil {
		return err
	}
	need := framing.MsgHeaderLen + len(msg)
	seg := s.cfg.SegmentSize
	if need > (st.ringSegs-st.k)*seg-seg {
		return ErrMessageTooLarge
	}
	if st.age != nil {
		s.ageStream(o)
	}
	if s.streamRoom(st) < need {
		s.noteBlocked(st, true)
		return ErrCacheFull
	}
	if !st.startNext {
		// Bytes written by WriteStream without a message end: end that
		// message here so this one starts cleanly.
		st.startNext = true
	}
	var h [framing.MsgHeaderLen]byte
	framing.AppendMsgHeader(h[:0], framing.MsgHeader{Seq: st.msgSeq, Len: uint32(len(msg))})
	if n, _ := s.writeStream(o, st, h[:], false); n < len(h) {
		return ErrCacheFull // not reached: streamRoom said it fits
	}
	if n, _ := s.writeStream(o, st, msg, true); n < len(msg) {
		return ErrCacheFull
	}
	st.msgSeq++
	st.msgMode = true
	s.stats.Messages++
	s.noteBlocked(st, false)
	return nil
}

// streamRoom returns how many bytes WriteStream would take now: the rest
// of the segment being filled and every segment that may still be sealed
// (see canSeal).
func (s *Sender) streamRoom(st *txStream) int {
	free := int64(st.released) + int64(st.ringSegs-st.k) - int64(st.sealed)
	if free <= 0 {
		return 0
	}
	return int(free)*s.cfg.SegmentSize - st.fill
}

// streamAge is the state of a deadline-bounded stream (SetStreamMaxAge).
type streamAge struct {
	maxAge   time.Duration
	sealedAt []time.Time // per ring slot: when its segment was sealed
	floor    uint64      // segments below this are past their age: never sent or repaired
}

// SetStreamMaxAge makes stream id deadline-bounded: data sealed more than
// maxAge ago is neither repaired nor, if still unsent, sent; it is
// released from the ring whoever lacks it, so the writer never waits for
// old data, and receivers that NACK for it are squelched past it (to the
// block of the oldest young segment). Receivers that should stop asking
// earlier set their own bound (receiver.Receiver.SetStreamMaxAge). 0
// turns it off.
func (s *Sender) SetStreamMaxAge(id uint16, maxAge time.Duration) error {
	_, st, err := s.stream(id)
	if err != nil {
		return err
	}
	if maxAge <= 0 {
		st.age = nil
		return nil
	}
	if st.age == nil {
		st.age = &streamAge{sealedAt: make([]time.Time, st.ringSegs), floor: st.sealed}
		for i := range st.age.sealedAt {
			st.age.sealedAt[i] = s.now
		}
	}
	st.age.maxAge = maxAge
	return nil
}

// ageStream moves a deadline-bounded stream's floor past the data older
// than its maximum age: unsent old data is skipped, and old data is
// released whatever the receivers confirmed.
func (s *Sender) ageStream(o *txObject) {
	st := o.stream
	a := st.age
	if s.now.IsZero() {
		return // not polled yet: no clock to age by
	}
	end := st.sealed
	if st.closing {
		end-- // the end-of-stream marker never ages: receivers need it to finish
	}
	for a.floor < end {
		t := &a.sealedAt[a.floor%uint64(st.ringSegs)]
		if t.IsZero() {
			*t = s.now // sealed before the first poll: its age starts now
		}
		if s.now.Sub(*t) < a.maxAge {
			break
		}
		a.floor++
	}
	if st.next < a.floor {
		// Never sent and already too old to be of use: skip it. Auto
		// parity owed to a block passed over goes with it.
		s.stats.StaleSkipped += a.floor - st.next
		st.next = a.floor
		if st.parityLeft > 0 && uint64(st.parityFor+1)*uint64(st.k) <= a.floor {
			st.parityLeft = 0
		}
	}
	st.released = max(st.released, a.floor)
}

// ageFloorBlock returns the first block of a deadline-bounded stream that
// is still repairable: the block of its oldest segment younger than the
// maximum age. Repair goes by blocks, so up to k-1 older segments of that
// block may still be repaired; squelching receivers past it instead would
// take young data from them.
func ageFloorBlock(st *txStream) uint64 {
	if st.age == nil {
		return 0
	}
	return st.age.floor / uint64(st.k)
}

// agedFloorBlock ages stream o and returns its first repairable block.
func (s *Sender) agedFloorBlock(o *txObject) uint64 {
	s.ageStream(o)
	return ageFloorBlock(o.stream)
}
