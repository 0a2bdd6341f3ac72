package sender

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"net/netip"

	"github.com/shoalnet/shoal/framing"
)

var t0 = time.Unix(500, 0)

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.NodeID == 0 {
		cfg.NodeID = 1
	}
	if cfg.Rate == 0 {
		cfg.Rate = 1e6
	}
	s, err := New(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain polls s for d of virtual time and returns what it sent.
func drain(s *Sender, from time.Time, d time.Duration) []framing.Message {
	var msgs []framing.Message
	pollFor(s, from, d, func(_ time.Time, sent []framing.Message) { msgs = append(msgs, sent...) })
	return msgs
}

// pollFor polls s for d of virtual time and passes what each Poll sent,
// with its time, to polled.
func pollFor(s *Sender, from time.Time, d time.Duration, polled func(now time.Time, sent []framing.Message)) {
	var out framing.Outbox
	var msgs []framing.Message
	for now := from; now.Before(from.Add(d)); {
		out.Reset()
		next := s.Poll(now, &out)
		msgs = msgs[:0]
		for i := range out.Len() {
			b, _ := out.Packet(i)
			var m framing.Message
			if m.Unmarshal(append([]byte(nil), b...)) == nil {
				msgs = append(msgs, m)
			}
		}
		polled(now, msgs)
		if !next.After(now) {
			next = now.Add(time.Microsecond)
		}
		now = next
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no node id":      {Rate: 1},
		"negative rate":   {NodeID: 1, Rate: -1},
		"k+p over 255":    {NodeID: 1, Rate: 1, BlockLen: 200, Parity: 56},
		"auto > parity":   {NodeID: 1, Rate: 1, Parity: 2, AutoParity: 3},
		"segment too big": {NodeID: 1, Rate: 1, SegmentSize: 70000},
		"backoff 16":      {NodeID: 1, Rate: 1, Backoff: 16},
		"cache too big":   {NodeID: 1, Rate: 1, CacheObjects: 40000},
	} {
		if _, err := New(cfg, t0); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// TestDefaultRate: Rate 0 means DefaultRate, as it does in package
// session (it used to be an error here and 10 MB/s there).
func TestDefaultRate(t *testing.T) {
	s, err := New(Config{NodeID: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Rate; got != DefaultRate {
		t.Fatalf("rate %v, want DefaultRate", got)
	}
}

// TestInstanceIDRandomPerStart: without a seed, a sender restarted with
// the same node id is a new instance with a new object id space (seeded
// from the node id, it reused both, and receivers ignored its objects as
// already finished); with a seed it is reproducible.
func TestInstanceIDRandomPerStart(t *testing.T) {
	ids := func(s *Sender) [2]uint16 { return [2]uint16{s.InstanceID(), s.nextID} }
	a, b := newSender(t, Config{}), newSender(t, Config{NodeID: 1, Rand: nil})
	if a.InstanceID() == 0 || b.InstanceID() == 0 {
		t.Fatal("instance id 0")
	}
	// 32 random bits: equal by chance once in 4 billion runs.
	if ids(a) == ids(b) {
		t.Fatalf("two starts with node id 1 both have instance id %d and first object id %d", a.InstanceID(), a.nextID)
	}
	seeded := func(seed uint64) *Sender {
		return newSender(t, Config{Rand: rand.New(rand.NewPCG(seed, 7))})
	}
	c, d := seeded(3), seeded(3)
	if ids(c) != ids(d) {
		t.Fatal("the same seed gave different ids")
	}
	if ids(c) == ids(seeded(4)) {
		t.Fatal("different seeds gave the same ids")
	}
}

func TestCommandAndCache(t *testing.T) {
	s := newSender(t, Config{CacheObjects: 2, Rate: 1e7})
	if err := s.SendCommand([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	id1, _ := s.SendData([]byte("one"), nil)
	if _, err := s.SendData([]byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendData([]byte("three"), nil); !errors.Is(err, ErrCacheFull) {
		t.Fatalf("third object with two unsent in a cache of 2: %v", err)
	}
	msgs := drain(s, t0, 10*time.Millisecond)
	if len(msgs) == 0 || msgs[0].Type != framing.TypeCmd || msgs[0].Cmd.Flavor != framing.FlavorApplication && msgs[1].Cmd.Flavor != framing.FlavorApplication {
		t.Fatalf("command not sent first: %v", msgs[:min(2, len(msgs))])
	}
	if _, err := s.SendData([]byte("three"), nil); err != nil {
		t.Fatalf("after sending, the oldest object should be purged: %v", err)
	}
	var purged bool
	for _, e := range s.Events() {
		purged = purged || (e.Kind == EventPurged && e.Object == id1)
	}
	if !purged {
		t.Fatal("no EventPurged for the oldest object")
	}
}

// TestPacing: whatever is queued, the sender keeps to its rate.
func TestPacing(t *testing.T) {
	const rate = 1e6
	s := newSender(t, Config{Rate: rate})
	if _, err := s.SendData(make([]byte, 5<<20), nil); err != nil {
		t.Fatal(err)
	}
	msgs := drain(s, t0, 2*time.Second)
	bytes := 0
	for _, m := range msgs {
		b, _ := m.Append(nil)
		bytes += len(b)
	}
	if bytes > int(2*rate)+16*1500 || bytes < int(1.9*rate) {
		t.Fatalf("%d bytes in 2 s at %v B/s", bytes, rate)
	}
}

func FuzzSenderHandle(f *testing.F) {
	c, _ := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment, 0, []framing.SymbolRef{{FECID: 5, ObjectID: 1}})
	n := framing.Nack{ServerID: 1, Content: c}
	b, _ := n.Append(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newSender(t, Config{Parity: 4})
		if _, err := s.SendData(make([]byte, 20000), []byte("x")); err != nil {
			t.Fatal(err)
		}
		drain(s, t0, 5*time.Millisecond)
		// Give the packet the right instance id when it is long enough to
		// be a NACK or ACK, so it reaches the repair logic.
		if len(b) >= 14 {
			b[12], b[13] = byte(s.InstanceID()>>8), byte(s.InstanceID())
		}
		_ = s.HandlePacket(t0.Add(5*time.Millisecond), netipZero, b)
		drain(s, t0.Add(5*time.Millisecond), 3*time.Second)
	})
}

var netipZero netip.AddrPort

// TestFlushTime: on a LAN (GRTT 1 ms) the end-of-transmission flushes
// still span FlushTime, so that a receiver stalled for a few hundred
// milliseconds hears one afterwards; without the floor they go two GRTTs
// apart, as RFC 5740 has it.
func TestFlushTime(t *testing.T) {
	for _, c := range []struct {
		flushTime   time.Duration
		least, most time.Duration // first to last flush
		name        string
	}{
		{0, 950 * time.Millisecond, 1100 * time.Millisecond, "default"},
		{300 * time.Millisecond, 285 * time.Millisecond, 400 * time.Millisecond, "300ms"},
		{-1, 19 * 2 * time.Millisecond, 19 * 3 * time.Millisecond, "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSender(t, Config{GRTT: time.Millisecond, FlushTime: c.flushTime})
			if _, err := s.SendData([]byte("payload"), nil); err != nil {
				t.Fatal(err)
			}
			var flushes []time.Time
			var flushed time.Time
			pollFor(s, t0, 3*time.Second, func(now time.Time, sent []framing.Message) {
				for _, m := range sent {
					if m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush {
						flushes = append(flushes, now)
					}
				}
				for _, ev := range s.Events() {
					if ev.Kind == EventFlushed && flushed.IsZero() {
						flushed = now
					}
				}
			})
			if len(flushes) != 20 {
				t.Fatalf("%d flushes, want RobustFactor (20)", len(flushes))
			}
			span := flushes[len(flushes)-1].Sub(flushes[0])
			if span < c.least || span > c.most {
				t.Fatalf("flushes span %v, want %v to %v", span, c.least, c.most)
			}
			if flushed.IsZero() || flushed.Before(flushes[len(flushes)-1]) {
				t.Fatalf("EventFlushed at %v, before the last flush at %v", flushed.Sub(t0), flushes[len(flushes)-1].Sub(t0))
			}
		})
	}
}

// TestWatermarkWaitsForRepairingNode: a node that keeps NACKing is still
// repairing, not gone; the watermark must outlast RobustFactor requests for
// it and succeed when it finally acknowledges, while a silent node fails.
func TestWatermarkWaitsForRepairingNode(t *testing.T) {
	const slow, silent = 2, 3
	s := newSender(t, Config{AckingNodes: []uint32{slow, silent}, RobustFactor: 3, GRTT: 10 * time.Millisecond,
		FlushTime: -1})
	id, err := s.SendData([]byte("payload"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	drain(s, now, 50*time.Millisecond)
	now = now.Add(50 * time.Millisecond)
	if err := s.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	var ref framing.SymbolRef
	flushes := 0
	for round := range 12 {
		for _, m := range drain(s, now, 20*time.Millisecond) {
			if m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush && m.Cmd.NodeCount() > 0 {
				ref = m.Cmd.Ref
				flushes++
			}
		}
		now = now.Add(20 * time.Millisecond)
		if round == 11 {
			break
		}
		nack := framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: slow},
			ServerID: 1, InstanceID: s.InstanceID()}
		feed(t, s, now, &nack)
	}
	if flushes <= 3 {
		t.Fatalf("%d watermark requests, want more than RobustFactor while a node repairs", flushes)
	}
	payload, err := framing.AppendSymbolRef(nil, ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	ack := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: slow},
		ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload}
	feed(t, s, now, &ack)
	drain(s, now, 200*time.Millisecond)
	got := map[uint32]error{}
	var done bool
	for _, e := range s.Events() {
		switch e.Kind {
		case EventAck:
			got[e.Node] = e.Err
		case EventWatermark:
			done = true
		}
	}
	if e, ok := got[slow]; !ok || e != nil {
		t.Errorf("repairing node: answered %v, err %v; want acknowledged", ok, e)
	}
	if e := got[silent]; !errors.Is(e, ErrNoAck) {
		t.Errorf("silent node: err %v, want ErrNoAck", e)
	}
	if !done {
		t.Error("no EventWatermark")
	}
}

// TestInfoRequestWithoutInfo: a receiver that never heard of an object asks
// for its NORM_INFO; an object without one answers with its data.
func TestInfoRequestWithoutInfo(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond})
	id, err := s.SendData([]byte("no info here"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(50 * time.Millisecond)
	drain(s, t0, 50*time.Millisecond)
	content, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairInfo, 0,
		[]framing.SymbolRef{{FECID: framing.FECRS8, ObjectID: id}})
	if err != nil {
		t.Fatal(err)
	}
	nack := framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: 2},
		ServerID: 1, InstanceID: s.InstanceID(), Content: content}
	feed(t, s, now, &nack)
	repaired := false
	for _, m := range drain(s, now, time.Second) {
		if m.Type == framing.TypeData && m.Data.ObjectID == id && string(m.Data.Payload) == "no info here" {
			repaired = true
		}
	}
	if !repaired {
		t.Fatal("INFO request for an object without NORM_INFO went unanswered")
	}
}

// feed hands a receiver's message to s as if it arrived at now.
func feed(t *testing.T, s *Sender, now time.Time, m interface{ Append([]byte) ([]byte, error) }) {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandlePacket(now, netip.AddrPort{}, b); err != nil {
		t.Fatal(err)
	}
}

// TestGRTTFromArrival: feedback that waited in the sender's socket is
// timed at its arrival, so the GRTT is the network's round trip and not
// the time the sender took to read it.
func TestGRTTFromArrival(t *testing.T) {
	grtt := func(arrived, now time.Time) time.Duration {
		s := newSender(t, Config{GRTT: 100 * time.Millisecond})
		if _, err := s.SendData(make([]byte, 1000), nil); err != nil {
			t.Fatal(err)
		}
		drain(s, t0, time.Millisecond)
		// An echo of a probe sent at the epoch (t0).
		a := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: 2}, ServerID: 1, InstanceID: s.InstanceID(),
			AckType: framing.AckCC, GRTTResponse: framing.Timestamp{Usec: 1}}
		b, err := a.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.HandlePacketAt(now, arrived, netip.AddrPort{}, b); err != nil {
			t.Fatal(err)
		}
		drain(s, now, time.Second) // the next probe adopts the measurement
		return s.GRTT()
	}
	if g := grtt(t0.Add(3*time.Millisecond), t0.Add(80*time.Millisecond)); g > 4*time.Millisecond {
		t.Fatalf("GRTT %v from feedback that arrived 3 ms after the probe, want about 3 ms", g)
	}
	if g := grtt(t0.Add(80*time.Millisecond), t0.Add(80*time.Millisecond)); g < 70*time.Millisecond {
		t.Fatalf("GRTT %v from feedback that arrived 80 ms after the probe, want about 80 ms", g)
	}
}

// TestPaceLimit: a receiver's report that packets wait 40 ms in its socket
// while it handles 2 MB/s holds a 10 MB/s sender below that pace; a report
// under congestion.PaceTarget changes nothing; once reports stop, the
// limit grows back to the configured rate and is lifted. Probes ask for
// the reports.
func TestPaceLimit(t *testing.T) {
	s := newSender(t, Config{Rate: 10e6, GRTT: time.Millisecond})
	if _, err := s.SendData(make([]byte, 20e6), nil); err != nil {
		t.Fatal(err)
	}
	asked := false
	for _, m := range drain(s, t0, 10*time.Millisecond) {
		if _, ok := m.Cmd.Ext.Pace(); ok && m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorCC {
			asked = true
		}
	}
	if !asked {
		t.Fatal("no probe asked for pace reports")
	}
	report := func(now time.Time, delay time.Duration, rate float64) {
		a := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: 2}, ServerID: 1, InstanceID: s.InstanceID(),
			AckType: framing.AckCC, Ext: framing.AppendPace(nil, framing.Pace{Delay: framing.QuantizeRTT(delay), Rate: framing.QuantizeRate(rate)})}
		feed(t, s, now, &a)
	}
	now := t0.Add(10 * time.Millisecond)
	report(now, 5*time.Millisecond, 1e6)
	if st := s.Stats(); st.PaceLimit != 0 || st.Rate != 10e6 {
		t.Fatalf("a 5 ms wait set limit %v, rate %v", st.PaceLimit, st.Rate)
	}
	report(now, 40*time.Millisecond, 2e6)
	if st := s.Stats(); st.PaceLimit != 5e6 || st.Rate != 5e6 || st.PaceNode != 2 || st.PaceCuts != 1 {
		t.Fatalf("after one report: limit %v rate %v node %d cuts %d; want the rate halved at most", st.PaceLimit, st.Rate, st.PaceNode, st.PaceCuts)
	}
	// The receiver stays behind and says so every 10 ms: the sender comes
	// down to its pace, cutting once per drain time, not once per report.
	for range 40 {
		drain(s, now, 10*time.Millisecond)
		now = now.Add(10 * time.Millisecond)
		report(now, 40*time.Millisecond, 2e6)
	}
	st := s.Stats()
	if st.PaceLimit < 1e6 || st.PaceLimit > 2e6 || st.Rate != st.PaceLimit || st.PaceCuts > 8 {
		t.Fatalf("after 400 ms of reports: limit %v rate %v after %d cuts; want the rate held below 2 MB/s", st.PaceLimit, st.Rate, st.PaceCuts)
	}
	// Silence: the limit grows back and is lifted within a few seconds.
	drain(s, now, 3*time.Second)
	if st := s.Stats(); st.PaceLimit != 0 || st.Rate != 10e6 {
		t.Fatalf("after 3 s without reports: limit %v rate %v, want none and 10 MB/s", st.PaceLimit, st.Rate)
	}
}

// TestQuickEndWhenConfirmed: a closing sender whose acking nodes have all
// confirmed its last object owes nobody the FlushTime of flushes and ends
// within a few GRTTs; one whose watermark failed keeps the floor.
func TestQuickEndWhenConfirmed(t *testing.T) {
	closeTime := func(ack bool) time.Duration {
		s := newSender(t, Config{AckingNodes: []uint32{2}, GRTT: time.Millisecond})
		id, err := s.SendData([]byte("payload"), nil)
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		drain(s, now, 10*time.Millisecond)
		now = now.Add(10 * time.Millisecond)
		if err := s.SetWatermark(id); err != nil {
			t.Fatal(err)
		}
		ref := watermarkRef(s, now, 5*time.Millisecond)
		now = now.Add(5 * time.Millisecond)
		if ack {
			ackWatermark(t, s, now, 2, ref)
		}
		s.Close()
		closed := time.Duration(-1)
		pollFor(s, now, 5*time.Second, func(at time.Time, _ []framing.Message) {
			for _, e := range s.Events() {
				if e.Kind == EventClosed && closed < 0 {
					closed = at.Sub(now)
				}
			}
		})
		return closed
	}
	if d := closeTime(true); d < 0 || d > 20*time.Millisecond {
		t.Fatalf("confirmed sender closed after %v, want within 20 ms", d)
	}
	if d := closeTime(false); d < time.Second {
		t.Fatalf("unconfirmed sender closed after %v, want at least FlushTime (1 s)", d)
	}
}

// countingReader is a file that counts the reads made of it.
type countingReader struct {
	data  []byte
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return copy(p, c.data[off:]), nil
}

// TestFileReadsPerBlock: a file object costs one read per block, not one
// per packet, for its data and for the parity of those blocks; the bytes
// sent are the file's.
func TestFileReadsPerBlock(t *testing.T) {
	s := newSender(t, Config{Rate: 1e9, SegmentSize: 100, BlockLen: 8, Parity: 2, AutoParity: 2})
	f := &countingReader{data: make([]byte, 10*8*100-30)} // 10 blocks, the last short
	for i := range f.data {
		f.data[i] = byte(i * 7)
	}
	id, err := s.SendFile(f, int64(len(f.data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(f.data))
	for _, m := range drain(s, t0, 50*time.Millisecond) {
		if m.Type == framing.TypeData && m.Data.ObjectID == id && int(m.Data.PayloadID.Symbol) < 8 {
			off := (int(m.Data.PayloadID.Block)*8 + int(m.Data.PayloadID.Symbol)) * 100
			copy(got[off:], m.Data.Payload)
		}
	}
	if !bytes.Equal(got, f.data) {
		t.Fatal("the data sent differs from the file")
	}
	if f.reads > 10 {
		t.Fatalf("%d reads for 10 blocks of 8 packets and 2 parity each, want at most 10", f.reads)
	}
}

// TestIdleStreamDropsSilentReceiver: a listed receiver that never confirms
// an idle stream's data is dropped after StreamTimeout with an
// EventSlowReceiver, and the sender stops asking it, rather than sending
// watermark requests for ever.
func TestIdleStreamDropsSilentReceiver(t *testing.T) {
	s := newSender(t, Config{Rate: 1e7, GRTT: time.Millisecond, AckingNodes: []uint32{2}, StreamTimeout: 100 * time.Millisecond})
	id, err := s.OpenStream(1<<20, nil, FlushPassive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteStream(id, make([]byte, 5000), true); err != nil {
		t.Fatal(err)
	}
	dropped := 0
	pollFor(s, t0, 300*time.Millisecond, func(time.Time, []framing.Message) {
		for _, e := range s.Events() {
			if e.Kind == EventSlowReceiver && e.Node == 2 && e.Object == id {
				dropped++
			}
		}
	})
	if dropped != 1 {
		t.Fatalf("%d EventSlowReceiver for the silent receiver, want 1", dropped)
	}
	asked := s.Stats().FlowRequests
	drain(s, t0.Add(300*time.Millisecond), time.Second)
	if more := s.Stats().FlowRequests - asked; more != 0 {
		t.Fatalf("%d more watermark requests after dropping the only receiver", more)
	}
}

// watermarkRef drains s for d from now and returns the position named by
// the last flush that asks nodes to acknowledge it (a watermark).
func watermarkRef(s *Sender, now time.Time, d time.Duration) framing.SymbolRef {
	var ref framing.SymbolRef
	for _, m := range drain(s, now, d) {
		if m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush && m.Cmd.NodeCount() > 0 {
			ref = m.Cmd.Ref
		}
	}
	return ref
}

// ackWatermark feeds s node's positive acknowledgement of the watermark at
// ref.
func ackWatermark(t *testing.T, s *Sender, now time.Time, node uint32, ref framing.SymbolRef) {
	t.Helper()
	payload, err := framing.AppendSymbolRef(nil, ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s, now, &framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: node},
		ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload})
}
