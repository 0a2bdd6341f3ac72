package sender

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// blockRangeNack returns a NACK from node asking for blocks first..last of
// object id, its items tagged fecID.
func blockRangeNack(t *testing.T, s *Sender, node uint32, fecID uint8, id uint16, first, last uint32) *framing.Nack {
	t.Helper()
	c, err := framing.AppendRepairRequest(nil, framing.FormRanges, framing.RepairBlock, 0, []framing.SymbolRef{
		{FECID: fecID, ObjectID: id, PayloadID: framing.PayloadID{Block: first}},
		{FECID: fecID, ObjectID: id, PayloadID: framing.PayloadID{Block: last}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
		ServerID: s.cfg.NodeID, InstanceID: s.InstanceID(), Content: c}
}

// objectNack returns a NACK from node asking for the whole of object id.
func objectNack(t *testing.T, s *Sender, node uint32, id uint16) *framing.Nack {
	t.Helper()
	c, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairObject, 0,
		[]framing.SymbolRef{{FECID: framing.FECRS8, ObjectID: id}})
	if err != nil {
		t.Fatal(err)
	}
	return &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
		ServerID: s.cfg.NodeID, InstanceID: s.InstanceID(), Content: c}
}

// TestBlockRangeNackBounded: one NACK asking for a block range that ends far
// past the object (FEC id 129 to block 0xFFFFFFF0, FEC id 5 to 0xFFFFFF)
// costs work in proportion to the object, not to the number in the packet,
// and is answered with the object's real blocks.
func TestBlockRangeNackBounded(t *testing.T) {
	for _, c := range []struct {
		fecID uint8
		last  uint32
	}{{framing.FECRS8, 0xFFFFFF}, {framing.FECSmallBlock, 0xFFFFFFF0}} {
		s := newSender(t, Config{GRTT: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Rate: 1e7})
		id, err := s.SendData(make([]byte, 3*4*100), nil) // 3 blocks
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(50 * time.Millisecond)
		drain(s, t0, 50*time.Millisecond)
		feed(t, s, now, blockRangeNack(t, s, 2, c.fecID, id, 1, c.last))
		work := s.work
		repaired := map[uint32]int{}
		for _, m := range drain(s, now, time.Second) {
			if m.Type == framing.TypeData && m.Data.ObjectID == id {
				repaired[m.Data.PayloadID.Block]++
			}
		}
		if w := s.work - work; w > 1000 {
			t.Errorf("FEC id %d, range to %#x: %d steps of work for a 3-block object", c.fecID, c.last, w)
		}
		if repaired[0] != 0 || repaired[1] != 4 || repaired[2] != 4 || len(repaired) != 2 {
			t.Errorf("FEC id %d: repaired symbols per block %v, want blocks 1 and 2 whole", c.fecID, repaired)
		}
	}
}

// segmentNack returns a NACK from node asking for symbols syms of the given
// block of object id.
func segmentNack(t *testing.T, s *Sender, node uint32, id uint16, block uint32, syms ...uint16) *framing.Nack {
	t.Helper()
	var items []framing.SymbolRef
	for _, sym := range syms {
		items = append(items, framing.SymbolRef{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: block, Symbol: sym}})
	}
	c, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment, 0, items)
	if err != nil {
		t.Fatal(err)
	}
	return &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
		ServerID: s.cfg.NodeID, InstanceID: s.InstanceID(), Content: c}
}

// window is a little longer than the aggregation window of a sender with a
// 10 ms GRTT and back-off 4.
const window = 60 * time.Millisecond

// TestRepairRequestsMerge: the same repair asked for in window after window
// (one node or many) while the sender is slower than the requests waits
// once in the queue, not once per window.
func TestRepairRequestsMerge(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Rate: 1e7})
	id, err := s.SendData(make([]byte, 3*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(50 * time.Millisecond)
	drain(s, t0, 50*time.Millisecond)
	s.SetRate(100) // a packet per second: the queue cannot drain
	for i := range 200 {
		feed(t, s, now, segmentNack(t, s, uint32(2+i), id, 1, 0, 1))
		feed(t, s, now, blockRangeNack(t, s, uint32(2+i), framing.FECRS8, id, 2, 2))
		drain(s, now, window)
		now = now.Add(window)
	}
	// At most one job per repair is being sent and one waits.
	if n := s.rq.len(); n > 4 {
		t.Fatalf("%d repair jobs queued for two repairs asked 200 times", n)
	}
	if st := s.Stats(); st.RepairsMerged < 390 {
		t.Fatalf("%d requests merged, want nearly all of 400", st.RepairsMerged)
	}
}

// TestRepairQueueBounded: a storm of distinct requests (every block of a big
// object, window after window) fills the queue to its bound and no further;
// the rest are dropped and counted. (The storm's node soon asks for more
// than its budget: its requests then fill the bulk queue, bounded alike.)
func TestRepairQueueBounded(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 64, BlockLen: 1, Rate: 1e9})
	const blocks = 3 * maxRepairJobs
	id, err := s.SendData(make([]byte, blocks*64), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 50*time.Millisecond)
	now := t0.Add(50 * time.Millisecond)
	s.SetRate(100)
	for w := range blocks / 1000 {
		for i := range 1000 {
			feed(t, s, now, segmentNack(t, s, 2, id, uint32(w*1000+i), 0))
		}
		drain(s, now, window)
		now = now.Add(window)
		if n := max(s.rq.len(), s.bq.len()); n > maxRepairJobs {
			t.Fatalf("%d repair jobs queued, bound %d", n, maxRepairJobs)
		}
	}
	if st := s.Stats(); max(s.rq.len(), s.bq.len()) != maxRepairJobs || st.RepairsDropped == 0 {
		t.Fatalf("queues %d and %d, %d dropped: want a full queue and drops", s.rq.len(), s.bq.len(), st.RepairsDropped)
	}
}

// TestNewDataUnderStorm: NACKs asking for a whole object again and again
// keep repairs queued all the time; new data still gets half the packets
// once the backlog outlasts a block's worth of repairs.
func TestNewDataUnderStorm(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Rate: 1e6})
	old, err := s.SendData(make([]byte, 500*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 500*time.Millisecond)
	now := t0.Add(500 * time.Millisecond)
	id, err := s.SendData(make([]byte, 5000*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	content, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairObject, 0,
		[]framing.SymbolRef{{FECID: framing.FECRS8, ObjectID: old}})
	if err != nil {
		t.Fatal(err)
	}
	storm := &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: 9},
		ServerID: 1, InstanceID: s.InstanceID(), Content: content}
	repairs, data := 0, 0
	for range 50 {
		feed(t, s, now, storm)
		for _, m := range drain(s, now, window) {
			if m.Type != framing.TypeData {
				continue
			}
			switch m.Data.ObjectID {
			case old:
				repairs++
			case id:
				data++
			}
		}
		now = now.Add(window)
	}
	if repairs < 1000 {
		t.Fatalf("only %d repair packets: the storm did not keep repairs queued", repairs)
	}
	if data < repairs*9/10 {
		t.Fatalf("%d new data packets against %d repairs under a storm", data, repairs)
	}
	if s.Stats().RepairYields == 0 {
		t.Fatal("no RepairYields counted")
	}
}

// TestTrackReceiversBounded: with TrackReceivers, feedback from more node
// ids than MaxNodes tracks the first MaxNodes, in the order heard, and
// counts the rest.
func TestTrackReceiversBounded(t *testing.T) {
	s := newSender(t, Config{TrackReceivers: true, MaxNodes: 8, AckingNodes: []uint32{50, 50}})
	for i := range 100 {
		nack := framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: uint32(1000 - i%40*7)},
			ServerID: 1, InstanceID: s.InstanceID()}
		feed(t, s, t0, &nack)
	}
	want := []uint32{50, 1000, 993, 986, 979, 972, 965, 958}
	if !slices.Equal(s.nodes, want) {
		t.Fatalf("nodes %v, want %v", s.nodes, want)
	}
	// 100 packets from 40 ids, each id heard 2 or 3 times: the packets of
	// the 7 tracked ids pass (3 each, the first 20 ids are heard 3 times),
	// every other one is refused.
	if got := s.Stats().NodesRefused; got != 100-7*3 {
		t.Fatalf("%d refused, want %d", got, 100-7*3)
	}
	if _, err := New(Config{NodeID: 1, Rate: 1, MaxNodes: 2, AckingNodes: []uint32{2, 3, 4}}, t0); !errors.Is(err, ErrConfig) {
		t.Fatalf("more AckingNodes than MaxNodes: %v", err)
	}
}

// TestAckCreditsExactWatermark: an ACK counts only for the exact watermark
// position requested and only from a node it was requested of.
func TestAckCreditsExactWatermark(t *testing.T) {
	s := newSender(t, Config{AckingNodes: []uint32{2}, GRTT: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4})
	id, err := s.SendData(make([]byte, 1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 100*time.Millisecond)
	if err := s.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	ref := s.wm.ref
	ack := func(node uint32, r framing.SymbolRef) {
		payload, err := framing.AppendSymbolRef(nil, r, 0)
		if err != nil {
			t.Fatal(err)
		}
		feed(t, s, t0.Add(100*time.Millisecond), &framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: node},
			ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload})
	}
	s.Events()
	early := ref
	early.PayloadID.Symbol--
	other := ref
	other.ObjectID--
	fec129 := ref
	fec129.FECID = framing.FECSmallBlock
	for _, r := range []framing.SymbolRef{early, other, fec129} {
		ack(2, r)
	}
	ack(3, ref)
	if ev := s.Events(); len(ev) != 0 || s.wm == nil {
		t.Fatalf("ACKs of other positions or nodes credited: %v", ev)
	}
	ack(2, ref)
	ev := s.Events()
	if len(ev) != 2 || ev[0].Kind != EventAck || ev[0].Node != 2 || ev[0].Err != nil || ev[1].Kind != EventWatermark {
		t.Fatalf("exact ACK: events %v", ev)
	}
}

// TestRepairQueueRing: the queue keeps FIFO order and its marks while the
// ring grows around a head that has moved, and refuses jobs at its bound.
func TestRepairQueueRing(t *testing.T) {
	var q repairQueue
	var marks []uint64
	next, popped := 0, 0
	for round := range 40 {
		for range 150 {
			m := q.push(repairJob{block: uint32(next)})
			if m == 0 {
				if q.len() != maxRepairJobs {
					t.Fatalf("refused at %d jobs", q.len())
				}
				break
			}
			marks = append(marks, m)
			next++
		}
		for range round % 3 * 20 {
			if q.front().block != uint32(popped) {
				t.Fatalf("popped block %d, want %d", q.front().block, popped)
			}
			q.pop()
			popped++
		}
		for i := popped; i < len(marks); i++ {
			if j := q.waiting(marks[i]); j == nil || j.block != uint32(i) {
				t.Fatalf("mark of job %d lost", i)
			}
		}
		if popped > 0 && q.waiting(marks[popped-1]) != nil {
			t.Fatal("a popped job is still waiting")
		}
	}
	if q.len() != maxRepairJobs {
		t.Fatalf("%d jobs, want the bound %d", q.len(), maxRepairJobs)
	}
}

// TestObjectRangeNackBounded: a NACK asking for every object id there is
// (and its NORM_INFO) costs work in proportion to the objects cached, not
// to the 64 Ki ids named: the cached one is repaired, a squelch answers
// the rest and lists none of the ids still to come.
func TestObjectRangeNackBounded(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Rate: 1e7})
	id, err := s.SendData(make([]byte, 1000), []byte("info"))
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 50*time.Millisecond)
	now := t0.Add(50 * time.Millisecond)
	c, err := framing.AppendRepairRequest(nil, framing.FormRanges, framing.RepairObject|framing.RepairInfo, 0, []framing.SymbolRef{
		{FECID: framing.FECRS8, ObjectID: id + 1}, {FECID: framing.FECRS8, ObjectID: id}})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s, now, &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: 2},
		ServerID: 1, InstanceID: s.InstanceID(), Content: c})
	work := s.work
	var squelch *framing.Cmd
	repaired := 0
	for _, m := range drain(s, now, time.Second) {
		switch {
		case m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorSquelch:
			squelch = &m.Cmd
		case m.Type == framing.TypeData && m.Data.ObjectID == id:
			repaired++
		}
	}
	if w := s.work - work; w > 100 {
		t.Errorf("%d steps of work for one cached object", w)
	}
	if squelch == nil || squelch.SquelchCount() != 0 {
		t.Errorf("squelch %v, want one listing no ids", squelch)
	}
	if repaired != 10 {
		t.Errorf("%d symbols of the cached object repaired, want its 10", repaired)
	}
}

// TestOneNodeRepairBudget: one node (never heard before) asking again and
// again for every block of an object being sent must not make the sender
// resend the object over and over while new data waits, nor take half the
// rate from it: what one node may have resent ahead of new data is bounded
// by its share of the rate. A real node asking once is still answered.
func TestOneNodeRepairBudget(t *testing.T) {
	const blocks = 200
	cfg := Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 8, Rate: 1e6}
	s := newSender(t, cfg)
	id, err := s.SendData(make([]byte, blocks*8*100), nil) // 1,600 symbols, about 0.25 s at the rate
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	var pendingRepair, sourceSent int
	for now.Before(t0.Add(2*time.Second)) && s.current() != nil {
		// 50 NACKs a second from one fake node, each asking for the
		// whole object (cut to the blocks sent).
		feed(t, s, now, blockRangeNack(t, s, 0x7777, framing.FECRS8, id, 0, 0xFFFFFF))
		before := s.Stats().RepairSource
		for _, m := range drain(s, now, 20*time.Millisecond) {
			if m.Type == framing.TypeData && m.Data.ObjectID == id {
				sourceSent++
			}
		}
		pendingRepair += int(s.Stats().RepairSource - before)
		now = now.Add(20 * time.Millisecond)
	}
	if s.current() != nil {
		t.Fatal("the object was not all sent within 2 s")
	}
	newData := sourceSent - pendingRepair
	t.Logf("new data %d symbols, repairs while new data was pending %d", newData, pendingRepair)
	if newData != blocks*8 {
		t.Fatalf("%d new symbols sent, want %d", newData, blocks*8)
	}
	// Without a budget the node has about one repair per new symbol
	// (half the rate); a quarter of the rate plus a burst is the bound.
	if pendingRepair > newData/2 {
		t.Errorf("one node had %d symbols resent while %d of new data went out", pendingRepair, newData)
	}
	if st := s.Stats(); st.NacksCut+st.NacksDeferred == 0 {
		t.Error("no NACK cut or deferred")
	}
	// Once the new data is out, the same node is answered again.
	before := s.Stats().RepairSource
	feed(t, s, now, blockRangeNack(t, s, 0x7777, framing.FECRS8, id, 3, 3))
	drain(s, now, 100*time.Millisecond)
	if got := s.Stats().RepairSource - before; got < 8 {
		t.Errorf("block 3 asked after the data went out: %d symbols resent, want 8", got)
	}
}

// TestLateJoinerRepaired: a receiver that joins while an object is being
// sent and asks, every repair cycle, for the whole range of blocks it
// missed gets them all, part by part while new data is still going out
// (its share of the rate) and the rest once it is out.
func TestLateJoinerRepaired(t *testing.T) {
	const blocks = 200
	cfg := Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 8, Rate: 1e6}
	s := newSender(t, cfg)
	id, err := s.SendData(make([]byte, blocks*8*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int, blocks)
	now := t0
	drain(s, now, 100*time.Millisecond) // sent before the receiver joined
	now = now.Add(100 * time.Millisecond)
	var duringData int
	for range 200 {
		first, last := -1, -1
		for b, n := range got {
			if n < 8 {
				if first < 0 {
					first = b
				}
				last = b
			}
		}
		if first < 0 {
			break
		}
		pending := s.current() != nil
		if pending {
			// Blocks not yet sent are not missed yet.
			last = min(last, int(lastSentBlock(s.object(id))))
		}
		if last >= first {
			feed(t, s, now, blockRangeNack(t, s, 42, framing.FECRS8, id, uint32(first), uint32(last)))
		}
		before := s.Stats().RepairSource
		for _, m := range drain(s, now, 60*time.Millisecond) {
			if m.Type == framing.TypeData && m.Data.ObjectID == id {
				got[m.Data.PayloadID.Block]++
			}
		}
		if pending {
			duringData += int(s.Stats().RepairSource - before)
		}
		now = now.Add(60 * time.Millisecond)
	}
	for b, n := range got {
		if n < 8 {
			t.Fatalf("block %d: %d of 8 symbols reached the late joiner", b, n)
		}
	}
	if duringData == 0 {
		t.Error("no repairs while new data was going out")
	}
}

// TestObjectNackCut: an object asked for whole by a node whose budget holds
// less than the blocks sent is answered with its first blocks (the request
// rewritten as a block range), not with nothing and not with everything.
func TestObjectNackCut(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 8, Rate: 1e6})
	id, err := s.SendData(make([]byte, 200*8*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(200 * time.Millisecond)
	drain(s, t0, 200*time.Millisecond)
	sent := int(lastSentBlock(s.object(id)) + 1)
	feed(t, s, now, objectNack(t, s, 9, id))
	before := s.Stats().RepairSource
	repaired := map[uint32]int{}
	pollFor(s, now, 100*time.Millisecond, func(_ time.Time, msgs []framing.Message) {
		for _, m := range msgs {
			if m.Type == framing.TypeData && m.Data.ObjectID == id &&
				int(m.Data.PayloadID.Block) < sent {
				repaired[m.Data.PayloadID.Block]++
			}
		}
	})
	n := int(s.Stats().RepairSource - before)
	if repaired[0] != 8 || n == 0 || n >= sent*8 || s.Stats().NacksCut != 1 {
		t.Fatalf("%d symbols repaired of %d blocks sent (block 0: %d), %d NACKs cut; want block 0 whole and less than all",
			n, sent, repaired[0], s.Stats().NacksCut)
	}
}

// TestNackCutNoAlloc: cutting a NACK to its node's budget allocates
// nothing per packet.
func TestNackCutNoAlloc(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 8, Rate: 1e6})
	id, err := s.SendData(make([]byte, 200*8*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 100*time.Millisecond)
	now := t0.Add(100 * time.Millisecond)
	b, err := blockRangeNack(t, s, 5, framing.FECSmallBlock, id, 0, 0xFFFFFFF0).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		now = now.Add(50 * time.Millisecond) // the bucket refills: every NACK is cut, none deferred
		if err := s.HandlePacket(now, netip.AddrPort{}, b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per NACK", allocs)
	}
	if s.Stats().NacksCut < 100 {
		t.Errorf("%d NACKs cut of %d", s.Stats().NacksCut, i)
	}
}

// TestInfoRequestCostsOnePacket: a NORM_INFO request for an object without
// one (which real receivers send for objects they never heard of) is
// answered with the object's first symbol, which announces it, and not
// with the whole object: a storm of small forged NACKs carrying the INFO
// flag, each from another node id, used to keep a pass over every object
// going, taking two thirds of the rate from new data in the simulated
// nack-storm. A receiver that really lacks the object asks for its blocks
// once it has heard of it (TestInfoRequestWithoutInfo, simrun).
func TestInfoRequestCostsOnePacket(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Rate: 1e7})
	id, err := s.SendData(make([]byte, 5*4*100), nil) // 5 blocks, no NORM_INFO
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(50 * time.Millisecond)
	drain(s, t0, 50*time.Millisecond)
	// As the simulated storm sends them: a few symbols of a block, with
	// the INFO flag.
	c, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment|framing.RepairInfo, 0, []framing.SymbolRef{
		{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: 2, Symbol: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		feed(t, s, now, &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: uint32(100 + i)},
			ServerID: s.cfg.NodeID, InstanceID: s.InstanceID(), Content: c})
	}
	sent := map[[2]uint32]int{}
	n := 0
	for _, m := range drain(s, now, time.Second) {
		if m.Type == framing.TypeData && m.Data.ObjectID == id {
			sent[[2]uint32{m.Data.PayloadID.Block, uint32(m.Data.PayloadID.Symbol)}]++
			n++
		}
	}
	if n > 2 || sent[[2]uint32{0, 0}] != 1 || sent[[2]uint32{2, 1}] != 1 {
		t.Fatalf("10 NACKs for a symbol and the NORM_INFO got %d data packets %v, want symbol 0/0 and 2/1 once each", n, sent)
	}
}

// TestBulkAfterData: once the data is out, a node asking for more than its
// repair budget (a forged NACK for every block of the object, as the
// simulated nack-range sends 50 times a second) is answered from the bulk
// queue: a real receiver's request goes first, and the pass over the
// object sends half of every block's parity before any source symbol. First come
// first served, the receiver's repair waited for a source pass over the
// whole object, and receivers that suppressed their own NACKs on hearing
// the forged one were whole only at the end of that pass.
func TestBulkAfterData(t *testing.T) {
	const blocks = 60
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Parity: 4, Rate: 1e6})
	id, err := s.SendData(make([]byte, blocks*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 500*time.Millisecond)
	now := t0.Add(500 * time.Millisecond)
	if s.current() != nil {
		t.Fatal("data still going out")
	}
	feed(t, s, now, blockRangeNack(t, s, 99, framing.FECSmallBlock, id, 0, 0xFFFFFFF0))
	feed(t, s, now.Add(time.Millisecond), segmentNack(t, s, 2, id, 17, 1))
	var order [][2]int // block, symbol of each data packet
	for _, m := range drain(s, now, 2*time.Second) {
		if m.Type == framing.TypeData && m.Data.ObjectID == id {
			order = append(order, [2]int{int(m.Data.PayloadID.Block), int(m.Data.PayloadID.Symbol)})
		}
	}
	if len(order) < blocks*6 {
		t.Fatalf("%d repairs sent, want the forged pass too (%d): %v %+v", len(order), blocks*6, order, s.Stats())
	}
	if order[0][0] != 17 {
		t.Errorf("first repair %v, want block 17's (the real receiver's); order %v", order[0], order[:10])
	}
	// Then the pass: each block's 2 parity symbols, then the source.
	for i, p := range order[1 : 1+2*blocks] {
		if p[0] != i/2 || p[1] < 4 {
			t.Fatalf("repair %d of the pass is %v, want parity of block %d; order %v", i, p, i/2, order[:2*blocks+1])
		}
	}
	if st := s.Stats(); st.NacksBulk != 1 || st.RepairsBulk < blocks*6 {
		t.Errorf("%d NACKs and %d repairs bulk, want 1 and %d", st.NacksBulk, st.RepairsBulk, blocks*6)
	}
}

// TestBulkBeforeClose: a closing sender does not end the transmission
// while a bulk repair (a late joiner's request for the whole object) is
// still going out: queueing bulk repairs restarts the flushes, as any
// repair does.
func TestBulkBeforeClose(t *testing.T) {
	const blocks = 60
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Parity: 4, Rate: 1e6})
	id, err := s.SendData(make([]byte, blocks*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	drain(s, t0, 100*time.Millisecond)
	now := t0.Add(100 * time.Millisecond)
	if s.current() != nil {
		t.Fatal("data still going out")
	}
	s.SetRate(1e4) // the pass takes seconds, the flushes less
	feed(t, s, now, objectNack(t, s, 2, id))
	source := map[[2]uint32]bool{}
	for _, m := range drain(s, now, 30*time.Second) {
		switch {
		case m.Type == framing.TypeData && m.Data.ObjectID == id && m.Data.PayloadID.Symbol < 4:
			source[[2]uint32{m.Data.PayloadID.Block, uint32(m.Data.PayloadID.Symbol)}] = true
		case m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorEOT && len(source) < blocks*4:
			t.Fatalf("end of transmission after %d of the %d source symbols asked for", len(source), blocks*4)
		}
	}
	if st := s.Stats(); st.NacksBulk != 1 || len(source) != blocks*4 {
		t.Fatalf("%d NACKs bulk, %d source symbols repaired, want 1 and %d", st.NacksBulk, len(source), blocks*4)
	}
}

// TestBulkParityAcrossObjects: a forged NACK for every block of two objects
// gets both objects' parity before either's source, so that receivers that
// lost a few symbols of the second are not kept waiting for a source pass
// over the first (in the simulated nack-range, seeds 1 and 18, two
// receivers waited for it: 2.3 times the clean time).
func TestBulkParityAcrossObjects(t *testing.T) {
	const blocks = 30
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Parity: 4, Rate: 1e6})
	a, err := s.SendData(make([]byte, blocks*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SendData(make([]byte, blocks*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 500*time.Millisecond)
	now := t0.Add(500 * time.Millisecond)
	var c []byte
	for _, id := range []uint16{a, b} {
		if c, err = framing.AppendRepairRequest(c, framing.FormRanges, framing.RepairBlock, 0, []framing.SymbolRef{
			{FECID: framing.FECRS8, ObjectID: id}, {FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: blocks - 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	feed(t, s, now, &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: 99},
		ServerID: s.cfg.NodeID, InstanceID: s.InstanceID(), Content: c})
	n, parity := 0, map[uint16]int{}
	for _, m := range drain(s, now, 2*time.Second) {
		if m.Type != framing.TypeData {
			continue
		}
		n++
		if m.Data.PayloadID.Symbol >= 4 {
			parity[m.Data.ObjectID]++
			if n > 4*blocks {
				t.Fatalf("parity of object %d as repair %d, after %d of the objects' 2x%d", m.Data.ObjectID, n, 4*blocks, 2*blocks)
			}
		} else if n <= 4*blocks {
			t.Fatalf("repair %d is source of object %d, before the parity of both objects (%d so far)", n, m.Data.ObjectID, parity)
		}
	}
	if parity[a] != 2*blocks || parity[b] != 2*blocks || n != 2*6*blocks {
		t.Fatalf("%d repairs, parity %v: want 2 parity and 4 source symbols per block of both", n, parity)
	}
}

// TestConfirmedCloseUnderBulk: a closing sender whose acking nodes have
// confirmed everything ends at once, even while a node it does not answer
// for (a forged one, asking for every block again and again) keeps the bulk
// queue full; an unconfirmed one waits for the bulk repairs.
func TestConfirmedCloseUnderBulk(t *testing.T) {
	closeTime := func(ack bool) time.Duration {
		s := newSender(t, Config{AckingNodes: []uint32{2}, GRTT: time.Millisecond, GRTTMax: time.Millisecond,
			SegmentSize: 100, BlockLen: 4, Parity: 4, Rate: 1e6})
		id, err := s.SendData(make([]byte, 200*4*100), nil)
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		drain(s, now, 200*time.Millisecond)
		now = now.Add(200 * time.Millisecond)
		if err := s.SetWatermark(id); err != nil {
			t.Fatal(err)
		}
		ref := watermarkRef(s, now, 5*time.Millisecond)
		now = now.Add(5 * time.Millisecond)
		if ack {
			ackWatermark(t, s, now, 2, ref)
		}
		s.Close()
		s.SetRate(1e4) // the forged passes outlast the test
		closed := time.Duration(-1)
		storm := blockRangeNack(t, s, 99, framing.FECRS8, id, 0, 199)
		next := now
		pollFor(s, now, 3*time.Second, func(at time.Time, _ []framing.Message) {
			if !at.Before(next) {
				feed(t, s, at, storm)
				next = at.Add(20 * time.Millisecond)
			}
			for _, e := range s.Events() {
				if e.Kind == EventClosed && closed < 0 {
					closed = at.Sub(now)
				}
			}
		})
		if s.Stats().NacksBulk == 0 {
			t.Fatal("no NACK went to the bulk queue")
		}
		return closed
	}
	if d := closeTime(true); d < 0 || d > 500*time.Millisecond {
		t.Fatalf("confirmed sender closed after %v under a forged storm, want within 500 ms", d)
	}
	if d := closeTime(false); d >= 0 {
		t.Fatalf("unconfirmed sender closed after %v with bulk repairs queued", d)
	}
}
