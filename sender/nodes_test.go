package sender

import (
	"slices"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestIdleNodesEvicted: the receivers a sender tracks (acking nodes with
// TrackReceivers, stream flow control's table) used to be kept for ever,
// so node ids a storm used once filled MaxNodes and every real receiver
// heard later went untracked. Receivers silent for nodeIdle now make room;
// listed ones, and ones heard lately, stay.
func TestIdleNodesEvicted(t *testing.T) {
	s := newSender(t, Config{TrackReceivers: true, MaxNodes: 8, AckingNodes: []uint32{50}})
	nack := func(at time.Duration, node uint32) {
		feed(t, s, t0.Add(at), &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
			ServerID: 1, InstanceID: s.InstanceID()})
	}
	for i := range uint32(7) {
		nack(0, 1000+i) // a storm's ids, heard once
	}
	nack(time.Second, 2) // a real receiver, too early: all were heard lately
	if st := s.Stats(); st.NodesRefused != 1 || st.NodesEvicted != 0 || slices.Contains(s.nodes, 2) {
		t.Fatalf("full table of fresh nodes: stats %+v, nodes %v", st, s.nodes)
	}
	nack(25*time.Second, 1003) // one storm id heard again
	nack(30*time.Second, 3)
	want := []uint32{50, 1003, 3}
	if !slices.Equal(s.nodes, want) {
		t.Fatalf("nodes %v, want %v", s.nodes, want)
	}
	var flow []uint32
	for _, n := range s.flow {
		flow = append(flow, n.id)
	}
	if !slices.Equal(flow, want) {
		t.Fatalf("flow nodes %v, want %v", flow, want)
	}
	for i, n := range s.flow {
		if s.flowIndex[n.id] != i || len(s.flowIndex) != len(s.flow) {
			t.Fatalf("flow index %v for %v", s.flowIndex, flow)
		}
	}
	if st := s.Stats(); st.NodesEvicted != 2*6 {
		t.Fatalf("%d nodes evicted, want 6 from each table", st.NodesEvicted)
	}
	// A watermark waits for the nodes tracked: an evicted id is not asked.
	id, err := s.SendData(make([]byte, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	if len(s.wm.pending) != 3 || s.wm.pending[1000] {
		t.Fatalf("watermark pending %v", s.wm.pending)
	}
}

// TestWatermarkUnderStorm: a NACK every 20 ms asking for every block of
// the object kept repairs queued for as long as it went on, and watermark
// requests, queued behind them, never went out: a session's WaitAck hung
// while a host on the group asked for absurd block ranges. They now go
// at their own pace, and the watermark completes.
func TestWatermarkUnderStorm(t *testing.T) {
	s := newSender(t, Config{AckingNodes: []uint32{2}, GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond,
		SegmentSize: 100, BlockLen: 4, Rate: 1e6})
	id, err := s.SendData(make([]byte, 500*4*100), nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 500*time.Millisecond)
	now := t0.Add(500 * time.Millisecond)
	storm := blockRangeNack(t, s, 99, framing.FECSmallBlock, id, 0, 0xFFFFFFF0)
	var ref framing.SymbolRef
	for i := range 60 {
		if i == 10 { // the storm is on
			if err := s.SetWatermark(id); err != nil {
				t.Fatal(err)
			}
		}
		feed(t, s, now, storm)
		for _, m := range drain(s, now, 20*time.Millisecond) {
			if m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush && len(m.Cmd.Content) >= 4 {
				ref = m.Cmd.Ref
			}
		}
		now = now.Add(20 * time.Millisecond)
		if ref.ObjectID == id {
			break
		}
	}
	if ref.ObjectID != id {
		t.Fatalf("no watermark request in a second of storm; stats %+v", s.Stats())
	}
	if s.rq.len()+s.bq.len() == 0 {
		t.Fatal("the storm left no repairs queued")
	}
	payload, err := framing.AppendSymbolRef(nil, ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Events()
	feed(t, s, now, &framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: 2},
		ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload})
	if ev := s.Events(); len(ev) != 2 || ev[1].Kind != EventWatermark {
		t.Fatalf("events %v after the acknowledgement", ev)
	}
}
