package receiver

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// Receiver is the receiver engine. It is not safe for concurrent use.
type Receiver struct {
	cfg      Config
	remotes  []*remote
	rejected map[uint32]bool
	pool     *nack.Pool
	bufs     bufPool
	builder  *nack.Builder
	buffer   int64 // bytes held in object and block buffers

	msg     framing.Message
	nackMsg framing.Nack
	ackMsg  framing.Ack
	content []byte
	ext     framing.Extensions
	seq     uint16

	events []Event
	stats  Stats
}

// nackState is where a sender's repair cycle stands (RFC 5740 §5.3).
type nackState uint8

const (
	nackIdle    nackState = iota
	nackBackoff           // waiting a random back-off, listening for others' NACKs
	nackHoldoff           // NACKed (or suppressed); waiting for the repair
)

// remote is the state kept per sender.
type remote struct {
	id        uint32
	addr      netip.AddrPort
	inst      uint16
	grtt      time.Duration
	backoff   int
	gsize     float64
	lastHeard time.Time
	ended     bool // EOT received: ignore this instance from now on
	synced    bool // the object window below is set

	base     uint16       // oldest object id of interest
	maxObj   uint16       // newest object id heard
	objs     []*rxObject  // pending objects, oldest first
	finished [1024]uint64 // object ids completed or aborted, for ids >= base
	flushObj uint16
	flushed  bool

	nack        nackState
	nackAt      time.Time
	nackStart   time.Time // when the back-off or hold-off began
	backoffFrac float64   // the back-off's share of its window, for retime
	supp        *nack.Suppressor
	listenFrom  time.Time // in hold-off: when overheard NACKs start to count for the next cycle
	listening   bool      // supp was reset for the next cycle during the hold-off
	markObj     uint16    // newest object when the back-off started
	mark        nack.Mark // how far into markObj the sender had got then

	// GRTT probe echo and congestion control feedback (RFC 5740 §5.5.2).
	probeTS    framing.Timestamp
	probeRecv  time.Time
	probeValid bool
	ccSeq      uint16
	ccRate     float64 // sender's advertised rate, bytes/s
	ccRTT      time.Duration
	ccFlags    framing.CCFlags
	ccAt       time.Time // pending ACK(CC) time, zero if none

	ackAt     time.Time // pending ACK(FLUSH) time, zero if none
	ackRef    framing.SymbolRef
	ackWanted bool // a watermark request listed us and is not answered yet

	appAck     bool // an ACK_REQ listed this receiver
	appAckType framing.AckType
	appAckID   uint8

	lastFill  time.Time // last repair symbol (for a block the sender had passed)
	gapStalls int       // NACK cycles since a new object appeared

	// Loss and receive-rate estimation from the sender's sequence numbers.
	loss      congestion.LossHistory
	rateBytes int
	ratePkts  int
	rateStart time.Time
	recvRate  float64
}

// New returns a Receiver.
func New(cfg Config) (*Receiver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b, err := nack.NewBuilder(framing.FECRS8, 0, fec.MaxSymbols)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &Receiver{
		cfg:      cfg,
		rejected: map[uint32]bool{},
		pool:     nack.NewPool(cfg.MaxBlocks, fec.MaxSymbols+1),
		builder:  b,
	}, nil
}

// Events returns the events since the last call; the slice is reused by the
// next call into the Receiver.
func (r *Receiver) Events() []Event {
	ev := r.events
	r.events = r.events[:0]
	return ev
}

func (r *Receiver) emit(e Event) { r.events = append(r.events, e) }

// Stats returns the receiver's counters.
func (r *Receiver) Stats() Stats {
	st := r.stats
	st.BufferBytes = r.buffer
	return st
}

func serialLess(a, b uint16) bool { return int16(a-b) < 0 }

func (s *remote) isFinished(id uint16) bool { return s.finished[id>>6]&(1<<(id&63)) != 0 }
func (s *remote) setFinished(id uint16, v bool) {
	if v {
		s.finished[id>>6] |= 1 << (id & 63)
	} else {
		s.finished[id>>6] &^= 1 << (id & 63)
	}
}

func (r *Receiver) remote(id uint32) *remote {
	for _, s := range r.remotes {
		if s.id == id {
			return s
		}
	}
	return nil
}

// HandlePacket processes one packet received at now from from. Malformed
// packets are counted and return an error without changing any state.
func (r *Receiver) HandlePacket(now time.Time, from netip.AddrPort, b []byte) error {
	r.stats.Packets++
	r.stats.Bytes += uint64(len(b))
	m := &r.msg
	if err := m.Unmarshal(b); err != nil {
		r.stats.BadPackets++
		return err
	}
	h := m.Header()
	if h.SourceID == r.cfg.NodeID {
		return nil // our own feedback, looped back
	}
	switch m.Type {
	case framing.TypeInfo:
		if s := r.senderFor(now, from, h, m.Info.SenderFields, len(b)); s != nil {
			r.handleInfo(now, s, &m.Info)
		}
	case framing.TypeData:
		if s := r.senderFor(now, from, h, m.Data.SenderFields, len(b)); s != nil {
			return r.handleData(now, s, &m.Data)
		}
	case framing.TypeCmd:
		if s := r.senderFor(now, from, h, m.Cmd.SenderFields, len(b)); s != nil {
			r.handleCmd(now, s, &m.Cmd)
		}
	case framing.TypeNack:
		// Another receiver's NACK: suppression (RFC 5740 §5.3).
		if s := r.remote(m.Nack.ServerID); s != nil && s.inst == m.Nack.InstanceID {
			if s.hearing(now) {
				_ = s.supp.Add(m.Nack.Content, m.Nack.FECM)
			}
			r.overheardCC(s, m.Nack.Ext)
		}
	case framing.TypeAck:
		if s := r.remote(m.Ack.ServerID); s != nil && s.inst == m.Ack.InstanceID {
			r.overheardCC(s, m.Ack.Ext)
		}
	}
	return nil
}

// senderFor finds or creates the state for the sender of a message and
// updates what the message says of the sender's timing. It returns nil if
// the message is to be ignored.
func (r *Receiver) senderFor(now time.Time, from netip.AddrPort, h framing.Header, f framing.SenderFields, size int) *remote {
	s := r.remote(h.SourceID)
	switch {
	case s == nil:
		if len(r.remotes) >= r.cfg.MaxSenders {
			if !r.rejected[h.SourceID] && len(r.rejected) < 4*r.cfg.MaxSenders {
				r.rejected[h.SourceID] = true
				r.emit(Event{Kind: EventSenderRejected, Sender: h.SourceID})
			}
			return nil
		}
		s = r.newRemote(h.SourceID, f.InstanceID)
		r.remotes = append(r.remotes, s)
		r.emit(Event{Kind: EventSenderNew, Sender: s.id})
	case s.inst != f.InstanceID:
		// A restarted sender: everything pending from the old instance is
		// lost for good.
		r.abortAll(s, ErrSenderReset)
		*s = *r.newRemote(s.id, f.InstanceID)
		r.emit(Event{Kind: EventSenderReset, Sender: s.id})
	case s.ended:
		return nil
	}
	s.addr = from
	s.lastHeard = now
	s.grtt = framing.UnquantizeRTT(f.GRTT)
	s.backoff = int(f.Backoff)
	s.gsize = framing.UnquantizeGroupSize(f.GroupSize)
	r.countSeq(now, s, h.Sequence, size)
	return s
}

func (r *Receiver) newRemote(id uint32, inst uint16) *remote {
	s := &remote{id: id, inst: inst, supp: nack.NewSuppressor(256, fec.MaxSymbols+1)}
	s.loss.Tolerant = r.cfg.TolerateLoss
	return s
}

// countSeq feeds the loss history (RFC 5740 §5.5.2) and the receive rate
// with a packet of size bytes.
func (r *Receiver) countSeq(now time.Time, s *remote, seq uint16, size int) {
	if s.rateStart.IsZero() {
		s.rateStart = now
	}
	s.rateBytes += size
	s.ratePkts++
	// The receive rate is measured over about one round trip, as TFRC's
	// is, so that slow start can double every round trip; but over enough
	// packets that a paced burst does not read as a rate.
	rtt := min(max(s.rtt(), 10*time.Millisecond), time.Second)
	if el := now.Sub(s.rateStart); el >= rtt && (s.ratePkts >= 8 || el >= time.Second) {
		s.recvRate = float64(s.rateBytes) / el.Seconds()
		s.rateStart, s.rateBytes, s.ratePkts = now, 0, 0
	}
	s.loss.Packet(now, seq, s.rtt(), s.seedLoss)
}

// seedLoss is the loss event rate at which the rate equation gives the
// current receive rate: the start of the loss history (RFC 5348 §6.3.1).
func (s *remote) seedLoss() float64 {
	return congestion.LossForRate(float64(s.segment()), s.rtt(), s.recvRate)
}

func (s *remote) rtt() time.Duration {
	if s.ccRTT > 0 {
		return s.ccRTT
	}
	return s.grtt
}

// lossFraction returns the loss event rate, 0 before the first loss.
func (s *remote) lossFraction() float64 { return s.loss.Rate() }

// calcRate is the rate this receiver asks the sender for (RFC 5740
// §5.5.3): twice the receive rate while no loss has been seen (slow start),
// else the TCP-friendly rate for the loss event rate and RTT, bounded, as
// TFRC bounds it, by twice the receive rate.
func (s *remote) calcRate(segment float64) (rate float64, start bool) {
	recv := s.recvRate
	if recv == 0 {
		// Nothing measured yet: ask for the rate the sender has, not for
		// next to nothing.
		recv = s.ccRate
	}
	recv = math.Max(recv, segment)
	p := s.lossFraction()
	if p == 0 {
		return 2 * recv, true
	}
	return math.Min(congestion.Equation(segment, s.rtt(), p), 2*recv), false
}

func (r *Receiver) handleInfo(now time.Time, s *remote, m *framing.Info) {
	o := r.object(now, s, m.ObjectID, m.FECID, m.Ext, m.Flags, 0)
	if o == nil || o.infoOK {
		return
	}
	o.info = append([]byte(nil), m.Content...)
	o.infoOK = true
	o.moved = true
	o.track.SetInfoPending(false)
	r.emit(Event{Kind: EventInfo, Sender: s.id, Object: o.id, File: o.file, Size: o.size, Info: o.info,
		InfoExt: append([]byte(nil), m.Ext...)})
	r.maybeComplete(s, o)
}

// object finds or creates the pending object id of s. It returns nil if
// the object is finished, too old for the sync policy, or cannot be
// received.
func (r *Receiver) object(now time.Time, s *remote, id uint16, fecID uint8, ext framing.Extensions, flags framing.ObjectFlags, startBlock uint32) *rxObject {
	for _, o := range s.objs {
		if o.id == id {
			return o
		}
	}
	r.sync(s, id)
	if serialLess(id, s.base) || s.isFinished(id) {
		return nil
	}
	if serialLess(s.maxObj, id) {
		// Objects skipped in between are NACKed whole; those too far back
		// to ever be pending fall out of the window.
		if d := int(id - s.maxObj); d > r.cfg.MaxObjects {
			r.advanceBase(s, id-uint16(r.cfg.MaxObjects))
		}
		s.maxObj = id
	}
	f, ok, err := ext.FTI(fecID)
	o := &rxObject{id: id, file: flags&framing.FlagFile != 0}
	if !ok || err != nil || fecID != framing.FECRS8 {
		r.finishObject(s, o, fmt.Errorf("%w: FEC id %d without usable EXT_FTI", ErrBadObject, fecID))
		return nil
	}
	o.size, o.symLen, o.parity = f.TransferLength, int(f.SymbolLength), int(f.Parity)
	stream := flags&framing.FlagStream != 0
	var part fec.Partition
	var err2 error
	if stream {
		// Stream symbols carry the 8-byte payload header; blocks run on
		// for as long as the stream does.
		o.symLen += framing.StreamHeaderLen
		if f.MaxBlockLen < 1 || f.MaxBlockLen > fec.MaxBlockLen {
			err2 = fmt.Errorf("stream block length %d", f.MaxBlockLen)
		}
	} else {
		part, err2 = fec.NewPartition(f.TransferLength, int(f.SymbolLength), int(f.MaxBlockLen))
	}
	err = err2
	if err == nil && o.parity > 0 {
		o.codec, err = fec.RS8(int(f.MaxBlockLen), o.parity)
	}
	if err == nil {
		l := nack.Layout{Blocks: uint32(part.Blocks()), MaxBlockLen: int(f.MaxBlockLen), Parity: o.parity}
		if stream {
			l.Blocks = streamBlocks
		}
		err = o.track.Init(r.pool, id, l)
	}
	if err != nil {
		r.finishObject(s, o, fmt.Errorf("%w: %v", ErrBadObject, err))
		return nil
	}
	o.part = part
	o.track.SetInfoPending(flags&framing.FlagInfo != 0)
	if len(s.objs) >= r.cfg.MaxObjects {
		r.finishObject(s, s.objs[0], ErrObjectLimit)
	}
	if stream {
		r.startStream(o, int(f.MaxBlockLen), startBlock)
	}
	info := ObjectInfo{Sender: s.id, Object: id, File: o.file, Stream: stream, Size: o.size}
	r.emit(Event{Kind: EventStarted, Sender: s.id, Object: id, File: o.file, Stream: stream, Size: o.size})
	if r.cfg.Sink != nil && !stream {
		sink, err := r.cfg.Sink(info)
		if err != nil {
			r.finishObject(s, o, err)
			return nil
		}
		o.sink = sink
	}
	if o.sink == nil && !stream {
		if int64(o.size)+r.buffer > r.cfg.MaxBufferBytes {
			r.finishObject(s, o, ErrBufferLimit)
			return nil
		}
		o.data = make([]byte, o.size)
		o.held = int64(o.size)
		r.buffer += o.held
	}
	s.gapStalls = 0
	s.objs = append(s.objs, o)
	// Keep pending objects in id order: late repairs of older objects
	// arrive after newer ones started.
	for i := len(s.objs) - 1; i > 0 && serialLess(s.objs[i].id, s.objs[i-1].id); i-- {
		s.objs[i], s.objs[i-1] = s.objs[i-1], s.objs[i]
	}
	return o
}

// maybeComplete delivers o once all its data is in and, if it has a
// NORM_INFO (the object's name, often), that too: an object delivered
// without the info its sender attached would lose its name. Until then the
// receiver NACKs for the info.
func (r *Receiver) maybeComplete(s *remote, o *rxObject) bool {
	if o.stream != nil || !o.track.Complete() || o.track.InfoPending() {
		return false
	}
	r.complete(s, o)
	return true
}

// sync sets the object window of a sender heard for the first time
// (RFC 5740 §5.2.1 sync policy).
func (r *Receiver) sync(s *remote, id uint16) {
	if s.synced {
		return
	}
	s.synced = true
	s.base, s.maxObj = id, id
	if r.cfg.Sync == SyncAll {
		s.base = id - uint16(r.cfg.MaxObjects-1)
	}
}

// advanceBase forgets object ids older than base.
func (r *Receiver) advanceBase(s *remote, base uint16) {
	for serialLess(s.base, base) {
		s.setFinished(s.base, false)
		s.base++
	}
	for len(s.objs) > 0 && serialLess(s.objs[0].id, base) {
		r.finishObject(s, s.objs[0], ErrObjectLimit)
	}
}

func (r *Receiver) handleData(now time.Time, s *remote, m *framing.Data) error {
	o := r.object(now, s, m.ObjectID, m.FECID, m.Ext, m.Flags, m.PayloadID.Block)
	if o == nil {
		return nil
	}
	if m.Flags&framing.FlagInfo != 0 && !o.infoOK {
		o.track.SetInfoPending(true)
	}
	if o.stream == nil && o.part.Blocks() == 0 {
		// An empty object: its one NORM_DATA carries nothing to store.
		if !r.maybeComplete(s, o) {
			r.maybeNack(now, s)
		}
		return nil
	}
	b, sym := m.PayloadID.Block, int(m.PayloadID.Symbol)
	k := o.part.BlockLen(int(b))
	if o.stream != nil {
		k = o.stream.k
		if b >= streamBlocks {
			k = 0
		}
	}
	if k == 0 || sym >= k+o.parity {
		r.stats.BadPackets++
		return fmt.Errorf("receiver: object %d: symbol %d/%d outside the object", o.id, b, sym)
	}
	want := o.symLen
	switch {
	case o.stream != nil && sym < k:
		want = framing.StreamHeaderLen // stream segments may be short
	case o.stream != nil:
		want = o.symLen - framing.StreamHeaderLen // data/file-style parity is accepted too
	case sym < k:
		_, want = o.part.Segment(int(b), sym)
	}
	if len(m.Payload) < want || len(m.Payload) > o.symLen {
		r.stats.BadPackets++
		return fmt.Errorf("receiver: object %d: symbol %d/%d has %d bytes, want %d", o.id, b, sym, len(m.Payload), want)
	}
	if o.track.Received(b, uint16(sym)) {
		r.stats.Duplicates++
		return nil
	}
	bb := o.findBlock(b)
	if bb == nil {
		n := k + o.parity
		need := int64(n * o.symLen)
		if r.buffer+need > r.cfg.MaxBufferBytes {
			r.finishObject(s, o, ErrBufferLimit)
			return nil
		}
		bb = r.bufs.get(b, n, o.symLen)
		o.blocks = append(o.blocks, bb)
		o.held += need
		r.buffer += need
	}
	st := o.track.Receive(b, uint16(sym), k)
	switch st {
	case nack.Invalid:
		r.stats.BadPackets++
		return fmt.Errorf("receiver: object %d: symbol %d/%d rejected", o.id, b, sym)
	case nack.Duplicate:
		r.stats.Duplicates++
		return nil
	case nack.NoRoom:
		r.finishObject(s, o, ErrBufferLimit)
		return nil
	}
	if serialLess(o.id, s.maxObj) || b < o.hiBlock {
		s.lastFill = now
	}
	advanced := b > o.hiBlock || !o.seen
	o.seen = true
	o.hiBlock = max(o.hiBlock, b)
	dst := bb.syms[sym][:o.symLen]
	n := copy(dst, m.Payload)
	clear(dst[n:])
	bb.syms[sym] = dst
	o.moved = true
	if sym < k {
		r.stats.DataSymbols++
	} else {
		r.stats.ParitySymbols++
	}
	if o.stream != nil {
		if st == nack.BlockComplete {
			if err := r.decodeBlock(o, bb, k); err != nil {
				r.finishObject(s, o, err)
				return nil
			}
		}
		r.deliverStream(s, o)
		if advanced {
			r.maybeNack(now, s)
		}
		return nil
	}
	if st == nack.BlockComplete || st == nack.ObjectComplete {
		if err := r.deliverBlock(o, bb, k); err != nil {
			r.finishObject(s, o, err)
			return nil
		}
		if st == nack.ObjectComplete {
			if !r.maybeComplete(s, o) {
				r.maybeNack(now, s) // the data is in; the info is not
				return nil
			}
			r.maybeNack(now, s)
			r.maybeAck(now, s)
			return nil
		}
	}
	if advanced {
		r.maybeNack(now, s)
	}
	return nil
}

// deliverBlock rebuilds the missing source symbols of a complete block from
// its parity and writes the block's data to the object's destination.
func (r *Receiver) deliverBlock(o *rxObject, bb *blockBuf, k int) error {
	if err := r.decodeBlock(o, bb, k); err != nil {
		return err
	}
	for i := 0; i < k; i++ {
		off, n := o.part.Segment(int(bb.block), i)
		if o.sink != nil {
			if _, err := o.sink.WriteAt(bb.syms[i][:n], int64(off)); err != nil {
				return err
			}
		} else {
			copy(o.data[off:], bb.syms[i][:n])
		}
	}
	o.dropBlock(bb)
	r.releaseBlock(o, bb)
	return nil
}

// decodeBlock rebuilds the missing source symbols of a block that has k
// symbols in all.
func (r *Receiver) decodeBlock(o *rxObject, bb *blockBuf, k int) error {
	missing := 0
	for i := 0; i < k; i++ {
		if len(bb.syms[i]) == 0 {
			missing++
		}
	}
	if missing > 0 {
		if o.codec == nil {
			return fmt.Errorf("receiver: object %d block %d: %d symbols missing and no FEC", o.id, bb.block, missing)
		}
		if err := o.codec.Reconstruct(bb.syms, k); err != nil {
			return err
		}
		r.stats.FECRecovered += uint64(missing)
	}
	return nil
}

func (r *Receiver) releaseBlock(o *rxObject, bb *blockBuf) {
	sz := int64(len(bb.buf))
	o.held -= sz
	r.buffer -= sz
	r.bufs.put(bb)
}

// complete delivers a finished object.
func (r *Receiver) complete(s *remote, o *rxObject) {
	r.stats.ObjectsDone++
	r.emit(Event{Kind: EventCompleted, Sender: s.id, Object: o.id, File: o.file, Size: o.size, Info: o.info, Data: o.data})
	r.buffer -= int64(len(o.data))
	o.held -= int64(len(o.data))
	o.data = nil
	r.removeObject(s, o)
}

// finishObject aborts o with err (o may not be in s.objs yet).
func (r *Receiver) finishObject(s *remote, o *rxObject, err error) {
	r.stats.ObjectsAborted++
	r.emit(Event{Kind: EventAborted, Sender: s.id, Object: o.id, File: o.file, Size: o.size, Info: o.info, Err: err})
	for len(o.blocks) > 0 {
		bb := o.blocks[len(o.blocks)-1]
		o.blocks = o.blocks[:len(o.blocks)-1]
		r.releaseBlock(o, bb)
	}
	r.buffer -= o.held
	o.held = 0
	o.data = nil
	r.removeObject(s, o)
}

func (r *Receiver) removeObject(s *remote, o *rxObject) {
	o.track.Release()
	s.setFinished(o.id, true)
	for i, x := range s.objs {
		if x == o {
			s.objs = append(s.objs[:i], s.objs[i+1:]...)
			break
		}
	}
	// Move base past finished ids so the finished bitmap stays small.
	for s.base != s.maxObj && s.isFinished(s.base) && (len(s.objs) == 0 || serialLess(s.base, s.objs[0].id)) {
		s.setFinished(s.base, false)
		s.base++
	}
}

func (r *Receiver) abortAll(s *remote, err error) {
	for len(s.objs) > 0 {
		r.finishObject(s, s.objs[0], err)
	}
}
