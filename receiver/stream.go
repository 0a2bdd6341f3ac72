package receiver

import (
	"encoding/binary"
	"fmt"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// streamBlocks is the block range a stream is tracked over: NORM's 24-bit
// source block numbers. A stream longer than that (2^24 blocks, over a
// terabyte at the default segment and block sizes) is not supported.
const streamBlocks = 1<<24 - 1

// rxStream is the receiving side of a NORM_OBJECT_STREAM: segments are
// delivered strictly in order, from the first message start seen.
type rxStream struct {
	k       int
	next    uint64 // next segment to deliver (block next/k, symbol next%k)
	started bool   // a message start has been found; bytes before it are dropped
	flush   nack.Mark
}

// Stream events, in addition to the object events.
const (
	// EventStreamData: the next bytes of a stream, in order. MsgStart is the
	// offset in Data where a message begins, or -1. Data is valid until the
	// next call into the Receiver.
	EventStreamData EventKind = 20 + iota
	// EventStreamGap: stream data was lost for good (the sender no longer
	// held it); delivery resumes at the next message start. Err says why.
	EventStreamGap
)

// startStream sets up stream reception from the first block heard.
func (r *Receiver) startStream(o *rxObject, k int, block uint32) {
	o.stream = &rxStream{k: k, next: uint64(block) * uint64(k)}
	o.track.SkipTo(block)
}

// deliverStream hands over every segment that is next in order, and frees
// block buffers once all their segments are delivered.
func (r *Receiver) deliverStream(s *remote, o *rxObject) {
	st := o.stream
	for {
		r.work++
		b, i := uint32(st.next/uint64(st.k)), int(st.next%uint64(st.k))
		bb := r.findBlock(o, b)
		if bb == nil || len(bb.syms[i]) == 0 {
			return
		}
		p := bb.syms[i]
		n := int(binary.BigEndian.Uint16(p))
		msg := int(binary.BigEndian.Uint16(p[2:])) - 1
		if n > len(p)-framing.StreamHeaderLen || msg >= n {
			r.finishObject(s, o, fmt.Errorf("%w: stream segment %d has a bad payload header", ErrBadObject, st.next))
			return
		}
		if n == 0 {
			// The end-of-stream marker.
			r.complete(s, o)
			return
		}
		data := p[framing.StreamHeaderLen : framing.StreamHeaderLen+n]
		if !st.started && msg >= 0 {
			data, msg, st.started = data[msg:], 0, true
		}
		if st.started {
			s.delivered = true
			r.emit(Event{Kind: EventStreamData, Sender: s.id, Object: o.id, Data: data, MsgStart: msg})
		}
		st.next++
		if i == st.k-1 {
			o.dropBlock(bb)
			r.releaseBlock(s, o, bb)
		}
	}
}

// skipStream moves a stream past data the sender no longer holds.
func (r *Receiver) skipStream(s *remote, o *rxObject, block uint32) {
	st := o.stream
	if uint64(block)*uint64(st.k) <= st.next {
		return
	}
	for i := 0; i < len(o.blocks); {
		r.work++
		if bb := o.blocks[i]; bb.block < block {
			o.dropBlock(bb)
			r.releaseBlock(s, o, bb)
			continue
		}
		i++
	}
	// Data was lost for good: the stream is no longer held intact.
	s.markLost(o.id)
	o.track.SkipTo(block)
	st.next, st.started = uint64(block)*uint64(st.k), false
	r.emit(Event{Kind: EventStreamGap, Sender: s.id, Object: o.id, Err: ErrSquelched})
	r.deliverStream(s, o)
}

// holdsRef reports whether this receiver holds everything a watermark at
// ref covers: every object before ref's, and, for a stream, every segment
// through ref's, handed over in order. Data handed over is the
// application's: what the receiver acknowledges, the sender may overwrite.
func (r *Receiver) holdsRef(s *remote, ref framing.SymbolRef) bool {
	o := r.pending(s, ref.ObjectID)
	if o == nil || o.stream == nil {
		return r.holdsThrough(s, ref.ObjectID)
	}
	if !r.holdsThrough(s, ref.ObjectID-1) {
		return false
	}
	st := o.stream
	return st.next > uint64(ref.PayloadID.Block)*uint64(st.k)+uint64(ref.PayloadID.Symbol)
}

// streamProgress returns, for a watermark at ref in a stream this
// receiver has not yet received through ref, the position it holds
// through (its last segment handed over), to acknowledge as progress. ok
// is false when there is none to report.
func (r *Receiver) streamProgress(s *remote, ref framing.SymbolRef) (framing.SymbolRef, bool) {
	o := r.pending(s, ref.ObjectID)
	if o == nil || o.stream == nil || o.stream.next == 0 || !r.holdsThrough(s, ref.ObjectID-1) {
		return ref, false
	}
	st := o.stream
	last := st.next - 1
	ref.PayloadID = framing.PayloadID{Block: uint32(last / uint64(st.k)), Symbol: uint16(last % uint64(st.k))}
	return ref, true
}

// streamFlush records how far a NORM_CMD(FLUSH) says the sender got in a
// stream, so the next NACK asks up to there.
func (o *rxObject) streamFlush(ref framing.SymbolRef) {
	o.stream.flush = o.stream.flush.Later(nack.MarkAt(ref.PayloadID.Block, int(ref.PayloadID.Symbol)+1))
}
