package receiver

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

const (
	senderID = 0x0a000001
	myID     = 0x0b000001
)

var (
	t0   = time.Unix(1000, 0)
	from = netip.MustParseAddrPort("10.0.0.1:5000")
)

// pkt builds sender messages by hand, so each test says exactly what
// arrives.
type pkt struct {
	seq  uint16
	inst uint16
}

func (p *pkt) fields() framing.SenderFields {
	return framing.SenderFields{InstanceID: p.inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)}
}

func (p *pkt) hdr(t framing.Type) framing.Header {
	p.seq++
	return framing.Header{Type: t, Sequence: p.seq, SourceID: senderID}
}

// data returns NORM_DATA for symbol sym of block blk of a data object of
// size bytes in segments of 100 bytes, blocks of 4, 2 parity.
func (p *pkt) data(t *testing.T, obj uint16, size uint64, blk uint32, sym uint16, payload []byte) []byte {
	t.Helper()
	ext, err := framing.AppendFTI(nil, framing.FECRS8, framing.FTI{TransferLength: size, SymbolLength: 100, MaxBlockLen: 4, Parity: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := framing.Data{Header: p.hdr(framing.TypeData), SenderFields: p.fields(), FECID: framing.FECRS8, ObjectID: obj,
		PayloadID: framing.PayloadID{Block: blk, Symbol: sym}, Ext: ext, Payload: payload}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *pkt) cmd(t *testing.T, c framing.Cmd) []byte {
	t.Helper()
	c.Header, c.SenderFields = p.hdr(framing.TypeCmd), p.fields()
	b, err := c.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRx(t *testing.T, cfg Config) *Receiver {
	t.Helper()
	if cfg.NodeID == 0 {
		cfg.NodeID = myID
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func handle(t *testing.T, r *Receiver, now time.Time, b []byte) {
	t.Helper()
	if err := r.HandlePacket(now, from, b); err != nil {
		t.Fatal(err)
	}
}

// poll runs the receiver until until and returns every message it sent.
func poll(r *Receiver, now, until time.Time) []framing.Message {
	var out framing.Outbox
	var msgs []framing.Message
	for !now.After(until) {
		out.Reset()
		next := r.Poll(now, &out)
		for i := range out.Len() {
			b, _ := out.Packet(i)
			var m framing.Message
			if m.Unmarshal(append([]byte(nil), b...)) == nil {
				msgs = append(msgs, m)
			}
		}
		if !next.After(now) {
			next = now.Add(time.Microsecond)
		}
		now = next
	}
	return msgs
}

func TestFlushWatermarkAck(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 7}
	payload := []byte("hello")
	handle(t, r, t0, p.data(t, 3, 5, 0, 0, payload))
	var done bool
	for _, e := range r.Events() {
		if e.Kind == EventCompleted && string(e.Data) == "hello" {
			done = true
		}
	}
	if !done {
		t.Fatal("one-segment object not completed")
	}
	flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 3},
		Content: framing.AppendNodeID(framing.AppendNodeID(nil, 42), myID)}
	handle(t, r, t0.Add(time.Millisecond), p.cmd(t, flush))
	msgs := poll(r, t0.Add(time.Millisecond), t0.Add(100*time.Millisecond))
	var acks int
	for _, m := range msgs {
		if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
			w, err := m.Ack.Watermark(0)
			if err != nil || w != flush.Ref || m.Ack.ServerID != senderID || m.Ack.InstanceID != 7 {
				t.Fatalf("bad ACK(FLUSH): %+v %v", m.Ack, err)
			}
			acks++
		}
	}
	if acks != 1 {
		t.Fatalf("%d ACK(FLUSH) sent, want 1 (messages %v)", acks, msgs)
	}

}

func events(r *Receiver) []Event { return append([]Event(nil), r.Events()...) }

func find(ev []Event, k EventKind) []Event {
	var out []Event
	for _, e := range ev {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func seg(n int) []byte { return make([]byte, n) }

// TestSenderLimit: with MaxSenders tracked and all of them heard at this
// instant, a new sender is dropped, with one event however many packets it
// sends.
func TestSenderLimit(t *testing.T) {
	r := newRx(t, Config{MaxSenders: 1})
	a, b := &pkt{inst: 1}, &pkt{inst: 2}
	handle(t, r, t0, a.data(t, 1, 100, 0, 0, seg(100))) // one segment: delivered
	for range 3 {
		m := b.data(t, 1, 1000, 0, 0, seg(100))
		m[4] = 0x0a // another source id
		m[7] = 0x09
		handle(t, r, t0, m)
	}
	ev := events(r)
	if rej := find(ev, EventSenderRejected); len(rej) != 1 || rej[0].Sender != 0x0a000009 {
		t.Fatalf("rejections %+v, want one for the second sender", rej)
	}
	if st := r.Stats(); st.SendersRejected != 3 || st.SendersEvicted != 0 {
		t.Fatalf("stats %+v, want 3 packets rejected and no sender evicted", st)
	}
}

func TestObjectLimit(t *testing.T) {
	r := newRx(t, Config{MaxObjects: 2})
	p := &pkt{inst: 1}
	for id := uint16(10); id < 13; id++ {
		handle(t, r, t0, p.data(t, id, 1000, 0, 0, seg(100)))
	}
	// The third waits, unstarted, for room; nothing is given up.
	ev := events(r)
	if ab, st := find(ev, EventAborted), find(ev, EventStarted); len(ab) != 0 || len(st) != 2 || st[1].Object != 11 {
		t.Fatalf("aborted %+v, started %+v; want 10 and 11 started, 12 deferred", ab, st)
	}
	if n := r.Stats().ObjectsDeferred; n != 1 {
		t.Fatalf("%d deferred, want 1", n)
	}
}

func TestBufferLimit(t *testing.T) {
	r := newRx(t, Config{MaxBufferBytes: 5000})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 1000, 0, 0, seg(100))) // fits
	// Object 2 is announced at 100 kB but takes memory only as its data
	// arrives, and is refused once that data would pass the limit.
	var ab []Event
	for blk := uint32(0); blk < 250 && len(ab) == 0; blk++ {
		for i := uint16(0); i < 4; i++ {
			handle(t, r, t0, p.data(t, 2, 100000, blk, i, seg(100)))
			if st := r.Stats(); st.BufferBytes > 5000 {
				t.Fatalf("buffer bytes %d over the limit", st.BufferBytes)
			}
		}
		if blk == 0 && len(find(events(r), EventAborted)) != 0 {
			t.Fatal("object refused on announcement, before its data took memory")
		}
		ab = find(events(r), EventAborted)
	}
	if len(ab) != 1 || ab[0].Object != 2 || !errors.Is(ab[0].Err, ErrBufferLimit) {
		t.Fatalf("aborted %+v, want object 2 with ErrBufferLimit", ab)
	}
	if st := r.Stats(); st.BufferBytes <= 0 || st.BufferBytes > 5000 {
		t.Fatalf("buffer bytes %d after the limit", st.BufferBytes)
	}
	// The first object still completes.
	for i := uint16(1); i < 4; i++ {
		handle(t, r, t0, p.data(t, 1, 1000, 0, i, seg(100)))
	}
	for i := uint16(0); i < 3; i++ {
		handle(t, r, t0, p.data(t, 1, 1000, 1, i, seg(100)))
	}
	// 10 segments in blocks of 4, 3 and 3.
	for i := uint16(0); i < 3; i++ {
		handle(t, r, t0, p.data(t, 1, 1000, 2, i, seg(100)))
	}
	if c := find(events(r), EventCompleted); len(c) != 1 || len(c[0].Data) != 1000 {
		t.Fatalf("completed %+v", c)
	}
	if st := r.Stats(); st.BufferBytes != 0 {
		t.Fatalf("buffer bytes %d after completion, want 0", st.BufferBytes)
	}
}

func TestSenderTimeoutAndEOT(t *testing.T) {
	r := newRx(t, Config{SenderTimeout: 10 * time.Second})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 1000, 0, 0, seg(100)))
	events(r)
	poll(r, t0, t0.Add(11*time.Second))
	ev := events(r)
	if g := find(ev, EventSenderGone); len(g) != 1 {
		t.Fatalf("no EventSenderGone after silence: %+v", ev)
	}
	if ab := find(ev, EventAborted); len(ab) != 1 || !errors.Is(ab[0].Err, ErrSenderGone) {
		t.Fatalf("pending object not aborted with ErrSenderGone: %+v", ev)
	}

	// EOT ends a sender at once; its repeats do not bring it back.
	later := t0.Add(20 * time.Second)
	handle(t, r, later, p.data(t, 2, 1000, 0, 0, seg(100)))
	for range 3 {
		handle(t, r, later, p.cmd(t, framing.Cmd{Flavor: framing.FlavorEOT}))
	}
	ev = events(r)
	if g := find(ev, EventSenderGone); len(g) != 1 {
		t.Fatalf("EOT: %d EventSenderGone, want 1: %+v", len(g), ev)
	}
	if n := find(ev, EventSenderNew); len(n) != 1 {
		t.Fatalf("sender not new again after timeout: %+v", ev)
	}
}

func TestSenderReset(t *testing.T) {
	r := newRx(t, Config{})
	a := &pkt{inst: 1}
	handle(t, r, t0, a.data(t, 1, 1000, 0, 0, seg(100)))
	b := &pkt{inst: 2}
	handle(t, r, t0, b.data(t, 1, 500, 0, 0, seg(100)))
	ev := events(r)
	if len(find(ev, EventSenderReset)) != 1 {
		t.Fatalf("no reset event: %+v", ev)
	}
	ab := find(ev, EventAborted)
	if len(ab) != 1 || !errors.Is(ab[0].Err, ErrSenderReset) || ab[0].Size != 1000 {
		t.Fatalf("old instance's object not aborted: %+v", ab)
	}
	if st := find(ev, EventStarted); len(st) != 2 || st[1].Size != 500 {
		t.Fatalf("new instance's object not started: %+v", st)
	}
}

// TestRepairTimeout: a sender that never repairs leaves the object aborted
// with ErrRepairTimeout after RepairCycles NACK cycles, not pending forever.
func TestRepairTimeout(t *testing.T) {
	r := newRx(t, Config{RepairCycles: 3})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 1000, 0, 1, seg(100))) // symbol 0 lost
	flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 2, Symbol: 1}}}
	handle(t, r, t0, p.cmd(t, flush))
	msgs := poll(r, t0, t0.Add(5*time.Second))
	nacks := 0
	for _, m := range msgs {
		if m.Type == framing.TypeNack {
			nacks++
		}
	}
	ab := find(events(r), EventAborted)
	// The first NACK asks; three more cycles go unanswered, and the third
	// of those gives up.
	if nacks != 4 || len(ab) != 1 || !errors.Is(ab[0].Err, ErrRepairTimeout) {
		t.Fatalf("%d NACKs, aborted %+v; want 4 NACKs then ErrRepairTimeout", nacks, ab)
	}
}

// TestCCProbeAnswer: the receiver a CMD(CC) names as CLR answers at once
// with ACK(CC) echoing the probe, so the sender can measure its RTT.
func TestCCProbeAnswer(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 1000, 0, 0, seg(100)))
	probe := framing.Cmd{Flavor: framing.FlavorCC, CCSequence: 42, SendTime: framing.Timestamp{Sec: 100, Usec: 999_000},
		Ext:     framing.AppendRate(nil, framing.QuantizeRate(1e6)),
		Content: framing.AppendCCNode(nil, framing.CCNode{NodeID: myID, Flags: framing.CCFlagCLR | framing.CCFlagRTT, RTT: framing.QuantizeRTT(30 * time.Millisecond)})}
	handle(t, r, t0, p.cmd(t, probe))
	msgs := poll(r, t0.Add(2*time.Millisecond), t0.Add(2*time.Millisecond))
	if len(msgs) != 1 || msgs[0].Type != framing.TypeAck || msgs[0].Ack.AckType != framing.AckCC {
		t.Fatalf("want one ACK(CC), got %+v", msgs)
	}
	a := msgs[0].Ack
	cc, ok := a.Ext.CC()
	if !ok || cc.Sequence != 42 || cc.Flags&framing.CCFlagCLR == 0 || cc.Flags&framing.CCFlagRTT == 0 || cc.Rate == 0 {
		t.Fatalf("EXT_CC %+v ok=%v", cc, ok)
	}
	if got := framing.UnquantizeRTT(cc.RTT); got < 29*time.Millisecond || got > 33*time.Millisecond {
		t.Fatalf("reported RTT %v, want the 30 ms the sender measured", got)
	}
	// Held 2 ms: the echo is the probe's send time plus 2 ms.
	if a.GRTTResponse != (framing.Timestamp{Sec: 101, Usec: 1000}) {
		t.Fatalf("grtt_response %+v, want 101.001000", a.GRTTResponse)
	}
}

// TestGarbage: malformed packets are counted and refused without touching
// state.
func TestGarbage(t *testing.T) {
	r := newRx(t, Config{})
	for _, b := range [][]byte{nil, {0x12}, {0x22, 1, 0, 0, 0, 0, 0, 1}, make([]byte, 40)} {
		if err := r.HandlePacket(t0, from, b); err == nil {
			t.Fatalf("% x accepted", b)
		}
	}
	p := &pkt{inst: 1}
	bad := p.data(t, 1, 1000, 7, 0, seg(100)) // block 7 of a 3-block object
	if err := r.HandlePacket(t0, from, bad); err == nil {
		t.Fatal("symbol outside the object accepted")
	}
	short := p.data(t, 1, 1000, 0, 0, seg(40)) // a full segment is 100 bytes
	if err := r.HandlePacket(t0, from, short); err == nil {
		t.Fatal("short segment accepted")
	}
	if st := r.Stats(); st.BadPackets != 6 || st.DataSymbols != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzReceiver feeds arbitrary packets, mixed with valid ones, to a
// receiver: it must never panic, and its buffer accounting must stay sane.
func FuzzReceiver(f *testing.F) {
	p := &pkt{inst: 1}
	tt := &testing.T{}
	f.Add(p.data(tt, 1, 1000, 0, 0, seg(100)), uint16(1))
	f.Add(p.cmd(tt, framing.Cmd{Flavor: framing.FlavorSquelch, Ref: framing.SymbolRef{FECID: 5, ObjectID: 9}}), uint16(2))
	f.Add(p.cmd(tt, framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1}, Content: framing.AppendNodeID(nil, myID)}), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, n uint16) {
		r := newRx(t, Config{MaxBufferBytes: 1 << 20})
		q := &pkt{inst: 1}
		now := t0
		for i := range 4 {
			_ = r.HandlePacket(now, from, q.data(t, uint16(i%3), 1000, uint32(i%3), uint16(i%6), seg(100)))
			_ = r.HandlePacket(now, from, b)
			now = now.Add(time.Duration(n) * time.Millisecond)
			poll(r, now, now)
		}
		if st := r.Stats(); st.BufferBytes < 0 || st.BufferBytes > 1<<20 {
			t.Fatalf("buffer bytes %d", st.BufferBytes)
		}
	})
}

// TestMissingObjectAsksInfoFirst: an object never heard of is asked for by
// its NORM_INFO for the first half of the repair cycles (libnorm crashes on
// OBJECT-level requests for empty objects), then as a whole object.
func TestMissingObjectAsksInfoFirst(t *testing.T) {
	r := newRx(t, Config{RepairCycles: 6})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 100, 0, 0, seg(100)))
	handle(t, r, t0, p.data(t, 3, 100, 0, 0, seg(100))) // object 2 never heard
	flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 3}}
	handle(t, r, t0, p.cmd(t, flush))
	var levels []framing.RepairFlags
	for _, m := range poll(r, t0, t0.Add(5*time.Second)) {
		if m.Type != framing.TypeNack {
			continue
		}
		c := m.Nack.Content
		for req, off, ok := framing.NextRepairRequest(c, 0); ok; req, off, ok = framing.NextRepairRequest(c, off) {
			it, _, ok := req.Item(0, 0)
			if !ok || it.ObjectID != 2 {
				t.Fatalf("NACK for %+v, want object 2 only", it)
			}
			levels = append(levels, req.Flags)
		}
	}
	want := []framing.RepairFlags{framing.RepairInfo, framing.RepairInfo, framing.RepairInfo,
		framing.RepairObject, framing.RepairObject, framing.RepairObject}
	if !slices.Equal(levels, want) {
		t.Fatalf("requests at levels %v, want %v", levels, want)
	}
}

// TestProbeEchoLeavesOutBacklog: a probe that waited 40 ms in the socket
// before the receiver handled it is echoed as if held 40 ms longer, so the
// sender's round trip counts the network and not this receiver's backlog.
func TestProbeEchoLeavesOutBacklog(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 1000, 0, 0, seg(100)))
	probe := framing.Cmd{Flavor: framing.FlavorCC, CCSequence: 1, SendTime: framing.Timestamp{Sec: 100},
		Ext:     framing.AppendRate(nil, framing.QuantizeRate(1e6)),
		Content: framing.AppendCCNode(nil, framing.CCNode{NodeID: myID, Flags: framing.CCFlagCLR})}
	arrived, now := t0.Add(10*time.Millisecond), t0.Add(50*time.Millisecond)
	if err := r.HandlePacketAt(now, arrived, from, p.cmd(t, probe)); err != nil {
		t.Fatal(err)
	}
	msgs := poll(r, now, now)
	if len(msgs) != 1 || msgs[0].Type != framing.TypeAck {
		t.Fatalf("want one ACK(CC), got %+v", msgs)
	}
	if got := msgs[0].Ack.GRTTResponse; got != (framing.Timestamp{Sec: 100, Usec: 40_000}) {
		t.Fatalf("grtt_response %+v, want 100.040000 (held 40 ms since arrival)", got)
	}
	// An arrival time after now (a clock step) counts as now.
	if err := r.HandlePacketAt(now, now.Add(time.Hour), from, p.cmd(t, probe)); err != nil {
		t.Fatal(err)
	}
	if d := r.queueDelay(now); d != 0 {
		t.Fatalf("queue delay %v after an arrival in the future, want 0", d)
	}
}

// TestHoldoffWaitsOutBacklog: a receiver whose packets wait in its socket
// holds off its next NACK that much longer, since the repairs queue behind
// the same backlog; without a backlog it asks again after the usual
// hold-off.
func TestHoldoffWaitsOutBacklog(t *testing.T) {
	nackTimes := func(backlog time.Duration) []time.Duration {
		r := newRx(t, Config{})
		p := &pkt{inst: 1}
		// Symbol 0 is lost, and a flush says the sender is done.
		flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 2, Symbol: 1}}}
		for i, b := range [][]byte{p.data(t, 1, 1000, 0, 1, seg(100)), p.cmd(t, flush)} {
			now := t0.Add(time.Duration(i) * time.Millisecond)
			if err := r.HandlePacketAt(now.Add(backlog), now, from, b); err != nil {
				t.Fatal(err)
			}
		}
		start := t0.Add(time.Millisecond + backlog)
		var at []time.Duration
		var out framing.Outbox
		for now := start; now.Before(start.Add(time.Second)) && len(at) < 2; now = now.Add(100 * time.Microsecond) {
			out.Reset()
			r.Poll(now, &out)
			for i := range out.Len() {
				b, _ := out.Packet(i)
				if h, _, err := framing.Peek(b); err == nil && h.Type == framing.TypeNack {
					at = append(at, now.Sub(start))
				}
			}
		}
		return at
	}
	clean, late := nackTimes(0), nackTimes(30*time.Millisecond)
	if len(clean) != 2 || len(late) != 2 {
		t.Fatalf("want two NACK cycles each, got %v and %v", clean, late)
	}
	gapClean, gapLate := clean[1]-clean[0], late[1]-late[0]
	if gapLate < gapClean+25*time.Millisecond {
		t.Fatalf("hold-off %v with a 30 ms backlog, %v without: the backlog was not waited out", gapLate, gapClean)
	}
}

// TestPaceReports: a receiver whose packets wait past congestion.PaceTarget
// in its socket tells a sender that asks (an empty EXT_PACE in its probes)
// with an unsolicited ACK carrying its wait and pace; it stays quiet for a
// sender that does not ask, and for a while after another receiver at least
// as slow has said so.
func TestPaceReports(t *testing.T) {
	reports := func(asks bool, overheard bool) []framing.Pace {
		r := newRx(t, Config{})
		p := &pkt{inst: 1}
		probe := framing.Cmd{Flavor: framing.FlavorCC, CCSequence: 1, Ext: framing.AppendRate(nil, framing.QuantizeRate(1e6))}
		if asks {
			probe.Ext = framing.AppendPace(probe.Ext, framing.Pace{})
		}
		handle(t, r, t0, p.cmd(t, probe))
		if overheard {
			other := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: myID + 1}, ServerID: senderID, InstanceID: 1,
				AckType: framing.AckCC, Ext: framing.AppendPace(nil, framing.Pace{Delay: framing.QuantizeRTT(50 * time.Millisecond), Rate: framing.QuantizeRate(1)})}
			b, err := other.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			handle(t, r, t0.Add(31*time.Millisecond), b)
		}
		// 30 ms behind: each packet is handled 30 ms after it arrived.
		var got []framing.Pace
		for i := range 20 {
			arrived := t0.Add(time.Duration(i+2) * time.Millisecond)
			now := arrived.Add(30 * time.Millisecond)
			if err := r.HandlePacketAt(now, arrived, from, p.data(t, 1, 100_000, uint32(i/4), uint16(i%4), seg(100))); err != nil {
				t.Fatal(err)
			}
			for _, m := range poll(r, now, now) {
				if pc, ok := m.Ack.Ext.Pace(); ok && m.Type == framing.TypeAck {
					got = append(got, pc)
				}
			}
		}
		return got
	}
	got := reports(true, false)
	if len(got) == 0 {
		t.Fatal("no pace report from a receiver 30 ms behind")
	}
	if d := framing.UnquantizeRTT(got[0].Delay); d < 25*time.Millisecond || d > 40*time.Millisecond {
		t.Fatalf("reported a wait of %v, want about 30 ms", d)
	}
	if len(got) > 5 {
		t.Fatalf("%d reports in 20 ms, want at most one per %v", len(got), paceMinInterval)
	}
	if n := len(reports(false, false)); n != 0 {
		t.Fatalf("%d pace reports to a sender that did not ask", n)
	}
	if n := len(reports(true, true)); n >= len(got) {
		t.Fatalf("%d pace reports after overhearing a slower receiver's, %d without: no suppression", n, len(got))
	}
}

// TestAnnounceToTrackingSender: a sender that tracks its receivers
// (framing.PaceTrack) hears each receiver's answer to its first probes even
// when another receiver answered first; after those, answers are
// suppressed as usual.
func TestAnnounceToTrackingSender(t *testing.T) {
	answered := func(flags uint8) []bool {
		r := newRx(t, Config{})
		p := &pkt{inst: 1}
		var got []bool
		now := t0
		for seq := range uint16(5) {
			probe := framing.Cmd{Flavor: framing.FlavorCC, CCSequence: seq, Ext: framing.AppendPace(framing.AppendRate(nil, framing.QuantizeRate(1e6)), framing.Pace{Flags: flags})}
			handle(t, r, now, p.cmd(t, probe))
			other := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: myID + 1}, ServerID: senderID, InstanceID: 1,
				AckType: framing.AckCC, Ext: framing.AppendCC(nil, framing.CCFeedback{Sequence: seq, Rate: 1})}
			b, err := other.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			handle(t, r, now, b)
			acks := 0
			for _, m := range poll(r, now, now.Add(time.Second)) {
				if m.Type == framing.TypeAck {
					acks++
				}
			}
			got = append(got, acks > 0)
			now = now.Add(2 * time.Second)
		}
		return got
	}
	if got := answered(framing.PaceTrack); !slices.Equal(got, []bool{true, true, true, false, false}) {
		t.Fatalf("answers to a tracking sender's probes: %v, want the first three despite suppression", got)
	}
	if got := answered(0); !slices.Equal(got, []bool{false, false, false, false, false}) {
		t.Fatalf("answers to a non-tracking sender's probes: %v, want all suppressed", got)
	}
}

// TestHoldoffEndsWithRepairs: a receiver in its hold-off starts its next
// repair cycle a GRTT after the repairs that answer its NACK stop coming,
// not at its own timer, so that the group's next NACKs fall in one of the
// sender's aggregation windows. A repair that came within a GRTT of its
// NACK answers an earlier window and does not end the hold-off.
func TestHoldoffEndsWithRepairs(t *testing.T) {
	const grtt = 10 * time.Millisecond // pkt's sender fields
	for _, c := range []struct {
		name  string
		after time.Duration // repair arrival after the NACK
		early bool
	}{
		{"answer", 2 * grtt, true},
		{"earlier window", grtt / 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRx(t, Config{})
			p := &pkt{inst: 1}
			// Object 1: blocks of 4, 3 and 3 symbols; symbol 1 of block 0
			// and symbol 0 of block 1 are lost.
			now := t0
			for _, bs := range [][2]int{{0, 0}, {0, 2}, {0, 3}, {1, 1}, {1, 2}, {2, 0}, {2, 1}, {2, 2}} {
				handle(t, r, now, p.data(t, 1, 1000, uint32(bs[0]), uint16(bs[1]), seg(100)))
				now = now.Add(100 * time.Microsecond)
			}
			flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 2, Symbol: 2}}}
			handle(t, r, now, p.cmd(t, flush))
			var nacked time.Time
			var out framing.Outbox
			for end := now.Add(time.Second); nacked.IsZero() && now.Before(end); now = now.Add(100 * time.Microsecond) {
				out.Reset()
				r.Poll(now, &out)
				if out.Len() > 0 {
					nacked = now
				}
			}
			if nacked.IsZero() {
				t.Fatal("no NACK")
			}
			s := r.remotes[0]
			if s.nack != nackHoldoff {
				t.Fatalf("state %v after the NACK, want the hold-off", s.nack)
			}
			// The repair of block 0 (parity symbol 4; all-zero symbols
			// make all-zero parity); block 1's is lost.
			fill := nacked.Add(c.after)
			handle(t, r, fill, p.data(t, 1, 1000, 0, 4, seg(100)))
			poll(r, fill, fill.Add(grtt-time.Millisecond))
			if s.nack != nackHoldoff {
				t.Fatalf("state %v less than a GRTT after the repair, want the hold-off", s.nack)
			}
			at := fill.Add(grtt + time.Millisecond)
			poll(r, fill.Add(grtt-time.Millisecond), at)
			switch {
			case c.early && s.nack == nackHoldoff:
				t.Fatalf("still in the hold-off a GRTT after the answer's last repair (it ends %v after the NACK)", s.nackAt.Sub(nacked))
			case !c.early && s.nack != nackHoldoff:
				t.Fatalf("state %v %v after the NACK: a repair from an earlier window ended the hold-off", s.nack, at.Sub(nacked))
			}
			// The next cycle asks for block 1 alone.
			var blocks []uint32
			for _, m := range poll(r, at, at.Add(time.Second)) {
				if m.Type != framing.TypeNack {
					continue
				}
				c := m.Nack.Content
				for req, off, ok := framing.NextRepairRequest(c, 0); ok; req, off, ok = framing.NextRepairRequest(c, off) {
					it, _, _ := req.Item(0, 0)
					blocks = append(blocks, it.PayloadID.Block)
				}
				break
			}
			if !slices.Equal(blocks, []uint32{1}) {
				t.Fatalf("next NACK asks for blocks %v, want [1]", blocks)
			}
		})
	}
}

// TestRateSurvivesSenderStall: a sender that stalls for a round trip (short
// of CPU) is received slowly for one measurement window; the rate asked
// for stays near what the network carried before, not twice the stalled
// window's rate, which in the lab cut a 50 Mbit/s flow to 6 Mbit/s. A
// receive rate that stays low (a real bottleneck) still bounds it from the
// second window on.
func TestRateSurvivesSenderStall(t *testing.T) {
	r := newRx(t, Config{})
	s := r.newRemote(senderID, 1)
	s.ccRTT = 20 * time.Millisecond
	const size = 1400
	now, seq := t0, uint16(0)
	// window sends n packets evenly over one RTT, and one packet more
	// after it, which closes its measurement.
	window := func(n int) {
		for i := range n {
			r.countSeq(now.Add(time.Duration(i)*s.ccRTT/time.Duration(n)), s, seq, size)
			seq++
		}
		now = now.Add(s.ccRTT)
		r.countSeq(now, s, seq, size)
		seq++
		now = now.Add(time.Microsecond)
	}
	for range 10 {
		window(90) // 50 Mbit/s
	}
	seq++ // one loss: a loss event, and the rate equation applies
	for range 5 {
		window(90)
	}
	before, _ := s.calcRate(size)
	window(9) // 5 Mbit/s: the sender stalled
	stalled, _ := s.calcRate(size)
	if stalled < before/2 {
		t.Fatalf("rate %.1f Mbit/s after one stalled window, %.1f before", stalled*8/1e6, before*8/1e6)
	}
	window(9)
	window(9)
	if low, _ := s.calcRate(size); low > 2*9*size/s.ccRTT.Seconds()*1.5 {
		t.Fatalf("rate %.1f Mbit/s after three slow windows: the receive rate no longer bounds it", low*8/1e6)
	}
	// In slow start (no loss yet) a sender that halves its rate to end it
	// is asked for twice the new rate, not twice the old one back.
	s = r.newRemote(senderID, 1)
	s.ccRTT = 20 * time.Millisecond
	for range 10 {
		window(90)
	}
	window(45)
	if rate, start := s.calcRate(size); !start || rate > 2*46*size/s.ccRTT.Seconds() {
		t.Fatalf("slow start %v, rate %.1f Mbit/s after the sender halved its rate to 25 Mbit/s", start, rate*8/1e6)
	}
}
