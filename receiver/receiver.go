package receiver

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// Receiver is the receiver engine. It is not safe for concurrent use.
type Receiver struct {
	// The fields every packet and poll touch come first, on the same few
	// cache lines: a simulation of thousands of receivers finds each
	// receiver's state out of cache, and every line is a miss.
	remotes []*remote
	events  []Event
	// arrived is when the packet being handled reached the host; backlog
	// is how long it waited to be processed (see HandlePacketAt).
	arrived time.Time
	backlog time.Duration
	handled time.Time // when the last packet was handled

	cfg      Config
	rejected map[uint32]bool
	pool     *nack.Pool
	bufs     bufPool
	builder  *nack.Builder
	waiting  []*blockBuf // scratch for storeMemory
	pieces   []Piece     // scratch for deliverBlock
	buffer   int64       // bytes held in object and block buffers and bitmaps
	blocks   int         // block buffers held, over all senders

	// work counts loop iterations on the paths a packet or Poll drives, so
	// that tests can bound the work per call by the packet's size and the
	// state that exists.
	work     uint64
	appBytes int64 // completed objects the application holds (SetAppBytes)

	msg     framing.Message
	nackMsg framing.Nack
	ackMsg  framing.Ack
	content []byte
	ext     framing.Extensions
	seq     uint16

	stats Stats

	// pollEvery makes Poll visit every sender, due or not (tests compare
	// the two).
	pollEvery bool
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
	bytes     uint64    // of every packet heard from it (see evictSender)
	added     time.Time // when it was first heard
	ended     bool      // EOT received: ignore this instance from now on
	synced    bool      // the object window below is set
	delivered bool      // some object completed or stream data was delivered

	held   int64 // bytes of Receiver.buffer held for this sender's objects
	blocks int   // block buffers held for this sender's objects

	// lostID is the oldest object that ended without being delivered
	// intact (aborted, squelched, given up), while lostValid: watermarks
	// at or past it are not acknowledged.
	lostID    uint16
	lostValid bool

	base     uint16      // oldest object id of interest
	maxObj   uint16      // newest object id heard
	objs     []*rxObject // pending objects, oldest first
	flushObj uint16
	flushed  bool

	// What may be acknowledged (holdsThrough): an object counts only once
	// it is complete and, with Config.ConfirmHeld, the application has it.
	unheld    int    // completed objects not yet confirmed by Held
	unheldLow uint16 // while unheld > 0, no unheld id is older

	// due is when Poll must next look at this sender: its earliest timer.
	// Zero means at the next Poll: whatever can change its state (its
	// packets, others' feedback about it, the application's calls, another
	// sender taking its buffers) zeroes it (see touch). Poll thus costs
	// what is due, not a visit to every sender tracked, which matters when
	// forged ids fill MaxSenders.
	due time.Time

	nack        nackState
	nackAt      time.Time
	nackStart   time.Time     // when the back-off or hold-off began
	backoffFrac float64       // the back-off's share of its window, for retime
	backoffU    float64       // the back-off's random draw, kept as its group changes
	holdExtra   time.Duration // the receiver's own backlog added to the hold-off
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
	ccLimited  bool    // the sender's latest probe named a limiting receiver
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

	// Pace reports (see pace.go).
	paceAsked     bool      // the sender's probes ask for them
	announce      int       // probes answered because the sender tracks receivers
	announcing    bool      // the pending probe answer is one of them
	paceNext      time.Time // no unsolicited report before this
	paceHeardAt   time.Time // another receiver's report, overheard
	paceHeardRate float64
	paceStart     time.Time // the handling rate's current window
	paceBytes     int
	paceRate      float64 // bytes per second handled over the last window

	// Loss and receive-rate estimation from the sender's sequence numbers.
	loss      congestion.LossHistory
	seqNext   uint16 // the sequence number expected next
	seqSeen   bool
	pktsGot   uint32 // packets received and lost (by sequence gaps), for
	pktsLost  uint32 // the loss rate NACK timing assumes (see nackGroup)
	rateBytes int
	ratePkts  int
	rateStart time.Time
	recvRate  float64
	recvPrev  float64 // the measurement before recvRate (see calcRate)

	// Apart: 16 KiB rarely looked at, which inside would spread the
	// fields looked at per packet over pages of their own, a TLB and cache
	// miss per packet for each of thousands of simulated receivers.
	finished   *[1024]uint64 // object ids completed or aborted, for ids >= base
	unheldBits *[1024]uint64 // ids of the unheld objects
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
	st.AppBytes = r.appBytes
	return st
}

// queueDelay estimates how long a packet reaching the host now would wait
// before this receiver handles it: the last packet's wait, less the time
// since, during which the queue drained.
func (r *Receiver) queueDelay(now time.Time) time.Duration {
	if r.backlog <= 0 && !now.Before(r.handled) {
		return 0 // the common case, without time.Time.Sub's cost per poll
	}
	return max(r.backlog-now.Sub(r.handled), 0)
}

// SetAppBytes tells the receiver how many bytes of completed objects the
// application holds in memory, waiting to be taken: they count against
// Config.MaxBufferBytes, so that a slow application holds the receiver
// back (new objects are repaired later) instead of growing without bound.
func (r *Receiver) SetAppBytes(n int64) {
	n = max(n, 0)
	if n < r.appBytes {
		// Room for what was deferred (ObjectsDeferred): every sender may
		// have something to ask for again.
		for _, s := range r.remotes {
			s.touch()
		}
	}
	r.appBytes = n
}

// touch makes the next Poll look at s (see remote.due).
func (s *remote) touch() { s.due = time.Time{} }

// Held confirms, with Config.ConfirmHeld, that the application took the
// object of EventCompleted (held) or lost it after all (not held: then no
// watermark at or past it is acknowledged). Call it once per
// EventCompleted; a sender no longer known is ignored.
func (r *Receiver) Held(now time.Time, sender uint32, id uint16, held bool) {
	s := r.remote(sender)
	if s == nil || !r.cfg.ConfirmHeld {
		return
	}
	s.touch()
	if s.unheld > 0 && s.unheldBits[id>>6]&(1<<(id&63)) != 0 {
		s.unheldBits[id>>6] &^= 1 << (id & 63)
		s.unheld--
	}
	if !held {
		s.markLost(id)
	}
	r.maybeAck(now, s)
}

// oldestUnheld returns the oldest object id completed and not yet
// confirmed by Held; call it only while s.unheld > 0. The cursor moves a
// word at a time, forward only between completions, so the cost is
// amortized over the ids it passes.
func (s *remote) oldestUnheld() uint16 {
	for range len(s.unheldBits) + 1 {
		if w := s.unheldBits[s.unheldLow>>6] >> (s.unheldLow & 63); w != 0 {
			s.unheldLow += uint16(bits.TrailingZeros64(w))
			return s.unheldLow
		}
		s.unheldLow = (s.unheldLow | 63) + 1
	}
	return s.unheldLow // not reached while the count matches the bits
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
		r.work++
		if s.id == id {
			return s
		}
	}
	return nil
}

// HandlePacket processes one packet received at now from from. Malformed
// packets are counted and return an error without changing any state.
func (r *Receiver) HandlePacket(now time.Time, from netip.AddrPort, b []byte) error {
	return r.HandlePacketAt(now, now, from, b)
}

// HandlePacketAt is HandlePacket for a packet that reached the host at
// arrived (a kernel receive timestamp) and is processed only at now. The
// wait in between is this receiver's backlog, not the network's: it is
// left out of the round-trip echoes the sender measures its GRTT with,
// and added to the time this receiver waits for repairs, which queue
// behind the same backlog. An arrived after now, or zero, counts as now.
func (r *Receiver) HandlePacketAt(now, arrived time.Time, from netip.AddrPort, b []byte) error {
	r.arrived, r.handled = arrived, now
	r.backlog = 0
	if arrived.IsZero() || arrived.After(now) {
		r.arrived = now
	} else {
		r.backlog = now.Sub(arrived)
	}
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
			s.touch()
			if s.hearing(now) {
				_ = s.supp.Add(m.Nack.Content, m.Nack.FECM)
			}
			r.overheardCC(s, m.Nack.Ext)
			s.overheardPace(now, m.Nack.Ext)
		}
	case framing.TypeAck:
		if s := r.remote(m.Ack.ServerID); s != nil && s.inst == m.Ack.InstanceID {
			s.touch()
			r.overheardCC(s, m.Ack.Ext)
			s.overheardPace(now, m.Ack.Ext)
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
		if len(r.remotes) >= r.cfg.MaxSenders && !r.evictSender(now) {
			r.stats.SendersRejected++
			if !r.rejected[h.SourceID] && len(r.rejected) < 4*r.cfg.MaxSenders {
				r.rejected[h.SourceID] = true
				r.emit(Event{Kind: EventSenderRejected, Sender: h.SourceID})
			}
			return nil
		}
		s = r.newRemote(h.SourceID, f.InstanceID)
		s.added = now
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
	s.touch()
	s.addr = from
	s.lastHeard = now
	s.bytes += uint64(size)
	s.grtt = framing.UnquantizeRTT(f.GRTT)
	s.backoff = int(f.Backoff)
	s.gsize = framing.UnquantizeGroupSize(f.GroupSize)
	r.countSeq(now, s, h.Sequence, size)
	return s
}

// evictSender makes room for a new sender when MaxSenders are tracked:
// anyone on the group can send with any source id, so a full table must not
// lock a real sender out. The sender dropped is one that has ended (EOT),
// else the least recently heard of those silent for a while (a second, or
// four of their GRTTs) with no object pending, else the one that sent the
// fewest bytes (counted
// at its pace over its first second, if it is younger). Having delivered
// an object earns no protection, since a forged sender can deliver a
// one-byte object with one packet; traffic does: forged ids that keep
// arriving push out each other, and not a sender that pauses between
// repair cycles, nor one that has just started. Pushing out a sender that
// keeps sending takes forged ids that each send more than it did. It
// reports whether a sender was dropped: not when every sender was heard
// at now.
func (r *Receiver) evictSender(now time.Time) bool {
	// A sender silent for a while with nothing pending loses nothing by
	// going; one with objects pending is judged by what it sent, however
	// long it pauses (SenderTimeout ends it).
	idle := func(s *remote) bool {
		return len(s.objs) == 0 && now.Sub(s.lastHeard) > max(time.Second, 4*s.grtt)
	}
	// weight is what a sender sent, and for one first heard less than a
	// second ago what it would send in a second at its pace so far: a
	// sender that just started, whose first packet may be a small probe,
	// is not judged against forged ids that have been sending for longer.
	weight := func(s *remote) float64 {
		age := min(max(now.Sub(s.added), time.Millisecond), time.Second)
		return float64(s.bytes) / age.Seconds()
	}
	// worse reports whether s is a better victim than v.
	worse := func(s, v *remote) bool {
		if s.ended != v.ended {
			return s.ended
		}
		if si, vi := idle(s), idle(v); si != vi {
			return si
		} else if si {
			return s.lastHeard.Before(v.lastHeard)
		}
		if ss, vs := weight(s), weight(v); ss != vs {
			return ss < vs
		}
		return s.lastHeard.Before(v.lastHeard)
	}
	vi := -1
	for i, s := range r.remotes {
		r.work++
		if !s.ended && !s.lastHeard.Before(now) {
			continue // heard just now: it is not what is in the way
		}
		if vi < 0 || worse(s, r.remotes[vi]) {
			vi = i
		}
	}
	if vi < 0 {
		return false
	}
	v := r.remotes[vi]
	r.abortAll(v, ErrSenderEvicted)
	if !v.ended {
		r.emit(Event{Kind: EventSenderGone, Sender: v.id})
	}
	r.remotes = append(r.remotes[:vi], r.remotes[vi+1:]...)
	r.stats.SendersEvicted++
	return true
}

func (r *Receiver) newRemote(id uint32, inst uint16) *remote {
	s := &remote{id: id, inst: inst, supp: nack.NewSuppressor(256, fec.MaxSymbols+1),
		finished: new([1024]uint64), unheldBits: new([1024]uint64)}
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
		s.recvPrev, s.recvRate = s.recvRate, float64(s.rateBytes)/el.Seconds()
		s.rateStart, s.rateBytes, s.ratePkts = now, 0, 0
	}
	s.loss.Packet(now, seq, s.rtt(), s.seedLoss)
	s.countLoss(seq)
	// The pace reported to the sender is measured over a longer window: a
	// receiver that falls behind is usually short of CPU, and a window of
	// a few milliseconds would measure the scheduler's time slices.
	if s.paceStart.IsZero() {
		s.paceStart = now
	}
	s.paceBytes += size
	if el := now.Sub(s.paceStart); el >= paceWindow {
		s.paceRate = float64(s.paceBytes) / el.Seconds()
		s.paceStart, s.paceBytes = now, 0
	}
}

// countLoss counts the packets received and lost from the sender's
// sequence numbers: the raw packet loss rate, which NACK timing needs (the
// loss event rate of congestion control counts a burst as one). Gaps of
// more than a few thousand, or packets from before, are taken as a restart
// or reordering rather than loss. Halving both counts now and then makes
// the rate follow a path that changes.
func (s *remote) countLoss(seq uint16) {
	s.pktsGot++
	if s.seqSeen {
		if gap := seq - s.seqNext; gap < 4096 {
			s.pktsLost += uint32(gap)
		} else if gap < 1<<15 {
			s.seqNext = seq + 1
			return
		} else {
			return // late: reordered or duplicated
		}
	}
	s.seqNext, s.seqSeen = seq+1, true
	if s.pktsGot+s.pktsLost >= 1<<20 {
		s.pktsGot, s.pktsLost = s.pktsGot/2, s.pktsLost/2
	}
}

// packetLoss returns the packet loss rate counted by countLoss, with half
// a loss added so that it is never 0 once a loss made a NACK due.
func (s *remote) packetLoss() float64 {
	return (float64(s.pktsLost) + 0.5) / (float64(s.pktsGot+s.pktsLost) + 1)
}

// seedLoss is the loss event rate at which the rate equation gives the
// current receive rate, or, under congestion control, half the sender's
// advertised rate if that is more: the start of the loss history (RFC 5348
// §6.3.1). The half is what TCP keeps when a loss ends its slow start (it
// halves its window); a flow that starts beside another gets a receive rate
// held down by the queue the other keeps full, and seeded from that alone
// it would take many loss events to claim its share. A sender without a
// limiting receiver (no congestion control) sends at a fixed rate the loss
// says nothing about, and the rates its receivers report only decide which
// probe answers suppress which: seeded from that rate they would all be
// alike, and suppress few.
func (s *remote) seedLoss() float64 {
	rate := s.recvRate
	if s.ccLimited {
		rate = max(rate, s.ccRate/2)
	}
	return congestion.LossForRate(float64(s.segment()), s.rtt(), rate)
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
//
// Once loss has been seen, the bound takes the larger of the last two
// measurements, as RFC 5348's sender keeps the largest receive rate
// reported over a round trip or so: a sender that stalled for a round trip
// (short of CPU, or of data) was received that slowly without the network
// having anything to do with it, and twice one such window cut a 50 Mbit/s
// flow to 6 Mbit/s in the lab (TestLabCCBottleneck, with the rest of the
// test suite running). Slow start keeps the last measurement alone: when
// the sender ends it by cutting its rate, a window from before the cut
// would ask for the old rate back, and overflow the queue the cut drained
// (bench cclab: 0.86 of the link and 1.9 % queue loss, for 0.92 and none).
func (s *remote) calcRate(segment float64) (rate float64, start bool) {
	recv := s.recvRate
	p := s.lossFraction()
	if p > 0 {
		recv = max(recv, s.recvPrev)
	}
	if recv == 0 {
		// Nothing measured yet: ask for the rate the sender has, not for
		// next to nothing.
		recv = s.ccRate
	}
	recv = math.Max(recv, segment)
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
	if o := r.pending(s, id); o != nil {
		return o
	}
	r.sync(s, id)
	if serialLess(id, s.base) || s.isFinished(id) {
		return nil
	}
	if serialLess(s.maxObj, id) {
		// Objects skipped in between are NACKed whole; those too far back
		// to ever be pending fall out of the window.
		r.raiseMax(s, id)
	}
	if len(s.objs) >= r.cfg.MaxObjects {
		// No room: leave the object unheard, to be NACKed and repaired
		// once older ones are done, rather than give up an older one that
		// is likely one repair from complete. Stalled ones still end
		// after RepairCycles; restart the count that would give up the
		// deferred one meanwhile.
		s.gapStalls = 0
		r.stats.ObjectsDeferred++
		return nil
	}
	f, ok, err := ext.FTI(fecID)
	o := &rxObject{id: id, file: flags&framing.FlagFile != 0}
	if !ok || err != nil || fecID != framing.FECRS8 || int(f.MaxBlockLen)+int(f.Parity) > fec.MaxSymbols {
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
	o.maxK = int(f.MaxBlockLen)
	l := nack.Layout{Blocks: uint32(part.Blocks()), MaxBlockLen: int(f.MaxBlockLen), Parity: o.parity}
	if stream {
		l.Blocks = streamBlocks
	}
	l.Window = blockWindow
	bits := min(l.Blocks, blockWindow)
	if err == nil && l.Blocks > nack.MaxBlocks {
		err = fmt.Errorf("%d blocks", l.Blocks)
	}
	if err != nil {
		r.finishObject(s, o, fmt.Errorf("%w: %v", ErrBadObject, err))
		return nil
	}
	// The tracker's bitmap of complete blocks (up to 8 KiB, see
	// blockWindow) is memory the sender makes us hold: it counts against
	// the buffer like the data, and is reserved before it is allocated.
	bitmap := int64(bits+63) / 64 * 8
	if !r.admit(s, bitmap, 0) {
		r.finishObject(s, o, ErrBufferLimit)
		return nil
	}
	if err = o.track.Init(r.pool, id, l); err != nil {
		r.finishObject(s, o, fmt.Errorf("%w: %v", ErrBadObject, err))
		return nil
	}
	r.charge(s, o, bitmap)
	o.part = part
	o.track.SetInfoPending(flags&framing.FlagInfo != 0)
	if stream {
		r.startStream(o, int(f.MaxBlockLen), startBlock)
	}
	info := ObjectInfo{Sender: s.id, Object: id, File: o.file, Stream: stream, Size: o.size}
	started := Event{Kind: EventStarted, Sender: s.id, Object: id, File: o.file, Stream: stream, Size: o.size}
	if r.cfg.Sink != nil && !stream {
		sink, err := r.cfg.Sink(info)
		if err != nil {
			r.emit(started)
			r.finishObject(s, o, err)
			return nil
		}
		o.sink = sink
	}
	inMemory := o.sink == nil && !stream
	if inMemory && r.appBytes > 0 && int64(o.size)+r.buffer+r.appBytes > r.cfg.MaxBufferBytes && int64(o.size) <= r.cfg.MaxBufferBytes/2 {
		// It fits once pending objects are done and the application takes
		// what it holds: leave it unheard, to be NACKed and repaired then.
		r.charge(s, o, -bitmap)
		o.track.Release()
		s.gapStalls = 0
		r.stats.ObjectsDeferred++
		return nil
	}
	if inMemory && o.size <= minDataCap {
		// A small object takes its memory at once, so that it never
		// fails half-way for lack of it: when it does not fit while the
		// application holds what it will give back, it waits, unheard,
		// to be repaired then.
		if !r.admit(s, int64(o.size), 0) {
			if r.appBytes > 0 {
				r.charge(s, o, -bitmap)
				o.track.Release()
				s.gapStalls = 0
				r.stats.ObjectsDeferred++
				return nil
			}
			r.emit(started)
			r.finishObject(s, o, ErrBufferLimit)
			return nil
		}
		o.data = make([]byte, 0, o.size)
		r.charge(s, o, int64(o.size))
	}
	r.emit(started)
	// A larger object kept in memory takes memory as its data arrives,
	// not as its announcement says: a NORM_DATA announcing 256 MiB costs
	// nothing until the data is here (see storeInOrder).
	s.gapStalls = 0
	s.objs = append(s.objs, o)
	// Keep pending objects in id order: late repairs of older objects
	// arrive after newer ones started.
	for i := len(s.objs) - 1; i > 0 && serialLess(s.objs[i].id, s.objs[i-1].id); i-- {
		r.work++
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

// advanceBase forgets object ids older than base; those not finished are
// lost.
func (r *Receiver) advanceBase(s *remote, base uint16) {
	for serialLess(s.base, base) {
		r.work++
		if w := s.base >> 6; s.base&63 == 0 && base-s.base >= 64 {
			if f := s.finished[w]; f != ^uint64(0) {
				s.markLost(s.base + uint16(bits.TrailingZeros64(^f)))
			}
			s.finished[w] = 0 // a word at a time
			s.base += 64
			continue
		}
		if !s.isFinished(s.base) {
			s.markLost(s.base)
		}
		s.setFinished(s.base, false)
		s.base++
	}
	for len(s.objs) > 0 && serialLess(s.objs[0].id, base) {
		r.stats.WindowClamped++
		r.finishObject(s, s.objs[0], ErrObjectLimit)
	}
}

// blockWindow is how many blocks from an object's oldest incomplete one on
// its tracker follows: 8 KiB of bitmap rather than up to 2 MiB, which a
// packet could make the receiver allocate by announcing a stream (every
// block number) or an object of 2^24 tiny blocks. A symbol for a block
// further ahead is dropped; the receiver would be that many blocks (5 GB
// at 1400-byte segments in blocks of 64) behind the sender.
const blockWindow = 1 << 16

// window is how many object ids, from the oldest of interest to the newest
// heard, a sender's state spans at most. The loops over that span (NACK
// building, acknowledgement, stall counting) are bounded by it, whatever
// object ids packets name.
func (r *Receiver) window() uint16 { return uint16(min(16*r.cfg.MaxObjects, 1<<14)) }

// raiseMax records that the sender has got to object id, newer than any
// heard, and moves the window's base up so that it spans at most window()
// ids: older objects still pending are aborted with ErrObjectLimit.
func (r *Receiver) raiseMax(s *remote, id uint16) {
	s.maxObj = id
	if w := r.window(); id-s.base > w {
		r.advanceBase(s, id-w)
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
	bb := r.findBlock(o, b)
	n := k + o.parity
	// A block's buffer is paid for symbol by symbol as they arrive, not at
	// once for the k+p symbols a packet announces: a forged sender holds
	// only as much as it sends.
	need := int64(o.symLen)
	newBlock := 0
	if bb == nil {
		newBlock = 1
	}
	if !r.admit(s, need, newBlock) {
		if r.appBytes > 0 {
			// The application holds completed objects it will take: drop
			// the symbol and have it repaired then, rather than give up.
			r.stats.ObjectsDeferred++
			o.waiting = true
			return nil
		}
		r.finishObject(s, o, ErrBufferLimit)
		return nil
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
	case nack.Ahead:
		// Too far ahead of the oldest incomplete block to track: dropped,
		// and asked for again once the window gets there.
		r.stats.BlocksAhead++
		return nil
	}
	if bb == nil {
		arena := r.cfg.Arena != nil
		bb = r.bufs.get(b, n, o.symLen, r.cfg.SharedPayloads, arena, arena && o.stream == nil, o.proven, &r.work)
		o.blocks = append(o.blocks, bb)
		s.blocks++
		r.blocks++
	}
	if serialLess(o.id, s.maxObj) || b < o.hiBlock {
		s.lastFill = now
	}
	advanced := b > o.hiBlock || !o.seen
	if sym < k && o.seen && b < o.hiBlock {
		r.stats.LateSource++
	}
	o.seen = true
	o.hiBlock = max(o.hiBlock, b)
	if !o.proven {
		// As many symbols as a whole block has prove the object as well
		// as a written block does: under heavy loss no block completes
		// before the first repair.
		o.symbols++
		o.proven = o.symbols >= o.maxK+o.parity
	}
	bb.charged += need
	r.charge(s, o, need)
	if bb.detached && len(m.Payload) == o.symLen && r.keepPos(bb, sym, m.Payload) {
		// Kept by position in the arena: the packet's bytes are the symbol.
	} else if r.attach(bb); r.cfg.SharedPayloads && len(m.Payload) == o.symLen {
		// Kept by reference: the packet's bytes are the symbol.
		bb.syms[sym], bb.refs[sym] = m.Payload[:o.symLen:o.symLen], true
	} else {
		// Only what arrived is kept: the zeros a short symbol stands for are
		// filled in when the symbol is used (see blockBuf.full), so a
		// forged tiny packet claiming 64 KiB symbols costs its own size,
		// not a 64 KiB clear.
		dst := bb.room(sym, len(m.Payload))
		nc := copy(dst, m.Payload)
		if nc == 0 {
			dst[0], nc = 0, 1 // present, and all zeros
		}
		bb.syms[sym] = dst[:nc]
	}
	o.moved = true
	if sym < k {
		r.stats.DataSymbols++
	} else {
		r.stats.ParitySymbols++
	}
	if o.stream != nil {
		if p := m.Payload; sym < k && len(p) >= framing.StreamHeaderLen {
			if n, ms := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]); ms != 0 && ms != framing.StreamPadding && int(ms) <= int(n) {
				o.stream.sawStart(binary.BigEndian.Uint32(p[4:]) + uint32(ms) - 1)
			}
		}
		if st == nack.BlockComplete {
			if err := r.decodeBlock(s, o, bb, k); err != nil {
				r.finishObject(s, o, err)
				return nil
			}
		}
		bb.stamp(sym, now)
		r.deliverStream(s, o)
		r.noteHole(now, o, b, sym)
		if advanced {
			r.maybeNack(now, s)
		}
		r.maybeAck(now, s) // a stream watermark may be reached now
		return nil
	}
	if st == nack.BlockComplete || st == nack.ObjectComplete {
		if err := r.deliverBlock(s, o, bb, k, st == nack.ObjectComplete); err != nil {
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
func (r *Receiver) deliverBlock(s *remote, o *rxObject, bb *blockBuf, k int, last bool) error {
	if err := r.decodeBlock(s, o, bb, k); err != nil {
		return err
	}
	if o.sink == nil {
		bb.complete = true
		return r.storeMemory(s, o, last)
	}
	// Symbols that sit side by side in the block's buffer and in the object
	// go down in one write: a syscall per packet would cost a file receiver
	// a third of its CPU.
	pieces := r.pieces[:0]
	start, at, end := 0, uint64(0), 0 // run: bb.buf[start:end] belongs at offset at
	for i := 0; i < k; i++ {
		r.work++
		off, n := o.part.Segment(int(bb.block), i)
		sym := bb.full(i, n)
		pos := i * o.symLen
		inPlace := n > 0 && pos+n <= len(bb.buf) && &sym[0] == &bb.buf[pos]
		if inPlace && end > start && end == pos && at+uint64(end-start) == off {
			end += n
			continue
		}
		if end > start {
			pieces = append(pieces, Piece{int64(at), bb.buf[start:end]})
			end = start
		}
		if inPlace {
			start, at, end = pos, off, pos+n
			continue
		}
		pieces = append(pieces, Piece{int64(off), sym})
	}
	if end > start {
		pieces = append(pieces, Piece{int64(at), bb.buf[start:end]})
	}
	var err error
	if bs, ok := o.sink.(BlockSink); ok && !bb.shared {
		// Every symbol is in bb.buf (only shared payloads are kept
		// elsewhere): the sink takes the buffer, and the block goes on
		// with the spare it gives back.
		var spare []byte
		spare, err = bs.WriteBlock(bb.buf, pieces)
		bb.buf, bb.used = spare[:cap(spare)], 0
		clear(bb.syms)
	} else {
		for _, p := range pieces {
			if _, err = o.sink.WriteAt(p.B, p.Off); err != nil {
				break
			}
		}
	}
	clear(pieces) // no references to a buffer the sink took
	r.pieces = pieces[:0]
	if err != nil {
		return err
	}
	o.proven = true
	o.dropBlock(bb)
	r.releaseBlock(s, o, bb)
	return nil
}

// minDataCap is how much memory an object kept in memory may take before
// any of its data is stored; after that, twice what is stored.
const minDataCap = 64 << 10

// storeMemory copies the complete blocks of an object kept in memory into
// its data, which grows as data arrives: to at most twice what is stored
// (or minDataCap) plus the block at hand, however large the object says it
// is. A block beyond
// that waits in its block buffer, within the sender's share of blocks and
// bytes, until the data before it is in, so that a packet for the end of
// an announced 256 MiB object does not make the receiver allocate 256 MiB.
// With all (the object is complete) everything is stored.
func (r *Receiver) storeMemory(s *remote, o *rxObject, all bool) error {
	w := r.waiting[:0]
	for _, bb := range o.blocks {
		r.work++
		if bb.complete {
			w = append(w, bb)
		}
	}
	// In block order, each block stored raises the limit for the next; the
	// first that does not fit ends the pass.
	slices.SortFunc(w, func(a, b *blockBuf) int { return cmp.Compare(a.block, b.block) })
	r.work += uint64(len(w)) * uint64(bits.Len(uint(len(w)))+1)
	var err error
	for _, bb := range w {
		var ok bool
		if ok, err = r.storeBlock(s, o, bb, all); !ok {
			break
		}
	}
	clear(w)
	r.waiting = w[:0]
	return err
}

// storeBlock copies a complete block into o's data if the data may grow to
// hold it, and reports whether it did.
func (r *Receiver) storeBlock(s *remote, o *rxObject, bb *blockBuf, all bool) (bool, error) {
	b := int(bb.block)
	k := o.part.BlockLen(b)
	start, _ := o.part.Segment(b, 0)
	lastOff, lastN := o.part.Segment(b, k-1)
	end := lastOff + uint64(lastN)
	if end > uint64(cap(o.data)) {
		// Plus the block itself, which is held already: a block may be
		// larger than minDataCap (64 symbols of 1,400 bytes are), and
		// without it the first block would never fit, leaving every block
		// of the object in its buffer until the last packet came.
		limit := max(2*o.stored, minDataCap) + (end - start)
		if end > limit && !all {
			return false, nil
		}
		// Double, as append does, so copies cost O(1) per byte.
		c := min(max(end, min(2*uint64(cap(o.data)), limit)), o.size)
		grow := int64(c) - int64(cap(o.data))
		if !r.admit(s, grow, 0) {
			return false, ErrBufferLimit
		}
		d := make([]byte, len(o.data), c)
		copy(d, o.data)
		r.charge(s, o, grow)
		o.data = d
	}
	if end > uint64(len(o.data)) {
		o.data = o.data[:end]
	}
	off := start
	for i := 0; i < k; i++ {
		r.work++
		_, n := o.part.Segment(b, i)
		copy(o.data[off:], bb.full(i, n))
		off += uint64(n)
	}
	o.stored += off - start
	o.dropBlock(bb)
	r.releaseBlock(s, o, bb)
	return true, nil
}

// decodeBlock rebuilds the missing source symbols of a block that has k
// symbols in all.
func (r *Receiver) decodeBlock(s *remote, o *rxObject, bb *blockBuf, k int) error {
	r.attach(bb)
	missing := 0
	for i := 0; i < k; i++ {
		r.work++
		if len(bb.syms[i]) == 0 {
			missing++
		}
	}
	if missing > 0 {
		if o.codec == nil && o.parity > 0 {
			// Got only now, when parity is needed: building a code's matrix
			// costs far more than a packet, so it is paid for by the k
			// symbols of a block rather than by one announcement.
			c, err := fec.RS8(o.maxK, o.parity)
			if err != nil {
				return err
			}
			o.codec = c
		}
		if o.codec == nil {
			return fmt.Errorf("receiver: object %d block %d: %d symbols missing and no FEC", o.id, bb.block, missing)
		}
		r.work += uint64(o.maxK)
		for i, sym := range bb.syms {
			if len(sym) > 0 && len(sym) < o.symLen {
				bb.syms[i] = bb.full(i, o.symLen) // the code works on whole symbols
			}
		}
		for i := 0; i < k; i++ {
			if len(bb.syms[i]) == 0 {
				bb.syms[i] = bb.room(i, o.symLen)[:0] // room to rebuild it in
				bb.charged += int64(o.symLen)
				r.charge(s, o, int64(o.symLen))
			}
		}
		if err := o.codec.Reconstruct(bb.syms, k); err != nil {
			return err
		}
		r.stats.FECRecovered += uint64(missing)
	}
	return nil
}

func (r *Receiver) releaseBlock(s *remote, o *rxObject, bb *blockBuf) {
	r.charge(s, o, -bb.charged)
	s.blocks--
	r.blocks--
	r.bufs.put(bb, r.cfg.SharedPayloads, r.cfg.Arena != nil)
}

// keepPos keeps symbol sym of a detached block by its position in
// Config.Arena, and reports whether p lies there.
func (r *Receiver) keepPos(bb *blockBuf, sym int, p []byte) bool {
	pos, ok := r.cfg.Arena.Find(p)
	if !ok || pos == math.MaxUint32 {
		return false
	}
	bb.pos[sym] = pos + 1
	return true
}

// attach gives a detached block its symbol table, with the symbols kept by
// position resolved to the arena's bytes, for the code that works on
// slices: decoding, delivery, and taking a symbol that must be copied.
func (r *Receiver) attach(bb *blockBuf) {
	if !bb.detached {
		return
	}
	bb.detached = false
	bb.syms, bb.refs = r.bufs.table(len(bb.pos))
	for i, p := range bb.pos {
		r.work++
		if p != 0 {
			bb.syms[i], bb.refs[i] = r.cfg.Arena.At(p-1, bb.symLen), true
		}
	}
}

// charge accounts n bytes (negative to give back) to o, its sender and the
// receiver.
func (r *Receiver) charge(s *remote, o *rxObject, n int64) {
	o.held += n
	s.held += n
	r.buffer += n
}

// admit reports whether sender s may take need more bytes and blocks more
// block buffers. Within the global limits anything goes: a lone sender may
// use all of them. Beyond them each sender holding anything is owed an
// equal share, and a sender within its share gets room by aborting objects
// (ErrBufferLimit) of the sender furthest over its own; a sender over its
// share is refused. So one sender, or one forged source id, can take the
// whole buffer only while nobody else wants it.
func (r *Receiver) admit(s *remote, need int64, blocks int) bool {
	for {
		r.work++
		overBytes := r.buffer+r.appBytes+need > r.cfg.MaxBufferBytes
		overBlocks := blocks > 0 && r.blocks+blocks > r.cfg.MaxBlocks
		if !overBytes && !overBlocks {
			return true
		}
		active := 1 // s
		for _, x := range r.remotes {
			r.work++
			if x != s && (x.held > 0 || x.blocks > 0) {
				active++
			}
		}
		fair := r.cfg.MaxBufferBytes / int64(active)
		if !overBytes {
			fair = int64(r.cfg.MaxBlocks / active)
		}
		if (overBytes && s.held+need > fair) || (overBlocks && int64(s.blocks+blocks) > int64(r.cfg.MaxBlocks/active)) {
			r.stats.QuotaRefused++
			return false
		}
		// The victim: a sender over its share of what is short (there is
		// one, since s is within its share and the total is over), the
		// largest, among those that never delivered anything if any is.
		var v *remote
		for _, x := range r.remotes {
			r.work++
			if x == s || len(x.objs) == 0 || usage(x, overBytes) <= fair {
				continue
			}
			if v == nil || (v.delivered && !x.delivered) ||
				(v.delivered == x.delivered && usage(x, overBytes) > usage(v, overBytes)) {
				v = x
			}
		}
		if v == nil {
			r.stats.QuotaRefused++
			return false
		}
		vo := v.objs[0]
		for _, o := range v.objs {
			r.work++
			if (overBytes && o.held > vo.held) || (!overBytes && len(o.blocks) > len(vo.blocks)) {
				vo = o
			}
		}
		r.stats.Preempted++
		r.finishObject(v, vo, ErrBufferLimit)
	}
}

// usage is what a sender holds of the resource admit is short of.
func usage(s *remote, bytes bool) int64 {
	if bytes {
		return s.held
	}
	return int64(s.blocks)
}

// complete delivers a finished object.
func (r *Receiver) complete(s *remote, o *rxObject) {
	r.stats.ObjectsDone++
	s.delivered = true
	if r.cfg.ConfirmHeld && s.unheldBits[o.id>>6]&(1<<(o.id&63)) == 0 {
		if s.unheld == 0 || serialLess(o.id, s.unheldLow) {
			s.unheldLow = o.id
		}
		s.unheldBits[o.id>>6] |= 1 << (o.id & 63)
		s.unheld++
	}
	data := o.data
	if data == nil && o.sink == nil && o.stream == nil {
		data = []byte{}
	}
	r.emit(Event{Kind: EventCompleted, Sender: s.id, Object: o.id, File: o.file, Size: o.size, Info: o.info, Data: data})
	// The event hands the data over: it leaves the buffer.
	r.release(s, o)
	r.removeObject(s, o, true)
}

// release gives back every buffer o holds: block buffers (a finished
// stream's last block among them), its data and its bitmap.
func (r *Receiver) release(s *remote, o *rxObject) {
	o.last = nil
	for len(o.blocks) > 0 {
		r.work++
		bb := o.blocks[len(o.blocks)-1]
		o.blocks = o.blocks[:len(o.blocks)-1]
		r.releaseBlock(s, o, bb)
	}
	r.charge(s, o, -o.held)
	o.data = nil
}

// finishObject aborts o with err (o may not be in s.objs yet).
func (r *Receiver) finishObject(s *remote, o *rxObject, err error) {
	r.stats.ObjectsAborted++
	s.markLost(o.id)
	r.emit(Event{Kind: EventAborted, Sender: s.id, Object: o.id, File: o.file, Size: o.size, Info: o.info, Err: err})
	r.release(s, o)
	r.removeObject(s, o, false)
}

// markLost records that object id of s ended without being delivered
// intact, so that no watermark at or past it is acknowledged.
func (s *remote) markLost(id uint16) {
	if !s.lostValid || serialLess(id, s.lostID) {
		s.lostID, s.lostValid = id, true
	}
}

func (r *Receiver) removeObject(s *remote, o *rxObject, intact bool) {
	s.touch() // also when another sender's packet took o's buffers (admit)
	o.track.Release()
	s.setFinished(o.id, true)
	if !intact {
		s.markLost(o.id)
	}
	for i, x := range s.objs {
		r.work++
		if x == o {
			s.objs = append(s.objs[:i], s.objs[i+1:]...)
			break
		}
	}
	// Move base past finished ids so the finished bitmap stays small.
	for s.base != s.maxObj && s.isFinished(s.base) && (len(s.objs) == 0 || serialLess(s.base, s.objs[0].id)) {
		r.work++
		s.setFinished(s.base, false)
		s.base++
	}
}

func (r *Receiver) abortAll(s *remote, err error) {
	for len(s.objs) > 0 {
		r.finishObject(s, s.objs[0], err)
	}
}
