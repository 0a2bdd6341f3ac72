package sender

import (
	"errors"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// KindStream is a NORM_OBJECT_STREAM: an unbounded byte stream sent from a
// ring buffer, with message boundaries.
const KindStream = framing.ObjectStream

// FlushMode says what a stream does at the end of each message (RFC 5740
// §5.1.2 stream flushing).
type FlushMode uint8

// Flush modes.
const (
	// FlushNone sends data only in full segments: best throughput, but the
	// end of a message waits for the next one to fill its segment.
	FlushNone FlushMode = iota
	// FlushPassive sends the partial segment at once, so receivers get the
	// message without waiting for more data.
	FlushPassive
	// FlushActive also sends NORM_CMD(FLUSH), prompting receivers to NACK
	// for anything of the message they lost, for low-latency repair.
	FlushActive
)

// ErrNotStream is returned by stream calls on an object that is not an open
// stream.
var ErrNotStream = errors.New("sender: not an open stream")

// txStream is the sending side of a stream: segments are numbered from 0 in
// the order they are sealed; segment n is symbol n%k of block n/k and lives
// in ring slot n%R until segment n+R overwrites it.
type txStream struct {
	k          int
	ringBlocks int
	ringSegs   int
	data       []byte
	hdr        []framing.StreamHeader
	mode       FlushMode

	sealed    uint64 // segments sealed; the one being filled is number sealed
	fill      int    // bytes in the segment being filled
	msgStart  uint16 // its payload_msg_start
	startNext bool   // the next byte written starts a message
	offset    uint64 // stream offset of its first byte

	next       uint64      // next segment to send as new data
	released   uint64      // segments below this may be overwritten (see flow.go)
	lastTx     []time.Time // per ring block: when a symbol of it last went out
	wmAsked    time.Time   // when the last flow-control watermark request went out
	blocked    time.Time   // since when the writer has been held back, zero if not
	parityFor  int         // block whose auto parity is due, -1 if none
	parityLeft int
	closing    bool // CloseStream called; the end marker is sealed

	msgSeq    uint32        // next message number of a message-mode stream (message.go)
	msgMode   bool          // written with WriteMessage: closed with an end-of-messages header
	msgEnded  bool          // that header is written
	blockTime time.Duration // close a block this long after it opened (blocktime.go)
	blockOpen time.Time     // when the current block's first segment was sealed
	age       *streamAge    // deadline-bounded reliability, nil if off (message.go)
}

// OpenStream starts a stream object with a ring buffer of at least bufSize
// bytes (rounded up to whole blocks, at least two), optional info, and the
// flush mode applied at each message end. Write with WriteStream.
func (s *Sender) OpenStream(bufSize int, info []byte, mode FlushMode) (uint16, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if len(info) > s.cfg.SegmentSize {
		return 0, ErrInfoTooLarge
	}
	k, seg := s.cfg.BlockLen, s.cfg.SegmentSize
	blocks := max(2, (bufSize+k*seg-1)/(k*seg))
	if err := s.makeRoom(int64(blocks * k * seg)); err != nil {
		return 0, err
	}
	st := &txStream{k: k, ringBlocks: blocks, ringSegs: blocks * k, mode: mode, startNext: true, parityFor: -1}
	st.data = make([]byte, st.ringSegs*seg)
	st.hdr = make([]framing.StreamHeader, st.ringSegs)
	st.lastTx = make([]time.Time, blocks)
	o := &txObject{id: s.nextID, kind: KindStream, size: uint64(len(st.data)), info: append([]byte(nil), info...),
		blocks: blocks, parityUsed: make([]uint8, blocks), stream: st}
	var err error
	o.fti, err = framing.AppendFTI(nil, framing.FECRS8, framing.FTI{
		TransferLength: o.size, SymbolLength: uint16(seg), MaxBlockLen: uint32(k), Parity: uint16(s.cfg.Parity),
	})
	if err != nil {
		return 0, err
	}
	o.infoSent = len(o.info) == 0
	s.nextID++
	s.objs = append(s.objs, o)
	s.streams++
	s.cacheSz += int64(o.size)
	return o.id, nil
}

func (s *Sender) stream(id uint16) (*txObject, *txStream, error) {
	o := s.object(id)
	if o == nil || o.stream == nil || o.stream.closing {
		return nil, nil, ErrNotStream
	}
	return o, o.stream, nil
}

// WriteStream appends p to stream id and returns how much it took: less
// than len(p) when the ring is full of data that is not yet sent or that
// receivers may still need (back-pressure: write the rest after later
// polls; see Config.StreamTimeout). With eom, the bytes written complete a
// message, the next write starts a new one, and the stream's flush mode
// applies.
func (s *Sender) WriteStream(id uint16, p []byte, eom bool) (int, error) {
	o, st, err := s.stream(id)
	if err != nil {
		return 0, err
	}
	n, err := s.writeStream(o, st, p, eom)
	s.noteBlocked(st, n < len(p))
	return n, err
}

// noteBlocked tracks how long the writer of st is held back.
func (s *Sender) noteBlocked(st *txStream, blocked bool) {
	switch {
	case blocked && st.blocked.IsZero():
		st.blocked = s.now
	case !blocked && !st.blocked.IsZero():
		s.stats.FlowBlocked += s.now.Sub(st.blocked)
		st.blocked = time.Time{}
	}
}

func (s *Sender) writeStream(o *txObject, st *txStream, p []byte, eom bool) (int, error) {
	seg := s.cfg.SegmentSize
	n := 0
	for n < len(p) {
		if st.fill == seg && !s.seal(o) {
			return n, nil
		}
		if st.fill == 0 && !s.canSeal(st) {
			return n, nil // the slot this segment will use is not sent yet
		}
		if st.startNext && st.msgStart == 0 {
			st.msgStart = uint16(st.fill + 1)
		}
		st.startNext = false
		slot := int(st.sealed % uint64(st.ringSegs))
		c := copy(st.data[slot*seg+st.fill:(slot+1)*seg], p[n:])
		st.fill += c
		n += c
	}
	if st.fill == seg {
		s.seal(o)
	}
	if eom {
		st.startNext = true
		if st.mode != FlushNone {
			s.seal(o)
		}
		if st.mode == FlushActive {
			s.flushCount = 0
		}
	}
	return n, nil
}

// FlushStream sends the partial segment of stream id now (FlushPassive) and
// also prompts receivers to NACK at once (FlushActive).
func (s *Sender) FlushStream(id uint16, mode FlushMode) error {
	o, _, err := s.stream(id)
	if err != nil {
		return err
	}
	if mode != FlushNone {
		s.seal(o)
	}
	if mode == FlushActive {
		s.flushCount = 0
	}
	return nil
}

// CloseStream sends what stream id holds and then an end-of-stream marker (a
// segment with no data), after which receivers see the stream end.
func (s *Sender) CloseStream(id uint16) error {
	o, st, err := s.stream(id)
	if err != nil {
		return err
	}
	if st.msgMode && !st.msgEnded {
		// The end of messages and the marker after it must both fit.
		if s.streamRoom(st) < framing.MsgHeaderLen+s.cfg.SegmentSize {
			return ErrCacheFull
		}
		st.startNext = true
		var h [framing.MsgHeaderLen]byte
		framing.AppendMsgHeader(h[:0], framing.MsgHeader{Seq: st.msgSeq, Len: framing.MsgEndLen})
		if n, _ := s.writeStream(o, st, h[:], true); n < len(h) {
			return ErrCacheFull // not reached: streamRoom said it fits
		}
		st.msgEnded = true
	}
	s.seal(o)
	if !s.canSeal(st) {
		return ErrCacheFull // the marker does not fit yet; try after a poll
	}
	s.sealMarker(o)
	for st.blockTime > 0 && st.sealed%uint64(st.k) != 0 && s.canSeal(st) {
		// Timed blocks: the last one is closed too, for its parity.
		st.msgStart = framing.StreamPadding
		s.sealMarker(o)
		s.stats.PaddingSegments++
	}
	st.closing = true
	return nil
}

// canSeal reports whether the next segment may take its ring slot: the
// writer may not run more than the ring, less one block, ahead of what is
// released (see flow.go), so data receivers may still need, the block
// being sent and its parity stay intact.
func (s *Sender) canSeal(st *txStream) bool {
	return st.sealed-st.released < uint64(st.ringSegs-st.k)
}

// seal closes the segment being filled, if it holds data, so it can be
// sent.
func (s *Sender) seal(o *txObject) bool {
	st := o.stream
	if st.fill == 0 {
		return true
	}
	if !s.canSeal(st) {
		return false
	}
	s.sealMarker(o)
	return true
}

// sealMarker seals the current segment as it is (an empty one is the end
// marker).
func (s *Sender) sealMarker(o *txObject) {
	st := o.stream
	slot := int(st.sealed % uint64(st.ringSegs))
	st.hdr[slot] = framing.StreamHeader{Len: uint16(st.fill), MsgStart: st.msgStart, Offset: uint32(st.offset)}
	if st.age != nil {
		st.age.sealedAt[slot] = s.now
	}
	if st.sealed%uint64(st.k) == 0 {
		// A new block takes over the ring's block slot: its parity starts
		// fresh.
		b := int(st.sealed/uint64(st.k)) % st.ringBlocks
		st.blockOpen = s.now
		o.parityUsed[b] = 0
		if o.repairN != nil {
			o.repairN[b] = 0
		}
		if s.pcObj == o {
			s.pcValid = false
		}
	}
	st.offset += uint64(st.fill)
	st.sealed++
	st.fill, st.msgStart = 0, 0
	s.flushCount = 0
}

// streamReady reports whether a stream has new data or parity to send.
func streamReady(o *txObject) bool {
	st := o.stream
	return st.parityLeft > 0 || st.next < st.sealed
}

// sendNewStream sends the next new packet of a stream.
func (s *Sender) sendNewStream(o *txObject, out *framing.Outbox) {
	st := o.stream
	if !o.infoSent {
		s.sendInfo(o, out)
		o.infoSent = true
		return
	}
	if st.parityLeft > 0 {
		b := st.parityFor
		sym := st.k + int(o.parityUsed[b%st.ringBlocks])
		st.parityLeft--
		if s.sendSymbol(o, b, sym, out) {
			o.parityUsed[b%st.ringBlocks]++
			s.stats.AutoParity++
		}
	} else {
		n := st.next
		st.next++
		b, sym := int(n/uint64(st.k)), int(n%uint64(st.k))
		if s.sendSymbol(o, b, sym, out) {
			s.stats.DataSymbols++
		}
		if sym == st.k-1 && s.cfg.AutoParity > 0 {
			st.parityFor, st.parityLeft = b, s.cfg.AutoParity
		}
	}
	if st.closing && !streamReady(o) {
		s.finishNew(o)
	}
}

// streamBlockLen returns how many segments of block b are sealed and still
// in the ring (0 if none): a block may be short while it is being written.
func streamBlockLen(st *txStream, b int) int {
	first := uint64(b) * uint64(st.k)
	if first >= st.sealed || first < ringFloor(st) {
		return 0
	}
	return int(min(uint64(st.k), st.sealed-first))
}

// ringFloor returns the oldest segment still intact in st's ring. The
// segment being filled takes the slot of the segment a ring before it as
// soon as its first byte is written, not when it is sealed: that segment
// is gone from then on. (Repairs of it sent its old header over the new
// bytes, and parity of its block was computed from them: wrong data for a
// receiver that asks late for the oldest block, as one without flow
// control or dropped by StreamTimeout can.)
func ringFloor(st *txStream) uint64 {
	live := st.sealed
	if st.fill > 0 {
		live++
	}
	return live - min(live, uint64(st.ringSegs))
}

// streamSymbol returns the payload of source segment sym of block b:
// the stream payload header, then the data.
func (s *Sender) streamSymbol(o *txObject, b, sym int) ([]byte, bool) {
	st := o.stream
	if sym >= streamBlockLen(st, b) {
		return nil, false
	}
	slot := int((uint64(b)*uint64(st.k) + uint64(sym)) % uint64(st.ringSegs))
	h := st.hdr[slot]
	seg := s.cfg.SegmentSize
	s.streamBuf = framing.AppendStreamHeader(s.streamBuf[:0], h)
	s.streamBuf = append(s.streamBuf, st.data[slot*seg:slot*seg+int(h.Len)]...)
	return s.streamBuf, true
}
