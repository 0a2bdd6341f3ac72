package receiver

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// streamBlocks is the block range a stream is tracked over: NORM's 24-bit
// source block numbers. A stream longer than that (2^24 blocks, over a
// terabyte at the default segment and block sizes) is not supported.
const streamBlocks = 1<<24 - 1

// rxStream is the receiving side of a NORM_OBJECT_STREAM: segments are
// delivered strictly in order. After a gap (or on joining late) delivery
// resumes at the next message start, or, in a stream that has shown no
// message boundary but its first (a byte stream), at once; either way the
// gap event says how many bytes were lost.
type rxStream struct {
	k       int
	next    uint64 // next segment to deliver (block next/k, symbol next%k)
	started bool   // delivering; false after a gap until delivery resumes
	flush   nack.Mark
	offset  uint32 // stream offset of the next byte to deliver (mod 2^32)
	msgs    int    // distinct message starts seen, up to 2 (sawStart)
	msgAt   uint32 // stream offset of the first one
	gapErr  error  // why the pending gap happened (nil on joining)
	gap     bool   // a gap is to be reported when delivery resumes
	appHold bool   // the application is behind: confirm nothing (HoldStream)

	maxAge time.Duration // give up missing data after this (deadline.go)
	holeAt time.Time     // since when data after a missing segment is held
}

// HoldStream tells the receiver that the application reading stream id of
// sender is behind (hold) or has caught up. While it is behind, the
// receiver confirms none of the stream to a sender's flow control, whose
// writer then waits: back-pressure from the reader to the writer.
func (r *Receiver) HoldStream(now time.Time, sender uint32, id uint16, hold bool) {
	s := r.remote(sender)
	if s == nil {
		return
	}
	o := r.pending(s, id)
	if o == nil || o.stream == nil {
		return
	}
	o.stream.appHold = hold
	s.touch()
	if !hold {
		r.maybeAck(now, s)
		if _, ok := r.streamProgress(s, s.ackRef); ok && s.ackWanted && s.ackAt.IsZero() && !r.cfg.Silent {
			s.ackAt = now
		}
	}
}

// Stream events, in addition to the object events.
const (
	// EventStreamData: the next bytes of a stream, in order. MsgStart is the
	// offset in Data where a message begins, or -1. Data is valid until the
	// next call into the Receiver.
	EventStreamData EventKind = 20 + iota
	// EventStreamGap: stream data was lost for good (the sender no longer
	// held it, or the receiver joined late), just before the data that
	// follows; Lost says how many bytes. Delivery resumes at the next
	// message start, or at once in a byte stream (see rxStream). Err says
	// why (nil for a late join).
	EventStreamGap
)

// startStream sets up stream reception from the first block heard.
func (r *Receiver) startStream(o *rxObject, k int, block uint32) {
	// Joining after the stream began is a gap from offset 0: reported,
	// with its size, where delivery starts.
	o.stream = &rxStream{k: k, next: uint64(block) * uint64(k), gap: block > 0, maxAge: r.cfg.StreamMaxAge}
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
		p := bb.syms[i] // what the packet carried (see handleData)
		if len(p) < framing.StreamHeaderLen {
			r.finishObject(s, o, fmt.Errorf("%w: stream segment %d is shorter than its header", ErrBadObject, st.next))
			return
		}
		n := int(binary.BigEndian.Uint16(p))
		if n == 0 && binary.BigEndian.Uint16(p[2:]) == framing.StreamPadding {
			// Padding that closed a FEC block early: nothing to deliver.
			r.streamPassed(s, o, bb, b, i)
			continue
		}
		msg := int(binary.BigEndian.Uint16(p[2:])) - 1
		if n > len(p)-framing.StreamHeaderLen || msg >= n {
			r.finishObject(s, o, fmt.Errorf("%w: stream segment %d has a bad payload header", ErrBadObject, st.next))
			return
		}
		if n == 0 {
			// The end-of-stream marker.
			if st.gap {
				off := binary.BigEndian.Uint32(p[4:])
				r.emit(Event{Kind: EventStreamGap, Sender: s.id, Object: o.id, Err: st.gapErr, Lost: int64(off - st.offset)})
			}
			r.complete(s, o)
			return
		}
		data := p[framing.StreamHeaderLen : framing.StreamHeaderLen+n]
		off := binary.BigEndian.Uint32(p[4:])
		if msg >= 0 {
			st.sawStart(off + uint32(msg))
		}
		if !st.started {
			// Resume at a message start, or at once in a byte stream.
			switch {
			case msg >= 0:
				data, off, msg = data[msg:], off+uint32(msg), 0
				st.started = true
			case st.gap && st.msgs <= 1, !st.gap && off == st.offset:
				st.started = true
			}
			if st.started && st.gap {
				r.emit(Event{Kind: EventStreamGap, Sender: s.id, Object: o.id, Err: st.gapErr, Lost: int64(off - st.offset)})
				st.gap, st.gapErr = false, nil
			}
		}
		if st.started {
			s.delivered = true
			r.emit(Event{Kind: EventStreamData, Sender: s.id, Object: o.id, Data: data, MsgStart: msg})
			st.offset = off + uint32(len(data))
		}
		r.streamPassed(s, o, bb, b, i)
	}
}

// sawStart notes a message start at stream offset at, in a segment
// received or delivered. Whether a stream is a byte stream (one start,
// its first byte) decides where delivery resumes after a gap, so starts
// are counted as they arrive, not only as delivered: a receiver stalled
// behind its first segment had delivered one start, took a message stream
// for a byte stream and resumed mid-message. A start is counted once
// however often its segment comes.
func (st *rxStream) sawStart(at uint32) {
	switch {
	case st.msgs == 0:
		st.msgs, st.msgAt = 1, at
	case st.msgs == 1 && at != st.msgAt:
		st.msgs = 2
	}
}

// streamPassed moves a stream's delivery past segment i of block b, and
// frees the block after its last segment.
func (r *Receiver) streamPassed(s *remote, o *rxObject, bb *blockBuf, b uint32, i int) {
	st := o.stream
	st.next++
	st.holeAt = time.Time{}
	if i == st.k-1 {
		o.dropBlock(bb)
		r.releaseBlock(s, o, bb)
		if st.maxAge > 0 {
			// Symbols of it given up on (deadline.go) are not asked for.
			o.track.SkipTo(b + 1)
		}
	}
}

// dropBlocksBefore releases o's buffered blocks numbered below block.
func (r *Receiver) dropBlocksBefore(s *remote, o *rxObject, block uint32) {
	for i := 0; i < len(o.blocks); {
		r.work++
		if bb := o.blocks[i]; bb.block < block {
			o.dropBlock(bb)
			r.releaseBlock(s, o, bb)
			continue
		}
		i++
	}
}

// skipStream moves a stream past data the sender no longer holds.
func (r *Receiver) skipStream(s *remote, o *rxObject, block uint32) {
	st := o.stream
	if uint64(block)*uint64(st.k) <= st.next {
		return
	}
	r.dropBlocksBefore(s, o, block)
	// Data was lost for good: the stream is no longer held intact.
	s.markLost(o.id)
	o.track.SkipTo(block)
	st.next, st.started = uint64(block)*uint64(st.k), false
	st.gap, st.gapErr = true, ErrSquelched
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
	if !r.holdsThrough(s, ref.ObjectID-1) || o.stream.appHold {
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
	if o == nil || o.stream == nil || o.stream.next == 0 || o.stream.appHold || !r.holdsThrough(s, ref.ObjectID-1) {
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
