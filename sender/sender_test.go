package sender

import (
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
		"no rate":         {NodeID: 1},
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
