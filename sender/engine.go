package sender

import (
	"io"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// HandlePacket processes one packet received at now from a receiver
// (NORM_NACK, NORM_ACK). Packets meant for other senders or instances, and
// sender messages, are ignored. A malformed packet returns an error and is
// counted; the engine's state is unchanged.
func (s *Sender) HandlePacket(now time.Time, from netip.AddrPort, b []byte) error {
	return s.HandlePacketAt(now, now, from, b)
}

// HandlePacketAt is HandlePacket for a packet that reached the host at
// arrived (a kernel receive timestamp) and is processed only at now: round
// trips are measured to arrived, so that the time feedback waited in this
// host's socket does not count as network delay. An arrived after now, or
// zero, counts as now.
func (s *Sender) HandlePacketAt(now, arrived time.Time, from netip.AddrPort, b []byte) error {
	if arrived.IsZero() || arrived.After(now) {
		arrived = now
	}
	s.now = now
	h, _, err := framing.Peek(b)
	if err != nil {
		s.stats.BadPackets++
		return err
	}
	switch h.Type {
	case framing.TypeNack:
		n := &s.rx.Nack
		if err := n.Unmarshal(b); err != nil {
			s.stats.BadPackets++
			return err
		}
		if n.ServerID != s.cfg.NodeID || n.InstanceID != s.inst {
			return nil
		}
		s.stats.NacksReceived++
		s.flowHeard(n.SourceID)
		s.heard(arrived, n.SourceID, n.GRTTResponse)
		s.ccFeedback(now, arrived, n.SourceID, n.GRTTResponse, n.Ext)
		s.paceFeedback(now, n.SourceID, n.Ext)
		if s.wm != nil && s.wm.pending[n.SourceID] {
			// A node still repairing is alive, just not done: its requests
			// restart the count, so a watermark fails only for nodes that
			// stay silent, not for a slow repair under heavy loss.
			s.wm.tries = 0
		}
		content, bulk := s.budgetNACK(now, n.SourceID, n.Content, n.FECM)
		if len(content) == 0 {
			return nil
		}
		if s.aggEnd.IsZero() {
			base := s.nextID
			if len(s.objs) > 0 {
				base = s.objs[0].id
			}
			s.agg.Reset(base)
			s.aggBase = base
			s.aggStart = now
			s.aggEnd = now.Add(nack.AggregationWindow(s.grtt, float64(s.backoff)))
		}
		agg := s.agg
		if bulk {
			if !s.bulkUsed {
				s.bulkAgg.Reset(s.aggBase)
				s.bulkUsed = true
			}
			agg = s.bulkAgg
		}
		// Malformed requests inside a well-formed NACK are skipped by the
		// aggregator; the rest still count.
		if agg.Add(content, n.FECM) != nil {
			s.stats.BadRequests++
		}
	case framing.TypeAck:
		a := &s.rx.Ack
		if err := a.Unmarshal(b); err != nil {
			s.stats.BadPackets++
			return err
		}
		if a.ServerID != s.cfg.NodeID || a.InstanceID != s.inst {
			return nil
		}
		s.stats.AcksReceived++
		s.flowHeard(a.SourceID)
		if a.AckType == framing.AckFlush {
			if w, err := a.Watermark(0); err == nil {
				s.flowAck(a.SourceID, w)
				s.objAck(a.SourceID, w)
			}
		}
		s.heard(arrived, a.SourceID, a.GRTTResponse)
		s.ccFeedback(now, arrived, a.SourceID, a.GRTTResponse, a.Ext)
		s.paceFeedback(now, a.SourceID, a.Ext)
		if a.AckType == framing.AckFlush && s.wm != nil {
			if w, err := a.Watermark(0); err == nil && w == s.wm.ref && s.wm.pending[a.SourceID] {
				delete(s.wm.pending, a.SourceID)
				s.wm.acked++
				s.emit(Event{Kind: EventAck, Object: s.wm.obj, Node: a.SourceID})
				if len(s.wm.pending) == 0 {
					s.emit(Event{Kind: EventWatermark, Object: s.wm.obj})
					s.confirmed(s.wm.obj)
					s.wm = nil
				}
			}
		}
	}
	return nil
}

// heard updates the GRTT estimate from a receiver's echo of a probe, counts
// the receiver for the timers that follow the group (see adaptTimers) and,
// with TrackReceivers, adds it to the acking nodes.
func (s *Sender) heard(now time.Time, node uint32, resp framing.Timestamp) {
	s.group.Add(now, node)
	s.adaptTimers(now)
	if s.cfg.TrackReceivers {
		s.addNode(node)
	}
	if resp == (framing.Timestamp{}) {
		return // the receiver has not seen a probe yet
	}
	rtt := s.since(now, resp)
	if rtt < 0 || rtt > 2*s.cfg.GRTTMax {
		return
	}
	if rtt > s.grttPeak {
		s.grttPeak = rtt
	}
	if !s.grttSet {
		// The first measurement replaces the configured guess at once,
		// not at the next probe a probe interval (a second) later: every
		// timer of the session, the receivers' included, runs on the
		// guess until then, and a flow-controlled stream's writer waits
		// on them. A later, larger sample still raises it at once, and
		// the next probe takes the largest heard (see sendProbe).
		s.grtt, s.grttSet, s.grttShrunk = rtt, true, now
		s.clampGRTT()
		if next := s.lastProbe.Add(s.probeInterval()); next.Before(s.nextProbe) {
			s.nextProbe = next
		}
		return
	}
	if rtt > s.grtt {
		s.grtt = rtt
		s.clampGRTT()
	}
}

// ccFeedback passes a receiver's EXT_CC, if any, to congestion control;
// the feedback reached the host at arrived.
func (s *Sender) ccFeedback(now, arrived time.Time, node uint32, resp framing.Timestamp, ext framing.Extensions) {
	if s.cc == nil {
		return
	}
	cc, ok := ext.CC()
	if !ok {
		return
	}
	s.stats.CCFeedback++
	f := congestion.Feedback{
		Node: node, Rate: framing.UnquantizeRate(cc.Rate), Loss: framing.UnquantizeLoss32(cc.Loss32()),
		Start: cc.Flags&framing.CCFlagStart != 0, HasRTT: cc.Flags&framing.CCFlagRTT != 0,
	}
	if resp != (framing.Timestamp{}) {
		if rtt := s.since(arrived, resp); rtt > 0 && rtt <= 2*s.cfg.GRTTMax {
			f.RTT = rtt
		}
	}
	if s.cc.Feedback(now, f) {
		s.emit(Event{Kind: EventSlowReceiver, Node: node})
	}
	s.followCC()
	// The first reports shorten the probe interval from the configured
	// GRTT guess to the CLR's round trip: probe on that schedule from now
	// on, not after the long wait the guess set.
	if next := s.lastProbe.Add(s.probeInterval()); next.Before(s.nextProbe) {
		s.nextProbe = next
	}
}

// followCC sets the pacer to the congestion controller's rate.
func (s *Sender) followCC() {
	if r := s.cc.Rate(); r != s.baseRate {
		s.SetRate(r)
	}
}

// active reports whether the sender has anything in flight worth probing
// and flushing for.
func (s *Sender) active() bool {
	if s.rq.len() > 0 || s.bq.len() > 0 || !s.aggEnd.IsZero() || s.wm != nil || s.squelch {
		return true
	}
	s.advanceUnsent()
	if s.unsentFrom < len(s.objs) {
		return true
	}
	return len(s.objs) > 0 && s.flushCount < s.cfg.RobustFactor
}

// Poll appends to out every packet due at now and returns when it wants to
// be called again (it may be called earlier, for instance after
// HandlePacket).
func (s *Sender) Poll(now time.Time, out *framing.Outbox) time.Time {
	s.now = now
	s.adaptTimers(now)
	if !s.aggEnd.IsZero() {
		// The window was sized with the GRTT of its first NACK; when the
		// estimate has shrunk since, receivers time their hold-off with the
		// new one, and repairs must not arrive after it ended.
		if end := s.aggStart.Add(nack.AggregationWindow(s.grtt, float64(s.backoff))); end.Before(s.aggEnd) {
			s.aggEnd = end
		}
	}
	if !s.aggEnd.IsZero() && !now.Before(s.aggEnd) {
		s.planRepairs(now)
	}
	s.paceGrow(now)
	s.flowDue = s.flowPoll(now)
	s.closeTimedBlocks(now)
	s.objDue = s.objFlowPoll(now)
	if s.active() && !now.Before(s.nextProbe) {
		// Probes are small and time-critical: they go at once and their
		// bytes are charged to the pacer.
		bytes := s.stats.Bytes
		s.sendProbe(now, out)
		s.pacer.Take(now, int(s.stats.Bytes-bytes))
	}
	for s.sendNext(now, out) {
	}
	return s.nextWake(now)
}

func (s *Sender) probeInterval() time.Duration {
	if s.cc != nil {
		// Congestion control reacts once per probe: probe every round
		// trip, or slow start could not double per round trip.
		return min(s.cc.ProbeInterval(s.grtt), s.cfg.ProbeInterval)
	}
	iv := 2 * s.grtt
	if iv > s.cfg.ProbeInterval {
		iv = s.cfg.ProbeInterval
	}
	// Each probe round draws a few answers from the group; more often
	// than every 100 ms would buy little accuracy for that feedback.
	if iv < 100*time.Millisecond {
		iv = 100 * time.Millisecond
	}
	return iv
}

func (s *Sender) sendProbe(now time.Time, out *framing.Outbox) {
	// Shrink toward the largest RTT heard since the last probe, halving the
	// gap per probe interval (RFC 5740 §5.1.3: decrease gradually); an
	// increase was applied at once when it was heard.
	// The first measurement replaces the configured guess outright: the
	// guess is only a guess, and a measured estimate is what every timer
	// of the session should run on.
	//
	// Decreases are paced in time, not per probe: under congestion control
	// probes go every round trip, and a queue that drained for a moment
	// would otherwise pull the estimate down to the empty-queue RTT within
	// a few probes while the real one swings back up with the next burst;
	// receivers would then NACK again before queued repairs could arrive.
	switch {
	case s.grttPeak > 0 && !s.grttSet:
		s.grtt, s.grttSet, s.grttShrunk = s.grttPeak, true, now
		s.clampGRTT()
		s.grttPeak = 0
	case now.Sub(s.grttShrunk) >= max(2*s.grtt, 100*time.Millisecond):
		if s.grttPeak > 0 && s.grttPeak < s.grtt {
			s.grtt -= (s.grtt - s.grttPeak) / 2
			s.clampGRTT()
		}
		s.grttShrunk = now
		s.grttPeak = 0
	}
	var nodes []byte
	if s.cc != nil {
		s.cc.Probe(now, s.grtt)
		s.followCC()
		nodes = s.ccNodeList()
	}
	// An empty EXT_PACE asks Shoal receivers to report when they fall
	// behind (others skip it), and, with TrackReceivers, to make
	// themselves known.
	marker := framing.Pace{}
	if s.cfg.TrackReceivers || (s.flowStream() != nil && !s.cfg.StreamPartial) {
		marker.Flags = framing.PaceTrack
	}
	c := &s.cmd
	*c = framing.Cmd{
		Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(), Flavor: framing.FlavorCC,
		CCSequence: s.ccSeq, SendTime: s.timestamp(now),
		Ext:     framing.AppendPace(framing.AppendRate(c.Ext[:0], framing.QuantizeRate(s.pacer.Rate())), marker),
		Content: nodes,
	}
	s.ccSeq++
	s.commit(out, c)
	s.stats.Probes++
	if s.lastProbe.IsZero() {
		s.firstProbe = now
	}
	s.lastProbe = now
	s.nextProbe = now.Add(s.probeInterval())
}

// ccNodeList encodes the CLR and candidates for a probe.
func (s *Sender) ccNodeList() []byte {
	s.ccNodes = s.cc.Nodes(s.ccNodes[:0])
	b := s.ccContent[:0]
	for _, n := range s.ccNodes {
		f := framing.CCFlagPLR
		if n.CLR {
			f = framing.CCFlagCLR
		}
		if n.RTT > 0 {
			f |= framing.CCFlagRTT
		}
		if s.cc.SlowStart() {
			f |= framing.CCFlagStart
		}
		b = framing.AppendCCNode(b, framing.CCNode{NodeID: n.ID, Flags: f,
			RTT: framing.QuantizeRTT(n.RTT), Rate: framing.QuantizeRate(n.Rate)})
	}
	s.ccContent = b
	return b
}

type appender interface {
	Append([]byte) ([]byte, error)
}

func (s *Sender) commit(out *framing.Outbox, m appender) {
	b, err := m.Append(out.Buf())
	if err != nil {
		// Only values the engine built itself reach here; an error is a
		// bug, and dropping the packet is the safe reaction.
		return
	}
	s.stats.Packets++
	s.stats.Bytes += uint64(len(b) - len(out.Buf()) + s.cfg.PacketOverhead)
	out.Commit(b, netip.AddrPort{})
}

// sendNext sends the most urgent packet the pacer allows and reports
// whether it sent one: squelch, then repairs, then watermark requests, then
// new data, then end-of-transmission flushes, then bulk repairs; watermark
// requests go ahead of a backlog of repairs.
func (s *Sender) sendNext(now time.Time, out *framing.Outbox) bool {
	if s.pacer.Next(now, s.cfg.SegmentSize+48+s.cfg.PacketOverhead).After(now) {
		return false
	}
	before := out.Len()
	bytes := s.stats.Bytes
	switch {
	case len(s.cmds) > 0:
		c := &s.cmd
		*c = framing.Cmd{Header: s.header(framing.TypeCmd), SenderFields: s.senderFields(),
			Flavor: framing.FlavorApplication, Content: s.cmds[0]}
		s.commit(out, c)
		s.cmds[0] = nil
		s.cmds = s.cmds[1:]
	case s.squelch:
		s.sendSquelch(out)
	case s.repairBacklog() && s.flowDue:
		// Under a backlog of repairs (a storm of NACKs, which anyone on
		// the group can send) the requests for acknowledgement still go,
		// at their own pace: a packet now and then, not starved for as
		// long as the storm lasts.
		s.flowDue = false
		s.sendFlowWatermark(now, out)
	case s.repairBacklog() && s.wm != nil && s.wmDue(now):
		s.sendWatermarkFlush(now, out)
	case s.rq.len() > 0 && !s.yieldToData() && s.sendRepair(&s.rq, out):
		s.repairRun++
	case s.flowDue:
		s.flowDue = false
		s.sendFlowWatermark(now, out)
	case s.objDue:
		s.objDue = false
		s.sendObjWatermark(now, out)
	case s.wm != nil && s.wmDue(now):
		s.sendWatermarkFlush(now, out)
	case s.current() != nil:
		if s.rq.len() > 0 {
			s.dataRun++
			s.stats.RepairYields++
		}
		s.sendNew(s.current(), out)
	case s.flushDue(now):
		s.sendFlush(now, out)
	case s.bq.len() > 0 && s.sendRepair(&s.bq, out):
		s.stats.RepairsBulk++
	default:
		if s.cc != nil {
			s.cc.Idle()
		}
		return false
	}
	s.pacer.Take(now, int(s.stats.Bytes-bytes))
	if s.cc != nil {
		s.cc.Sent(int(s.stats.Bytes - bytes))
	}
	// A step may legitimately send nothing (a file read failed); report
	// progress anyway so the caller tries the next candidate.
	if s.rq.len() == 0 {
		s.repairRun, s.dataRun = 0, 0
	}
	return out.Len() > before || s.current() != nil || s.rq.len() > 0
}

// yieldToData reports whether new data goes ahead of the queued repairs
// this time. Repairs outrank new data (RFC 5740 §5.4), but not forever:
// once a backlog of repairs has sent a block's worth of packets (one block
// of source and parity symbols, more than an ordinary repair cycle asks
// for), new data gets every other packet until the queue empties. A storm
// of NACKs, from one node or many, can then take at most half the rate
// from new data, and a transfer under it lasts at most about twice as long
// as a clean one; ordinary repairs are not delayed at all.
func (s *Sender) yieldToData() bool {
	lead := s.cfg.BlockLen + s.cfg.Parity
	return s.repairRun >= lead && s.dataRun <= s.repairRun-lead && s.current() != nil
}

// repairBacklog reports whether queued repairs have sent a block's worth
// of packets without the queue emptying: more than an ordinary repair
// cycle asks for (see yieldToData).
func (s *Sender) repairBacklog() bool {
	return s.rq.len() > 0 && s.repairRun >= s.cfg.BlockLen+s.cfg.Parity
}

// current returns the oldest object whose new data is not all sent.
func (s *Sender) current() *txObject {
	s.advanceUnsent()
	for _, o := range s.objs[s.unsentFrom:] {
		if o.sent || o.failed != nil {
			continue
		}
		// An open stream with nothing to send lets later objects go.
		if o.stream == nil || !o.infoSent || streamReady(o) {
			return o
		}
	}
	return nil
}

func (s *Sender) flags(o *txObject) framing.ObjectFlags {
	var f framing.ObjectFlags
	switch o.kind {
	case KindFile:
		f |= framing.FlagFile
	case KindStream:
		f |= framing.FlagStream
	}
	if len(o.info) > 0 {
		f |= framing.FlagInfo
	}
	return f
}

func (s *Sender) sendInfo(o *txObject, out *framing.Outbox) {
	ext := o.fti
	if o.infoX != nil {
		ext = o.infoX
	}
	m := framing.Info{
		Header: s.header(framing.TypeInfo), SenderFields: s.senderFields(),
		Flags: s.flags(o), FECID: framing.FECRS8, ObjectID: o.id, Ext: ext, Content: o.info,
	}
	s.commit(out, &m)
	o.lastTx = s.now
	s.stats.InfoSent++
}

// sendNew sends the next new packet of o: its NORM_INFO, a source symbol
// or an auto parity symbol.
func (s *Sender) sendNew(o *txObject, out *framing.Outbox) {
	if o.stream != nil {
		s.sendNewStream(o, out)
		return
	}
	if !o.infoSent {
		s.sendInfo(o, out)
		o.infoSent = true
		return
	}
	if o.blocks == 0 {
		// An empty object is announced by one NORM_DATA with no payload so
		// receivers learn its FTI even without NORM_INFO.
		s.sendSymbol(o, 0, 0, out)
		s.stats.DataSymbols++
		s.finishNew(o)
		return
	}
	k := o.part.BlockLen(o.nextBlock)
	sym := o.nextSym
	if s.sendSymbol(o, o.nextBlock, sym, out) {
		if sym < k {
			s.stats.DataSymbols++
		} else {
			s.stats.AutoParity++
			o.parityUsed[o.nextBlock]++
		}
	}
	o.nextSym++
	if o.nextSym >= k+s.cfg.AutoParity {
		o.nextSym = 0
		o.nextBlock++
		if o.nextBlock >= o.blocks {
			s.finishNew(o)
		} else if len(o.info) > 0 && s.cfg.AutoParity > 0 && o.nextBlock%infoRepeatBlocks == 0 {
			// Proactive parity usually means receivers that cannot NACK
			// (one-way links): give them more than one chance at the
			// NORM_INFO, which holds the object's name.
			o.infoSent = false
		}
	}
}

// infoRepeatBlocks is how often, in blocks, NORM_INFO is sent again when
// auto parity is on: about once per megabyte at the default sizes.
const infoRepeatBlocks = 16

func (s *Sender) finishNew(o *txObject) {
	o.sent = true
	s.flushCount = 0
	s.emit(Event{Kind: EventSent, Object: o.id})
}

// sendSymbol sends encoding symbol sym of block b of o (source if sym < k′,
// else parity sym−k′) and reports whether it could.
func (s *Sender) sendSymbol(o *txObject, b, sym int, out *framing.Outbox) bool {
	payload, ok := s.symbol(o, b, sym)
	if !ok {
		return false
	}
	o.lastTx = s.now
	if st := o.stream; st != nil {
		st.lastTx[b%st.ringBlocks] = s.now
	}
	d := &s.scratch
	*d = framing.Data{
		Header: s.header(framing.TypeData), SenderFields: s.senderFields(), Flags: s.flags(o),
		FECID: framing.FECRS8, ObjectID: o.id,
		PayloadID: framing.PayloadID{Block: uint32(b), Symbol: uint16(sym)},
		Ext:       o.fti, Payload: payload,
	}
	s.commit(out, d)
	return true
}

// symbol returns the payload of symbol sym of block b. Source symbols of
// data objects are slices of the object (no copy); file segments are read
// into a scratch buffer; parity comes from the one-block parity cache.
func (s *Sender) symbol(o *txObject, b, sym int) ([]byte, bool) {
	if o.blocks == 0 {
		return nil, true
	}
	k := o.blockLen(b)
	if o.stream != nil && (sym < o.stream.k || k < o.stream.k) {
		// Source segments, and no parity for a block still being written.
		return s.streamSymbol(o, b, sym)
	}
	if sym < k {
		off, n := o.part.Segment(b, sym)
		if o.kind == KindData {
			return o.data[off : off+uint64(n)], true
		}
		blk, first, ok := s.fileBlock(o, b)
		if !ok {
			return nil, false
		}
		return blk[off-first : off-first+uint64(n)], true
	}
	j := sym - k
	if s.codec == nil || j >= s.cfg.Parity {
		return nil, false
	}
	if !s.pcValid || s.pcObj != o || s.pcBlock != b {
		if !s.encodeBlock(o, b) {
			return nil, false
		}
	}
	if o.stream != nil {
		return s.parBufs[j], true
	}
	return s.parBufs[j][:s.cfg.SegmentSize], true
}

// fileBlock returns block b of file object o and the file offset it
// starts at. The whole block is read at once and kept until another block
// is needed: a file costs one read per block, not one per packet.
func (s *Sender) fileBlock(o *txObject, b int) ([]byte, uint64, bool) {
	first, _ := o.part.Segment(b, 0)
	if s.fbValid && s.fbObj == o && s.fbBlock == b {
		return s.fileBuf, first, true
	}
	lastOff, lastN := o.part.Segment(b, o.part.BlockLen(b)-1)
	buf := s.fileBuf[:lastOff+uint64(lastN)-first]
	if err := readFull(o.file, buf, first); err != nil {
		s.fbValid = false
		s.fail(o, err)
		return nil, 0, false
	}
	s.fileBuf, s.fbObj, s.fbBlock, s.fbValid = buf, o, b, true
	return buf, first, true
}

// encodeBlock fills the parity cache with all parity of block b.
func (s *Sender) encodeBlock(o *txObject, b int) bool {
	if o.stream != nil {
		return s.encodeStreamBlock(o, b)
	}
	k := o.part.BlockLen(b)
	src, first := o.data, uint64(0)
	if o.kind != KindData {
		var ok bool
		if src, first, ok = s.fileBlock(o, b); !ok {
			return false
		}
	}
	for i := range k {
		off, n := o.part.Segment(b, i)
		dst := s.srcBufs[i]
		copy(dst, src[off-first:off-first+uint64(n)])
		clear(dst[n:s.cfg.SegmentSize]) // the short last segment is coded zero-padded
	}
	if err := s.encode(k, s.cfg.SegmentSize); err != nil {
		s.fail(o, err)
		return false
	}
	s.pcObj, s.pcBlock, s.pcValid = o, b, true
	return true
}

// encode computes the parity cache from the first k source buffers, using
// symbols of size bytes.
func (s *Sender) encode(k, size int) error {
	var src, par [255][]byte
	for i := range k {
		src[i] = s.srcBufs[i][:size]
	}
	for j := range s.parBufs {
		par[j] = s.parBufs[j][:size]
	}
	return s.codec.Encode(src[:k], par[:len(s.parBufs)])
}

// encodeStreamBlock fills the parity cache for a full block of a stream:
// symbols are the stream payloads (header and data), zero-padded to
// segment size + 8 bytes, as the reference codes them.
func (s *Sender) encodeStreamBlock(o *txObject, b int) bool {
	st := o.stream
	if streamBlockLen(st, b) < st.k {
		return false
	}
	size := s.cfg.SegmentSize + framing.StreamHeaderLen
	for i := range st.k {
		p, _ := s.streamSymbol(o, b, i)
		n := copy(s.srcBufs[i][:size], p)
		clear(s.srcBufs[i][n:size])
	}
	if err := s.encode(st.k, size); err != nil {
		s.fail(o, err)
		return false
	}
	s.pcObj, s.pcBlock, s.pcValid = o, b, true
	return true
}

func (s *Sender) fail(o *txObject, err error) {
	if o.failed != nil {
		return
	}
	o.failed = err
	o.sent = true
	s.emit(Event{Kind: EventObjectError, Object: o.id, Err: err})
}

// readFull reads len(buf) bytes at off; io.ReaderAt may report io.EOF along
// with a full read of the last bytes of a file, which is not an error here.
func readFull(r io.ReaderAt, buf []byte, off uint64) error {
	n, err := r.ReadAt(buf, int64(off))
	if n == len(buf) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}
